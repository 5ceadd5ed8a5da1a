"""The base of every engine that computes day states outside driftkeeper's database.

A :class:`DayState` is one segment (a UTC day, or the part of one a window covers) of one
model version: the profile and findings state a pass over its rows gives, the rejected rows
counted per reason (with a bounded sample of them for the quarantine), and a watermark that
changes when the day's data changes (a lake partition's newest file, a table's highest id).
States merge like their parts, so engines cut the work however they like (files, Spark tasks,
SQL groups) and the driver merges.

:class:`ExternalDays` is what the check asks of an engine (:mod:`jobs.lake.local`,
:mod:`jobs.lake.spark`, :mod:`jobs.pushdown.engine`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from drift import ReferenceProfile, WindowProfile
from jobs.check.state import DayFindings
from jobs.check.windows import FindingsInputs
from storage.bulk import Reject

SAMPLE_PER_REASON = 20  # rejected rows kept per (field, reason) and day for the quarantine

Segment = tuple[datetime, datetime]


@dataclass(frozen=True, kw_only=True)
class RejectTally:
    """Rejected rows counted per (field, reason), with at most ``SAMPLE_PER_REASON`` of each kept."""

    counts: dict[tuple[str | None, str], int] = field(default_factory=dict)
    samples: tuple[Reject, ...] = ()

    @property
    def n_rows(self) -> int:
        return sum(self.counts.values())

    @classmethod
    def of(cls, rejects: Sequence[Reject]) -> RejectTally:
        return cls().merge(cls(counts={}, samples=tuple(rejects)), count_samples=True)

    def merge(self, other: RejectTally, *, count_samples: bool = False) -> RejectTally:
        counts = dict(self.counts)
        if count_samples:
            for r in other.samples:
                counts[(r.field, r.reason)] = counts.get((r.field, r.reason), 0) + 1
        else:
            for key, n in other.counts.items():
                counts[key] = counts.get(key, 0) + n
        kept: dict[tuple[str | None, str], list[Reject]] = {}
        for r in sorted(self.samples + other.samples, key=lambda r: r.position):
            bucket = kept.setdefault((r.field, r.reason), [])
            if len(bucket) < SAMPLE_PER_REASON:
                bucket.append(r)
        samples = tuple(r for bucket in kept.values() for r in bucket)
        return RejectTally(counts=counts, samples=samples)

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": [[f, r, n] for (f, r), n in self.counts.items()],
            "samples": [[s.position, s.field, s.reason, s.raw] for s in self.samples],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RejectTally:
        return cls(
            counts={(f, r): int(n) for f, r, n in data["counts"]},
            samples=tuple(Reject(position=p, field=f, reason=r, raw=raw) for p, f, r, raw in data["samples"]),
        )


@dataclass(frozen=True, kw_only=True)
class DayState:
    """One segment of one version, computed outside driftkeeper's database."""

    profile: WindowProfile | None
    findings: DayFindings
    rejects: RejectTally = field(default_factory=RejectTally)

    @property
    def n_rows(self) -> int:
        return self.profile.n_rows if self.profile is not None else 0

    def merge(self, other: DayState) -> DayState:
        profile = self.profile or other.profile
        if self.profile is not None and other.profile is not None:
            profile = self.profile.merge(other.profile)
        return DayState(
            profile=profile,
            findings=self.findings.merge(other.findings),
            rejects=self.rejects.merge(other.rejects),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile.to_dict() if self.profile is not None else None,
            "findings": self.findings.to_dict(),
            "rejects": self.rejects.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DayState:
        return cls(
            profile=WindowProfile.from_dict(data["profile"]) if data["profile"] is not None else None,
            findings=DayFindings.from_dict(data["findings"]),
            rejects=RejectTally.from_dict(data["rejects"]),
        )


EMPTY = DayState(profile=None, findings=DayFindings())


@dataclass(frozen=True, kw_only=True)
class IdentifiedRows:
    """Accepted rows picked by prediction id (the labelled ones, the flagged ones): what the
    label-dependent findings and the flagged list need of them, one array per field."""

    prediction_id: np.ndarray  # object array of str
    confidence: np.ndarray  # float64
    predicted_label: np.ndarray  # object array of str
    input_uri: np.ndarray  # object array of str or None

    def __len__(self) -> int:
        return len(self.prediction_id)

    @classmethod
    def empty(cls) -> IdentifiedRows:
        text = np.empty(0, dtype=object)
        return cls(prediction_id=text, confidence=np.empty(0), predicted_label=text, input_uri=text)

    def to_arrow(self) -> pa.RecordBatch:
        """The rows as one record batch (what a Spark task hands back)."""
        return pa.RecordBatch.from_pydict(
            {
                "prediction_id": pa.array(self.prediction_id.tolist(), type=pa.string()),
                "confidence": pa.array(self.confidence, type=pa.float64()),
                "predicted_label": pa.array(self.predicted_label.tolist(), type=pa.string()),
                "input_uri": pa.array(self.input_uri.tolist(), type=pa.string()),
            }
        )

    @classmethod
    def from_arrow(cls, table: pa.Table | pa.RecordBatch) -> IdentifiedRows:
        return cls(
            prediction_id=np.asarray(table.column("prediction_id").to_pylist(), dtype=object),
            confidence=np.asarray(table.column("confidence").to_numpy(), dtype=np.float64),
            predicted_label=np.asarray(table.column("predicted_label").to_pylist(), dtype=object),
            input_uri=np.asarray(table.column("input_uri").to_pylist(), dtype=object),
        )

    @classmethod
    def concat(cls, parts: Sequence[IdentifiedRows]) -> IdentifiedRows:
        if not parts:
            return cls.empty()
        return cls(
            prediction_id=np.concatenate([p.prediction_id for p in parts]),
            confidence=np.concatenate([p.confidence for p in parts]),
            predicted_label=np.concatenate([p.predicted_label for p in parts]),
            input_uri=np.concatenate([p.input_uri for p in parts]),
        )


class ExternalDays(ABC):
    """Day states of a model's predictions kept outside driftkeeper's database.

    One instance serves one check of one model; it remembers the rejected rows it saw, per
    segment, for :meth:`rejected` (each day's rejects once, whichever version's pass read it).
    """

    kind: str = "external"

    def __init__(self) -> None:
        self._rejected: dict[datetime, RejectTally] = {}

    @abstractmethod
    def versions(self, start: datetime, end: datetime) -> list[int]:
        """The model versions with rows in [start, end), in order."""

    @abstractmethod
    def watermarks(self, version: int, days: Sequence[datetime]) -> dict[datetime, int]:
        """Per full day, a number that changes when the day's rows change (a stored day is
        reused only while its ``last_row_id`` equals it)."""

    @abstractmethod
    def compute(
        self, version: int, segments: Sequence[Segment], reference: ReferenceProfile, inputs: FindingsInputs
    ) -> dict[datetime, DayState]:
        """The states of ``version``'s rows in each segment, keyed by the segment's start."""

    @abstractmethod
    def rows_by_id(self, version: int, start: datetime, end: datetime, ids: Sequence[str]) -> IdentifiedRows:
        """The accepted rows of ``version`` in [start, end) whose prediction id is in ``ids``
        (validated as the profile's pass validates them; a rejected row is not returned)."""

    def states(
        self, version: int, segments: Sequence[Segment], reference: ReferenceProfile, inputs: FindingsInputs
    ) -> dict[datetime, DayState]:
        """:meth:`compute`, remembering each segment's rejected rows for :meth:`rejected`."""
        out = self.compute(version, segments, reference, inputs) if segments else {}
        for start, state in out.items():
            if state.rejects.n_rows and start not in self._rejected:
                self._rejected[start] = state.rejects
        return {start: out.get(start, EMPTY) for start, _ in segments}

    def rejected(self) -> dict[datetime, RejectTally]:
        """The rejected rows seen so far, per segment start."""
        return dict(self._rejected)
