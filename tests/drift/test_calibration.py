import doctest
import json

import numpy as np
import pytest

from drift.calibration import (
    calibration_report,
    compare_calibration,
    expected_calibration_error,
    reliability_curve,
)
from drift.errors import InsufficientDataError, ValidationError


def test_hand_computed_curve_is_exact() -> None:
    # sorted confidences cut into 3 bins of 2: [0.1, 0.2] [0.5, 0.6] [0.9, 1.0]
    conf = [0.6, 0.1, 1.0, 0.2, 0.9, 0.5]
    correct = [False, False, True, False, True, True]
    curve = reliability_curve(conf, correct, n_bins=3)
    assert curve.bin_count == (2, 2, 2)
    assert curve.bin_lower == (0.1, 0.5, 0.9)
    assert curve.bin_upper == (0.2, 0.6, 1.0)
    assert curve.bin_confidence == pytest.approx((0.15, 0.55, 0.95))
    assert curve.bin_accuracy == (0.0, 0.5, 1.0)
    assert curve.ece == pytest.approx((0.15 + 0.05 + 0.05) / 3)
    assert curve.mce == pytest.approx(0.15)
    assert expected_calibration_error(conf, correct, n_bins=3) == pytest.approx(curve.ece)


def test_uneven_bins_weight_by_count() -> None:
    # 5 samples, 2 bins -> sizes 3 and 2
    curve = reliability_curve([0.2, 0.4, 0.6, 0.8, 1.0], [1, 0, 0, 1, 1], n_bins=2)
    assert curve.bin_count == (3, 2)
    assert curve.bin_confidence == pytest.approx((0.4, 0.9))
    assert curve.bin_accuracy == pytest.approx((1 / 3, 1.0))
    assert curve.ece == pytest.approx(3 / 5 * abs(1 / 3 - 0.4) + 2 / 5 * 0.1)


def test_fewer_samples_than_bins_gives_one_bin_per_sample() -> None:
    curve = reliability_curve([0.7, 0.9], [1, 0], n_bins=10)
    assert curve.bin_count == (1, 1)
    assert curve.ece == pytest.approx((0.3 + 0.9) / 2)


def _synthetic(n: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.5, 1.0, n)
    correct = rng.random(n) < np.clip(conf - shift, 0.0, 1.0)
    return conf, correct


def test_calibrated_model_has_low_ece() -> None:
    conf, correct = _synthetic(20_000, 0.0, seed=1)
    assert expected_calibration_error(conf, correct, n_bins=10) < 0.03


def test_overconfident_model_has_ece_near_gap() -> None:
    conf, correct = _synthetic(20_000, 0.3, seed=2)
    assert expected_calibration_error(conf, correct, n_bins=10) == pytest.approx(0.3, abs=0.02)


def _softmax_model(n: int, n_classes: int, overconfidence: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """True labels drawn from ``softmax(logits)``; the model reports ``softmax(logits * overconfidence)``."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, size=(n, n_classes))
    true_p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = (rng.random((n, 1)) > np.cumsum(true_p, axis=1)).sum(axis=1)
    model_logits = logits * overconfidence
    model_p = np.exp(model_logits) / np.exp(model_logits).sum(axis=1, keepdims=True)
    return model_p, y


def test_report_calibrated_vs_overconfident() -> None:
    labels = ["cat", "dog", "fox"]
    p, y = _softmax_model(20_000, 3, 1.0, seed=3)
    ref = calibration_report(p, y, labels, n_bins=10)
    assert ref.ece < 0.03
    assert all(e is not None and e < 0.03 for e in ref.class_ece)
    p2, y2 = _softmax_model(20_000, 3, 4.0, seed=4)
    cur = calibration_report(p2, y2, labels, n_bins=10)
    assert cur.ece > 0.1
    cmp = compare_calibration(ref, cur)
    assert cmp.ece_delta == pytest.approx(cur.ece - ref.ece)
    assert all(d is not None and d > 0 for d in cmp.class_ece_delta)
    json.dumps(cmp.to_dict())


def test_report_small_class_has_no_ece_and_json_is_clean() -> None:
    p = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    y = np.array([0, 0, 1, 0])
    rep = calibration_report(p, y, ["a", "b"], n_bins=2, min_class_samples=2)
    assert rep.class_counts == (3, 1)
    assert rep.class_ece[1] is None
    assert rep.class_ece[0] is not None
    assert rep.accuracy == 1.0
    assert rep.mean_confidence == pytest.approx((0.9 + 0.8 + 0.7 + 0.6) / 4)
    d = rep.to_dict()
    assert d["class_ece"]["b"] is None
    assert json.loads(json.dumps(d)) == d


@pytest.mark.parametrize(
    ("conf", "correct", "error"),
    [
        ([], [], InsufficientDataError),
        ([0.5, 1.2], [1, 0], ValidationError),
        ([0.5, np.nan], [1, 0], ValidationError),
        ([0.5, 0.6], [1], ValidationError),
        ([0.5, 0.6], [1, 2], ValidationError),
    ],
    ids=["empty", "above-one", "nan", "length-mismatch", "not-binary"],
)
def test_curve_rejects_bad_input(conf: list[float], correct: list[int], error: type[Exception]) -> None:
    with pytest.raises(error):
        reliability_curve(conf, correct)


def test_report_rejects_bad_input() -> None:
    p = np.array([[0.9, 0.1], [0.2, 0.8]])
    with pytest.raises(ValidationError, match="2 probability columns"):
        calibration_report(p, [0, 1], ["a", "b", "c"])
    with pytest.raises(ValidationError, match="sum to 1"):
        calibration_report(p * 0.5, [0, 1], ["a", "b"])
    with pytest.raises(ValidationError, match="class indices"):
        calibration_report(p, [0, 2], ["a", "b"])
    with pytest.raises(ValidationError, match="n_bins"):
        reliability_curve([0.5], [1], n_bins=0)


def test_docstring_examples_run() -> None:
    import drift.calibration

    result = doctest.testmod(drift.calibration)
    assert result.attempted > 0 and result.failed == 0
