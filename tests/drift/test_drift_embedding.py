"""MMD embedding test: calibration, power, determinism, speed."""

from __future__ import annotations

import time

import numpy as np
import pytest

from drift import mmd_test
from drift.errors import InsufficientDataError, InvalidSpecError


def test_identical_distributions_rarely_alarm() -> None:
    rng = np.random.default_rng(11)
    p_values = [mmd_test(rng.normal(size=(150, 16)), rng.normal(size=(150, 16)), seed=i).p_value for i in range(40)]
    assert np.mean(np.array(p_values) < 0.05) <= 0.125  # 5% plus Monte-Carlo slack on 40 draws
    assert np.median(p_values) > 0.2


@pytest.mark.parametrize(("shift", "n"), [(0.3, 300), (0.1, 1000)], ids=["shift0.3-n300", "shift0.1-n1000"])
def test_mean_shift_in_embedding_is_detected(shift: float, n: int) -> None:
    rng = np.random.default_rng(12)
    result = mmd_test(rng.normal(size=(n, 32)), rng.normal(shift, 1.0, size=(n, 32)))
    assert result.p_value < 0.001


def test_seeded_and_deterministic() -> None:
    rng = np.random.default_rng(13)
    a, b = rng.normal(size=(200, 8)), rng.normal(size=(200, 8))
    assert mmd_test(a, b, seed=3) == mmd_test(a, b, seed=3)


def test_fast_on_32_dims_and_thousands_of_rows() -> None:
    rng = np.random.default_rng(14)
    a, b = rng.normal(size=(3000, 32)), rng.normal(size=(3000, 32))
    mmd_test(a[:100], b[:100])  # warm up BLAS
    start = time.perf_counter()
    mmd_test(a, b)
    assert time.perf_counter() - start < 0.5


def test_bad_inputs() -> None:
    with pytest.raises(InvalidSpecError, match="widths differ"):
        mmd_test(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(InsufficientDataError):
        mmd_test(np.zeros((1, 3)), np.zeros((5, 3)))
