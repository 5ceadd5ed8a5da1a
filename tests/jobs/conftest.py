"""Shared, session-scoped fixtures for the jobs.ml tests: the digits data and one trained champion.

TensorFlow fixtures skip (with a reason) where the ``ml`` extra is not installed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jobs.demo.digits import DigitsData, apply_drift, load_digits_data

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if os.environ.get("PYTEST_XDIST_WORKER"):  # one TensorFlow thread per worker: -n 2 on 2 cores, no oversubscription
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")


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


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def champion(digits: DigitsData, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The baseline CNN trained once (8 epochs) and saved as ``champion.keras``.

    Under pytest-xdist the workers share one training: the first trains and saves into the
    run's common temporary directory, the others load the file and its metrics.
    """
    pytest.importorskip("tensorflow", reason="needs the ml extra (tensorflow)")
    from jobs.demo.digits_model import train_baseline
    from jobs.ml import network

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    cache = base / "ml_champion"
    path, meta = cache / "champion.keras", cache / "champion.json"
    with _exclusive(cache / ".lock"):
        if not meta.exists():
            trained = train_baseline(digits, epochs=8, seed=0, out_path=path)
            meta.write_text(json.dumps(trained.to_dict()))
            return trained
    info = json.loads(meta.read_text())
    return network.TrainedModel(
        model=network.load_model(path),
        path=path,
        seed=info["seed"],
        epochs=info["epochs"],
        train_seconds=info["train_seconds"],
        train_accuracy=info["train_accuracy"],
        val_accuracy=info["val_accuracy"],
        test_accuracy=info["test_accuracy"],
        history=info["history"],
    )


@pytest.fixture(scope="session")
def drifted(digits: DigitsData) -> DriftedSlice:
    """The production pool, each third darkened, blurred or rotated (strength 0.8), split in half."""
    x, y = digits.x_production, digits.y_production
    out = np.empty_like(x)
    for i, kind in enumerate(("darken", "blur", "rotate")):
        out[i::3] = apply_drift(x[i::3], kind, 0.8, seed=10 + i)
    half = len(y) // 2
    return DriftedSlice(new_x=out[:half], new_y=y[:half], held_x=out[half:], held_y=y[half:])
