import doctest
import json
import math

import numpy as np
import pytest
from sklearn.covariance import LedoitWolf
from sklearn.neighbors import NearestNeighbors

from drift.errors import InsufficientDataError, InvalidSpecError, ValidationError
from drift.outliers import EmbeddingOutlierDetector, OutlierKind, confident_outliers, summarize_outliers

KINDS: list[OutlierKind] = ["knn", "mahalanobis"]


@pytest.fixture(scope="module")
def gaussian_reference() -> np.ndarray:
    rng = np.random.default_rng(0)
    cov = np.diag(np.linspace(0.5, 2.0, 8))
    return rng.multivariate_normal(np.full(8, 3.0), cov, size=10_000)


@pytest.fixture(scope="module")
def detectors(gaussian_reference: np.ndarray) -> dict[str, EmbeddingOutlierDetector]:
    return {kind: EmbeddingOutlierDetector(kind=kind, k=5).fit(gaussian_reference) for kind in KINDS}


@pytest.mark.parametrize("kind", KINDS)
def test_same_distribution_is_flagged_at_about_one_percent(
    kind: str, detectors: dict[str, EmbeddingOutlierDetector]
) -> None:
    det = detectors[kind]
    rng = np.random.default_rng(1)
    x = rng.multivariate_normal(np.full(8, 3.0), np.diag(np.linspace(0.5, 2.0, 8)), size=20_000)
    rate = float((det.score(x) > det.threshold_).mean())
    # binomial spread of the window (n=20k) and of the threshold's own estimate (n_ref=10k), 4 sigma
    sigma = math.sqrt(0.01 * 0.99 / 20_000 + 0.01 * 0.99 / 10_000)
    assert abs(rate - 0.01) < 4 * sigma
    assert float((det.reference_scores_ > det.threshold_).mean()) == pytest.approx(0.01, abs=1e-3)


@pytest.mark.parametrize("kind", KINDS)
def test_injected_far_confident_points_are_found_and_ranked_first(
    kind: str, detectors: dict[str, EmbeddingOutlierDetector]
) -> None:
    det = detectors[kind]
    rng = np.random.default_rng(2)
    x = rng.multivariate_normal(np.full(8, 3.0), np.diag(np.linspace(0.5, 2.0, 8)), size=5000)
    conf = rng.uniform(0.5, 1.0, 5000)
    injected = rng.choice(5000, size=15, replace=False)
    x[injected] += rng.choice([-1.0, 1.0], size=(15, 8)) * 8.0
    conf[injected] = rng.uniform(0.95, 1.0, 15)
    scores = det.score(x)
    ids = np.array([f"pred-{i}" for i in range(5000)])
    summary = summarize_outliers(scores, conf, det.threshold_, min_confidence=0.9, top_k=20, ids=ids)
    assert set(summary.top[:15]) == {f"pred-{i}" for i in injected}
    assert list(summary.top_scores) == sorted(summary.top_scores, reverse=True)
    assert all(c >= 0.9 for c in summary.top_confidences)
    assert summary.count >= 15
    assert summary.rate == pytest.approx(summary.count / 5000)
    assert json.loads(json.dumps(summary.to_dict())) == summary.to_dict()


def test_knn_distances_equal_sklearn() -> None:
    rng = np.random.default_rng(3)
    ref = rng.normal(5.0, 2.0, size=(300, 6))
    x = rng.normal(5.0, 3.0, size=(40, 6))
    det = EmbeddingOutlierDetector(kind="knn", k=4).fit(ref)
    nn = NearestNeighbors(n_neighbors=4).fit(ref)
    expected = nn.kneighbors(x)[0][:, 3]
    np.testing.assert_allclose(det.score(x), expected, rtol=1e-5)
    expected_loo = nn.kneighbors()[0][:, 3]  # X=None: neighbours of each fitted point, excluding itself
    np.testing.assert_allclose(det.reference_scores_, expected_loo, rtol=1e-5)
    assert det.threshold_ == pytest.approx(float(np.quantile(expected_loo, 0.99)), rel=1e-5)


