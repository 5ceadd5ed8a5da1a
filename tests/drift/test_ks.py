"""The exact KS statistic on raw values: equal to sorting, to scipy and to the cell path."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from drift.binned import ColumnData, NumericBins, NumericValues, finite_values
from drift.ks import ks_from_counts, ks_statistic, ks_statistic_sorted
from drift.methods import KS

Draw = Callable[[np.random.Generator, int, float], np.ndarray]

# each shape exercises a path of ks_statistic: plain bins, refined bins (heavy tails),
# bins holding a single value (ties, spikes), values too close for the grid, outliers
SHAPES: dict[str, Draw] = {
    "normal": lambda rng, n, s: rng.normal(s, 1.0, n),
    "lognormal_heavy": lambda rng, n, s: rng.lognormal(s, 2.0, n),
    "cauchy": lambda rng, n, s: rng.standard_cauchy(n) + s,
    "integers": lambda rng, n, s: rng.integers(0, 50, n).astype(float) + (s > 0),
    "three_values": lambda rng, n, s: rng.integers(0, 3, n).astype(float),
    "half_zeros": lambda rng, n, s: np.where(rng.random(n) < 0.5, 0.0, rng.normal(s, 1.0, n)),
    "rounded": lambda rng, n, s: np.round(rng.normal(s, 1.0, n), 2),
    "ulp_apart": lambda rng, n, s: 1.0 + rng.normal(0.0, 1e-15, n),
    "outliers": lambda rng, n, s: rng.permutation(np.r_[rng.normal(s, 1.0, n - 2), 1e300, -1e300]),
    "sorted": lambda rng, n, s: np.sort(rng.normal(s, 1.0, n)),
    "constant": lambda rng, n, s: np.full(n, 2.5),
}


@pytest.mark.parametrize("shift", [0.0, 0.02, 0.5], ids=["same", "small", "large"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_binned_statistic_equals_sorting_and_scipy(shape: str, shift: float) -> None:
    rng = np.random.default_rng(7)
    a, b = SHAPES[shape](rng, 120_000, 0.0), SHAPES[shape](rng, 90_001, shift)
    d = ks_statistic(a, b)
    assert d == ks_statistic_sorted(a, b)  # bit for bit: both are integer gaps
    assert d == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)


@pytest.mark.parametrize("n1, n2", [(1, 1), (3, 50), (5000, 4999), (30_000, 7)], ids=str)
def test_small_and_lopsided_samples(n1: int, n2: int) -> None:
    rng = np.random.default_rng(n1 + n2)
    a, b = rng.normal(size=n1), rng.normal(0.3, 1.0, size=n2)
    assert ks_statistic(a, b) == ks_statistic_sorted(a, b)
    assert ks_statistic(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)


def test_rows_and_cells_give_the_same_score() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.gamma(2.0, 1.0, 50_000), rng.gamma(2.1, 1.0, 40_000)
    bins = NumericBins.from_values(a, b)
    assert ks_statistic(a, b) == ks_from_counts(bins.ref_counts, bins.cur_counts)
    rows = ColumnData(name="x", type="numeric", numeric=NumericValues(ref=a, cur=b))
    cells = ColumnData(name="x", type="numeric", numeric=bins)
    assert KS().score(rows) == KS().score(cells)


def test_exact_cells_match_unique() -> None:
    ref = np.array([0.0, -0.0, 1.0, 1.0, 3.5, -2.0])
    cur = np.array([1.0, 2.0, -0.0, 7.0])
    bins = NumericBins.from_values(ref, cur)
    edges, inverse = np.unique(np.concatenate([ref, cur]), return_inverse=True)
    assert bins.edges.tolist() == edges.tolist()
    assert bins.ref_counts[1::2].tolist() == np.bincount(inverse[: ref.size], minlength=edges.size).tolist()
    assert bins.cur_counts[1::2].tolist() == np.bincount(inverse[ref.size :], minlength=edges.size).tolist()
    assert not bins.ref_counts[0::2].any() and bins.ref_unique == 4


@pytest.mark.parametrize(
    "ref, cur, expected",
    [([1.0, 2.0, 2.0], [3.0], 3), ([1.0] * 600, [1.0, 2.0] * 300, 2), (list(range(600)), [0.5], 6)],
    ids=["few", "few_after_probe", "many"],
)
def test_count_distinct_is_capped(ref: list[float], cur: list[float], expected: int) -> None:
    values = NumericValues(ref=np.array(ref, dtype=float), cur=np.array(cur, dtype=float))
    assert values.count_distinct(5) == expected


def test_finite_values_views_clean_columns_and_drops_the_rest() -> None:
    clean = pd.Series(np.arange(5.0))
    view = finite_values(clean)
    assert np.shares_memory(view, clean.to_numpy()) and not view.flags.writeable
    dirty = pd.Series([1.0, np.nan, np.inf, 2.0, None])
    assert finite_values(dirty).tolist() == [1.0, 2.0]
    assert finite_values(pd.Series([1, 2, None], dtype="Int64")).tolist() == [1.0, 2.0]
