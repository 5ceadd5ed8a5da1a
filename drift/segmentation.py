"""Segmentation models: per-image summaries of a probability mask, IoU, confident mask errors.

The per-image summary (:func:`mask_summary`) is what a segmentation model logs instead of a
class and a confidence: the share of pixels predicted as each class, the mean pixel confidence
and the share of uncertain pixels. Its :meth:`MaskSummary.to_row` gives flat columns the drift
engine can compare like any other numeric features.

With true masks, :func:`iou_per_class` and :func:`mean_iou` measure each image, and
"confidently wrong" becomes a confident mask with a low IoU (:func:`confident_mask_errors`).

Example::

    >>> pred = np.array([[0, 0, 1], [1, 1, 2]])
    >>> true = np.array([[0, 0, 1], [1, 2, 2]])
    >>> iou_per_class(pred, true, 3).round(3).tolist()
    [1.0, 0.667, 0.5]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from drift.errors import ValidationError
from drift.records import Record

__all__ = [
    "MaskSummary",
    "confident_mask_errors",
    "iou_per_class",
    "mask_summary",
    "mean_iou",
]

_PROBA_SUM_ATOL = 1e-2


@dataclass(frozen=True, kw_only=True)
class MaskSummary:
    """Summary of one image's probability mask.

    Attributes:
        class_labels: class of each channel.
        n_pixels: H·W.
        pixel_share: share of pixels whose most probable class is each class (sums to 1).
        mean_confidence: mean over pixels of the top class probability.
        uncertain_share: share of pixels whose top probability is below ``uncertain_below``.
        uncertain_below: the threshold used.
    """

    class_labels: tuple[str, ...]
    n_pixels: int
    pixel_share: tuple[float, ...]
    mean_confidence: float
    uncertain_share: float
    uncertain_below: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "class_labels": list(self.class_labels),
            "n_pixels": self.n_pixels,
            "pixel_share": dict(zip(self.class_labels, self.pixel_share, strict=True)),
            "mean_confidence": self.mean_confidence,
            "uncertain_share": self.uncertain_share,
            "uncertain_below": self.uncertain_below,
        }

    def to_row(self) -> dict[str, float]:
        """Flat numeric columns for a summaries table: ``pixel_share_<label>``,
        ``mean_confidence``, ``uncertain_share``."""
        row = {f"pixel_share_{lab}": share for lab, share in zip(self.class_labels, self.pixel_share, strict=True)}
        row["mean_confidence"] = self.mean_confidence
        row["uncertain_share"] = self.uncertain_share
        return row


def mask_summary(prob_mask: ArrayLike, class_labels: Sequence[str], uncertain_below: float = 0.6) -> MaskSummary:
    """Summarise an ``(H, W, C)`` per-pixel class probability mask (each pixel sums to 1).

    Ties between classes go to the first class (``argmax``).

    Raises:
        ValidationError: wrong shape, fewer than 2 classes, labels that do not match the
            channels, values outside [0, 1], pixels that do not sum to 1 (within 0.01).
    """
    proba = np.asarray(prob_mask, dtype=np.float64)
    labels = tuple(str(c) for c in class_labels)
    if proba.ndim != 3:
        raise ValidationError(f"prob_mask must be 3-D (H, W, C), got shape {proba.shape}")
    h, w, c = proba.shape
    if c < 2 or c != len(labels) or len(set(labels)) != c:
        raise ValidationError(
            f"class_labels must name each of the {c} channels once (at least 2 classes), got {list(labels)}"
        )
    if h * w == 0:
        raise ValidationError(f"prob_mask has no pixels (shape {proba.shape})")
    if not 0.0 < uncertain_below <= 1.0:
        raise ValidationError(f"uncertain_below must lie in (0, 1], got {uncertain_below!r}")
    if not np.all(np.isfinite(proba)) or proba.min() < 0.0 or proba.max() > 1.0:
        raise ValidationError("prob_mask must be finite and lie in [0, 1]")
    flat = proba.reshape(-1, c)
    if not np.allclose(flat.sum(axis=1), 1.0, atol=_PROBA_SUM_ATOL):
        raise ValidationError(f"each pixel's probabilities must sum to 1 (within {_PROBA_SUM_ATOL})")
    top_class = flat.argmax(axis=1)
    top_p = flat[np.arange(flat.shape[0]), top_class]
    n = flat.shape[0]
    share = np.bincount(top_class, minlength=c) / n
    return MaskSummary(
        class_labels=labels,
        n_pixels=int(n),
        pixel_share=tuple(float(v) for v in share),
        mean_confidence=float(top_p.mean()),
        uncertain_share=float((top_p < uncertain_below).mean()),
        uncertain_below=float(uncertain_below),
    )


def _label_mask(values: ArrayLike, name: str) -> NDArray[Any]:
    arr = np.asarray(values)
    if arr.ndim != 2:
        raise ValidationError(f"{name} must be a 2-D (H, W) class-index mask, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValidationError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    return arr


def iou_per_class(
    pred_mask: ArrayLike, true_mask: ArrayLike, n_classes: int, *, ignore_index: int | None = None
) -> NDArray[np.float64]:
    """Intersection over union of each class between two ``(H, W)`` class-index masks.

    Pixels whose true value is ``ignore_index`` are left out. A class absent from both masks
    gets NaN (undefined), not 0 or 1.

    Raises:
        ValidationError: shapes differ, or a class index outside ``0..n_classes-1``.
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, int | np.integer) or n_classes < 1:
        raise ValidationError(f"n_classes must be a positive integer, got {n_classes!r}")
    pred = _label_mask(pred_mask, "pred_mask")
    true = _label_mask(true_mask, "true_mask")
    if pred.shape != true.shape:
        raise ValidationError(f"pred_mask and true_mask differ in shape: {pred.shape} vs {true.shape}")
    keep = np.ones(true.shape, dtype=bool) if ignore_index is None else true != ignore_index
    p = pred[keep].astype(np.int64)
    t = true[keep].astype(np.int64)
    for name, arr in (("pred_mask", p), ("true_mask", t)):
        if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
            raise ValidationError(
                f"{name} has class indices outside 0..{n_classes - 1}"
                + ("" if ignore_index is None else f" (ignoring {ignore_index})")
            )
    cm = np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    inter = np.diag(cm).astype(np.float64)
    union = cm.sum(axis=0) + cm.sum(axis=1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, np.nan)


