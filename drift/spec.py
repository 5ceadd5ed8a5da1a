"""What to compare and how: :class:`ColumnSpec`, :class:`DriftSpec`, type inference and
the derived output columns of a classifier (:func:`output_frame`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from drift.errors import InvalidSpecError, UnknownMethodError
from drift.methods import DriftMethod
from drift.verdict import CORRECTIONS, DriftPolicy

ColumnType = Literal["numeric", "categorical"]
Role = Literal["feature", "output"]
COLUMN_TYPES: tuple[str, ...] = ("numeric", "categorical")
ROLES: tuple[str, ...] = ("feature", "output")
METHOD_RULES: tuple[str, ...] = ("stat_test", "evidently")

#: evidently (new API) treats integer columns with at most this many values as categorical.
INTEGER_CARDINALITY_LIMIT = 10


@dataclass(frozen=True, kw_only=True)
class ColumnSpec:
    """One column to test.

    Attributes:
        name: the column.
        type: ``"numeric"`` or ``"categorical"``.
        role: ``"feature"`` (model input) or ``"output"`` (prediction / probability).
        method: a registered method key, or ``None`` for the spec's default rule.
        threshold: significance level or distance threshold, ``None`` for the method's default.
    """

    name: str
    type: ColumnType
    role: Role = "feature"
    method: str | None = None
    threshold: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidSpecError(f"column name must be a non-empty string, got {self.name!r}")
        if self.type not in COLUMN_TYPES:
            raise InvalidSpecError(f"column {self.name!r}: type {self.type!r}; allowed: {', '.join(COLUMN_TYPES)}")
        if self.role not in ROLES:
            raise InvalidSpecError(f"column {self.name!r}: role {self.role!r}; allowed: {', '.join(ROLES)}")
        if self.method is not None:
            cls = DriftMethod.get(self.method)
            if self.type not in cls.column_types:
                raise InvalidSpecError(
                    f"column {self.name!r}: method {self.method!r} does not support {self.type} columns; "
                    f"it supports: {', '.join(cls.column_types)}"
                )
        if self.threshold is not None and not 0.0 < float(self.threshold) < np.inf:
            raise InvalidSpecError(f"column {self.name!r}: threshold must be positive, got {self.threshold!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "role": self.role,
            "method": self.method,
            "threshold": self.threshold,
        }


@dataclass(frozen=True, kw_only=True)
class DriftSpec:
    """The columns, methods, correction and dataset policy of a comparison.

    Attributes:
        columns: one :class:`ColumnSpec` per tested column (features and outputs).
        embedding: column names forming one embedding vector, tested as a whole, or ``None``.
        embedding_name: how the embedding is named in results.
        embedding_threshold: significance level of the embedding's MMD test.
        correction: ``"none"``, ``"bonferroni"`` or ``"bh"``, applied to all p-value tests
            of the comparison as one family (see :mod:`drift.verdict`).
        method_rule: default method where a column has none: ``"stat_test"`` (p-value
            tests at every size, the default) or ``"evidently"`` (evidently's rule by
            reference size).
        policy: the dataset verdict rule.
    """

    columns: tuple[ColumnSpec, ...]
    embedding: tuple[str, ...] | None = None
    embedding_name: str = "embedding"
    embedding_threshold: float = 0.05
    correction: str = "bh"
    method_rule: str = "stat_test"
    policy: DriftPolicy = field(default_factory=DriftPolicy)

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))
        if self.embedding is not None:
            object.__setattr__(self, "embedding", tuple(self.embedding))
            if len(self.embedding) < 2:
                raise InvalidSpecError("an embedding needs at least two columns")
        if not 0.0 < self.embedding_threshold < 1.0:
            raise InvalidSpecError(f"embedding_threshold must be in (0, 1), got {self.embedding_threshold!r}")
        if self.correction not in CORRECTIONS:
            raise UnknownMethodError("correction", self.correction, CORRECTIONS)
        if self.method_rule not in METHOD_RULES:
            raise InvalidSpecError(f"method_rule {self.method_rule!r}; allowed: {', '.join(METHOD_RULES)}")
        names = [c.name for c in self.columns]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise InvalidSpecError(f"duplicate columns in spec: {', '.join(dup)}")
        if self.embedding and set(self.embedding) & set(names):
            raise InvalidSpecError("embedding columns cannot also be tested one by one")
        if not self.columns and not self.embedding:
            raise InvalidSpecError("a spec needs at least one column or an embedding")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def all_columns(self) -> tuple[str, ...]:
        """Every column the spec reads (tested columns, then embedding columns)."""
        return self.column_names + (self.embedding or ())

    def with_(self, **changes: Any) -> DriftSpec:
        """A copy with some fields changed (e.g. ``spec.with_(correction="none")``)."""
        return replace(self, **changes)

    @classmethod
    def infer(
        cls,
        reference: pd.DataFrame,
        *,
        outputs: Iterable[str] = (),
        embedding: Sequence[str] | None = None,
        exclude: Iterable[str] = (),
        **options: Any,
    ) -> DriftSpec:
        """A spec for every column of ``reference``, typed as evidently types them.

        float → numeric; integer with at most 10 distinct values → categorical, else
        numeric; bool, category, string and object → categorical; datetimes are skipped.
        ``outputs`` get role ``"output"``; ``embedding`` columns form the embedding.
        """
        out = set(outputs)
        skip = set(exclude) | set(embedding or ())
        missing = (out | set(embedding or ())) - set(reference.columns)
        if missing:
            raise InvalidSpecError(f"columns not in the reference: {', '.join(sorted(map(str, missing)))}")
        specs = []
        for name in reference.columns:
            if name in skip:
                continue
            kind = infer_column_type(reference[name])
            if kind is None:
                continue
            specs.append(ColumnSpec(name=str(name), type=kind, role="output" if name in out else "feature"))
        return cls(columns=tuple(specs), embedding=tuple(embedding) if embedding else None, **options)

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": [c.to_dict() for c in self.columns],
            "embedding": list(self.embedding) if self.embedding else None,
            "embedding_name": self.embedding_name,
            "embedding_threshold": self.embedding_threshold,
            "correction": self.correction,
            "method_rule": self.method_rule,
            "policy": self.policy.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftSpec:
        return cls(
            columns=tuple(ColumnSpec(**c) for c in data["columns"]),
            embedding=tuple(data["embedding"]) if data.get("embedding") else None,
            embedding_name=data.get("embedding_name", "embedding"),
            embedding_threshold=data.get("embedding_threshold", 0.05),
            correction=data.get("correction", "bh"),
            method_rule=data.get("method_rule", "stat_test"),
            policy=DriftPolicy.from_dict(data.get("policy", {})),
        )


def infer_column_type(series: pd.Series) -> ColumnType | None:
    """evidently's type inference (``evidently.core.datasets.infer_column_type``), reduced
    to numeric / categorical; ``None`` for columns drift is not computed on (datetimes)."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "categorical"
    if pd.api.types.is_float_dtype(dtype):
        return "numeric"
    if pd.api.types.is_integer_dtype(dtype):
        return "categorical" if series.nunique() <= INTEGER_CARDINALITY_LIMIT else "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return None
    return "categorical"


