"""Performance of a classifier: realized once labels arrive, estimated before they do.

* :func:`realized_performance`: accuracy (with a Wilson interval), macro F1, per-class recall and
  the confusion matrix of the labelled predictions of a window, next to the label coverage.
* :func:`confidently_wrong` and :func:`top_k_confident`: errors made with a confidence of at
  least a threshold, their rate against the reference's (one-sided Fisher exact test), and the
  most confident of them.
* :class:`ConfidenceCalibrator`, :func:`estimate_accuracy` and :func:`check_estimate`: a
  label-free accuracy estimate in the spirit of NannyML's CBPE. A calibrator maps the model's
  confidence to the probability of being right, fitted on the reference; the estimated accuracy
  of a window is the mean calibrated confidence. It survives covariate shift (inputs move to
  regions the reference covered) but not concept shift (the same inputs now have other labels),
  which :func:`check_estimate` detects once some labels arrive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from drift.calibration import ConfidenceCalibrator
from drift.errors import InsufficientDataError, ValidationError
from drift.estimate import AccuracyEstimate, EstimateCheck, check_estimate, estimate_accuracy
from drift.inputs import as_1d, as_confidence
from drift.intervals import check_level, wilson_interval

__all__ = [
    "AccuracyEstimate",
    "ConfidenceCalibrator",
    "ConfidentErrorStats",
    "EstimateCheck",
    "RealizedPerformance",
    "check_estimate",
    "confidently_wrong",
    "estimate_accuracy",
    "realized_performance",
    "top_k_confident",
    "wilson_interval",
]


def _label_codes(values: NDArray[Any], labels: pd.Index, name: str) -> NDArray[np.intp]:
    if pd.isna(values).any():
        raise ValidationError(f"{name} has missing values; drop unlabelled rows first")
    codes = labels.get_indexer(values)
    if (codes < 0).any():
        unknown = sorted({str(v) for v in values[codes < 0]})[:5]
        raise ValidationError(f"{name} has values not in labels: {unknown}; allowed: {list(labels)}")
    return np.asarray(codes, dtype=np.intp)


def _none_if_nan(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


@dataclass(frozen=True, kw_only=True)
class RealizedPerformance:
    """Performance on the labelled predictions of a window.

    Attributes:
        labels: class labels, in the order of the per-class tuples and the confusion matrix.
        n_labelled: labelled predictions used.
        n_predictions: predictions in the window (labelled or not), if given.
        label_coverage: ``n_labelled / n_predictions``, or None without ``n_predictions``.
        accuracy, accuracy_ci_low, accuracy_ci_high: accuracy and its Wilson interval.
        confidence_level: level of the interval.
        macro_f1: mean F1 over the classes that occur (true or predicted); None if none does.
        per_class_recall, per_class_precision, per_class_f1: NaN where undefined
            (no true, no predicted, or neither); ``to_dict`` writes None.
        per_class_support: true occurrences of each class.
        confusion_matrix: counts, rows = true class, columns = predicted class.
    """

    labels: tuple[str, ...]
    n_labelled: int
    n_predictions: int | None
    label_coverage: float | None
    accuracy: float
    accuracy_ci_low: float
    accuracy_ci_high: float
    confidence_level: float
    macro_f1: float | None
    per_class_recall: tuple[float, ...]
    per_class_precision: tuple[float, ...]
    per_class_f1: tuple[float, ...]
    per_class_support: tuple[int, ...]
    confusion_matrix: tuple[tuple[int, ...], ...]

    def to_dict(self) -> dict[str, Any]:
        def per_class(values: tuple[float, ...]) -> dict[str, float | None]:
            return {lab: _none_if_nan(v) for lab, v in zip(self.labels, values, strict=True)}

        return {
            "labels": list(self.labels),
            "n_labelled": self.n_labelled,
            "n_predictions": self.n_predictions,
            "label_coverage": self.label_coverage,
            "accuracy": self.accuracy,
            "accuracy_ci": [self.accuracy_ci_low, self.accuracy_ci_high],
            "confidence_level": self.confidence_level,
            "macro_f1": self.macro_f1,
            "per_class_recall": per_class(self.per_class_recall),
            "per_class_precision": per_class(self.per_class_precision),
            "per_class_f1": per_class(self.per_class_f1),
            "per_class_support": dict(zip(self.labels, self.per_class_support, strict=True)),
            "confusion_matrix": [list(row) for row in self.confusion_matrix],
        }


def realized_performance(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    labels: Sequence[Any],
    *,
    n_predictions: int | None = None,
    confidence_level: float = 0.95,
) -> RealizedPerformance:
    """Accuracy, macro F1, per-class recall and confusion matrix of labelled predictions.

    Args:
        y_true, y_pred: true and predicted labels of the labelled predictions (no missing values).
        labels: every class label, in the order wanted for the outputs.
        n_predictions: all predictions of the window, labelled or not, for ``label_coverage``.
        confidence_level: level of the Wilson interval on accuracy.

    Raises:
        InsufficientDataError: no labelled prediction.
        ValidationError: a label not in ``labels``, mismatched lengths, bad ``n_predictions``.
    """
    index = pd.Index(list(labels))
    if len(index) < 1 or not index.is_unique:
        raise ValidationError(f"labels must be non-empty and unique, got {list(labels)}")
    true_arr = as_1d(y_true, "y_true")
    pred_arr = as_1d(y_pred, "y_pred", true_arr.shape[0])
    n = int(true_arr.shape[0])
    if n == 0:
        raise InsufficientDataError("realized_performance needs at least one labelled prediction, got 0")
    if n_predictions is not None and n_predictions < n:
        raise ValidationError(f"n_predictions ({n_predictions}) must be at least n_labelled ({n})")
    c = len(index)
    t = _label_codes(true_arr, index, "y_true")
    p = _label_codes(pred_arr, index, "y_pred")
    cm = np.bincount(t * c + p, minlength=c * c).reshape(c, c)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, tp / support, np.nan)
        precision = np.where(predicted > 0, tp / predicted, np.nan)
        f1_denom = support + predicted
        f1 = np.where(f1_denom > 0, 2 * tp / f1_denom, np.nan)
    correct = int(tp.sum())
    low, high = wilson_interval(correct, n, confidence_level)
    defined = ~np.isnan(f1)
    return RealizedPerformance(
        labels=tuple(str(v) for v in index),
        n_labelled=n,
        n_predictions=n_predictions,
        label_coverage=None if n_predictions is None else n / n_predictions,
        accuracy=correct / n,
        accuracy_ci_low=low,
        accuracy_ci_high=high,
        confidence_level=confidence_level,
        macro_f1=float(f1[defined].mean()) if defined.any() else None,
        per_class_recall=tuple(float(v) for v in recall),
        per_class_precision=tuple(float(v) for v in precision),
        per_class_f1=tuple(float(v) for v in f1),
        per_class_support=tuple(int(v) for v in support),
        confusion_matrix=tuple(tuple(int(v) for v in row) for row in cm),
    )


@dataclass(frozen=True, kw_only=True)
class ConfidentErrorStats:
    """Errors made with confidence >= ``threshold`` among labelled predictions.

    Attributes:
        threshold: confidence threshold.
        n_labelled: labelled predictions considered.
        n_confident: labelled predictions with confidence >= threshold.
        n_errors: of those, how many are wrong.
        rate: ``n_errors / n_confident`` (None when ``n_confident`` is 0).
        reference_errors, reference_n, reference_rate: the same on the reference, if given.
        p_value: one-sided Fisher exact test of "the rate rose above the reference's"
            (None without a reference or without confident predictions on either side).
        alpha: significance level.
        rose_significantly: ``p_value < alpha``.
    """

    threshold: float
    n_labelled: int
    n_confident: int
    n_errors: int
    rate: float | None
    reference_errors: int | None
    reference_n: int | None
    reference_rate: float | None
    p_value: float | None
    alpha: float
    rose_significantly: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "n_labelled": self.n_labelled,
            "n_confident": self.n_confident,
            "n_errors": self.n_errors,
            "rate": self.rate,
            "reference_errors": self.reference_errors,
            "reference_n": self.reference_n,
            "reference_rate": self.reference_rate,
            "p_value": self.p_value,
            "alpha": self.alpha,
            "rose_significantly": self.rose_significantly,
        }


def _confident_errors(
    confidence: ArrayLike, y_true: ArrayLike, y_pred: ArrayLike, threshold: float
) -> tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.bool_]]:
    if not 0.0 <= threshold <= 1.0:
        raise ValidationError(f"threshold must lie in [0, 1], got {threshold!r}")
    conf = as_confidence(confidence)
    true_arr = as_1d(y_true, "y_true", conf.shape[0])
    pred_arr = as_1d(y_pred, "y_pred", conf.shape[0])
    if pd.isna(true_arr).any():
        raise ValidationError("y_true has missing values; drop unlabelled rows first")
    numeric = [a.dtype.kind in "biuf" for a in (true_arr, pred_arr) if a.dtype.kind != "O"]
    if len(set(numeric)) > 1:
        raise ValidationError(
            f"y_true ({true_arr.dtype}) and y_pred ({pred_arr.dtype}) hold different kinds of labels "
            "(numbers vs strings); every prediction would count as wrong"
        )
    confident = conf >= threshold
    wrong = np.asarray(true_arr != pred_arr, dtype=np.bool_)
    return conf, confident, wrong


def confidently_wrong(
    confidence: ArrayLike,
    y_true: ArrayLike,
    y_pred: ArrayLike,
    threshold: float = 0.9,
    reference_counts: tuple[int, int] | ConfidentErrorStats | None = None,
    *,
    alpha: float = 0.05,
) -> ConfidentErrorStats:
    """Count confident errors among labelled predictions and test whether their rate rose.

    Args:
        confidence, y_true, y_pred: one entry per labelled prediction.
        threshold: a prediction is confident when its confidence is >= threshold.
        reference_counts: ``(errors, n_confident)`` on the reference, or the reference's own
            :class:`ConfidentErrorStats`.
        alpha: significance level of the one-sided Fisher exact test.
    """
    check_level("alpha", alpha)
    _, confident, wrong = _confident_errors(confidence, y_true, y_pred, threshold)
    n_conf = int(confident.sum())
    n_err = int((confident & wrong).sum())
    ref_err: int | None = None
    ref_n: int | None = None
    if isinstance(reference_counts, ConfidentErrorStats):
        ref_err, ref_n = reference_counts.n_errors, reference_counts.n_confident
    elif reference_counts is not None:
        ref_err, ref_n = (int(v) for v in reference_counts)
        if ref_n < 0 or not 0 <= ref_err <= ref_n:
            raise ValidationError(f"reference_counts must be (errors, n) with 0 <= errors <= n, got {reference_counts}")
    p_value: float | None = None
    if ref_err is not None and ref_n is not None and ref_n > 0 and n_conf > 0:
        table = [[n_err, n_conf - n_err], [ref_err, ref_n - ref_err]]
        p_value = float(stats.fisher_exact(table, alternative="greater").pvalue)
    return ConfidentErrorStats(
        threshold=threshold,
        n_labelled=int(confident.shape[0]),
        n_confident=n_conf,
        n_errors=n_err,
        rate=n_err / n_conf if n_conf else None,
        reference_errors=ref_err,
        reference_n=ref_n,
        reference_rate=ref_err / ref_n if ref_err is not None and ref_n else None,
        p_value=p_value,
        alpha=alpha,
        rose_significantly=p_value is not None and p_value < alpha,
    )


def top_k_confident(
    confidence: ArrayLike,
    y_true: ArrayLike,
    y_pred: ArrayLike,
    k: int = 10,
    threshold: float = 0.9,
    ids: ArrayLike | None = None,
) -> NDArray[Any]:
    """The ``k`` most confident errors with confidence >= ``threshold``, most confident first.

    Returns their positions, or their ``ids`` when given. Equal confidences keep input order.

    >>> top_k_confident([0.95, 0.99, 0.97, 0.5], ["a", "a", "b", "a"], ["b", "b", "b", "b"], k=2)
    array([1, 0])
    """
    if k < 0:
        raise ValidationError(f"k must be >= 0, got {k}")
    conf, confident, wrong = _confident_errors(confidence, y_true, y_pred, threshold)
    candidates = np.flatnonzero(confident & wrong)
    order = candidates[np.argsort(-conf[candidates], kind="stable")][:k]
    if ids is None:
        return order
    id_arr = as_1d(ids, "ids", conf.shape[0])
    return id_arr[order]
