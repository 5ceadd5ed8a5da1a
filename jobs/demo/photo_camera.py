"""What happens to a photo between the lens and the app: degradations, a new camera's drift, features.

Everything works on a batch of RGB photos, uint8 ``(N, H, W, 3)``; the transforms return a new
uint8 batch of the same shape, :func:`photo_features` one row of cheap features a phone could
compute per photo (numpy, scipy and PIL only; no TensorFlow).

Degradations make an *unacceptable* photo; each has a random strength ``s`` in [0, 1] that is
mapped above a clear threshold, so "unacceptable" is never a borderline call:

==============  ===============================================================================
``blurred``     Gaussian blur, sigma ``1.6 + 2.4 s`` pixels (clean photos have sigma <= 0.5)
``dark``        gain ``0.35 - 0.23 s`` and gamma ``1.2 + 0.5 s`` (clean: gain >= 0.85)
``overexposed`` gain ``1.9 + 1.6 s`` plus ``25 + 45 s`` grey levels, clipped (clean: <= 1.15)
``noisy``       Gaussian sensor noise, sigma ``22 + 38 s`` grey levels (clean: <= 3)
==============  ===============================================================================

:func:`mild_variation` is what an *acceptable* photo may carry: exposure within ±15 %, a slight
gamma, a little noise and at most a faint softening.

Camera drifts (:data:`CAMERA_DRIFTS`) model a new phone camera. The label of the photo does not
change (a person still finds it acceptable or not), only how it looks to the model:

==============  ===============================================================================
``colour_cast``  white balance off: channel gains red ``1 + 0.45 s``, green ``1 + 0.1 s``, blue
                 ``1 - 0.55 s`` and a lift of the blacks by ``40 s`` grey levels
``jpeg``         real JPEG re-encoding with PIL at quality :func:`jpeg_quality` (60 down to 4, 4:2:0
                 chroma subsampling): 8x8 blocking and ringing
``low_light``    a small sensor in dim light: gain ``1 - 0.62 s``, gamma ``1 + 0.3 s`` and sensor
                 noise (sigma ``6 s`` luma, ``3 s`` chroma) added after the darkening
==============  ===============================================================================

>>> import numpy as np
>>> x = np.full((2, 16, 16, 3), 128, dtype=np.uint8)
>>> sorted(CAMERA_DRIFTS)
['colour_cast', 'jpeg', 'low_light']
>>> int(apply_camera_drift(x, "low_light", 1.0, seed=0).mean()) < 80
True
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from drift.errors import UnknownMethodError, ValidationError
from jobs.ml.image_features import feature_matrix

UInt8Array = np.ndarray[Any, np.dtype[np.uint8]]
PHOTO_FEATURE_COLUMNS: tuple[str, ...] = (
    "brightness",
    "contrast",
    "sharpness",
    "edge_density",
    "saturation",
    "rg_ratio",
    "bg_ratio",
    "noise",
    "dark_share",
    "bright_share",
    "blockiness",
)
_BATCH = 256
Transform = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]


def check_photos(images: np.ndarray) -> np.ndarray:
    """Validate a batch of RGB photos ``(N, H, W, 3)`` and return it as float32 in 0..255."""
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValidationError(f"expected a batch of RGB photos (N, H, W, 3), got shape {x.shape}")
    return x.astype(np.float32)


def luma(x: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of RGB in 0..255 as float64 in [0, 1]."""
    return np.asarray(x[..., :3], dtype=np.float64) @ np.array([0.299, 0.587, 0.114]) / 255.0


def to_uint8(x: np.ndarray) -> UInt8Array:
    return np.asarray(np.clip(np.round(x), 0, 255), dtype=np.uint8)


