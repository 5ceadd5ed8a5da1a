"""Judging a segmentation challenger: mean IoU on held-out recent masks and the original test set."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from drift.errors import ValidationError
from drift.segmentation import iou_per_class, mean_iou
from jobs.ml.segmentation import IGNORE, predict_proba

# ---------------------------------------------------------------------------------------------
# Evaluation and the gate


@dataclass(frozen=True, kw_only=True)
class SegEval:
    """Dataset-level IoU (pixels of all images pooled; IGNORE pixels left out) and pixel accuracy."""

    mean_iou: float
    per_class_iou: tuple[float, ...]
    pixel_accuracy: float
    n: int
    n_pixels: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean_iou": self.mean_iou,
            "per_class_iou": list(self.per_class_iou),
            "pixel_accuracy": self.pixel_accuracy,
            "n": self.n,
            "n_pixels": self.n_pixels,
        }


def evaluate_segmenter(model_or_path: Any, images: np.ndarray, masks: np.ndarray, n_classes: int) -> SegEval:
    """Mean and per-class IoU (via :mod:`drift.segmentation`) and pixel accuracy over ``images``."""
    true = np.asarray(masks)
    if len(true) == 0 or true.shape != np.shape(images)[:3]:
        raise ValidationError(f"need non-empty masks shaped like the images, got {true.shape} vs {np.shape(images)}")
    pred = predict_proba(model_or_path, images).argmax(axis=-1)
    flat_pred, flat_true = pred.reshape(-1, true.shape[-1]), true.reshape(-1, true.shape[-1])
    per_class = iou_per_class(flat_pred, flat_true, n_classes, ignore_index=IGNORE)
    labelled = flat_true != IGNORE
    n_pixels = int(labelled.sum())
    return SegEval(
        mean_iou=mean_iou(flat_pred, flat_true, n_classes, ignore_index=IGNORE),
        per_class_iou=tuple(float(v) for v in per_class),
        pixel_accuracy=float((flat_pred == flat_true)[labelled].mean()) if n_pixels else math.nan,
        n=len(true),
        n_pixels=n_pixels,
    )


def segmentation_gate(
    champion_eval_recent: SegEval,
    challenger_eval_recent: SegEval,
    champion_eval_test: SegEval,
    challenger_eval_test: SegEval,
    *,
    min_iou_gain: float,
    max_test_iou_drop: float,
) -> tuple[bool, tuple[str, ...]]:
    """Promote only if the challenger's recent mean IoU beats the champion's by ``min_iou_gain``
    and its test mean IoU drops by no more than ``max_test_iou_drop``; reasons for both checks."""
    if min_iou_gain < 0 or max_test_iou_drop < 0:
        raise ValidationError(
            f"min_iou_gain and max_test_iou_drop must be >= 0, got {min_iou_gain}, {max_test_iou_drop}"
        )
    for name, a, b in (
        ("recent", champion_eval_recent, challenger_eval_recent),
        ("test", champion_eval_test, challenger_eval_test),
    ):
        if (a.n, a.n_pixels, len(a.per_class_iou)) != (b.n, b.n_pixels, len(b.per_class_iou)):
            raise ValidationError(f"the {name} evaluations are not on the same masks ({a.n} vs {b.n} images)")
    old_r, new_r = champion_eval_recent.mean_iou, challenger_eval_recent.mean_iou
    old_t, new_t = champion_eval_test.mean_iou, challenger_eval_test.mean_iou
    if any(math.isnan(v) for v in (old_r, new_r, old_t, new_t)):
        return False, ("a mean IoU is undefined (no class present in the masks)",)
    gain, drop = new_r - old_r, old_t - new_t
    recent_ok, test_ok = gain >= min_iou_gain, drop <= max_test_iou_drop
    return recent_ok and test_ok, (
        f"recent mean IoU {old_r:.2f} -> {new_r:.2f} (gain {gain:+.3f}, "
        f"{'meets' if recent_ok else 'below'} the required {min_iou_gain:.3f})",
        f"test mean IoU {old_t:.2f} -> {new_t:.2f} (drop {drop:+.3f}, "
        f"{'within' if test_ok else 'beyond'} the allowed {max_test_iou_drop:.3f})",
    )
