"""The per-day findings state: merging days gives what one pass over all their rows gives."""

from __future__ import annotations

import numpy as np
import pytest

from drift.estimate import CalibratedSums, estimate_accuracy, estimate_from_sums
from drift.outliers import EmbeddingOutlierDetector
from jobs.check.state import Calibration, DayFindings


def rows(n: int, seed: int, shift: float = 0.0):
    rng = np.random.default_rng(seed)
    return {
        "prediction_id": np.array([f"p{seed}-{i}" for i in range(n)], dtype=object),
        "confidence": rng.uniform(0.3, 1.0, n),
        "predicted_label": rng.choice(np.array(["a", "b"], dtype=object), n),
        "input_uri": np.array([None] * n, dtype=object),
        "embedding": rng.normal(shift, 1.0, (n, 4)).astype(np.float32),
    }


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(0)
    detector = EmbeddingOutlierDetector(kind="mahalanobis").fit(rng.normal(size=(400, 4)))
    confidence = rng.uniform(0.3, 1.0, 300)
    calibration = Calibration.fit(confidence, rng.random(300) < confidence)
    return detector, calibration


def state(part, detector, calibration, top_k=5):
    return DayFindings.of_rows(**part, detector=detector, min_confidence=0.5, calibration=calibration, top_k=top_k)


def test_merged_days_equal_one_pass_over_their_rows(setup):
    detector, calibration = setup
    days = [rows(300, seed, shift) for seed, shift in [(1, 0.0), (2, 1.5), (3, 3.0)]]
    together = {k: np.concatenate([d[k] for d in days]) for k in days[0]}
    merged = DayFindings.merge_all([state(d, detector, calibration) for d in days])
    whole = state(together, detector, calibration)
    assert (merged.n_rows, merged.n_outliers) == (whole.n_rows, whole.n_outliers) == (900, whole.n_outliers)
    assert whole.n_outliers > 5  # the shifted days have outliers, more than are kept
    assert [f.prediction_id for f in merged.outliers] == [f.prediction_id for f in whole.outliers]
    assert merged.estimate is not None and whole.estimate is not None
    assert merged.estimate.n == 900
    assert merged.estimate.sum_p == pytest.approx(whole.estimate.sum_p, rel=1e-12)


def test_the_estimate_from_merged_sums_is_the_estimate_of_all_confidences(setup):
    _, calibration = setup
    a, b = np.random.default_rng(4).uniform(0.2, 1, 500), np.random.default_rng(5).uniform(0.5, 1, 700)
    sums = CalibratedSums.of(calibration.calibrator, a).merge(CalibratedSums.of(calibration.calibrator, b))
    direct = estimate_accuracy(calibration.calibrator, np.concatenate([a, b]))
    merged = estimate_from_sums(calibration.calibrator, sums)
    for field in ("estimate", "ci_low", "ci_high", "std_error", "mean_confidence"):
        assert getattr(merged, field) == pytest.approx(getattr(direct, field), rel=1e-12)
    assert merged.n == direct.n == 1200


def test_the_state_round_trips_and_knows_its_settings(setup):
    detector, calibration = setup
    day = state(rows(200, 9, 2.0), detector, calibration)
    assert DayFindings.from_dict(day.to_dict()) == day
    assert day.made_with(0.5, calibration, 5)
    assert not day.made_with(0.6, calibration, 5)  # another confidence threshold
    assert not day.made_with(0.5, None, 5)  # the calibration went away
    other = Calibration.fit(np.array([0.9, 0.8] * 20), np.array([True, False] * 20))
    assert not day.made_with(0.5, other, 5)  # new reference labels: a new calibration
    assert not day.made_with(0.5, calibration, 50)  # more outliers asked for than kept


def test_days_made_with_other_calibrations_merge_without_an_estimate(setup):
    detector, calibration = setup
    other = Calibration.fit(np.array([0.9, 0.8] * 20), np.array([True, False] * 20))
    merged = state(rows(100, 1), detector, calibration).merge(state(rows(100, 2), detector, other))
    assert merged.n_rows == 200 and merged.estimate is None


def test_far_rows_are_counted_for_the_estimate_and_old_days_still_load(setup):
    detector, calibration = setup
    near, far = state(rows(300, 11), detector, calibration), state(rows(300, 12, 4.0), detector, calibration)
    assert near.estimate is not None and far.estimate is not None
    assert near.estimate.n_far is not None and near.estimate.n_far < 15  # about the reference's 1%
    assert far.estimate.n_far is not None and far.estimate.n_far > 250
    assert near.merge(far).estimate.n_far == near.estimate.n_far + far.estimate.n_far
    old = near.to_dict()
    for key in ("n_far", "sum_p_far"):
        del old["estimate"][key]  # a day stored before the counts existed
    assert DayFindings.from_dict(old).estimate.n_far is None


def test_a_calibration_with_predicted_labels_calibrates_per_label():
    rng = np.random.default_rng(7)
    confidence = rng.uniform(0.5, 1.0, 2000)
    predicted = rng.choice(np.array(["a", "b"], dtype=object), 2000)
    correct = rng.random(2000) < np.where(predicted == "b", confidence - 0.3, confidence)
    with_labels = Calibration.fit(confidence, correct, predicted)
    without = Calibration.fit(confidence, correct)
    assert with_labels.fingerprint != without.fingerprint
    sums = CalibratedSums.of(with_labels.calibrator, confidence, predicted)
    assert estimate_from_sums(with_labels.calibrator, sums).method == "calibrated_per_class"
    assert sums.sum_p / sums.n == pytest.approx(correct.mean(), abs=0.02)
