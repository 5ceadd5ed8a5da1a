"""``compare`` (rows) and ``compare_profiles`` (profiles): one result type, three engines.

Engines register themselves by key (``Engine.__init_subclass__``, :mod:`drift.engine_base`);
this module imports every engine, so all keys are registered once it is loaded:

* ``"fast"``: vectorised numpy on the rows; every method is exact (equals scipy / evidently).
* ``"profile"``: profiles the reference and the window (as the service does at ingestion)
  and compares the profiles; see :mod:`drift.binned` for what is approximate there.
* ``"evidently"``: evidently's ``Report([DataDriftPreset()])`` (:mod:`drift.evidently_engine`).

Whatever the engine, the per-column scores then go through the same correction and policy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from drift.binned import CategoryCounts, ColumnData, NumericBins
from drift.embedding import mmd_test
from drift.engine_base import (
    EMBEDDING_ROWS,
    Engine,
    TestedColumn,
    assemble,
    embedding_from_rows,
    score_column,
)
from drift.errors import IncompatibleProfilesError, InvalidSpecError
from drift.evidently_engine import EvidentlyEngine
from drift.profile import CategoryStats, NumericStats, ReferenceProfile, WindowProfile
from drift.result import DriftResult
from drift.spec import ColumnSpec, DriftSpec

# the engine base lived here before drift.engine_base; its names stay importable from here
__all__ = [
    "EMBEDDING_ROWS",
    "Engine",
    "EvidentlyEngine",
    "FastEngine",
    "ProfileEngine",
    "TestedColumn",
    "assemble",
    "compare",
    "compare_profiles",
    "embedding_from_rows",
    "score_column",
]


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
