"""Shared, session-scoped fixtures for the jobs.ml tests: the digits data and one trained champion.

TensorFlow fixtures skip (with a reason) where the ``ml`` extra is not installed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from jobs.ml.digits import DigitsData, apply_drift, load_digits_data

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@dataclass(frozen=True, kw_only=True)
class DriftedSlice:
    """Drifted production digits: ``new`` (labelled, for retraining) and ``held`` (never trained on)."""

    new_x: np.ndarray
    new_y: np.ndarray
    held_x: np.ndarray
    held_y: np.ndarray


@pytest.fixture(scope="session")
def digits() -> DigitsData:
    return load_digits_data(seed=0)


@pytest.fixture(scope="session")
def champion(digits: DigitsData, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The baseline CNN trained once (8 epochs) and saved as ``champion.keras``."""
    pytest.importorskip("tensorflow", reason="needs the ml extra (tensorflow)")
    from jobs.ml import cnn

    path = tmp_path_factory.mktemp("champion") / "champion.keras"
    return cnn.train_baseline(digits, epochs=8, seed=0, out_path=path)


@pytest.fixture(scope="session")
def drifted(digits: DigitsData) -> DriftedSlice:
    """The production pool, each third darkened, blurred or rotated (strength 0.8), split in half."""
    x, y = digits.x_production, digits.y_production
    out = np.empty_like(x)
    for i, kind in enumerate(("darken", "blur", "rotate")):
        out[i::3] = apply_drift(x[i::3], kind, 0.8, seed=10 + i)
    half = len(y) // 2
    return DriftedSlice(new_x=out[:half], new_y=y[:half], held_x=out[half:], held_y=y[half:])
