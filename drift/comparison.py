"""``compare`` (rows) and ``compare_profiles`` (profiles): one result type, three engines.

Engines register themselves by key (``Engine.__init_subclass__``):

* ``"fast"``: vectorised numpy on the rows; every method is exact (equals scipy / evidently).
* ``"profile"``: profiles the reference and the window (as the service does at ingestion)
  and compares the profiles; see :mod:`drift.binned` for what is approximate there.
* ``"evidently"``: evidently's ``Report([DataDriftPreset()])`` (:mod:`drift.evidently_engine`).

Whatever the engine, the per-column scores then go through the same correction and policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from drift.binned import CategoryCounts, ColumnData, NumericBins
from drift.embedding import EmbeddingScore, mmd_test
from drift.errors import (
    IncompatibleProfilesError,
    InsufficientDataError,
    InvalidSpecError,
    UnknownMethodError,
)
from drift.methods import DriftMethod, Score, default_method
from drift.profile import CategoryStats, NumericStats, ReferenceProfile, WindowProfile, key_columns
from drift.result import ColumnDrift, DriftResult
from drift.sample import RowSample
from drift.spec import ColumnSpec, DriftSpec
from drift.verdict import adjust_p_values, decide

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
        import drift.evidently_engine  # noqa: F401  (registers "evidently"; evidently itself loads on use)

        return tuple(sorted(cls._registry))

    @classmethod
    def get(cls, key: str) -> type[Engine]:
        keys = cls.keys()
        try:
            return cls._registry[key]
        except KeyError:
            raise UnknownMethodError("drift engine", key, keys) from None

    def run(self, reference: pd.DataFrame, current: pd.DataFrame, spec: DriftSpec) -> DriftResult:
        raise NotImplementedError


def compare(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    spec: DriftSpec | None = None,
    engine: str = "fast",
) -> DriftResult:
    """Compare ``current`` rows with ``reference`` rows.

    ``spec=None`` tests every column of the reference, typed as evidently types them.

    >>> rng = np.random.default_rng(0)
    >>> ref = pd.DataFrame({"x": rng.normal(size=500), "c": rng.choice(["a", "b"], 500)})
    >>> compare(ref, ref.sample(frac=1.0, random_state=1)).drifted
    False
    >>> cur = ref.assign(x=ref["x"] + 1.0)
    >>> r = compare(ref, cur)
    >>> r.drifted, r.drifted_columns
    (True, ('x',))
    """
    runner = Engine.get(engine)()
    spec = spec if spec is not None else DriftSpec.infer(reference)
    for what, frame in (("reference", reference), ("current", current)):
        missing = [c for c in spec.all_columns if c not in frame.columns]
        if missing:
            raise InvalidSpecError(f"{what} lacks columns: {', '.join(missing)}")
    return runner.run(reference, current, spec)


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


class FastEngine(Engine, key="fast"):
    """Exact tests on the rows with numpy."""

    def run(self, reference: pd.DataFrame, current: pd.DataFrame, spec: DriftSpec) -> DriftResult:
        tested = [
            score_column(
                col,
                ColumnData.from_series(col.name, col.type, reference[col.name], current[col.name]),
                spec.method_rule,
            )
            for col in spec.columns
        ]
        return assemble(
            spec,
            tested,
            embedding_from_rows(reference, current, spec),
            engine=self.key,
            n_reference=len(reference),
            n_current=len(current),
        )


class ProfileEngine(Engine, key="profile"):
    """Profile both frames on the reference's cells, then compare the profiles."""

    def run(self, reference: pd.DataFrame, current: pd.DataFrame, spec: DriftSpec) -> DriftResult:
        ref = ReferenceProfile.from_frame(reference, spec)
        return compare_profiles(ref, ref.profile(current))


def compare_profiles(reference: ReferenceProfile, window: WindowProfile, spec: DriftSpec | None = None) -> DriftResult:
    """Evaluate the drift tests from profiles alone.

    ``spec`` may change methods, thresholds, correction and policy, and drop columns, but
    its columns must be profiled with the same types (default: the reference's spec).
    """
    if window.fingerprint != reference.fingerprint:
        raise IncompatibleProfilesError("the window was not profiled on this reference's cells")
    spec = spec if spec is not None else reference.spec
    known = {c.name: c.type for c in reference.spec.columns}
    bad = [c.name for c in spec.columns if known.get(c.name) != c.type]
    if bad or (spec.embedding and spec.embedding != reference.spec.embedding):
        raise IncompatibleProfilesError(f"spec does not match the profiled columns: {', '.join(bad) or 'embedding'}")
    tested = []
    for col in spec.columns:
        r = reference.stats.columns[col.name]
        c = window.columns[col.name]
        data = _column_data(reference, col, r, c)
        tested.append(score_column(col, data, spec.method_rule))
    embedding = None
    if spec.embedding:
        x = reference.stats.sample.head(EMBEDDING_ROWS)[list(spec.embedding)].to_numpy(np.float64)
        y = window.sample.head(EMBEDDING_ROWS)[list(spec.embedding)].to_numpy(np.float64)
        embedding = mmd_test(x, y, max_rows=EMBEDDING_ROWS, seed=reference.seed)
    return assemble(spec, tested, embedding, engine="profile", n_reference=reference.n_rows, n_current=window.n_rows)


def _column_data(reference: ReferenceProfile, col: ColumnSpec, r: Any, c: Any) -> ColumnData:
    if isinstance(r, NumericStats) and isinstance(c, NumericStats):
        bins = NumericBins(
            edges=reference.edges[col.name],
            ref_counts=r.counts,
            cur_counts=c.counts,
            ref_sums=r.sums,
            cur_sums=c.sums,
            ref_std=reference.ref_std[col.name],
            ref_unique=reference.ref_unique[col.name],
            exact=False,
        )
        return ColumnData(name=col.name, type=col.type, numeric=bins)
    if isinstance(r, CategoryStats) and isinstance(c, CategoryStats):
        return ColumnData(name=col.name, type=col.type, categorical=CategoryCounts.from_mappings(r.counts, c.counts))
    raise IncompatibleProfilesError(f"column {col.name!r} is profiled with different kinds")
