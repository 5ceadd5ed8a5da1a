"""Image features on tiny hand-made images with exact answers."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from drift.errors import ValidationError
from jobs.ml.image_features import FEATURE_COLUMNS, feature_matrix, image_features


def _one(img: np.ndarray) -> dict[str, float]:
    return image_features(img[None]).iloc[0].to_dict()


def test_columns_and_shape() -> None:
    df = image_features(np.zeros((3, 5, 5)))
    assert tuple(df.columns) == FEATURE_COLUMNS
    assert df.shape == (3, len(FEATURE_COLUMNS))


def test_blank_image() -> None:
    f = _one(np.zeros((5, 5)))
    assert f == {
        "brightness": 0.0,
        "contrast": 0.0,
        "sharpness": 0.0,
        "ink_share": 0.0,
        "center_x": 0.5,
        "center_y": 0.5,
        "edge_density": 0.0,
    }


def test_right_half_white() -> None:
    img = np.zeros((4, 4))
    img[:, 2:] = 1.0
    f = _one(img)
    assert f["brightness"] == pytest.approx(0.5)
    assert f["contrast"] == pytest.approx(0.5)
    assert f["ink_share"] == pytest.approx(0.5)
    assert f["center_x"] == pytest.approx(2.5 / 3)
    assert f["center_y"] == pytest.approx(0.5)
    # forward differences on the 3x3 grid: only column 1 -> 2 crosses the edge (3 of 9).
    assert f["edge_density"] == pytest.approx(3 / 9)
    # interior pixels (1,1),(1,2),(2,1),(2,2): laplacian 1, -1, 1, -1 -> variance 1.
    assert f["sharpness"] == pytest.approx(1.0)


def test_single_bright_pixel() -> None:
    img = np.zeros((3, 3))
    img[0, 2] = 0.8
    f = _one(img)
    assert f["brightness"] == pytest.approx(0.8 / 9)
    assert f["ink_share"] == pytest.approx(1 / 9)
    assert f["center_x"] == pytest.approx(1.0)
    assert f["center_y"] == pytest.approx(0.0)
    # the only interior pixel (1,1) has laplacian 0 (the bright pixel is diagonal): variance 0.
    assert f["sharpness"] == pytest.approx(0.0)
    # 2x2 forward grid: only (0,1) sees dx = 0.8.
    assert f["edge_density"] == pytest.approx(1 / 4)


def test_uniform_grey_has_no_contrast_and_ink_threshold_is_strict() -> None:
    f = _one(np.full((6, 6), 0.5))
    assert f["brightness"] == pytest.approx(0.5)
    assert f["contrast"] == pytest.approx(0.0)
    assert f["ink_share"] == 0.0  # > 0.5, not >=


def test_batch_is_vectorised_and_accepts_channel_axis() -> None:
    rng = np.random.default_rng(0)
    batch = rng.random((7, 8, 8))
    stacked = np.vstack([feature_matrix(img[None]) for img in batch])
    np.testing.assert_allclose(feature_matrix(batch), stacked)
    np.testing.assert_allclose(feature_matrix(batch[..., None]), stacked)


def test_rejects_bad_shape() -> None:
    with pytest.raises(ValidationError, match="batch"):
        image_features(np.zeros((8, 8)))


def test_docstring_examples_run() -> None:
    import jobs.ml.image_features

    result = doctest.testmod(jobs.ml.image_features)
    assert result.attempted > 0 and result.failed == 0