def output_frame(probabilities: np.ndarray, class_labels: Sequence[Any], *, prefix: str = "prob_") -> pd.DataFrame:
    """The output columns of a classifier from its class probabilities.

    Columns: ``prob_<label>`` per class, ``confidence`` (top probability), ``margin``
    (top minus second), ``entropy`` (natural log) and ``predicted`` (the top class, categorical).

    >>> f = output_frame(np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]), ["a", "b", "c"])
    >>> list(f.columns)
    ['prob_a', 'prob_b', 'prob_c', 'confidence', 'margin', 'entropy', 'predicted']
    >>> f["predicted"].tolist(), f["margin"].round(2).tolist()
    (['a', 'c'], [0.5, 0.7])
    """
    p = np.asarray(probabilities, dtype=float)
    labels = list(class_labels)
    if p.ndim != 2 or p.shape[1] != len(labels) or len(labels) < 2:
        raise InvalidSpecError(
            f"probabilities must be (rows, {len(labels)}) for {len(labels)} class labels (at least 2), "
            f"got shape {p.shape}"
        )
    if len(set(map(str, labels))) != len(labels):
        raise InvalidSpecError("class labels must be distinct")
    frame = pd.DataFrame({f"{prefix}{lab}": p[:, i] for i, lab in enumerate(labels)})
    top2 = -np.partition(-p, 1, axis=1)[:, :2]
    frame["confidence"] = top2[:, 0]
    frame["margin"] = top2[:, 0] - top2[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        frame["entropy"] = -np.sum(np.where(p > 0, p * np.log(p), 0.0), axis=1)
    frame["predicted"] = pd.Categorical(np.asarray(labels, dtype=object)[np.argmax(p, axis=1)], categories=labels)
    return frame


def output_spec(class_labels: Sequence[Any], *, prefix: str = "prob_") -> tuple[ColumnSpec, ...]:
    """Column specs (role ``"output"``) matching :func:`output_frame`."""
    cols = [ColumnSpec(name=f"{prefix}{lab}", type="numeric", role="output") for lab in class_labels]
    cols += [ColumnSpec(name=n, type="numeric", role="output") for n in ("confidence", "margin", "entropy")]
    cols.append(ColumnSpec(name="predicted", type="categorical", role="output"))
    return tuple(cols)
