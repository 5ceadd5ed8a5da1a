import doctest
import json
import math

import numpy as np
import pytest

from drift.errors import ValidationError
from drift.segmentation import confident_mask_errors, iou_per_class, mask_summary, mean_iou

PRED = np.array([[0, 0, 1], [1, 1, 2]])
TRUE = np.array([[0, 0, 1], [1, 2, 2]])


def test_mask_summary_hand_example() -> None:
    prob = np.array(
        [
            [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]],
            [[0.5, 0.4, 0.1], [0.2, 0.2, 0.6]],
        ]
    )
    s = mask_summary(prob, ["road", "car", "sky"], uncertain_below=0.6)
    assert s.n_pixels == 4
    assert s.pixel_share == (0.5, 0.25, 0.25)
    assert s.mean_confidence == pytest.approx(0.65)
    assert s.uncertain_share == 0.25  # only the 0.5 pixel; 0.6 is not below 0.6
    assert s.to_row() == {
        "pixel_share_road": 0.5,
        "pixel_share_car": 0.25,
        "pixel_share_sky": 0.25,
        "mean_confidence": pytest.approx(0.65),
        "uncertain_share": 0.25,
    }
    d = s.to_dict()
    assert d["pixel_share"] == {"road": 0.5, "car": 0.25, "sky": 0.25}
    assert json.loads(json.dumps(d)) == d


def test_iou_hand_example() -> None:
    iou = iou_per_class(PRED, TRUE, 4)
    # class 0: 2/2; class 1: pred {02,10,11} vs true {02,10} -> 2/3; class 2: 1/2; class 3: absent
    np.testing.assert_allclose(iou[:3], [1.0, 2 / 3, 0.5])
    assert math.isnan(iou[3])
    assert mean_iou(PRED, TRUE, 4) == pytest.approx((1.0 + 2 / 3 + 0.5) / 3)


def test_iou_ignore_index_drops_pixels() -> None:
    true = TRUE.copy()
    true[1, 1] = 255  # the one pixel where class 1 was predicted and class 2 was true
    iou = iou_per_class(PRED, true, 3, ignore_index=255)
    np.testing.assert_allclose(iou, [1.0, 1.0, 1.0])
    with pytest.raises(ValidationError, match=r"outside 0\.\.2"):
        iou_per_class(PRED, true, 3)


def test_identical_and_disjoint_masks() -> None:
    assert mean_iou(TRUE, TRUE, 3) == 1.0
    assert mean_iou(np.zeros((2, 2), dtype=int), np.ones((2, 2), dtype=int), 2) == 0.0
    assert math.isnan(mean_iou(np.zeros((1, 1), dtype=int), np.full((1, 1), 9), 2, ignore_index=9))


def test_confident_mask_errors() -> None:
    conf = np.array([0.95, 0.95, 0.5, 0.99, 0.9])
    iou = np.array([0.2, 0.8, 0.1, np.nan, 0.49])
    assert confident_mask_errors(conf, iou, 0.9, 0.5).tolist() == [True, False, False, False, True]


@pytest.mark.parametrize(
    ("prob", "labels", "match"),
    [
        (np.full((2, 2), 0.5), ["a", "b"], "3-D"),
        (np.full((1, 1, 2), 0.5), ["a"], "each of the 2 channels"),
        (np.full((1, 1, 2), 0.5), ["a", "a"], "each of the 2 channels"),
        (np.full((1, 1, 2), 0.4), ["a", "b"], "sum to 1"),
        (np.full((1, 1, 2), 1.5), ["a", "b"], r"\[0, 1\]"),
    ],
    ids=["2d", "too-few-labels", "duplicate-labels", "not-normalised", "out-of-range"],
)
def test_mask_summary_rejects_bad_input(prob: np.ndarray, labels: list[str], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        mask_summary(prob, labels)


def test_iou_rejects_bad_input() -> None:
    with pytest.raises(ValidationError, match="shape"):
        iou_per_class(PRED, TRUE[:1], 3)
    with pytest.raises(ValidationError, match="integer"):
        iou_per_class(PRED.astype(float), TRUE, 3)
    with pytest.raises(ValidationError, match="equal length"):
        confident_mask_errors([0.9], [0.1, 0.2])


def test_docstring_examples_run() -> None:
    import drift.segmentation

    result = doctest.testmod(drift.segmentation)
    assert result.attempted > 0 and result.failed == 0
