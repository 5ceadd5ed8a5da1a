"""Result types of a drift comparison: one :class:`ColumnDrift` per tested column and
a :class:`DriftResult` for the dataset. Frozen values; JSON comes from ``to_dict()`` and
goes back through ``from_dict()``.

JSON has no NaN or infinity, so ``to_dict`` writes ``None`` for them; ``from_dict`` reads
``None`` back as NaN for the float field ``score`` and as ``None`` for the optional ones.
Hence ``from_dict(d).to_dict() == d`` for every ``d`` that ``to_dict`` wrote, and
``from_dict(r.to_dict()) == r`` for every result whose numbers are finite (or ``None``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

from drift.errors import BadInputError

ColumnKind = Literal["feature", "output", "embedding"]
_KINDS: tuple[str, ...] = get_args(ColumnKind)


def _num(value: float | None) -> float | None:
    """A strict-JSON float: ``None`` for missing, NaN and infinite values (e.g. the
    chi-square statistic of a category unseen in the reference, whose p-value is 0)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _field(data: Mapping[str, Any], key: str, where: str) -> Any:
    try:
        return data[key]
    except KeyError:
        raise BadInputError(where, "missing key", field=key) from None
    except TypeError as exc:
        raise BadInputError(where, f"expected a mapping, got {type(data).__name__}") from exc


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnDrift:
        """The inverse of :meth:`to_dict` (a ``None`` score is read as NaN)."""
        where = "ColumnDrift"
        kind = _field(data, "kind", where)
        if kind not in _KINDS:
            raise BadInputError(where, f"kind {kind!r}; allowed: {', '.join(_KINDS)}", field="kind")
        score = _field(data, "score", where)
        return cls(
            column=str(_field(data, "column", where)),
            kind=cast(ColumnKind, kind),
            method=str(_field(data, "method", where)),
            score=math.nan if score is None else float(score),
            p_value=_opt_float(_field(data, "p_value", where)),
            p_adjusted=_opt_float(data.get("p_adjusted")),
            effect=_opt_float(data.get("effect")),
            threshold=float(_field(data, "threshold", where)),
            drifted=bool(_field(data, "drifted", where)),
            approximate=bool(data.get("approximate", False)),
        )


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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftResult:
        """The inverse of :meth:`to_dict`, also after a trip through JSON."""
        where = "DriftResult"
        return cls(
            drifted=bool(_field(data, "drifted", where)),
            columns=tuple(ColumnDrift.from_dict(c) for c in _field(data, "columns", where)),
            share_drifted=float(_field(data, "share_drifted", where)),
            outputs_drifted=_opt_bool(_field(data, "outputs_drifted", where)),
            embedding_drifted=_opt_bool(_field(data, "embedding_drifted", where)),
            engine=str(_field(data, "engine", where)),
            policy=str(_field(data, "policy", where)),
            policy_config=dict(data.get("policy_config", {})),
            correction=str(data.get("correction", "none")),
            n_reference=int(_field(data, "n_reference", where)),
            n_current=int(_field(data, "n_current", where)),
        )
