"""Blind windows: a check with nothing (or mostly quarantined rows) to look at is a finding.

A config mistake upstream (a renamed field, an unregistered version) sends every row to the
quarantine; the check then has nothing to compare, and saying "skipped" with exit code 0 would
leave monitoring blind without a word. :func:`blindness` says when a window is blind and why,
naming the quarantine count and its main reason; ``check --fail-on-drift`` and ``run check``
exit with code 5 on it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from drift.records import Record
from jobs.ingest.breaker import reason_kind
from storage import quarantine, versions

MOSTLY = 0.5  # a window is blind when more than this share of its rows were quarantined


@dataclass(frozen=True, kw_only=True)
class Blind(Record):
    """Why a window could not be watched."""

    record_name = "blind window"

    reason: str
    accepted: int  # accepted rows of every version in the window
    quarantined: int  # prediction rows quarantined while the window ran
    main_reason: str | None  # the most common quarantine reason, with its field

    @property
    def message(self) -> str:
        text = f"blind window: {self.reason}"
        if self.quarantined:
            text += f"; {self.quarantined:,} rows quarantined"
            if self.main_reason:
                text += f", mostly {self.main_reason}"
            text += " (see `driftkeeper quarantine list`, then `quarantine replay` after the fix)"
        return text


@dataclass(frozen=True, kw_only=True)
class WindowQuality:
    """A window's accepted rows against its quarantined ones, and whether it is blind."""

    accepted: int
    quarantined: int
    main_reason: str | None
    blind: Blind | None

    @property
    def quarantine_share(self) -> float | None:
        total = self.accepted + self.quarantined
        return self.quarantined / total if total else None


def blindness(
    session: Session, model_id: int, accepted: dict[int, int], start: datetime, end: datetime
) -> Blind | None:
    """Whether the window ``[start, end)`` is blind (see :func:`window_quality`)."""
    return window_quality(session, model_id, accepted, start, end).blind


def window_quality(
    session: Session,
    model_id: int,
    accepted: dict[int, int],
    start: datetime,
    end: datetime,
    *,
    rejected: list[tuple[str | None, str, int]] | None = None,
) -> WindowQuality:
    """The quality of the window ``[start, end)``, given its accepted rows by version.

    Blind: no accepted row at all; or none of the version that was champion when the window
    began (promoted before it, so it should have served all of it); or more than half of the
    window's rows quarantined (rows quarantined while the window ran, by the quarantine's time;
    for rows kept outside, a lake or a push-down source, the ``rejected`` counts its engine found).
    """
    total = sum(accepted.values())
    reasons = (
        rejected if rejected is not None else quarantine.reasons_between(session, model_id, "predictions", start, end)
    )
    quarantined = sum(n for _, _, n in reasons)
    main = _main_reason(reasons)
    why = None
    champion = versions.champion_at(session, model_id, start)
    if total == 0:
        why = "no accepted predictions in the window"
    elif champion is not None and accepted.get(champion.version, 0) == 0:
        why = f"no accepted predictions of the champion (version {champion.version}) in the window"
    elif quarantined > MOSTLY * (quarantined + total):
        why = f"most rows were quarantined ({quarantined:,} of {quarantined + total:,})"
    blind = None if why is None else Blind(reason=why, accepted=total, quarantined=quarantined, main_reason=main)
    return WindowQuality(accepted=total, quarantined=quarantined, main_reason=main, blind=blind)


def _main_reason(reasons: list[tuple[str | None, str, int]]) -> str | None:
    kinds: Counter[tuple[str | None, str]] = Counter()
    example: dict[tuple[str | None, str], str] = {}
    for field, reason, n in reasons:
        kind = reason_kind(field, reason)
        kinds[kind] += n
        example.setdefault(kind, f"{field}: {reason}" if field else reason)
    if not kinds:
        return None
    kind, _ = kinds.most_common(1)[0]
    return example[kind]
