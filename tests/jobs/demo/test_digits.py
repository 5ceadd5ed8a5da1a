"""Demo digits data and drift transforms (no TensorFlow)."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from drift.errors import UnknownMethodError, ValidationError
from jobs.demo.digits import (
    CLASS_LABELS,
    DRIFT_TRANSFORMS,
    DigitsData,
    apply_drift,
    jitter,
    labels_to_indices,
    load_digits_data,
    upscale,
)
from jobs.ml.image_features import image_features


@pytest.fixture(scope="module")
def data() -> DigitsData:
    return load_digits_data(seed=0)


def test_images_are_32x32_floats_in_unit_range(data: DigitsData) -> None:
    for x in (data.x_train, data.x_val, data.x_test, data.x_production):
        assert x.shape[1:] == (32, 32)
        assert x.dtype == np.float32
        assert x.min() >= 0.0 and x.max() <= 1.0
    assert data.labels == CLASS_LABELS == tuple("0123456789")


def test_split_is_deterministic_disjoint_and_stratified(data: DigitsData) -> None:
    again = load_digits_data(seed=0)
    np.testing.assert_array_equal(data.x_test, again.x_test)
    other = load_digits_data(seed=1)
    assert not np.array_equal(data.y_train[:50], other.y_train[:50])
    sizes = data.to_dict()["sizes"]
    assert sum(sizes.values()) == 1797
    flat = {x.tobytes() for x in np.concatenate([data.x_train, data.x_test])}
    assert not any(x.tobytes() in flat for x in data.x_production[:100])
    assert set(np.unique(data.y_test)) == set(range(10))


def test_upscale_keeps_constant_images_constant() -> None:
    out = upscale(np.full((2, 8, 8), 0.25))
    np.testing.assert_allclose(out, 0.25, atol=1e-6)


def test_labels_to_indices() -> None:
    np.testing.assert_array_equal(labels_to_indices(["7", "0", 3]), [7, 0, 3])
    with pytest.raises(ValidationError, match="unknown label 'x'"):
        labels_to_indices(["x"])


@pytest.mark.parametrize("kind", sorted(DRIFT_TRANSFORMS))
def test_drift_is_seeded_and_stays_in_range(data: DigitsData, kind: str) -> None:
    a = apply_drift(data.x_test[:20], kind, 0.7, seed=3)
    b = apply_drift(data.x_test[:20], kind, 0.7, seed=3)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (20, 32, 32) and a.dtype == np.float32
    assert a.min() >= 0.0 and a.max() <= 1.0
    assert not np.allclose(a, data.x_test[:20])


@pytest.mark.parametrize(
    ("kind", "feature", "direction"),
    [
        ("darken", "brightness", -1),
        ("darken", "ink_share", -1),
        ("blur", "sharpness", -1),
        ("blur", "edge_density", -1),
        ("noise", "sharpness", +1),
        ("invert", "brightness", +1),
        ("thicken", "ink_share", +1),
    ],
    ids=lambda v: str(v),
)
def test_drift_moves_features_in_expected_direction(data: DigitsData, kind: str, feature: str, direction: int) -> None:
    before = image_features(data.x_test)[feature].mean()
    after = image_features(apply_drift(data.x_test, kind, 0.8, seed=0))[feature].mean()
    assert np.sign(after - before) == direction
    assert abs(after - before) > 0.1 * abs(before)


def test_rotate_moves_ink_but_keeps_brightness(data: DigitsData) -> None:
    x = data.x_test[:50]
    rotated = apply_drift(x, "rotate", 1.0, seed=0)
    assert np.abs(rotated - x).mean() > 0.05
    f0, f1 = image_features(x), image_features(rotated)
    assert f1["brightness"].mean() == pytest.approx(f0["brightness"].mean(), rel=0.05)


def test_unknown_transform_lists_allowed() -> None:
    with pytest.raises(UnknownMethodError, match="allowed: blur, darken"):
        apply_drift(np.zeros((1, 32, 32)), "fog", 0.5, seed=0)
    with pytest.raises(ValidationError, match="strength"):
        apply_drift(np.zeros((1, 32, 32)), "blur", 1.5, seed=0)


def test_jitter_is_seeded(data: DigitsData) -> None:
    np.testing.assert_array_equal(jitter(data.x_test[:5], 1), jitter(data.x_test[:5], 1))


def test_docstring_examples_run() -> None:
    import jobs.demo.digits

    result = doctest.testmod(jobs.demo.digits)
    assert result.attempted > 0 and result.failed == 0