def _per_image(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    return rng.uniform(lo, hi, size=(n, 1, 1, 1)).astype(np.float32)


def _normal(rng: np.random.Generator, sigma: float | np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_normal(size=shape, dtype=np.float32) * np.float32(sigma)


def _gamma(x: np.ndarray, gamma: np.ndarray | float) -> np.ndarray:
    return np.float32(255.0) * np.power(np.clip(x, 0.0, 255.0) / np.float32(255.0), gamma)


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    return np.asarray(ndimage.gaussian_filter(x, sigma=(0, sigma, sigma, 0), mode="reflect"))


# ---------------------------------------------------------------------------------------------
# Degradations (unacceptable photos) and the mild variation acceptable photos may carry


def _blurred(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    return _blur(x, 1.6 + 2.4 * s)


def _dark(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    return _gamma(x, 1.2 + 0.5 * s) * (0.35 - 0.23 * s)


def _overexposed(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    return x * (1.9 + 1.6 * s) + (25.0 + 45.0 * s)


def _noisy(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    return x + _normal(rng, 22.0 + 38.0 * s, x.shape)


DEGRADATIONS: dict[str, Transform] = {
    "blurred": _blurred,
    "dark": _dark,
    "overexposed": _overexposed,
    "noisy": _noisy,
}


def degrade(images: np.ndarray, kind: str, strength: float, seed: int) -> UInt8Array:
    """Degrade a batch with ``DEGRADATIONS[kind]`` at ``strength`` in [0, 1] (see the module doc)."""
    return _apply(DEGRADATIONS, "degradation", images, kind, strength, seed, skip_zero=False)


def mild_variation(images: np.ndarray, seed: int) -> UInt8Array:
    """What an acceptable photo may carry: exposure ±15 %, gamma 0.9..1.1, noise <= 3, sigma <= 0.5."""
    x = check_photos(images)
    if len(x) == 0:
        return to_uint8(x)
    rng = np.random.default_rng(seed)
    n = len(x)
    out = _gamma(x, _per_image(rng, n, 0.9, 1.1)) * _per_image(rng, n, 0.85, 1.15)
    soft = rng.random(n) < 0.3
    if soft.any():
        out[soft] = _blur(out[soft], float(rng.uniform(0.3, 0.5)))
    out = out + _normal(rng, _per_image(rng, n, 0.0, 3.0), x.shape)
    return to_uint8(out)


# ---------------------------------------------------------------------------------------------
# Camera drift: a new phone camera


def jpeg_quality(strength: float) -> int:
    """The JPEG quality the ``jpeg`` drift encodes with: 60 at strength 0 down to 4 at 1."""
    return max(1, round(60 - 56 * strength))


def jpeg_round_trip(images: np.ndarray, quality: int) -> UInt8Array:
    """Encode each photo as JPEG with PIL at ``quality`` (4:2:0 subsampling) and decode it again."""
    from PIL import Image

    x = to_uint8(check_photos(images))
    out = np.empty_like(x)
    for i, img in enumerate(x):
        buf = io.BytesIO()
        Image.fromarray(img, mode="RGB").save(buf, format="JPEG", quality=int(quality), subsampling=2)
        buf.seek(0)
        with Image.open(buf) as decoded:
            out[i] = np.asarray(decoded.convert("RGB"))
    return out


def _colour_cast(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    jitter = _per_image(rng, len(x), 0.9, 1.0)
    gains = 1.0 + np.array([0.45, 0.1, -0.55], dtype=np.float32) * np.float32(s) * jitter
    return x * gains + 40.0 * s * jitter


def _jpeg(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    return jpeg_round_trip(x, jpeg_quality(s)).astype(np.float32)


def _low_light(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    n = len(x)
    darker = _gamma(x, 1.0 + 0.3 * s) * (1.0 - 0.62 * s * _per_image(rng, n, 0.9, 1.0))
    luma_noise = _normal(rng, 6.0 * s, (*x.shape[:3], 1))
    chroma_noise = _normal(rng, 3.0 * s, x.shape)
    return darker + luma_noise + chroma_noise


CAMERA_DRIFTS: dict[str, Transform] = {
    "colour_cast": _colour_cast,
    "jpeg": _jpeg,
    "low_light": _low_light,
}


def apply_camera_drift(images: np.ndarray, kind: str, strength: float, seed: int) -> UInt8Array:
    """Apply the camera drift ``kind`` at ``strength`` in [0, 1] to uint8 photos ``(N, H, W, 3)``."""
    return _apply(CAMERA_DRIFTS, "camera drift", images, kind, strength, seed, skip_zero=True)


def _apply(
    registry: dict[str, Transform],
    what: str,
    images: np.ndarray,
    kind: str,
    strength: float,
    seed: int,
    *,
    skip_zero: bool,
) -> UInt8Array:
    if kind not in registry:
        raise UnknownMethodError(what, kind, list(registry))
    if not 0.0 <= strength <= 1.0:
        raise ValidationError(f"{what} strength must be in [0, 1], got {strength}")
    x = check_photos(images)
    if len(x) == 0 or (skip_zero and strength == 0.0):
        return to_uint8(x)
    return to_uint8(registry[kind](x, float(strength), np.random.default_rng(seed)))


# ---------------------------------------------------------------------------------------------
# Features a phone could compute (what the app logs beside each prediction)


def photo_feature_matrix(images: np.ndarray) -> np.ndarray:
    """:data:`PHOTO_FEATURE_COLUMNS` as float64 ``(N, F)``, computed in chunks (vectorised numpy).

    Luma-based: brightness (mean), contrast (std), sharpness (Laplacian variance) and edge
    density as in :mod:`jobs.ml.image_features`; noise (Immerkær's fast estimate, sigma in luma
    units); dark / bright share (luma < 0.05 / > 0.95); blockiness (mean step across the 8x8 JPEG
    block borders over the mean step elsewhere; about 1 for a photo that was never JPEG'd).
    Colour: saturation (mean HSV S) and the ratios of the channel means red/green, blue/green.
    """
    x = check_photos(images)
    parts = [_features(x[i : i + _BATCH]) for i in range(0, len(x), _BATCH)]
    return np.concatenate(parts) if parts else np.zeros((0, len(PHOTO_FEATURE_COLUMNS)))


def _features(x: np.ndarray) -> np.ndarray:
    g = luma(x)
    h, w = g.shape[1:]
    base = feature_matrix(g)  # brightness, contrast, sharpness, ink_share, cx, cy, edge_density
    hi, lo = x.max(axis=-1), x.min(axis=-1)
    saturation = np.where(hi > 0, (hi - lo) / np.where(hi > 0, hi, 1.0), 0.0).mean(axis=(1, 2))
    means = x.mean(axis=(1, 2)) + 1e-6
    m = g[:, :-2, :-2] - 2 * g[:, :-2, 1:-1] + g[:, :-2, 2:]
    m = m - 2 * (g[:, 1:-1, :-2] - 2 * g[:, 1:-1, 1:-1] + g[:, 1:-1, 2:])
    m = m + g[:, 2:, :-2] - 2 * g[:, 2:, 1:-1] + g[:, 2:, 2:]
    noise = np.sqrt(np.pi / 2) * np.abs(m).sum(axis=(1, 2)) / (6.0 * (h - 2) * (w - 2))
    dx = np.abs(np.diff(g, axis=2))  # dx[:, :, j] = step between columns j and j + 1
    dy = np.abs(np.diff(g, axis=1))
    border_x, border_y = (np.arange(w - 1) % 8) == 7, (np.arange(h - 1) % 8) == 7
    across = (dx[:, :, border_x].mean(axis=(1, 2)) + dy[:, border_y, :].mean(axis=(1, 2))) / 2
    within = (dx[:, :, ~border_x].mean(axis=(1, 2)) + dy[:, ~border_y, :].mean(axis=(1, 2))) / 2
    blockiness = np.where(within > 1e-9, across / np.maximum(within, 1e-9), 1.0)
    return np.stack(
        [
            base[:, 0], base[:, 1], base[:, 2], base[:, 6], saturation,
            means[:, 0] / means[:, 1], means[:, 2] / means[:, 1], noise,
            (g < 0.05).mean(axis=(1, 2)), (g > 0.95).mean(axis=(1, 2)), blockiness,
        ],
        axis=1,
    )  # fmt: skip


def photo_features(images: np.ndarray) -> pd.DataFrame:
    """The features of each photo (uint8 ``(N, H, W, 3)``) with columns :data:`PHOTO_FEATURE_COLUMNS`."""
    return pd.DataFrame(photo_feature_matrix(images), columns=list(PHOTO_FEATURE_COLUMNS))
