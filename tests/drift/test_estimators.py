"""Label-free estimators on seeded data with known answers: ATC, DoC, importance weighting, coverage."""

from __future__ import annotations

import json

import numpy as np
import pytest

from drift.calibration import ConfidenceCalibrator
from drift.errors import ValidationError
from drift.estimate import CalibratedSums, ClassCalibrator, check_estimate, clipped_estimate, estimate_accuracy
from drift.estimators import (
    ATCEstimator,
    DoCEstimator,
    ThresholdCounts,
    coverage_adjusted,
    domain_weights,
    embedding_coverage,
    importance_weighted_accuracy,
)


def calibrated(n: int, rng: np.random.Generator, low: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    conf = np.round(rng.uniform(low, 1.0, n), 2)  # logged rounded: ties with the threshold
    return conf, rng.random(n) < conf


def test_atc_threshold_makes_the_reference_share_its_accuracy_even_with_ties() -> None:
    conf, correct = calibrated(5000, np.random.default_rng(0))
    atc = ATCEstimator().fit(conf, correct)
    assert atc.counts(conf).n_above / conf.size == pytest.approx(correct.mean(), abs=1e-9)
    assert 0.0 < atc.threshold_.tie_share < 1.0  # the threshold falls on a tie


def test_atc_on_unshifted_data_equals_the_realized_accuracy() -> None:
    rng = np.random.default_rng(1)
    atc = ATCEstimator().fit(*calibrated(20_000, rng))
    conf, correct = calibrated(20_000, rng)
    assert atc.estimate(conf).estimate == pytest.approx(correct.mean(), abs=0.01)


def test_atc_interval_covers_at_the_nominal_rate() -> None:
    covered = []
    for seed in range(200):
        rng = np.random.default_rng(seed)
        atc = ATCEstimator().fit(*calibrated(1000, rng))
        conf, correct = calibrated(500, rng)
        est = atc.estimate(conf)
        covered.append(est.ci_low <= correct.mean() <= est.ci_high)
    assert 0.90 <= np.mean(covered) <= 0.99


def test_atc_counts_merge_and_the_estimator_round_trips() -> None:
    rng = np.random.default_rng(2)
    conf, correct = calibrated(1000, rng)
    pred = rng.choice(np.array(["a", "b"]), 1000)
    atc = ATCEstimator(per_class=True, min_class_samples=100).fit(conf, correct, pred)
    again = ATCEstimator.from_dict(json.loads(json.dumps(atc.to_dict())))
    a, b = atc.counts(conf[:400], pred[:400]), again.counts(conf[400:], pred[400:])
    whole = atc.counts(conf, pred)
    merged = ThresholdCounts.from_dict(a.merge(b).to_dict())
    assert merged.n == whole.n and merged.n_above == pytest.approx(whole.n_above)
    assert set(atc.class_thresholds_) == {"a", "b"}
    assert atc.estimate_from_counts(merged).method == "atc_per_class"


def test_doc_is_its_closed_form() -> None:
    ref_conf = np.array([0.9, 0.8, 0.7, 0.6] * 10)
    correct = np.array([True, True, True, False] * 10)
    window = np.array([0.5, 0.6, 0.7])
    est = DoCEstimator().fit(ref_conf, correct).estimate(window)
    assert est.estimate == pytest.approx(0.75 - (0.75 - 0.6))
    assert est.method == "doc" and est.ci_low < est.estimate < est.ci_high


def _covariate_shift(n: int, rng: np.random.Generator, mean: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Correctness depends on the embedding, the confidence says nothing about it."""
    x = np.c_[rng.normal(mean, 1.0, n), rng.normal(0.0, 1.0, n)]
    conf = rng.uniform(0.7, 0.9, n)
    correct = rng.random(n) < 1.0 / (1.0 + np.exp(-2.0 * x[:, 0]))
    return x, conf, correct


def test_importance_weighting_recovers_accuracy_where_calibrated_confidence_is_biased() -> None:
    rng = np.random.default_rng(3)
    ref_x, ref_conf, ref_correct = _covariate_shift(4000, rng, 0.0)
    win_x, win_conf, win_correct = _covariate_shift(4000, rng, 1.0)
    realized = win_correct.mean()
    calibrated_estimate = estimate_accuracy(ConfidenceCalibrator().fit(ref_conf, ref_correct), win_conf).estimate
    weights = domain_weights(ref_x, win_x)
    iw = importance_weighted_accuracy(ref_correct, weights)
    assert realized - calibrated_estimate > 0.15  # calibrated confidence misses the shift
    assert iw.estimate == pytest.approx(realized, abs=0.03)
    assert iw.ci_low <= realized <= iw.ci_high
    assert 0.6 < weights.auc < 0.9 and 100 < iw.effective_sample_size < 4000
    # the weights also correct a calibrator fitted on the weighted reference
    weighted = ConfidenceCalibrator().fit(ref_conf, ref_correct, weights.weights)
    assert estimate_accuracy(weighted, win_conf).estimate == pytest.approx(realized, abs=0.03)


def test_importance_weighting_interval_covers_at_the_nominal_rate() -> None:
    covered = []
    for seed in range(60):
        rng = np.random.default_rng(100 + seed)
        ref_x, _, ref_correct = _covariate_shift(800, rng, 0.0)
        win_x, _, win_correct = _covariate_shift(800, rng, 0.5)
        est = importance_weighted_accuracy(ref_correct, domain_weights(ref_x, win_x, seed=seed))
        covered.append(est.ci_low <= win_correct.mean() <= est.ci_high)
    assert np.mean(covered) >= 0.85


def test_class_calibration_reads_each_predicted_label_by_its_own_calibrator() -> None:
    """A tuned-threshold binary model: the same confidence means less when it predicts "pos"."""
    rng = np.random.default_rng(4)
    conf = rng.uniform(0.5, 1.0, 6000)
    pred = rng.choice(np.array(["neg", "pos"]), 6000)
    chance = np.where(pred == "pos", conf - 0.3, conf)
    correct = rng.random(6000) < chance
    per_class = ClassCalibrator().fit(conf, correct, pred)
    overall = ConfidenceCalibrator().fit(conf, correct)
    w_conf = rng.uniform(0.5, 1.0, 3000)
    realized = (rng.random(3000) < w_conf - 0.3).mean()  # a window of "pos" predictions only
    w_pred = np.full(3000, "pos")
    est = estimate_accuracy(per_class, w_conf, w_pred)
    assert est.method == "calibrated_per_class"
    assert est.estimate == pytest.approx(realized, abs=0.02)
    assert estimate_accuracy(overall, w_conf).estimate - realized > 0.1


def test_the_trust_check_uses_the_exact_variance_of_the_labelled_rows() -> None:
    rng = np.random.default_rng(5)
    cal = ConfidenceCalibrator().fit(*calibrated(5000, rng, low=0.9))
    conf, correct = calibrated(400, rng, low=0.9)
    est = estimate_accuracy(cal, conf)
    exact = check_estimate(est, float(correct.mean()), 400)
    bound = check_estimate(est, float(correct.mean()), 401)  # another set of rows: the binomial bound
    assert exact.variance == "exact" and bound.variance == "binomial"
    assert exact.expected_high - exact.expected_low < bound.expected_high - bound.expected_low
    assert exact.trustworthy


def test_embedding_coverage_flags_only_a_significant_excess() -> None:
    assert not embedding_coverage(10, 1000).unreliable  # the reference's own 1%
    assert not embedding_coverage(2, 30).unreliable  # 6.7%, but 30 rows say little
    flagged = embedding_coverage(200, 1000)
    assert flagged.unreliable and "never saw" in (flagged.reason or "")
    with pytest.raises(ValidationError):
        embedding_coverage(11, 10)


def test_coverage_adjustment_counts_the_excess_far_rows_as_unknown() -> None:
    base = clipped_estimate(
        method="calibrated_confidence",
        estimate=0.9,
        std_error_sampling=0.01,
        std_error_calibration=0.0,
        n=1000,
        n_reference=1000,
        mean_confidence=0.95,
        confidence_level=0.95,
    )
    same = coverage_adjusted(base, n_far=10, sum_p_far=9.0)
    assert same.estimate == base.estimate and same.unknown_share == 0.0
    moved = coverage_adjusted(base, n_far=500, sum_p_far=450.0)  # 49% of the window lies where no reference was
    assert moved.estimate == pytest.approx(0.9 + 0.98 * (0.5 * 500 - 450) / 1000)
    assert moved.unknown_share == pytest.approx(0.49)
    assert moved.ci_high - moved.ci_low == pytest.approx(base.ci_high - base.ci_low + 0.49)


def test_sums_stored_before_far_counts_read_as_not_known() -> None:
    old = {"n": 3, "sum_p": 2.0, "sum_pq": 0.5, "sum_confidence": 2.5}
    sums = CalibratedSums.from_dict(old)
    assert sums.n_far is None and sums.sum_p_far is None
    known = CalibratedSums(n=2, sum_p=1.0, sum_pq=0.1, sum_confidence=1.5, n_far=1, sum_p_far=0.4)
    assert sums.merge(known).n_far is None
    assert known.merge(known).n_far == 2 and CalibratedSums.from_dict(known.to_dict()) == known
