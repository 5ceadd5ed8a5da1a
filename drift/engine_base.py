"""What every comparison engine shares: the registry, the per-column score, and the assembly
of scores into a :class:`~drift.result.DriftResult` (correction, column verdicts, policy).

Engines subclass :class:`Engine` with ``key=...`` and implement only :meth:`Engine.run`;
they import this module and never each other. :mod:`drift.comparison`, the entry point,
imports every engine module so that all of them are registered once it is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from drift.binned import ColumnData
from drift.embedding import EmbeddingScore, mmd_test
from drift.errors import InsufficientDataError, UnknownMethodError
from drift.methods import DriftMethod, Score, default_method
from drift.profile import key_columns
from drift.result import ColumnDrift, DriftResult
from drift.sample import RowSample
from drift.spec import ColumnSpec, DriftSpec
from drift.verdict import adjust_p_values, decide

__all__ = ["EMBEDDING_ROWS", "Engine", "TestedColumn", "assemble", "embedding_from_rows", "score_column"]

#: rows per side used by the embedding test
EMBEDDING_ROWS = 500


@dataclass(frozen=True, kw_only=True)
class TestedColumn:
    """A column's score before correction and policy."""

    spec: ColumnSpec
    method: str
    score: Score
    threshold: float


class Engine:
    """Base of the comparison engines; subclasses declare ``key=`` and implement :meth:`run`."""

    key: ClassVar[str]
    _registry: ClassVar[dict[str, type[Engine]]] = {}

    def __init_subclass__(cls, key: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if key is not None:
            cls.key = key
            Engine._registry[key] = cls

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """Keys of the registered engines (all of them once :mod:`drift.comparison` is imported)."""
        return tuple(sorted(cls._registry))

    @classmethod
    def get(cls, key: str) -> type[Engine]:
        try:
            return cls._registry[key]
        except KeyError:
            raise UnknownMethodError("drift engine", key, cls.keys()) from None

    def run(self, reference: pd.DataFrame, current: pd.DataFrame, spec: DriftSpec) -> DriftResult:
        raise NotImplementedError


def score_column(col: ColumnSpec, data: ColumnData, rule: str) -> TestedColumn:
    """Pick the method (the column's, else the rule's) and compute its score."""
    if data.n_ref == 0 or data.n_cur == 0:
        side = "reference" if data.n_ref == 0 else "current"
        raise InsufficientDataError(f"column {col.name!r} has no values in the {side} data")
    key = col.method or default_method(data, rule)
    method = DriftMethod.get(key)
    threshold = col.threshold if col.threshold is not None else method.default_threshold
    return TestedColumn(spec=col, method=key, score=method().score(data), threshold=threshold)


def assemble(
    spec: DriftSpec,
    tested: Sequence[TestedColumn],
    embedding: EmbeddingScore | None,
    *,
    engine: str,
    n_reference: int,
    n_current: int,
) -> DriftResult:
    """Correct the p-values as one family, decide each column, then the dataset."""
    policy = spec.policy
    family = [t.score.p_value for t in tested if DriftMethod.get(t.method).has_p_value]
    if embedding is not None:
        family.append(embedding.p_value)
    adjusted = iter(adjust_p_values([np.nan if p is None else p for p in family], spec.correction).tolist())
    columns: list[ColumnDrift] = []
    for t in tested:
        method = DriftMethod.get(t.method)
        s = t.score
        if method.has_p_value:
            p_adj = next(adjusted)
            drifted = method.is_drift(p_adj, t.threshold) and s.effect >= policy.min_effect
        else:
            p_adj = None
            drifted = method.is_drift(s.score, t.threshold)
        columns.append(
            ColumnDrift(
                column=t.spec.name,
                kind=t.spec.role,
                method=t.method,
                score=s.score,
                p_value=s.p_value,
                p_adjusted=p_adj,
                effect=s.effect,
                threshold=t.threshold,
                drifted=bool(drifted),
                approximate=s.approximate,
            )
        )
    emb_drifted: bool | None = None
    if embedding is not None:
        p_adj = next(adjusted)
        emb_drifted = bool(p_adj < spec.embedding_threshold)
        columns.append(
            ColumnDrift(
                column=spec.embedding_name,
                kind="embedding",
                method="mmd",
                score=embedding.score,
                p_value=embedding.p_value,
                p_adjusted=p_adj,
                effect=None,
                threshold=spec.embedding_threshold,
                drifted=emb_drifted,
            )
        )
    verdict = decide(
        policy,
        features=[c.drifted for c in columns if c.kind == "feature"],
        outputs=[c.drifted for c in columns if c.kind == "output"],
        embedding=emb_drifted,
    )
    return DriftResult(
        drifted=verdict.drifted,
        columns=tuple(columns),
        share_drifted=verdict.share_drifted,
        outputs_drifted=verdict.outputs_drifted,
        embedding_drifted=verdict.embedding_drifted,
        engine=engine,
        policy=policy.describe(),
        policy_config=policy.to_dict(),
        correction=spec.correction,
        n_reference=n_reference,
        n_current=n_current,
    )


def embedding_from_rows(
    reference: pd.DataFrame, current: pd.DataFrame, spec: DriftSpec, seed: int = 0
) -> EmbeddingScore | None:
    """The embedding test on the same bounded bottom-k samples the profiles keep."""
    if not spec.embedding:
        return None
    cols = spec.embedding
    keys = key_columns(spec)
    ref = RowSample.from_frame(reference, cols, EMBEDDING_ROWS, key_columns=keys, seed=seed).rows
    cur = RowSample.from_frame(current, cols, EMBEDDING_ROWS, key_columns=keys, seed=seed).rows
    return mmd_test(ref.to_numpy(np.float64), cur.to_numpy(np.float64), max_rows=EMBEDDING_ROWS, seed=seed)