def mean_iou(pred_mask: ArrayLike, true_mask: ArrayLike, n_classes: int, *, ignore_index: int | None = None) -> float:
    """Mean IoU over the classes present in either mask (NaN if none is)."""
    iou = iou_per_class(pred_mask, true_mask, n_classes, ignore_index=ignore_index)
    present = ~np.isnan(iou)
    return float(iou[present].mean()) if present.any() else math.nan


def confident_mask_errors(
    mean_confidence: ArrayLike,
    iou: ArrayLike,
    confidence_threshold: float = 0.9,
    iou_threshold: float = 0.5,
) -> NDArray[np.bool_]:
    """Mask of images whose mask was confident (``mean_confidence >= confidence_threshold``)
    yet wrong (``iou < iou_threshold``). Images with an undefined (NaN) IoU are not errors.

    >>> confident_mask_errors([0.95, 0.95, 0.5, 0.99], [0.2, 0.8, 0.1, float("nan")]).tolist()
    [True, False, False, False]
    """
    conf = np.asarray(mean_confidence, dtype=np.float64)
    iou_arr = np.asarray(iou, dtype=np.float64)
    if conf.ndim != 1 or conf.shape != iou_arr.shape:
        raise ValidationError(
            f"mean_confidence and iou must be 1-D of equal length, got {conf.shape} and {iou_arr.shape}"
        )
    for name, value in (("confidence_threshold", confidence_threshold), ("iou_threshold", iou_threshold)):
        if not 0.0 <= value <= 1.0:
            raise ValidationError(f"{name} must lie in [0, 1], got {value!r}")
    with np.errstate(invalid="ignore"):
        return np.asarray((conf >= confidence_threshold) & (iou_arr < iou_threshold), dtype=np.bool_)


@dataclass(frozen=True, kw_only=True)
class MaskQuality(Record):
    """Mean IoU of a window's labelled masks: what a check finds and a weekly report shows."""

    iou_threshold: float
    n_labelled: int
    n_with_masks: int
    n_scored: int
    n_skipped: int
    skipped: dict[str, int]
    mean_iou: float | None
    per_class_iou: dict[str, float | None]
    reference_mean_iou: float | None
