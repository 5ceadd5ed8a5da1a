"""The demo data: scikit-learn's bundled digits as small grayscale images, and drift transforms.

No downloads: :func:`sklearn.datasets.load_digits` ships inside scikit-learn. The 8x8 images
(values 0..16) are upscaled bilinearly to 24x24 and centred on a black 32x32 canvas (a 4-pixel
margin), float32 in [0, 1] (white ink on black), so they look like the small camera crops a
phone app would classify and survive a rotation or shift without being cut.

The split is deterministic for a seed and has four parts: ``train`` (the champion learns from
it), ``val`` (its reference set), ``test`` (the untouched held-out set the gate uses) and
``production`` (the pool the production simulator draws from, never seen in training).

Drift transforms (numpy/scipy only, no TensorFlow) take a batch ``(N, 32, 32)``, a
``strength`` in [0, 1] and a ``seed``, and return a new batch in [0, 1]:

>>> import numpy as np
>>> x = np.zeros((2, 32, 32), dtype=np.float32); x[:, 8:24, 14:18] = 1.0
>>> sorted(DRIFT_TRANSFORMS)
['blur', 'darken', 'invert', 'noise', 'rotate', 'thicken']
>>> float(apply_drift(x, "darken", 0.5, seed=0).max()) < 1.0
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from drift.errors import UnknownMethodError, ValidationError

IMAGE_SIZE = 32
DIGIT_SIZE = 24
CLASS_LABELS: tuple[str, ...] = tuple(str(d) for d in range(10))
DEFAULT_SPLIT_SEED = 0

FloatArray = np.ndarray[Any, np.dtype[np.float32]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]


@dataclass(frozen=True, kw_only=True)
class DigitsData:
    """The four deterministic splits. ``y_*`` hold class indices into ``labels``."""

    x_train: FloatArray
    y_train: IntArray
    x_val: FloatArray
    y_val: IntArray
    x_test: FloatArray
    y_test: IntArray
    x_production: FloatArray
    y_production: IntArray
    labels: tuple[str, ...] = CLASS_LABELS
    seed: int = DEFAULT_SPLIT_SEED

    def save_training_npz(self, path: Path) -> Path:
        """The champion's training and test sets as ``retrain.training_data`` reads them."""
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, x_train=self.x_train, y_train=self.y_train, x_test=self.x_test, y_test=self.y_test)
        return path

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "labels": list(self.labels),
            "image_shape": [IMAGE_SIZE, IMAGE_SIZE],
            "sizes": {
                "train": len(self.y_train),
                "val": len(self.y_val),
                "test": len(self.y_test),
                "production": len(self.y_production),
            },
        }


