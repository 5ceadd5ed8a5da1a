"""Result types of a drift comparison: one :class:`ColumnDrift` per tested column and
a :class:`DriftResult` for the dataset. Frozen values; JSON comes from ``to_dict()``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

ColumnKind = Literal["feature", "output", "embedding"]


def _num(value: float | None) -> float | None:
    """A strict-JSON float: ``None`` for missing, NaN and infinite values (e.g. the
    chi-square statistic of a category unseen in the reference, whose p-value is 0)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True, kw_only=True)
class ColumnDrift:
    """The outcome of one drift test on one column (or on the embedding as a whole).

    Attributes:
        column: column name (for the embedding: the name of the embedding group).
        kind: ``"feature"``, ``"output"`` or ``"embedding"``.
        method: registry key of the method that produced the score.
        score: the method's statistic (KS D, chi-square statistic, |z|, a distance, MMD²).
        p_value: the test's p-value, ``None`` for distance methods.
        p_adjusted: the p-value after the multiple-testing correction (equals ``p_value``
            when no correction applies), ``None`` for distance methods.
        effect: a sample-size-free effect size (KS D, total variation distance between the
            category distributions, the distance itself), compared with the policy's
            ``min_effect`` for p-value tests.
        threshold: the significance level (p-value tests) or the distance threshold.
        drifted: the column verdict.
        approximate: True when computed from binned profiles in a way that is not exact.
    """

    column: str
    kind: ColumnKind
    method: str
    score: float
    p_value: float | None
    p_adjusted: float | None = None
    effect: float | None = None
    threshold: float
    drifted: bool
    approximate: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "kind": self.kind,
            "method": self.method,
            "score": _num(self.score),
            "p_value": _num(self.p_value),
            "p_adjusted": _num(self.p_adjusted),
            "effect": _num(self.effect),
            "threshold": float(self.threshold),
            "drifted": bool(self.drifted),
            "approximate": bool(self.approximate),
        }


@dataclass(frozen=True, kw_only=True)
class DriftResult:
    """The dataset-level outcome.

    Attributes:
        drifted: the dataset verdict, produced by ``policy``.
        columns: per-column results (features, outputs, then the embedding, if any).
        share_drifted: share of drifted columns among features and outputs.
        outputs_drifted: any output column drifted (``None`` when there are no outputs).
        embedding_drifted: the embedding test's verdict (``None`` without an embedding).
        engine: the engine key that computed it (``"fast"``, ``"profile"``, ``"evidently"``).
        policy: a sentence saying which rule produced ``drifted``.
        policy_config: the policy's settings, so a later reader can re-apply it.
        correction: the multiple-testing correction applied to p-value tests.
        n_reference, n_current: row counts compared.
    """

    drifted: bool
    columns: tuple[ColumnDrift, ...]
    share_drifted: float
    outputs_drifted: bool | None
    embedding_drifted: bool | None
    engine: str
    policy: str
    policy_config: dict[str, Any] = field(default_factory=dict)
    correction: str = "none"
    n_reference: int
    n_current: int

    def column(self, name: str) -> ColumnDrift:
        """The result for ``name``; raises KeyError if it was not tested."""
        for col in self.columns:
            if col.column == name:
                return col
        raise KeyError(name)

    @property
    def drifted_columns(self) -> tuple[str, ...]:
        return tuple(c.column for c in self.columns if c.drifted)

    def to_dict(self) -> dict[str, Any]:
        return {
            "drifted": bool(self.drifted),
            "columns": [c.to_dict() for c in self.columns],
            "share_drifted": float(self.share_drifted),
            "outputs_drifted": self.outputs_drifted,
            "embedding_drifted": self.embedding_drifted,
            "engine": self.engine,
            "policy": self.policy,
            "policy_config": dict(self.policy_config),
            "correction": self.correction,
            "n_reference": int(self.n_reference),
            "n_current": int(self.n_current),
        }
