import doctest
import json

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import f1_score

from drift.errors import InsufficientDataError, ValidationError
from drift.performance import (
    ConfidenceCalibrator,
    ConfidentErrorStats,
    check_estimate,
    confidently_wrong,
    estimate_accuracy,
    realized_performance,
    top_k_confident,
    wilson_interval,
)

# --- realized performance -------------------------------------------------------------------


def test_realized_hand_example_is_exact() -> None:
    y_true = ["a", "a", "b", "b", "c", "c"]
    y_pred = ["a", "b", "b", "b", "c", "a"]
    perf = realized_performance(y_true, y_pred, ["a", "b", "c"], n_predictions=24)
    assert perf.confusion_matrix == ((1, 1, 0), (0, 2, 0), (1, 0, 1))
    assert perf.accuracy == pytest.approx(4 / 6)
    assert perf.per_class_recall == pytest.approx((0.5, 1.0, 0.5))
    assert perf.per_class_precision == pytest.approx((0.5, 2 / 3, 1.0))
    assert perf.per_class_f1 == pytest.approx((0.5, 0.8, 2 / 3))
    assert perf.macro_f1 == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert perf.per_class_support == (2, 2, 2)
    assert perf.n_labelled == 6
    assert perf.label_coverage == pytest.approx(0.25)
    ci = stats.binomtest(4, 6).proportion_ci(confidence_level=0.95, method="wilson")
    assert (perf.accuracy_ci_low, perf.accuracy_ci_high) == pytest.approx((ci.low, ci.high))


def test_realized_macro_f1_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, 500)
    y_pred = np.where(rng.random(500) < 0.7, y_true, rng.integers(0, 4, 500))
    perf = realized_performance(y_true, y_pred, [0, 1, 2, 3])
    assert perf.macro_f1 == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert perf.label_coverage is None


def test_realized_absent_class_is_undefined_not_zero() -> None:
    perf = realized_performance(["a", "a"], ["a", "b"], ["a", "b", "c"])
    assert np.isnan(perf.per_class_recall[1])  # b never true
    assert all(np.isnan(v) for v in (perf.per_class_recall[2], perf.per_class_f1[2]))  # c absent
    assert perf.macro_f1 == pytest.approx((2 / 3 + 0.0) / 2)  # mean over a and b only
    d = perf.to_dict()
    assert d["per_class_recall"] == {"a": 0.5, "b": None, "c": None}
    assert json.loads(json.dumps(d)) == d


def test_realized_rejects_bad_input() -> None:
    with pytest.raises(ValidationError, match=r"not in labels: \['z'\]"):
        realized_performance(["a", "z"], ["a", "a"], ["a", "b"])
    with pytest.raises(InsufficientDataError):
        realized_performance([], [], ["a"])
    with pytest.raises(ValidationError, match="n_predictions"):
        realized_performance(["a", "a"], ["a", "a"], ["a"], n_predictions=1)
    with pytest.raises(ValidationError, match="missing"):
        realized_performance(np.array(["a", None], dtype=object), ["a", "a"], ["a"])


def test_wilson_interval_is_within_unit_interval() -> None:
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == 1.0
    with pytest.raises(ValidationError):
        wilson_interval(3, 2)


# --- confidently wrong ----------------------------------------------------------------------


def test_confidently_wrong_hand_counts() -> None:
    conf = [0.95, 0.92, 0.5, 0.99, 0.9]
    y_true = [1, 0, 0, 1, 1]
    y_pred = [1, 1, 1, 0, 1]
    s = confidently_wrong(conf, y_true, y_pred, threshold=0.9)
    assert (s.n_labelled, s.n_confident, s.n_errors) == (5, 4, 2)
    assert s.rate == pytest.approx(0.5)
    assert s.p_value is None and not s.rose_significantly


