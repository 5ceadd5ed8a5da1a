"""The entry points: :func:`notify_outcome` after every job run, :func:`send_test` for ``alerts test``.

``notify_outcome`` never raises and never fails the job: it reads what was last alerted (one
short transaction), sends outside any transaction (each channel with retries, each attempt
bounded by ``alerts.timeout_seconds``), then records every delivery and the new states (a
second transaction). An alert whose message reached no channel keeps its old state, so the
next outcome tries again. With no channel configured it returns at once, touching nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker

from jobs.alerts.alert import (
    Alert,
    AlertKind,
    AlertStatus,
    Message,
    clean_label,
    fingerprint,
    group_key,
    group_messages,
)
from jobs.alerts.channel import Channel, Delivery, deliver, redact
from jobs.alerts.events import Clear, signals_of
from jobs.alerts.rules import Decision, decide, merge, resolve_cleared
from jobs.alerts.settings import AlertSettings
from jobs.report.weeks import iso_week
from storage import alerts as store
from storage.clock import Clock, wall_clock

if TYPE_CHECKING:
    from jobs.config import Settings
    from jobs.runner.execute import JobOutcome

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class NotifyReport:
    """What one call sent: the alerts and, per message and channel, the delivery."""

    alerts: tuple[Alert, ...] = ()
    deliveries: tuple[Delivery, ...] = ()
    error: str | None = None  # alerting itself failed (the database, say); logged, never raised

    @property
    def delivered(self) -> bool:
        return bool(self.deliveries) and all(d.delivered for d in self.deliveries)

    def to_dict(self) -> dict[str, Any]:
        return {
            "alerts": [a.to_dict() for a in self.alerts],
            "deliveries": [d.to_dict() for d in self.deliveries],
            "error": self.error,
        }


def build_channels(settings: AlertSettings, *, clock: Clock = wall_clock) -> list[Channel]:
    """The configured channels, in the order of :data:`~jobs.alerts.settings.CHANNELS`."""
    from jobs.alerts.mail import Email
    from jobs.alerts.slack import Slack
    from jobs.alerts.webhook import Webhook

    channels: list[Channel] = []
    if settings.webhook is not None:
        channels.append(Webhook(settings.webhook, settings, clock=clock))
    if settings.slack is not None:
        channels.append(Slack(settings.slack, settings))
    if settings.email is not None:
        channels.append(Email(settings.email, settings, clock=clock))
    return channels


def notify_outcome(
    session_factory: sessionmaker[Session],
    settings: Settings,
    outcome: JobOutcome,
    *,
    now: datetime | None = None,
    clock: Clock = wall_clock,
) -> NotifyReport:
    """Send the alerts ``outcome`` calls for; never raises. ``clock``: the real time of sending."""
    config = settings.alerts
    if not config.channels:
        return NotifyReport()
    secrets: tuple[str, ...] = ()
    try:
        now = now or wall_clock()
        channels = build_channels(config, clock=clock)
        secrets = tuple(s for c in channels for s in c.secrets)
        decisions = _decide(session_factory, outcome, config, now)
        if not decisions:
            return NotifyReport()
        messages = group_messages([d.alert for d in decisions])
        sent = _send(channels, messages, config)
        _record(session_factory, decisions, sent, now)
        return NotifyReport(alerts=tuple(d.alert for d in decisions), deliveries=tuple(d for _, ds in sent for d in ds))
    except Exception as exc:  # alerting must never fail the job
        error = clean_label(redact(f"{type(exc).__name__}: {exc}", secrets), 1000)
        what = clean_label(f"{outcome.job} ({outcome.model or 'all models'})")
        log.warning("alerts for %s not sent: %s", what, error)
        return NotifyReport(error=error)


def _decide(
    session_factory: sessionmaker[Session], outcome: JobOutcome, config: AlertSettings, now: datetime
) -> list[Decision]:
    signals, clears = signals_of(outcome, now)
    signals = merge(signals)
    if not signals and not clears:
        return []
    cooldown = timedelta(minutes=config.cooldown_minutes)
    with session_factory() as session:
        known = store.states(session, [fingerprint(s.key) for s in signals])
        firing = {(c.kind, c.model): store.firing(session, str(c.kind), c.model) for c in _unique(clears)}
    decisions = [d for s in signals if (d := decide(s, known.get(fingerprint(s.key)), now=now, cooldown=cooldown))]
    active = {fingerprint(s.key) for s in signals if s.active}
    for (kind, model), states in firing.items():
        decisions += resolve_cleared(Clear(kind=kind, model=model), states, now=now, keep=active)
    return decisions


def _unique(clears: list[Clear]) -> list[Clear]:
    return list(dict.fromkeys(clears))


def _send(
    channels: list[Channel], messages: list[Message], config: AlertSettings
) -> list[tuple[Message, list[Delivery]]]:
    return [(m, [deliver(c, m, config) for c in channels]) for m in messages]


def _record(
    session_factory: sessionmaker[Session],
    decisions: list[Decision],
    sent: list[tuple[Message, list[Delivery]]],
    now: datetime,
) -> None:
    reached = {m.group for m, deliveries in sent if any(d.delivered for d in deliveries)}
    with session_factory.begin() as session:
        for message, deliveries in sent:
            for d in deliveries:
                store.record_delivery(session, _record_of(message, d, now))
        for decision in decisions:
            if decision.alert.group in reached:
                store.save_state(session, decision.state)


def _record_of(message: Message, delivery: Delivery, now: datetime) -> store.DeliveryRecord:
    return store.DeliveryRecord(
        created_at=now,
        channel=delivery.channel,
        group_key=message.group,
        status=str(message.status),
        delivered=delivery.delivered,
        attempts=delivery.attempts,
        summary=message.title,
        fingerprints=tuple(a.fingerprint for a in message.alerts),
        error=delivery.error,
    )


def probe_message(now: datetime) -> Message:
    """The message ``driftkeeper alerts test`` sends: one firing test alert."""
    group = group_key("driftkeeper", iso_week(now))
    alert = Alert(
        key=f"test:{now.isoformat()}",
        kind=AlertKind.TEST,
        status=AlertStatus.FIRING,
        model=None,
        group=group,
        labels={"alertname": "DriftkeeperTest", "severity": "info"},
        annotations={"summary": "test alert", "description": "driftkeeper alerts test: this channel works."},
        starts_at=now,
    )
    return Message(group=group, alerts=(alert,))


def send_test(
    settings: Settings,
    *,
    session_factory: sessionmaker[Session] | None = None,
    now: datetime | None = None,
    clock: Clock = wall_clock,
) -> list[Delivery]:
    """Send a test message to every configured channel; the deliveries are recorded when a
    ``session_factory`` is given. No channel: an empty list."""
    config = settings.alerts
    now = now or wall_clock()
    message = probe_message(now)
    deliveries = [deliver(c, message, config) for c in build_channels(config, clock=clock)]
    if session_factory is not None and deliveries:
        with session_factory.begin() as session:
            for d in deliveries:
                store.record_delivery(session, _record_of(message, d, now))
    return deliveries
