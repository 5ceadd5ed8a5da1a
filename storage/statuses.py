"""Every status driftkeeper stores or reports, defined once.

``StrEnum`` members are the strings stored in the database and written to JSON, so old rows
and scripts that compare with the plain strings keep working.
"""

from __future__ import annotations

from enum import StrEnum

from drift.concern import VerdictLevel

__all__ = ["JobStatus", "RetrainDecision", "VerdictLevel", "WeekStatus"]


class JobStatus(StrEnum):
    """A job run (``job_runs.status``)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # Ctrl-C or SystemExit while it ran
    KILLED = "killed"  # it died without a word (SIGKILL, a crash); found when its lease was taken over


class RetrainDecision(StrEnum):
    """How a retrain ended (``retrain_runs.decision``)."""

    RUNNING = "running"
    PROMOTED = "promoted"
    REJECTED = "rejected"
    FAILED = "failed"
    SKIPPED = "skipped"  # the policy (or a dry run) said no: nothing trained
    KILLED = "killed"  # died while it ran; found by the next retrain of the model
    ABORTED = "aborted"  # failed before training began (contract, data): no cooldown, labels kept

    @classmethod
    def finished(cls) -> tuple[RetrainDecision, ...]:
        """The decisions of a retrain that ran to its end (what a report lists)."""
        return (cls.PROMOTED, cls.REJECTED, cls.FAILED, cls.ABORTED)


class WeekStatus(StrEnum):
    """The verdict of a weekly report, worst last: no data, or a verdict level (ok, watch, act)."""

    NO_DATA = "no-data"
    OK = "ok"
    WATCH = "watch"
    ACT = "act"

    @classmethod
    def legacy(cls, value: str) -> WeekStatus:
        """A status of a schema-1 summary ("drift", "retrain") as today's."""
        return {"drift": cls.WATCH, "retrain": cls.ACT}.get(value) or cls(value)
