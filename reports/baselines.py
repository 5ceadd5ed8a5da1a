"""The week's drift against more than one baseline, typed: what the report shows beside the check.

* ``serving``: against the serving version's own reference (what the check compared with);
* ``baseline``: against the version-1 (or pinned, ``drift.baseline_version``) reference, so that
  after a retrain swaps the reference the owner still sees how far inputs are from what the
  product was designed for;
* ``previous_week``: week over week, against a sample of the same version's rows of the week before.

Frozen records (:class:`drift.records.Record`): ``to_dict`` is their JSON, ``from_dict`` reads it
back validated. Numbers that are not finite are ``None`` (JSON has no NaN). This module imports
only ``drift``, so ``reports.summary`` can hold a :class:`Baselines` and ``jobs`` fills it.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime

from drift.records import Record
from drift.result import ColumnDrift, ColumnKind, DriftResult


class _Record(Record):
    record_name = "baselines"


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


@dataclasses.dataclass(frozen=True, kw_only=True)
class BaselineColumn(_Record):
    """One tested column against one baseline."""

    column: str
    kind: ColumnKind
    method: str
    score: float | None  # None: not finite
    p_value: float | None
    effect: float | None
    drifted: bool

    @classmethod
    def of(cls, column: ColumnDrift) -> BaselineColumn:
        return cls(
            column=column.column,
            kind=column.kind,
            method=column.method,
            score=_finite(column.score),
            p_value=_finite(column.p_value),
            effect=_finite(column.effect),
            drifted=column.drifted,
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class ComparedWeek(_Record):
    """The week compared against (week over week): its ISO label and [start, end)."""

    week: str
    start: datetime
    end: datetime


@dataclasses.dataclass(frozen=True, kw_only=True)
class BaselineDrift(_Record):
    """This week against one baseline.

    Attributes:
        against: what it was compared with, for people ("reference of version 2",
            "baseline version 1", "week 2026-W44").
        version: the version whose reference set is the baseline; None for the previous week.
        window: the week compared against (week over week only).
        drifted, share_drifted: the dataset verdict and the share of drifted features and outputs.
        n_reference, n_current: rows compared (the previous week: the rows of its sample).
        columns: drifted first, then by effect size, largest first.
    """

    against: str
    version: int | None
    window: ComparedWeek | None = None
    drifted: bool
    share_drifted: float
    n_reference: int
    n_current: int
    columns: tuple[BaselineColumn, ...]

    @classmethod
    def of(
        cls, result: DriftResult, *, against: str, version: int | None, window: ComparedWeek | None = None
    ) -> BaselineDrift:
        ranked = sorted(result.columns, key=lambda c: (not c.drifted, -(_finite(c.effect) or 0.0)))
        return cls(
            against=against,
            version=version,
            window=window,
            drifted=result.drifted,
            share_drifted=_finite(result.share_drifted) or 0.0,
            n_reference=result.n_reference,
            n_current=result.n_current,
            columns=tuple(BaselineColumn.of(c) for c in ranked),
        )

    @property
    def drifted_columns(self) -> tuple[BaselineColumn, ...]:
        return tuple(c for c in self.columns if c.drifted)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Baselines(_Record):
    """One version's week against its own reference, the first (or pinned) baseline and the week before.

    ``baseline`` is None when the baseline is the serving version itself or has no reference
    set; ``previous_week`` is None without (enough) rows of the version the week before.
    ``notes`` says why a comparison is missing, in words.
    """

    version: int
    serving: BaselineDrift
    baseline: BaselineDrift | None = None
    previous_week: BaselineDrift | None = None
    notes: tuple[str, ...] = ()

    @property
    def compared(self) -> tuple[BaselineDrift, ...]:
        """The comparisons made, in the order shown."""
        return tuple(b for b in (self.serving, self.baseline, self.previous_week) if b is not None)