def test_mahalanobis_matches_ledoit_wolf_formula() -> None:
    rng = np.random.default_rng(4)
    ref = rng.normal(size=(500, 3)) @ np.array([[2.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.5, 0.3]])
    det = EmbeddingOutlierDetector(kind="mahalanobis").fit(ref)
    lw = LedoitWolf().fit(ref)
    x = rng.normal(size=(5, 3))
    diff = x - lw.location_
    expected = np.sqrt(np.einsum("ij,jk,ik->i", diff, lw.precision_, diff))
    np.testing.assert_allclose(det.score(x), expected, rtol=1e-10)
    assert det.score(lw.location_[None, :])[0] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_chunking_does_not_change_results(kind: OutlierKind) -> None:
    rng = np.random.default_rng(5)
    ref = rng.normal(size=(700, 5))
    x = rng.normal(size=(123, 5))
    small = EmbeddingOutlierDetector(kind=kind, k=3, chunk_size=7).fit(ref)
    large = EmbeddingOutlierDetector(kind=kind, k=3, chunk_size=100_000).fit(ref)
    np.testing.assert_allclose(small.reference_scores_, large.reference_scores_, rtol=1e-6)
    np.testing.assert_allclose(small.score(x), large.score(x), rtol=1e-6)
    assert small.threshold_ == pytest.approx(large.threshold_, rel=1e-6)


def test_max_reference_subsamples_deterministically() -> None:
    rng = np.random.default_rng(6)
    ref = rng.normal(size=(2000, 4))
    a = EmbeddingOutlierDetector(kind="knn", max_reference=500, seed=1).fit(ref)
    b = EmbeddingOutlierDetector(kind="knn", max_reference=500, seed=1).fit(ref)
    assert a.n_reference_ == 500 and a.reference_scores_.shape == (500,)
    assert a.threshold_ == b.threshold_
    full = EmbeddingOutlierDetector(kind="knn").fit(ref)
    assert full.n_reference_ == 2000
    assert a.threshold_ > full.threshold_  # sparser reference, larger k-th neighbour distances


def test_confident_outliers_mask_and_summary_hand_example() -> None:
    scores = [0.5, 3.0, 2.0, 5.0, 3.0]
    conf = [0.99, 0.95, 0.5, 0.91, 0.97]
    mask = confident_outliers(scores, conf, threshold=1.0, min_confidence=0.9)
    assert mask.tolist() == [False, True, False, True, True]
    s = summarize_outliers(scores, conf, 1.0, min_confidence=0.9, top_k=2)
    assert (s.n, s.n_outliers, s.n_confident, s.count) == (5, 4, 4, 3)
    assert s.top == (3, 4)  # highest score, then the tie at 3.0 broken by confidence
    assert s.rate == pytest.approx(0.6) and s.rate_among_confident == pytest.approx(0.75)
    empty = summarize_outliers([], [], 1.0)
    assert empty.rate is None and empty.top == ()


def test_rejects_bad_settings_and_inputs() -> None:
    with pytest.raises(InvalidSpecError, match=r"\['mahalanobis', 'knn'\]"):
        EmbeddingOutlierDetector(kind="lof")  # type: ignore[arg-type]
    with pytest.raises(InvalidSpecError, match="quantile"):
        EmbeddingOutlierDetector(quantile=1.0)
    with pytest.raises(InvalidSpecError, match="max_reference"):
        EmbeddingOutlierDetector(k=5, max_reference=5)
    with pytest.raises(InsufficientDataError):
        EmbeddingOutlierDetector(k=5).fit(np.zeros((5, 2)))
    det = EmbeddingOutlierDetector(k=1).fit(np.arange(10.0).reshape(5, 2))
    with pytest.raises(ValidationError, match="columns"):
        det.score(np.zeros((2, 3)))
    with pytest.raises(ValidationError, match="not fitted"):
        EmbeddingOutlierDetector().score(np.zeros((2, 3)))
    with pytest.raises(ValidationError, match="finite"):
        det.score(np.array([[np.nan, 1.0]]))


def test_docstring_examples_run() -> None:
    import drift.outliers

    result = doctest.testmod(drift.outliers)
    assert result.attempted > 0 and result.failed == 0