def _bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Row i holds the weights of the input pixels for output pixel i (align-corners=False)."""
    centres = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    centres = np.clip(centres, 0, n_in - 1)
    lo = np.floor(centres).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = centres - lo
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), lo] += 1 - frac
    m[np.arange(n_out), hi] += frac
    return m


def upscale(images8: np.ndarray, size: int = IMAGE_SIZE) -> FloatArray:
    """Upscale a batch ``(N, h, w)`` to ``(N, size, size)`` bilinearly, vectorised."""
    if images8.ndim != 3:
        raise ValidationError(f"upscale expects a batch (N, h, w), got shape {images8.shape}")
    rows = _bilinear_matrix(images8.shape[1], size)
    cols = _bilinear_matrix(images8.shape[2], size)
    out = np.einsum("ij,njk,lk->nil", rows, images8.astype(np.float64), cols)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def load_digits_images() -> tuple[FloatArray, IntArray]:
    """All 1,797 digits as ``(N, 32, 32)`` float32 in [0, 1] and their class indices."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    digits = upscale(np.asarray(bunch.images, dtype=np.float64) / 16.0, DIGIT_SIZE)
    margin = (IMAGE_SIZE - DIGIT_SIZE) // 2
    images = np.zeros((len(digits), IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    images[:, margin : margin + DIGIT_SIZE, margin : margin + DIGIT_SIZE] = digits
    return images, np.asarray(bunch.target, dtype=np.int64)


def load_digits_data(
    seed: int = DEFAULT_SPLIT_SEED,
    *,
    val_share: float = 0.1,
    test_share: float = 0.15,
    production_share: float = 0.2,
) -> DigitsData:
    """Split the digits, stratified by class, deterministically for ``seed``."""
    from sklearn.model_selection import train_test_split

    shares = {"val_share": val_share, "test_share": test_share, "production_share": production_share}
    for name, share in shares.items():
        if not 0 < share < 1:
            raise ValidationError(f"{name} must be in (0, 1), got {share}")
    if sum(shares.values()) >= 0.9:
        raise ValidationError("val_share + test_share + production_share must leave >= 10% for training")
    x, y = load_digits_images()
    idx = np.arange(len(y))
    held = val_share + test_share + production_share
    train_idx, rest = train_test_split(idx, test_size=held, stratify=y, random_state=seed)
    prod_idx, rest = train_test_split(rest, train_size=production_share / held, stratify=y[rest], random_state=seed)
    val_idx, test_idx = train_test_split(
        rest, train_size=val_share / (val_share + test_share), stratify=y[rest], random_state=seed
    )
    return DigitsData(
        x_train=x[train_idx], y_train=y[train_idx],
        x_val=x[val_idx], y_val=y[val_idx],
        x_test=x[test_idx], y_test=y[test_idx],
        x_production=x[prod_idx], y_production=y[prod_idx],
        seed=seed,
    )  # fmt: skip


def labels_to_indices(labels: Any, classes: tuple[str, ...] = CLASS_LABELS) -> IntArray:
    """Map string labels (``"7"``) to class indices; unknown labels raise ValidationError."""
    lookup = {c: i for i, c in enumerate(classes)}
    try:
        return np.asarray([lookup[str(label)] for label in labels], dtype=np.int64)
    except KeyError as exc:
        raise ValidationError(f"unknown label {exc.args[0]!r}; allowed: {', '.join(classes)}") from exc


# ---------------------------------------------------------------------------------------------
# Small augmentations (used by the simulator to vary rows drawn from the production pool)


def jitter(images: np.ndarray, seed: int, *, max_shift: int = 2) -> FloatArray:
    """Shift each image by up to ``max_shift`` pixels and jitter its brightness by a few percent."""
    rng = np.random.default_rng(seed)
    out = np.empty_like(images, dtype=np.float32)
    shifts = rng.integers(-max_shift, max_shift + 1, size=(len(images), 2))
    gains = rng.uniform(0.9, 1.05, size=len(images))
    for i, img in enumerate(images):
        out[i] = np.roll(img, tuple(shifts[i]), axis=(0, 1)) * gains[i]
    return np.clip(out, 0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# Drift transforms: each (images, strength, rng) -> images, all in [0, 1]


def _darken(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    # An under-exposed camera: ink loses intensity (gain down to 0.25), a little gamma.
    gain = (1.0 - 0.75 * s) * rng.uniform(0.9, 1.1, size=(len(x), 1, 1))
    return np.power(x, 1.0 + 0.5 * s) * gain


def _blur(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    sigma = 0.3 + 2.2 * s
    return ndimage.gaussian_filter(x, sigma=(0, sigma, sigma), mode="constant")


def _rotate(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    # Phones held sideways: angle of magnitude 25..25+65*s degrees with a random sign.
    max_deg = 25.0 + 65.0 * s
    angles = rng.uniform(0.6, 1.0, size=len(x)) * max_deg * rng.choice([-1.0, 1.0], size=len(x))
    return np.stack(
        [ndimage.rotate(img, a, reshape=False, order=1, mode="constant") for img, a in zip(x, angles, strict=True)]
    )


def _noise(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    return x + rng.normal(0.0, 0.35 * s, size=x.shape)


def _invert(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    # A new kind of input: dark ink on paper (a scanned form) instead of light strokes on a
    # screen. Strength sets how bright the paper is (0.4 .. 1.0).
    return (0.4 + 0.6 * s) * (1.0 - x)


def _thicken(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    # A new kind of input: digits drawn with a marker, strokes up to 3 px thicker.
    size = 1 + 2 * max(1, round(1.5 * s))
    return ndimage.grey_dilation(x, size=(1, size, size))


DRIFT_TRANSFORMS: dict[str, Callable[[np.ndarray, float, np.random.Generator], np.ndarray]] = {
    "darken": _darken,
    "blur": _blur,
    "rotate": _rotate,
    "noise": _noise,
    "invert": _invert,
    "thicken": _thicken,
}


def apply_drift(images: np.ndarray, kind: str, strength: float, seed: int) -> FloatArray:
    """Apply the drift transform ``kind`` at ``strength`` in [0, 1] to a batch ``(N, 32, 32)``."""
    if kind not in DRIFT_TRANSFORMS:
        raise UnknownMethodError("drift transform", kind, list(DRIFT_TRANSFORMS))
    if not 0.0 <= strength <= 1.0:
        raise ValidationError(f"drift strength must be in [0, 1], got {strength}")
    if images.ndim != 3:
        raise ValidationError(f"drift transforms expect a batch (N, h, w), got shape {images.shape}")
    if len(images) == 0 or strength == 0.0:
        return images.astype(np.float32, copy=True)
    rng = np.random.default_rng(seed)
    out = DRIFT_TRANSFORMS[kind](images.astype(np.float64), strength, rng)
    return np.clip(out, 0.0, 1.0).astype(np.float32)
