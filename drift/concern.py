"""What a checked window asks of its owner: concerns ranked by impact, and one level.

A :class:`Concern` is one finding worth a line in a verdict (a drop in realized accuracy, a
rise of the confidently-wrong rate, drifted outputs, a blind window...), with the level it
calls for and its impact, in points of accuracy or of share (what ranks concerns against each
other). A :class:`Verdict` is the highest level of its concerns, its concerns in order of
level, then impact, and a headline made of the first. The rules that make concerns from a
check's findings live in ``jobs.check.verdict``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from drift.records import Record


class VerdictLevel(StrEnum):
    """How much a checked window asks of its owner, lowest first (alerts and metrics rank by it)."""

    OK = "ok"
    WATCH = "watch"  # something moved; look, nothing to do yet
    ACT = "act"  # measurably worse, or retrain-worthy, or blind: do something

    @classmethod
    def of(cls, *, drifted: bool, retrain_worthy: bool) -> VerdictLevel:
        """The level of a run stored before verdicts were (drift and the retrain policy only)."""
        if retrain_worthy:
            return cls.ACT
        return cls.WATCH if drifted else cls.OK

    @classmethod
    def stored(cls, level: object, *, drifted: bool, retrain_worthy: bool) -> VerdictLevel:
        """The level a run stored (``level``), or, for a run stored before verdicts (``level``
        missing or unknown), the one :meth:`of` its drift and retrain policy give."""
        if isinstance(level, str) and level in cls._value2member_map_:
            return cls(level)
        return cls.of(drifted=drifted, retrain_worthy=retrain_worthy)

    @property
    def rank(self) -> int:
        """0 ok, 1 watch, 2 act (the ``driftkeeper_verdict_level`` gauge)."""
        return list(VerdictLevel).index(self)


@dataclass(frozen=True, kw_only=True)
class Concern(Record):
    """One finding of a verdict."""

    record_name = "verdict concern"

    kind: str  # realized, estimate, confidently_wrong, outliers, drift, data_quality, policy
    level: VerdictLevel
    impact: float  # in points (accuracy, rate or share, x100): ranks concerns of one level
    text: str


@dataclass(frozen=True, kw_only=True)
class Verdict(Record):
    """The level of a window, why, and a one-line headline."""

    record_name = "verdict"

    level: VerdictLevel
    headline: str
    concerns: tuple[Concern, ...] = ()

    @classmethod
    def of(cls, concerns: Iterable[Concern], *, quiet: str) -> Verdict:
        """The verdict of ``concerns`` (``quiet``: the headline when there is none to report)."""
        ranked = tuple(sorted(concerns, key=lambda c: (-c.level.rank, -c.impact, c.kind)))
        level = max((c.level for c in ranked), key=lambda v: v.rank, default=VerdictLevel.OK)
        if level == VerdictLevel.OK:
            return cls(level=level, headline=quiet, concerns=ranked)
        return cls(level=level, headline=ranked[0].text, concerns=ranked)
