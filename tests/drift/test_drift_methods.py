"""Method scores against scipy / evidently formulas, on exact and on binned data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from drift.binned import CategoryCounts, CellIndexer, ColumnData, NumericBins
from drift.errors import InvalidSpecError, UnknownMethodError
from drift.methods import DriftMethod, default_method, ks_p_value, sturges_edges
from drift.profile import ReferenceProfile
from drift.spec import ColumnSpec, DriftSpec

RNG = np.random.default_rng(20261127)


def numeric(ref: np.ndarray, cur: np.ndarray) -> ColumnData:
    return ColumnData.from_series("x", "numeric", pd.Series(ref), pd.Series(cur))


def categorical(ref: list[str], cur: list[str]) -> ColumnData:
    return ColumnData.from_series("c", "categorical", pd.Series(ref), pd.Series(cur))


def score(key: str, data: ColumnData):  # type: ignore[no-untyped-def]
    return DriftMethod.get(key)().score(data)


@pytest.mark.parametrize(
    ("n1", "n2", "shift"),
    [(50, 50, 0.0), (40, 73, 0.5), (1000, 800, 0.1), (12000, 15000, 0.02)],
    ids=["equal-50", "unequal-small-shifted", "1000v800", "asymptotic-12k"],
)
def test_ks_equals_scipy(n1: int, n2: int, shift: float) -> None:
    ref, cur = RNG.normal(size=n1), RNG.normal(shift, size=n2)
    expected = stats.ks_2samp(ref, cur)
    got = score("ks", numeric(ref, cur))
    assert got.score == pytest.approx(expected.statistic, abs=1e-12)
    # above 10,000 rows per side scipy's slow kstwo.sf is replaced by Stephens' approximation
    assert got.p_value == pytest.approx(expected.pvalue, rel=1e-9 if max(n1, n2) <= 10000 else 5e-3)
    assert not got.approximate


def test_ks_with_ties_equals_scipy() -> None:
    ref, cur = RNG.integers(0, 30, 300).astype(float), RNG.integers(2, 32, 200).astype(float)
    expected = stats.ks_2samp(ref, cur)
    got = score("ks", numeric(ref, cur))
    assert (got.score, got.p_value) == pytest.approx((expected.statistic, expected.pvalue))


def test_wasserstein_is_scipy_distance_over_reference_std() -> None:
    ref, cur = RNG.normal(size=700), RNG.normal(0.3, 1.5, size=400)
    expected = stats.wasserstein_distance(ref, cur) / np.std(ref)
    assert score("wasserstein", numeric(ref, cur)).score == pytest.approx(expected, rel=1e-12)


def test_chisquare_equals_scipy_with_evidently_expected_counts() -> None:
    ref = list(RNG.choice(["a", "b", "c"], 500, p=[0.5, 0.3, 0.2]))
    cur = list(RNG.choice(["a", "b", "c"], 300, p=[0.4, 0.4, 0.2]))
    r, c = pd.Series(ref).value_counts(), pd.Series(cur).value_counts()
    keys = ["a", "b", "c"]
    expected = stats.chisquare([c[k] for k in keys], [r[k] * 300 / 500 for k in keys])
    got = score("chisquare", categorical(ref, cur))
    assert (got.score, got.p_value) == pytest.approx((expected.statistic, expected.pvalue))


def test_chisquare_unseen_category_gives_p_zero_like_evidently() -> None:
    got = score("chisquare", categorical(["a", "b"] * 50, ["a", "b"] * 49 + ["new", "b"]))
    assert got.p_value == 0.0


def test_two_sample_chisquare_equals_contingency_test() -> None:
    ref = list(RNG.choice(["a", "b", "c", "d"], 400))
    cur = list(RNG.choice(["a", "b", "c", "e"], 250))
    data = categorical(ref, cur)
    table = np.vstack([data.categories.ref_counts, data.categories.cur_counts])
    expected = stats.chi2_contingency(table, correction=False)
    got = score("chisquare_2s", data)
    assert (got.score, got.p_value) == pytest.approx((expected.statistic, expected.pvalue))


def test_z_test_equals_pooled_two_proportion_formula() -> None:
    ref = ["a"] * 120 + ["b"] * 80
    cur = ["a"] * 70 + ["b"] * 80
    p1, p2, pooled = 80 / 200, 80 / 150, 160 / 350
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1 / 200 + 1 / 150))
    got = score("z", categorical(ref, cur))
    assert got.p_value == pytest.approx(2 * (1 - stats.norm.cdf(abs(z))))
    assert got.effect == pytest.approx(abs(p1 - p2))


def test_jensenshannon_categorical_equals_scipy() -> None:
    ref = list(RNG.choice(["a", "b", "c"], 500))
    cur = list(RNG.choice(["a", "b", "d"], 300))
    d = categorical(ref, cur).categories
    expected = distance.jensenshannon(d.ref_counts / d.n_ref, d.cur_counts / d.n_cur)
    assert score("jensenshannon", categorical(ref, cur)).score == pytest.approx(expected)


@pytest.mark.parametrize("key", ["jensenshannon", "psi"], ids=["js", "psi"])
def test_numeric_js_and_psi_use_sturges_bins_on_combined_data(key: str) -> None:
    ref, cur = RNG.normal(size=900), RNG.normal(0.4, size=600)
    edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
    r = np.histogram(ref, edges)[0] / ref.size
    c = np.histogram(cur, edges)[0] / cur.size
    if key == "jensenshannon":
        expected = distance.jensenshannon(r, c)
    else:
        r = np.where(r == 0, 0.0001, r)
        c = np.where(c == 0, 0.0001, c)
        expected = np.sum((r - c) * np.log(r / c))
    assert score(key, numeric(ref, cur)).score == pytest.approx(expected)


def test_sturges_edges_match_numpy() -> None:
    x = RNG.normal(size=1234)
    assert np.allclose(sturges_edges(x.min(), x.max(), x.size), np.histogram_bin_edges(x, "sturges"))


@pytest.mark.parametrize("n", [3000, 20000, 200000], ids=["en3000", "en20000", "en200000"])
def test_ks_p_value_above_exact_sizes_is_close_to_scipy(n: int) -> None:
    for z in (0.8, 1.2, 1.36, 1.6, 2.0):
        d = z / np.sqrt(n)
        expected = stats.kstwo.sf(d, n)
        assert ks_p_value(d, 2 * n + 1, 2 * n) == pytest.approx(expected, rel=1e-2)


def test_ks_p_value_matches_scipy_for_given_statistic() -> None:
    ref, cur = RNG.normal(size=300), RNG.normal(0.2, size=450)
    r = stats.ks_2samp(ref, cur)
    assert ks_p_value(float(r.statistic), 300, 450) == pytest.approx(r.pvalue)


@pytest.mark.parametrize(
    ("n_ref", "values", "kind", "rule", "expected"),
    [
        (500, 50, "numeric", "evidently", "ks"),
        (500, 4, "numeric", "evidently", "chisquare"),
        (500, 2, "categorical", "evidently", "z"),
        (500, 3, "categorical", "evidently", "chisquare"),
        (2000, 50, "numeric", "evidently", "wasserstein"),
        (2000, 3, "categorical", "evidently", "jensenshannon"),
        (2000, 4, "numeric", "evidently", "jensenshannon"),
        (2000, 50, "numeric", "stat_test", "ks"),
        (2000, 3, "categorical", "stat_test", "chisquare_2s"),
        (2000, 2, "categorical", "stat_test", "z"),
    ],
    ids=lambda v: str(v),
)
def test_default_method_rules(n_ref: int, values: int, kind: str, rule: str, expected: str) -> None:
    ref = RNG.integers(0, values, n_ref)
    cur = RNG.integers(0, values, 100)
    if kind == "numeric":
        data = numeric(ref.astype(float), cur.astype(float))
    else:
        data = categorical([f"k{v}" for v in ref], [f"k{v}" for v in cur])
    assert default_method(data, rule) == expected


def test_unknown_method_lists_registered_keys() -> None:
    with pytest.raises(UnknownMethodError, match="allowed: chisquare, chisquare_2s, jensenshannon, ks, psi"):
        DriftMethod.get("kolmogorov")


def test_numeric_method_on_categorical_spec_is_rejected() -> None:
    with pytest.raises(InvalidSpecError, match="supports: numeric"):
        ColumnSpec(name="c", type="categorical", method="ks")


@pytest.mark.parametrize(
    "edges",
    [
        np.unique(np.quantile(RNG.normal(size=5000), np.linspace(0, 1, 2000))),
        np.array([0.0, 1.0, 2.0]),
        np.unique(np.r_[RNG.normal(size=300), 1e9, -1e12]),
        np.unique(np.r_[np.linspace(0, 1e-9, 60), np.linspace(1, 2, 500)]),
    ],
    ids=["quantiles", "three-values", "far-outliers", "crowded-cluster"],
)
def test_cell_indexer_equals_searchsorted(edges: np.ndarray) -> None:
    x = np.r_[RNG.normal(size=20000) * 3, edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf)]
    x = np.r_[x, [np.inf, -np.inf, 1e300]]
    assert np.array_equal(CellIndexer(edges).left_index(x), np.searchsorted(edges, x, side="left"))


def _profiled(ref: np.ndarray, cur: np.ndarray, max_edges: int = 2000) -> ColumnData:
    spec = DriftSpec(columns=(ColumnSpec(name="x", type="numeric"),))
    prof = ReferenceProfile.from_frame(pd.DataFrame({"x": ref}), spec, max_edges=max_edges)
    window = prof.profile(pd.DataFrame({"x": cur}))
    r, c = prof.stats.columns["x"], window.columns["x"]
    bins = NumericBins(
        edges=prof.edges["x"],
        ref_counts=r.counts,  # type: ignore[union-attr]
        cur_counts=c.counts,  # type: ignore[union-attr]
        ref_sums=r.sums,  # type: ignore[union-attr]
        cur_sums=c.sums,  # type: ignore[union-attr]
        ref_std=prof.ref_std["x"],
        ref_unique=prof.ref_unique["x"],
        exact=False,
    )
    return ColumnData(name="x", type="numeric", numeric=bins)


@pytest.mark.parametrize("shift", [0.0, 0.05, 0.3], ids=["none", "small", "large"])
def test_binned_ks_and_wasserstein_close_to_exact_on_large_reference(shift: float) -> None:
    ref, cur = RNG.normal(size=50000), RNG.normal(shift, 1.2, size=30000)
    exact, binned = numeric(ref, cur), _profiled(ref, cur)
    ks_e, ks_b = score("ks", exact), score("ks", binned)
    assert ks_b.score <= ks_e.score + 1e-12
    assert ks_e.score - ks_b.score <= 1.5 / 2000  # at most about one cell's mass
    w_e, w_b = score("wasserstein", exact).score, score("wasserstein", binned).score
    assert w_b == pytest.approx(w_e, rel=0.01, abs=1e-3)


def test_binned_ks_is_exact_when_reference_fits_in_edges() -> None:
    ref, cur = RNG.normal(size=800), RNG.normal(0.1, size=500)
    got, expected = score("ks", _profiled(ref, cur)), stats.ks_2samp(ref, cur)
    assert not got.approximate
    assert (got.score, got.p_value) == pytest.approx((expected.statistic, expected.pvalue))


def test_category_counts_from_bins_uses_values() -> None:
    data = numeric(np.array([1.0, 2.0, 2.0]), np.array([2.0, 3.0]))
    cats = data.categories
    assert cats.keys == (1.0, 2.0, 3.0)
    assert cats.ref_counts.tolist() == [1, 2, 0] and cats.cur_counts.tolist() == [0, 1, 1]
    assert isinstance(CategoryCounts.from_bins(data.bins), CategoryCounts)  # type: ignore[arg-type]
