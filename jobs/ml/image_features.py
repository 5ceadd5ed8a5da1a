"""Cheap image properties a phone could compute before classifying, vectorised over a batch.

Every feature works on a batch ``(N, H, W)`` of grayscale images in [0, 1]:

- ``brightness``: mean intensity.
- ``contrast``: standard deviation of the intensities (population, ``ddof=0``).
- ``sharpness``: variance of the 4-neighbour Laplacian ``[[0,1,0],[1,-4,1],[0,1,0]]`` over the
  interior pixels (border excluded, no padding).
- ``ink_share``: share of pixels brighter than 0.5.
- ``center_x``, ``center_y``: intensity-weighted centroid, as a fraction of the width / height
  (``col / (W - 1)``), so 0 is the left / top edge and 1 the right / bottom; 0.5 for a blank image.
- ``edge_density``: share of forward-difference gradients ``sqrt(dx² + dy²)`` above
  ``EDGE_THRESHOLD`` over the ``(H-1) x (W-1)`` grid.

>>> import numpy as np
>>> img = np.zeros((1, 4, 4)); img[0, :, 2:] = 1.0
>>> image_features(img)[["brightness", "ink_share", "center_x"]].round(4).to_dict("records")
[{'brightness': 0.5, 'ink_share': 0.5, 'center_x': 0.8333}]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from drift.errors import ValidationError

FEATURE_COLUMNS: tuple[str, ...] = (
    "brightness",
    "contrast",
    "sharpness",
    "ink_share",
    "center_x",
    "center_y",
    "edge_density",
)
INK_THRESHOLD = 0.5
EDGE_THRESHOLD = 0.1


def feature_matrix(images: np.ndarray) -> np.ndarray:
    """The features as a float64 array ``(N, len(FEATURE_COLUMNS))``, columns in that order."""
    x = np.asarray(images, dtype=np.float64)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3 or x.shape[1] < 3 or x.shape[2] < 3:
        raise ValidationError(f"image features expect a batch (N, H, W) with H, W >= 3, got {x.shape}")
    n, h, w = x.shape
    brightness = x.mean(axis=(1, 2))
    contrast = x.std(axis=(1, 2))
    lap = x[:, :-2, 1:-1] + x[:, 2:, 1:-1] + x[:, 1:-1, :-2] + x[:, 1:-1, 2:] - 4.0 * x[:, 1:-1, 1:-1]
    sharpness = lap.reshape(n, -1).var(axis=1)
    ink_share = (x > INK_THRESHOLD).mean(axis=(1, 2))
    total = x.sum(axis=(1, 2))
    safe = np.where(total > 0, total, 1.0)
    cx = (x.sum(axis=1) * np.arange(w)).sum(axis=1) / safe / (w - 1)
    cy = (x.sum(axis=2) * np.arange(h)).sum(axis=1) / safe / (h - 1)
    center_x = np.where(total > 0, cx, 0.5)
    center_y = np.where(total > 0, cy, 0.5)
    dx = x[:, :-1, 1:] - x[:, :-1, :-1]
    dy = x[:, 1:, :-1] - x[:, :-1, :-1]
    edge_density = (np.sqrt(dx**2 + dy**2) > EDGE_THRESHOLD).mean(axis=(1, 2))
    return np.stack([brightness, contrast, sharpness, ink_share, center_x, center_y, edge_density], axis=1)


def image_features(images: np.ndarray) -> pd.DataFrame:
    """The features of each image as a DataFrame with columns :data:`FEATURE_COLUMNS`."""
    return pd.DataFrame(feature_matrix(images), columns=list(FEATURE_COLUMNS))