def _window(n: int, error_rate: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.9, 1.0, n)
    y_pred = rng.integers(0, 3, n)
    wrong = rng.random(n) < error_rate
    y_true = np.where(wrong, (y_pred + 1) % 3, y_pred)
    return conf, y_true, y_pred


def test_confident_error_rate_rise_is_significant() -> None:
    ref = confidently_wrong(*_window(5000, 0.02, seed=1))
    same = confidently_wrong(*_window(2000, 0.02, seed=2), reference_counts=ref)
    rose = confidently_wrong(*_window(2000, 0.05, seed=3), reference_counts=(ref.n_errors, ref.n_confident))
    assert not same.rose_significantly and same.p_value is not None and same.p_value > 0.05
    assert rose.rose_significantly and rose.p_value is not None and rose.p_value < 1e-6
    assert rose.reference_rate == pytest.approx(ref.rate)
    assert json.loads(json.dumps(rose.to_dict()))["rose_significantly"] is True


def test_confidently_wrong_rejects_bad_reference() -> None:
    with pytest.raises(ValidationError, match="reference_counts"):
        confidently_wrong([0.95], [1], [1], reference_counts=(5, 3))
    with pytest.raises(ValidationError, match="threshold"):
        confidently_wrong([0.95], [1], [1], threshold=1.5)


def test_injected_confident_errors_are_ranked_first() -> None:
    conf, y_true, y_pred = _window(3000, 0.03, seed=4)
    conf = conf * 0.98  # background below 0.98
    injected = np.array([17, 400, 1234, 2999])
    conf[injected] = [0.991, 0.999, 0.995, 0.993]
    y_true[injected] = (y_pred[injected] + 1) % 3
    top = top_k_confident(conf, y_true, y_pred, k=6)
    assert list(top[:4]) == [400, 1234, 2999, 17]
    assert len(top) == 6
    ids = np.array([f"p{i}" for i in range(3000)])
    assert list(top_k_confident(conf, y_true, y_pred, k=2, ids=ids)) == ["p400", "p1234"]


# --- label-free estimate --------------------------------------------------------------------


