"""Validation of per-prediction input arrays shared by the performance and estimate modules."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from drift.errors import ValidationError

__all__ = ["as_1d", "as_confidence"]


def as_1d(values: ArrayLike, name: str, n: int | None = None) -> NDArray[Any]:
    """``values`` as a 1-D array, of ``n`` entries when ``n`` is given."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValidationError(f"{name} must be 1-D, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValidationError(f"{name} must have {n} entries (one per prediction), got {arr.shape[0]}")
    return arr


def as_confidence(values: ArrayLike, name: str = "confidence", n: int | None = None) -> NDArray[np.float64]:
    """``values`` as 1-D float64 confidences, all finite and in [0, 1]."""
    arr = as_1d(values, name, n).astype(np.float64)
    if not np.all(np.isfinite(arr)) or (arr.size and (arr.min() < 0.0 or arr.max() > 1.0)):
        raise ValidationError(f"{name} must be finite and lie in [0, 1]")
    return arr
