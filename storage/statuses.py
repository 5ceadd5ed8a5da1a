"""Every status driftkeeper stores or reports, defined once.

``StrEnum`` members are the strings stored in the database and written to JSON, so old rows
and scripts that compare with the plain strings keep working.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """A job run (``job_runs.status``)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # Ctrl-C or SystemExit while it ran


class RetrainDecision(StrEnum):
    """How a retrain ended (``retrain_runs.decision``)."""

    RUNNING = "running"
    PROMOTED = "promoted"
    REJECTED = "rejected"
    FAILED = "failed"
    SKIPPED = "skipped"  # the policy (or a dry run) said no: nothing trained

    @classmethod
    def finished(cls) -> tuple[RetrainDecision, ...]:
        """The decisions of a retrain that ran to its end (what a report lists)."""
        return (cls.PROMOTED, cls.REJECTED, cls.FAILED)


class WeekStatus(StrEnum):
    """The verdict of a weekly report, worst last."""

    NO_DATA = "no-data"
    OK = "ok"
    DRIFT = "drift"
    RETRAIN = "retrain"


class VerdictLevel(StrEnum):
    """How much a checked window asks of its owner, lowest first (alerts and metrics rank by it)."""

    OK = "ok"
    WATCH = "watch"  # something drifted; nothing to do yet
    ACT = "act"  # retrain-worthy

    @classmethod
    def of(cls, *, drifted: bool, retrain_worthy: bool) -> VerdictLevel:
        if retrain_worthy:
            return cls.ACT
        return cls.WATCH if drifted else cls.OK

    @property
    def rank(self) -> int:
        """0 ok, 1 watch, 2 act (the ``driftkeeper_verdict_level`` gauge)."""
        return list(VerdictLevel).index(self)