def _binary_model(
    x: np.ndarray, rng: np.random.Generator, flip_above: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Truth P(y=1|x) = sigmoid(3x); the model predicts x > 0 with overconfident sigmoid(5|x|).

    ``flip_above`` flips the labels of inputs above it (concept shift). Returns confidence, correct.
    """
    y = rng.random(x.size) < 1.0 / (1.0 + np.exp(-3.0 * x))
    if flip_above is not None:
        y = np.where(x > flip_above, ~y, y)
    confidence = 1.0 / (1.0 + np.exp(-5.0 * np.abs(x)))
    return confidence, (x > 0) == y


@pytest.fixture(scope="module")
def reference_calibrators() -> dict[str, ConfidenceCalibrator]:
    rng = np.random.default_rng(10)
    conf, correct = _binary_model(rng.normal(1.0, 1.0, 20_000), rng)
    return {m: ConfidenceCalibrator(method=m).fit(conf, correct) for m in ("isotonic", "histogram")}


@pytest.mark.parametrize("method", ["isotonic", "histogram"])
def test_estimate_tracks_realized_under_covariate_shift(
    method: str, reference_calibrators: dict[str, ConfidenceCalibrator]
) -> None:
    cal = reference_calibrators[method]
    rng = np.random.default_rng(11)
    conf, correct = _binary_model(rng.normal(0.2, 0.6, 5000), rng)  # inputs move near the boundary
    realized = float(correct.mean())
    est = estimate_accuracy(cal, conf)
    assert realized < cal.reference_accuracy_ - 0.1  # the window really is harder
    assert est.mean_confidence - realized > 0.05  # raw confidence would overstate accuracy
    assert est.ci_low <= realized <= est.ci_high
    assert est.estimate == pytest.approx(realized, abs=0.02)
    labelled = rng.random(5000) < 0.1
    est_l = estimate_accuracy(cal, conf[labelled])
    check = check_estimate(est_l, float(correct[labelled].mean()), int(labelled.sum()))
    assert check.checked and check.trustworthy, check.reason


@pytest.mark.parametrize("method", ["isotonic", "histogram"])
def test_estimate_warns_under_concept_shift(
    method: str, reference_calibrators: dict[str, ConfidenceCalibrator]
) -> None:
    cal = reference_calibrators[method]
    rng = np.random.default_rng(12)
    conf, correct = _binary_model(rng.normal(1.0, 1.0, 5000), rng, flip_above=1.5)
    est = estimate_accuracy(cal, conf)
    realized = float(correct.mean())
    assert est.estimate - realized > 0.15
    check = check_estimate(est, realized, 300)
    assert check.checked and not check.trustworthy
    assert "no longer holds" in check.reason and "below" in check.reason
    assert json.loads(json.dumps(check.to_dict()))["trustworthy"] is False


def test_check_with_few_labels_is_not_checked() -> None:
    rng = np.random.default_rng(13)
    cal = ConfidenceCalibrator().fit(rng.uniform(0.5, 1, 100), rng.random(100) < 0.8)
    check = check_estimate(estimate_accuracy(cal, [0.9, 0.8]), 0.0, 5)
    assert not check.checked and check.trustworthy and "5 labels" in check.reason


def test_histogram_calibrator_hand_example() -> None:
    cal = ConfidenceCalibrator(method="histogram", n_bins=2).fit(
        np.linspace(0.5, 1.0, 20), np.r_[np.zeros(10), np.ones(10)]
    )
    assert list(cal.predict([0.5, 0.7, 0.9, 1.0])) == [0.0, 0.0, 1.0, 1.0]


def test_calibrator_round_trips_through_json(reference_calibrators: dict[str, ConfidenceCalibrator]) -> None:
    for cal in reference_calibrators.values():
        again = ConfidenceCalibrator.from_dict(json.loads(json.dumps(cal.to_dict())))
        grid = np.linspace(0.5, 1.0, 101)
        np.testing.assert_array_equal(again.predict(grid), cal.predict(grid))
        assert again.n_reference_ == cal.n_reference_
    with pytest.raises(ValidationError, match="not a ConfidenceCalibrator"):
        ConfidenceCalibrator.from_dict({"method": "isotonic"})


def test_mixed_label_kinds_are_rejected() -> None:
    with pytest.raises(ValidationError, match="different kinds of labels"):
        confidently_wrong([0.95, 0.99], [1, 2], ["1", "2"])


def test_calibrator_rejects_bad_settings() -> None:
    with pytest.raises(ValidationError, match=r"\['isotonic', 'histogram'\]"):
        ConfidenceCalibrator(method="platt")  # type: ignore[arg-type]
    with pytest.raises(InsufficientDataError):
        ConfidenceCalibrator().fit([0.9] * 5, [1] * 5)
    with pytest.raises(ValidationError, match="not fitted"):
        ConfidenceCalibrator().predict([0.9])


def test_reference_stats_object_is_accepted() -> None:
    ref = ConfidentErrorStats(
        threshold=0.9,
        n_labelled=10,
        n_confident=10,
        n_errors=1,
        rate=0.1,
        reference_errors=None,
        reference_n=None,
        reference_rate=None,
        p_value=None,
        alpha=0.05,
        rose_significantly=False,
    )
    s = confidently_wrong([0.95] * 4, [0, 0, 0, 0], [1, 1, 1, 0], reference_counts=ref)
    assert (s.reference_errors, s.reference_n) == (1, 10)
    assert s.p_value == pytest.approx(stats.fisher_exact([[3, 1], [1, 9]], alternative="greater").pvalue)


def test_docstring_examples_run() -> None:
    import drift.performance

    result = doctest.testmod(drift.performance)
    assert result.attempted > 0 and result.failed == 0
