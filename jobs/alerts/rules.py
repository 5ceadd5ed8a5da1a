"""When a signal becomes an alert: rises, dedup, cooldown, resolve. Pure: state in, decision out.

- an active signal with nothing firing for its fingerprint fires;
- while firing, a higher level fires again (a revision: watch -> act); the same level is a
  duplicate unless ``cooldown`` has passed since it was last sent; a lower level says nothing;
- an event (``once``) is sent once per fingerprint;
- a clear signal (or :class:`~jobs.alerts.events.Clear`) resolves what is firing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from jobs.alerts.alert import Alert, AlertKind, AlertStatus, fingerprint
from jobs.alerts.events import Clear, Signal
from storage.alerts import StoredAlert


@dataclass(frozen=True, kw_only=True)
class Decision:
    """An alert to send and the state to store once it is delivered."""

    alert: Alert
    state: StoredAlert


def merge(signals: Iterable[Signal]) -> list[Signal]:
    """One signal per key: an outcome with several windows of one week says its worst level."""
    merged: dict[str, Signal] = {}
    for s in signals:
        old = merged.get(s.key)
        if old is None or (s.active, s.rank) > (old.active, old.rank):
            merged[s.key] = s
    return list(merged.values())


def decide(signal: Signal, state: StoredAlert | None, *, now: datetime, cooldown: timedelta) -> Decision | None:
    """What to send for ``signal``, given what was last sent for its fingerprint (None: nothing)."""
    is_firing = state is not None and state.status == AlertStatus.FIRING
    if not signal.active:
        return resolve(state, now=now) if state is not None and is_firing and signal.kind != AlertKind.RETRAIN else None
    if state is not None and is_firing:
        if signal.once or signal.rank < state.rank:
            return None
        if signal.rank == state.rank and now - state.last_sent_at < cooldown:
            return None  # a duplicate
    starts_at = state.starts_at if state is not None and is_firing else now
    alert = Alert(
        key=signal.key,
        kind=signal.kind,
        status=AlertStatus.FIRING,
        model=signal.model,
        group=signal.group,
        rank=signal.rank,
        labels=dict(signal.labels),
        annotations=dict(signal.annotations),
        starts_at=starts_at,
    )
    return Decision(alert=alert, state=_state(alert, now))


def resolve(state: StoredAlert, *, now: datetime) -> Decision:
    """The resolved message of a firing alert: its labels as they fired, ``endsAt`` now."""
    alert = Alert(
        key=state.key,
        kind=AlertKind(state.kind),
        status=AlertStatus.RESOLVED,
        model=state.model,
        group=state.group_key,
        rank=state.rank,
        labels={str(k): str(v) for k, v in state.labels.items()},
        annotations={str(k): str(v) for k, v in state.annotations.items()},
        starts_at=state.starts_at,
        ends_at=now,
    )
    resolved = _state(alert, now)
    return Decision(alert=alert, state=resolved)


def resolve_cleared(clear: Clear, firing: Iterable[StoredAlert], *, now: datetime, keep: set[str]) -> list[Decision]:
    """Resolve the firing alerts a :class:`Clear` covers, except the fingerprints in ``keep``."""
    return [resolve(s, now=now) for s in firing if s.fingerprint not in keep and s.kind == clear.kind]


def _state(alert: Alert, now: datetime) -> StoredAlert:
    return StoredAlert(
        fingerprint=fingerprint(alert.key),
        key=alert.key,
        kind=str(alert.kind),
        model=alert.model,
        group_key=alert.group,
        status=str(alert.status),
        rank=alert.rank,
        labels=dict(alert.labels),
        annotations=dict(alert.annotations),
        starts_at=alert.starts_at,
        ends_at=alert.ends_at,
        last_sent_at=now,
    )
