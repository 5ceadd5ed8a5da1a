"""A label-free accuracy estimate in the spirit of NannyML's CBPE, and its check against labels.

A :class:`~drift.calibration.ConfidenceCalibrator`, fitted on the reference, maps the model's
confidence to the probability of being right; the estimated accuracy of a window is the mean
calibrated confidence. It survives covariate shift (inputs move to regions the reference
covered) but not concept shift (the same inputs now have other labels), which
:func:`check_estimate` detects once some labels arrive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from drift.calibration import ConfidenceCalibrator
from drift.errors import InsufficientDataError, ValidationError
from drift.inputs import as_confidence
from drift.intervals import z_value

__all__ = ["AccuracyEstimate", "EstimateCheck", "check_estimate", "estimate_accuracy"]


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


@dataclass(frozen=True, kw_only=True)
class CalibratedSums:
    """What :func:`estimate_accuracy` needs of a window, as mergeable sums.

    ``sum_p`` and ``sum_pq`` add the calibrated probability of being right ``p`` and
    ``p * (1 - p)`` over the window's predictions; ``sum_confidence`` their confidences. Sums of
    two windows (two days) are the sums of their union, so a week's estimate comes from seven
    stored days without reading a row.
    """

    n: int = 0
    sum_p: float = 0.0
    sum_pq: float = 0.0
    sum_confidence: float = 0.0

    @classmethod
    def of(cls, calibrator: ConfidenceCalibrator, confidences: ArrayLike) -> CalibratedSums:
        conf = as_confidence(confidences, "confidences")
        p = calibrator.predict(conf) if conf.size else np.empty(0)
        return cls(
            n=int(conf.size),
            sum_p=float(p.sum()),
            sum_pq=float(np.sum(p * (1.0 - p))),
            sum_confidence=float(conf.sum()),
        )

    def merge(self, other: CalibratedSums) -> CalibratedSums:
        return CalibratedSums(
            n=self.n + other.n,
            sum_p=self.sum_p + other.sum_p,
            sum_pq=self.sum_pq + other.sum_pq,
            sum_confidence=self.sum_confidence + other.sum_confidence,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "sum_p": self.sum_p, "sum_pq": self.sum_pq, "sum_confidence": self.sum_confidence}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CalibratedSums:
        return cls(
            n=int(data["n"]),
            sum_p=float(data["sum_p"]),
            sum_pq=float(data["sum_pq"]),
            sum_confidence=float(data["sum_confidence"]),
        )


def estimate_accuracy(
    calibrator: ConfidenceCalibrator, confidences: ArrayLike, *, confidence_level: float = 0.95
) -> AccuracyEstimate:
    """Estimated accuracy of a window from its confidences and a reference-fitted calibrator."""
    return estimate_from_sums(
        calibrator, CalibratedSums.of(calibrator, confidences), confidence_level=confidence_level
    )


def estimate_from_sums(
    calibrator: ConfidenceCalibrator, sums: CalibratedSums, *, confidence_level: float = 0.95
) -> AccuracyEstimate:
    """:func:`estimate_accuracy` from a window's :class:`CalibratedSums` (made with the same calibrator)."""
    z = z_value(confidence_level)
    if sums.n == 0:
        raise InsufficientDataError("estimate_accuracy needs at least one prediction, got 0")
    n = sums.n
    est = sums.sum_p / n
    se_sampling = math.sqrt(max(sums.sum_pq, 0.0)) / n
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
        mean_confidence=sums.sum_confidence / n,
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
    z_crit = z_value(estimated.confidence_level)
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
