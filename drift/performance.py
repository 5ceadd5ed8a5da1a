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


def _check_level(name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise ValidationError(f"{name} must lie strictly between 0 and 1, got {value!r}")


def _z(confidence_level: float) -> float:
    _check_level("confidence_level", confidence_level)
    return float(stats.norm.ppf(0.5 + confidence_level / 2.0))


def wilson_interval(successes: int, n: int, confidence_level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``successes / n``.

    >>> [round(v, 4) for v in wilson_interval(4, 6)]
    [0.3, 0.9032]
    """
    if n < 1 or not 0 <= successes <= n:
        raise ValidationError(f"need 0 <= successes <= n and n >= 1, got successes={successes}, n={n}")
    z = _z(confidence_level)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def _as_1d(values: ArrayLike, name: str, n: int | None = None) -> NDArray[Any]:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValidationError(f"{name} must be 1-D, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValidationError(f"{name} must have {n} entries (one per prediction), got {arr.shape[0]}")
    return arr


def _as_confidence(values: ArrayLike, name: str = "confidence", n: int | None = None) -> NDArray[np.float64]:
    arr = _as_1d(values, name, n).astype(np.float64)
    if not np.all(np.isfinite(arr)) or (arr.size and (arr.min() < 0.0 or arr.max() > 1.0)):
        raise ValidationError(f"{name} must be finite and lie in [0, 1]")
    return arr


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
    true_arr = _as_1d(y_true, "y_true")
    pred_arr = _as_1d(y_pred, "y_pred", true_arr.shape[0])
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
    conf = _as_confidence(confidence)
    true_arr = _as_1d(y_true, "y_true", conf.shape[0])
    pred_arr = _as_1d(y_pred, "y_pred", conf.shape[0])
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
    _check_level("alpha", alpha)
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
    id_arr = _as_1d(ids, "ids", conf.shape[0])
    return id_arr[order]


@dataclass(frozen=True, kw_only=True)
class AccuracyEstimate:
    """Label-free accuracy estimate of a window.

    Attributes:
        estimate: mean calibrated confidence.
        ci_low, ci_high: ``estimate ± z·std_error``, clipped to [0, 1].
        std_error: combines ``std_error_sampling`` (spread of the realized accuracy of these
            ``n`` predictions if calibration holds: ``sqrt(sum p(1-p)) / n``) and
            ``std_error_calibration`` (finite reference: ``sqrt(e(1-e) / n_reference)``).
        n: predictions in the window.
        n_reference: reference samples behind the calibrator.
        mean_confidence: raw mean confidence, for comparison.
        confidence_level: level of the interval.
    """

    estimate: float
    ci_low: float
    ci_high: float
    std_error: float
    std_error_sampling: float
    std_error_calibration: float
    n: int
    n_reference: int
    mean_confidence: float
    confidence_level: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "estimate": self.estimate,
            "ci": [self.ci_low, self.ci_high],
            "std_error": self.std_error,
            "std_error_sampling": self.std_error_sampling,
            "std_error_calibration": self.std_error_calibration,
            "n": self.n,
            "n_reference": self.n_reference,
            "mean_confidence": self.mean_confidence,
            "confidence_level": self.confidence_level,
        }


def estimate_accuracy(
    calibrator: ConfidenceCalibrator, confidences: ArrayLike, *, confidence_level: float = 0.95
) -> AccuracyEstimate:
    """Estimated accuracy of a window from its confidences and a reference-fitted calibrator."""
    z = _z(confidence_level)
    conf = _as_confidence(confidences, "confidences")
    if conf.size == 0:
        raise InsufficientDataError("estimate_accuracy needs at least one prediction, got 0")
    p = calibrator.predict(conf)
    n = int(conf.size)
    est = float(p.mean())
    se_sampling = math.sqrt(float(np.sum(p * (1.0 - p)))) / n
    se_calibration = math.sqrt(est * (1.0 - est) / calibrator.n_reference_)
    se = math.hypot(se_sampling, se_calibration)
    return AccuracyEstimate(
        estimate=est,
        ci_low=max(0.0, est - z * se),
        ci_high=min(1.0, est + z * se),
        std_error=se,
        std_error_sampling=se_sampling,
        std_error_calibration=se_calibration,
        n=n,
        n_reference=calibrator.n_reference_,
        mean_confidence=float(conf.mean()),
        confidence_level=confidence_level,
    )


@dataclass(frozen=True, kw_only=True)
class EstimateCheck:
    """Estimated against realized accuracy, once labels arrived.

    Attributes:
        trustworthy: False when the realized accuracy is outside what the estimate allows
            for this many labels (calibration no longer holds: do not report the estimate).
        checked: False when there were too few labels to check (``trustworthy`` stays True).
        reason: one sentence saying why.
        estimated, realized, difference: accuracies and ``realized - estimated``.
        n_labelled: labels behind ``realized``.
        expected_low, expected_high: realized accuracies compatible with the estimate.
        z_score, p_value: two-sided test of ``difference == 0``.
        tolerance: gaps up to this size are never flagged.
    """

    trustworthy: bool
    checked: bool
    reason: str
    estimated: float
    realized: float
    difference: float
    n_labelled: int
    expected_low: float
    expected_high: float
    z_score: float | None
    p_value: float | None
    tolerance: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "trustworthy": self.trustworthy,
            "checked": self.checked,
            "reason": self.reason,
            "estimated": self.estimated,
            "realized": self.realized,
            "difference": self.difference,
            "n_labelled": self.n_labelled,
            "expected": [self.expected_low, self.expected_high],
            "z_score": self.z_score,
            "p_value": self.p_value,
            "tolerance": self.tolerance,
        }


def check_estimate(
    estimated: AccuracyEstimate,
    realized: float,
    n_labelled: int,
    *,
    tolerance: float = 0.01,
    min_labelled: int = 30,
) -> EstimateCheck:
    """Does the realized accuracy of ``n_labelled`` labels agree with the estimate?

    If calibration holds, the realized accuracy of ``n_labelled`` randomly labelled predictions
    spreads around the estimate with variance ``e(1-e)/n_labelled`` plus the calibrator's own
    variance. A realized accuracy outside ``estimate ± z·se`` (``z`` from the estimate's
    ``confidence_level``) and further than ``tolerance`` from it means the calibration fitted
    on the reference no longer holds (typically concept shift): ``trustworthy=False``.

    The comparison is fairest when ``estimated`` is computed on the labelled predictions only;
    labels that arrive for a non-random subset (e.g. only complaints) bias the check.
    """
    if not 0.0 <= realized <= 1.0:
        raise ValidationError(f"realized must lie in [0, 1], got {realized!r}")
    if n_labelled < 0:
        raise ValidationError(f"n_labelled must be >= 0, got {n_labelled}")
    if tolerance < 0:
        raise ValidationError(f"tolerance must be >= 0, got {tolerance}")
    if min_labelled < 1:
        raise ValidationError(f"min_labelled must be >= 1, got {min_labelled}")
    est = estimated.estimate
    diff = realized - est
    if n_labelled < min_labelled:
        return EstimateCheck(
            trustworthy=True,
            checked=False,
            reason=f"not checked: {n_labelled} labels, at least {min_labelled} needed",
            estimated=est,
            realized=realized,
            difference=diff,
            n_labelled=n_labelled,
            expected_low=0.0,
            expected_high=1.0,
            z_score=None,
            p_value=None,
            tolerance=tolerance,
        )
    z_crit = _z(estimated.confidence_level)
    e_var = min(max(est, 0.01), 0.99)
    se = math.sqrt(estimated.std_error_calibration**2 + e_var * (1.0 - e_var) / n_labelled)
    z = diff / se
    margin = max(z_crit * se, tolerance)
    low, high = max(0.0, est - margin), min(1.0, est + margin)
    ok = abs(diff) <= margin
    if ok:
        reason = (
            f"realized accuracy {realized:.3f} on {n_labelled} labels is within "
            f"[{low:.3f}, {high:.3f}] around the estimate {est:.3f}"
        )
    else:
        direction = "below" if diff < 0 else "above"
        reason = (
            f"calibration no longer holds: realized accuracy {realized:.3f} on {n_labelled} labels is "
            f"{direction} [{low:.3f}, {high:.3f}] around the estimate {est:.3f}; do not trust the estimate"
        )
    return EstimateCheck(
        trustworthy=ok,
        checked=True,
        reason=reason,
        estimated=est,
        realized=realized,
        difference=diff,
        n_labelled=n_labelled,
        expected_low=low,
        expected_high=high,
        z_score=float(z),
        p_value=float(2.0 * stats.norm.sf(abs(z))),
        tolerance=tolerance,
    )
