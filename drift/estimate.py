"""A label-free accuracy estimate in the spirit of NannyML's CBPE, and its check against labels.

A :class:`~drift.calibration.ConfidenceCalibrator`, fitted on the reference, maps the model's
confidence to the probability of being right; the estimated accuracy of a window is the mean
calibrated confidence. :class:`ClassCalibrator` fits one per predicted label, for models that
log their own predicted label (whose confidence may mean different things per label). It
survives covariate shift into regions the reference covered, but not inputs it never saw nor
concept shift (the same inputs now have other labels), which :func:`check_estimate` detects
once some labels arrive. Other estimators (ATC, DoC, importance weighting) are in
:mod:`drift.estimators` and :mod:`drift.weighting`; they all return :class:`AccuracyEstimate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from drift.class_calibration import Calibrator, ClassCalibrator, calibrated
from drift.errors import InsufficientDataError, ValidationError
from drift.inputs import as_1d, as_confidence
from drift.intervals import z_value

__all__ = [
    "AccuracyEstimate",
    "CalibratedSums",
    "Calibrator",
    "ClassCalibrator",
    "EstimateCheck",
    "check_estimate",
    "clipped_estimate",
    "estimate_accuracy",
    "estimate_from_sums",
]


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
        method: the estimator (``calibrated_confidence``, ``calibrated_per_class``, ``atc``,
            ``atc_per_class``, ``doc``, ``importance_weighting``, ...).
        effective_sample_size: reference rows the estimate effectively rests on (importance
            weighting: ``(sum w)^2 / sum w^2``), None where every reference row counts once.
        unknown_share: share of the window counted as unknown because its embedding lies where
            the reference had no inputs (:func:`drift.estimators.coverage_adjusted`); the
            interval is that much wider.
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
    method: str = "calibrated_confidence"
    effective_sample_size: float | None = None
    unknown_share: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "estimate": self.estimate,
            "ci": [self.ci_low, self.ci_high],
            "std_error": self.std_error,
            "std_error_sampling": self.std_error_sampling,
            "std_error_calibration": self.std_error_calibration,
            "n": self.n,
            "n_reference": self.n_reference,
            "mean_confidence": self.mean_confidence,
            "confidence_level": self.confidence_level,
            "effective_sample_size": self.effective_sample_size,
            "unknown_share": self.unknown_share,
        }


def clipped_estimate(
    *,
    method: str,
    estimate: float,
    std_error_sampling: float,
    std_error_calibration: float,
    n: int,
    n_reference: int,
    mean_confidence: float,
    confidence_level: float,
    effective_sample_size: float | None = None,
) -> AccuracyEstimate:
    """An :class:`AccuracyEstimate` with ``estimate`` clipped to [0, 1] and its interval ``± z·se``."""
    z = z_value(confidence_level)
    est = min(max(estimate, 0.0), 1.0)
    se = math.hypot(std_error_sampling, std_error_calibration)
    return AccuracyEstimate(
        estimate=est,
        ci_low=max(0.0, est - z * se),
        ci_high=min(1.0, est + z * se),
        std_error=se,
        std_error_sampling=std_error_sampling,
        std_error_calibration=std_error_calibration,
        n=n,
        n_reference=n_reference,
        mean_confidence=mean_confidence,
        confidence_level=confidence_level,
        method=method,
        effective_sample_size=effective_sample_size,
    )


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
    n_far: int | None = None  # rows past the reference's embedding outlier threshold (None: not known)
    sum_p_far: float | None = None  # their calibrated probabilities, summed

    @classmethod
    def of(
        cls,
        calibrator: Calibrator,
        confidences: ArrayLike,
        predicted: ArrayLike | None = None,
        far: ArrayLike | None = None,
    ) -> CalibratedSums:
        """Sums of a window's rows; ``far`` marks the rows whose embedding lies past the reference's."""
        conf = as_confidence(confidences, "confidences")
        p = calibrated(calibrator, conf, predicted) if conf.size else np.empty(0)
        far_mask = None if far is None else as_1d(far, "far", conf.size).astype(bool)
        return cls(
            n=int(conf.size),
            sum_p=float(p.sum()),
            sum_pq=float(np.sum(p * (1.0 - p))),
            sum_confidence=float(conf.sum()),
            n_far=None if far_mask is None else int(far_mask.sum()),
            sum_p_far=None if far_mask is None else float(p[far_mask].sum()),
        )

    def merge(self, other: CalibratedSums) -> CalibratedSums:
        known = self.n_far is not None and other.n_far is not None
        return CalibratedSums(
            n=self.n + other.n,
            sum_p=self.sum_p + other.sum_p,
            sum_pq=self.sum_pq + other.sum_pq,
            sum_confidence=self.sum_confidence + other.sum_confidence,
            n_far=(self.n_far or 0) + (other.n_far or 0) if known else None,
            sum_p_far=(self.sum_p_far or 0.0) + (other.sum_p_far or 0.0) if known else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "sum_p": self.sum_p,
            "sum_pq": self.sum_pq,
            "sum_confidence": self.sum_confidence,
            "n_far": self.n_far,
            "sum_p_far": self.sum_p_far,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CalibratedSums:
        """Read :meth:`to_dict` back; sums stored before ``n_far`` existed read as "not known"."""
        n_far, sum_p_far = data.get("n_far"), data.get("sum_p_far")
        return cls(
            n=int(data["n"]),
            sum_p=float(data["sum_p"]),
            sum_pq=float(data["sum_pq"]),
            sum_confidence=float(data["sum_confidence"]),
            n_far=None if n_far is None or sum_p_far is None else int(n_far),
            sum_p_far=None if n_far is None or sum_p_far is None else float(sum_p_far),
        )


def estimate_accuracy(
    calibrator: Calibrator,
    confidences: ArrayLike,
    predicted: ArrayLike | None = None,
    *,
    confidence_level: float = 0.95,
) -> AccuracyEstimate:
    """Estimated accuracy of a window from its confidences and a reference-fitted calibrator."""
    return estimate_from_sums(
        calibrator, CalibratedSums.of(calibrator, confidences, predicted), confidence_level=confidence_level
    )


def estimate_from_sums(
    calibrator: Calibrator, sums: CalibratedSums, *, confidence_level: float = 0.95
) -> AccuracyEstimate:
    """:func:`estimate_accuracy` from a window's :class:`CalibratedSums` (made with the same calibrator)."""
    if sums.n == 0:
        raise InsufficientDataError("estimate_accuracy needs at least one prediction, got 0")
    n = sums.n
    est = sums.sum_p / n
    per_class = isinstance(calibrator, ClassCalibrator) and bool(calibrator.by_label_)
    return clipped_estimate(
        method="calibrated_per_class" if per_class else "calibrated_confidence",
        estimate=est,
        std_error_sampling=math.sqrt(max(sums.sum_pq, 0.0)) / n,
        std_error_calibration=math.sqrt(est * (1.0 - est) / calibrator.n_reference_),
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
        variance: how the sampling variance was had: ``exact`` from the estimate on the labelled
            rows themselves, ``binomial`` from ``e(1-e)/n_labelled``.
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
    variance: str = "binomial"  # "exact" (sum p(1-p) of the labelled rows) or "binomial" (e(1-e)/n)

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
            "variance": self.variance,
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
    spreads around the estimate with the estimate's own sampling variance plus the calibrator's.
    When ``estimated`` was computed on exactly the labelled predictions (``estimated.n ==
    n_labelled``), that sampling variance is exact: ``sum p(1-p) / n^2`` over their calibrated
    probabilities ``p`` (ATC: the reference's disagreement ``d / n``). Otherwise the binomial
    bound ``e(1-e)/n_labelled`` stands in, which is conservative. A realized accuracy outside
    ``estimate ± z·se`` (``z`` from the estimate's ``confidence_level``) and further than
    ``tolerance`` from it means the calibration fitted on the reference no longer holds
    (typically concept shift): ``trustworthy=False``.

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
    exact = estimated.n == n_labelled
    if exact:
        var_sampling = estimated.std_error_sampling**2
    else:
        e_var = min(max(est, 0.01), 0.99)
        var_sampling = e_var * (1.0 - e_var) / n_labelled
    se = max(math.sqrt(estimated.std_error_calibration**2 + var_sampling), 1e-12)
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
        variance="exact" if exact else "binomial",
    )
