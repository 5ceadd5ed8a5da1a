"""Label-free accuracy estimators that transfer the reference's accuracy by a confidence threshold.

* :class:`ATCEstimator`: average thresholded confidence (Garg et al., ICLR 2022). On the
  labelled reference it learns the threshold ``t`` above which the share of scores equals the
  reference accuracy; a window's estimate is its share of scores above ``t``. With
  ``per_class=True`` each predicted class gets its own threshold (its share above equals the
  precision of that predicted class), so a model whose confidence means different things for
  different predicted labels (a binary model with a tuned threshold) is read class by class.
  The state a window needs is :class:`ThresholdCounts`, mergeable day by day.
* :class:`DoCEstimator`: difference of confidences (Guillory et al., 2021): reference accuracy
  minus the drop of mean confidence from the reference to the window.
* :func:`embedding_coverage`: whether a window's embedding left the region the reference (and
  so the calibration) covered, from the share of rows past the reference's outlier threshold;
  :func:`coverage_adjusted` counts those rows (beyond the reference's own share) as unknown.

Ties of a score with ``t`` (confidences logged rounded, softmax saturated at 1.0) count with the
fraction that makes the reference's share exactly its accuracy, so counts are floats.

Example (15 of 20 reference predictions right: the threshold is the 15th highest score)::

    >>> import numpy as np
    >>> score = np.linspace(0.50, 0.97, 20)
    >>> atc = ATCEstimator().fit(score, score > 0.6)
    >>> round(atc.threshold_.value, 3), atc.estimate([0.55, 0.7, 0.9, 0.95]).estimate
    (0.624, 0.75)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from drift.errors import InsufficientDataError, ValidationError
from drift.estimate import AccuracyEstimate, clipped_estimate
from drift.inputs import as_1d
from drift.intervals import z_value

__all__ = [
    "ATCEstimator",
    "Coverage",
    "DoCEstimator",
    "ThresholdCounts",
    "coverage_adjusted",
    "embedding_coverage",
]

_MIN_REFERENCE = 20


def _as_score(values: ArrayLike, name: str = "score", n: int | None = None) -> NDArray[np.float64]:
    arr = as_1d(values, name, n).astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValidationError(f"{name} must be finite (no NaN or inf)")
    return arr


def _as_weight(sample_weight: ArrayLike | None, n: int) -> NDArray[np.float64]:
    if sample_weight is None:
        return np.ones(n)
    weight = np.asarray(sample_weight, dtype=np.float64)
    if weight.shape != (n,) or not np.all(np.isfinite(weight)) or weight.min() < 0 or weight.sum() <= 0:
        raise ValidationError(f"sample_weight must hold {n} finite weights >= 0, not all zero")
    return weight


def _as_correct(correct: ArrayLike, n: int) -> NDArray[np.float64]:
    arr = as_1d(correct, "correct", n)
    if arr.dtype != np.bool_ and not np.all(np.isin(np.unique(arr), (0, 1))):
        raise ValidationError("correct must hold booleans or 0/1 values")
    return arr.astype(np.float64)


@dataclass(frozen=True, kw_only=True)
class Threshold:
    """A score threshold and the share of scores equal to it that counts as above."""

    value: float
    tie_share: float

    def above(self, score: NDArray[np.float64]) -> NDArray[np.float64]:
        """1 above the threshold, ``tie_share`` on it, 0 below."""
        return np.where(score > self.value, 1.0, np.where(score == self.value, self.tie_share, 0.0))

    @classmethod
    def fit(cls, score: NDArray[np.float64], target: float, weight: NDArray[np.float64]) -> Threshold:
        """The threshold whose weighted share above is ``target``."""
        total = float(weight.sum())
        order = np.argsort(-score, kind="stable")
        s, w = score[order], weight[order] / total
        values, first = np.unique(-s, return_index=True)  # distinct scores, highest first
        mass = np.add.reduceat(w, first)
        above = np.concatenate([[0.0], np.cumsum(mass)])  # share strictly above each distinct score
        k = int(np.searchsorted(above[1:], target - 1e-12))  # first score whose inclusion reaches target
        if k >= values.size:
            return cls(value=float(-values[-1]), tie_share=1.0)
        tie = (target - above[k]) / mass[k] if mass[k] > 0 else 1.0
        return cls(value=float(-values[k]), tie_share=float(min(max(tie, 0.0), 1.0)))


@dataclass(frozen=True, kw_only=True)
class ThresholdCounts:
    """What :class:`ATCEstimator` needs of a window, as mergeable sums.

    ``n_above`` adds 1 for each score above its threshold (``tie_share`` on it);
    ``sum_confidence`` the raw scores, for the mean shown beside the estimate.
    """

    n: int = 0
    n_above: float = 0.0
    sum_confidence: float = 0.0

    def merge(self, other: ThresholdCounts) -> ThresholdCounts:
        return ThresholdCounts(
            n=self.n + other.n,
            n_above=self.n_above + other.n_above,
            sum_confidence=self.sum_confidence + other.sum_confidence,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "n_above": self.n_above, "sum_confidence": self.sum_confidence}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ThresholdCounts:
        return cls(n=int(data["n"]), n_above=float(data["n_above"]), sum_confidence=float(data["sum_confidence"]))


class ATCEstimator:
    """Average thresholded confidence, optionally one threshold per predicted class.

    Args:
        per_class: one threshold per predicted class (needs ``predicted`` in ``fit`` and after).
        min_class_samples: a predicted class with fewer reference rows uses the global threshold.

    Attributes:
        threshold_: the global :class:`Threshold`.
        class_thresholds_: predicted label -> its :class:`Threshold` (empty unless ``per_class``).
        reference_accuracy_: (weighted) accuracy of the reference.
        disagreement_: (weighted) share of reference rows whose correctness differs from being
            above the threshold: the variance per row of ``correct - above``.
        n_reference_: reference rows.
    """

    def __init__(self, *, per_class: bool = False, min_class_samples: int = 30) -> None:
        if min_class_samples < 1:
            raise ValidationError(f"min_class_samples must be >= 1, got {min_class_samples}")
        self.per_class = per_class
        self.min_class_samples = min_class_samples

    def fit(
        self,
        score: ArrayLike,
        correct: ArrayLike,
        predicted: ArrayLike | None = None,
        sample_weight: ArrayLike | None = None,
    ) -> Self:
        """Learn the threshold(s) on the labelled reference."""
        s = _as_score(score)
        c = _as_correct(correct, s.size)
        w = _as_weight(sample_weight, s.size)
        if s.size < _MIN_REFERENCE:
            raise InsufficientDataError(f"ATC needs at least {_MIN_REFERENCE} reference rows, got {s.size}")
        self.reference_accuracy_ = float(np.average(c, weights=w))
        self.threshold_ = Threshold.fit(s, self.reference_accuracy_, w)
        self.class_thresholds_: dict[str, Threshold] = {}
        if self.per_class:
            if predicted is None:
                raise ValidationError("per_class ATC needs the predicted label of each reference row")
            labels = as_1d(predicted, "predicted", s.size).astype(str)
            for label in np.unique(labels):
                rows = labels == label
                if rows.sum() >= self.min_class_samples and w[rows].sum() > 0:
                    precision = float(np.average(c[rows], weights=w[rows]))
                    self.class_thresholds_[str(label)] = Threshold.fit(s[rows], precision, w[rows])
        above = self._above(s, predicted)
        disagree = c * (1.0 - above) + (1.0 - c) * above
        self.disagreement_ = float(np.average(disagree, weights=w))
        self.n_reference_ = int(s.size)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "threshold_"):
            raise ValidationError("ATCEstimator is not fitted; call fit(score, correct) first")

    def _above(self, s: NDArray[np.float64], predicted: ArrayLike | None) -> NDArray[np.float64]:
        above = self.threshold_.above(s)
        if self.class_thresholds_:
            if predicted is None:
                raise ValidationError("per_class ATC needs the predicted label of each row")
            labels = as_1d(predicted, "predicted", s.size).astype(str)
            for label, threshold in self.class_thresholds_.items():
                rows = labels == label
                above[rows] = threshold.above(s[rows])
        return above

    def counts(self, score: ArrayLike, predicted: ArrayLike | None = None) -> ThresholdCounts:
        """The mergeable counts of a window (or a day of it)."""
        self._check_fitted()
        s = _as_score(score)
        if not s.size:
            return ThresholdCounts()
        return ThresholdCounts(
            n=int(s.size), n_above=float(self._above(s, predicted).sum()), sum_confidence=float(s.sum())
        )

    def estimate(
        self, score: ArrayLike, predicted: ArrayLike | None = None, *, confidence_level: float = 0.95
    ) -> AccuracyEstimate:
        return self.estimate_from_counts(self.counts(score, predicted), confidence_level=confidence_level)

    def estimate_from_counts(self, counts: ThresholdCounts, *, confidence_level: float = 0.95) -> AccuracyEstimate:
        """The window's estimate: its share above the threshold(s).

        If ATC holds, the realized accuracy of the window's rows differs from the estimate by
        the mean of ``correct - above``, whose variance per row is the reference's
        disagreement: ``std_error_sampling = sqrt(d / n)``; the threshold learnt on ``n_reference``
        rows adds ``std_error_calibration = sqrt(d / n_reference)``.
        """
        self._check_fitted()
        if counts.n == 0:
            raise InsufficientDataError("ATC needs at least one prediction, got 0")
        d = self.disagreement_
        return clipped_estimate(
            method="atc_per_class" if self.class_thresholds_ else "atc",
            estimate=counts.n_above / counts.n,
            std_error_sampling=math.sqrt(d / counts.n),
            std_error_calibration=math.sqrt(d / self.n_reference_),
            n=counts.n,
            n_reference=self.n_reference_,
            mean_confidence=counts.sum_confidence / counts.n,
            confidence_level=confidence_level,
        )

    def to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        return {
            "per_class": self.per_class,
            "min_class_samples": self.min_class_samples,
            "threshold": [self.threshold_.value, self.threshold_.tie_share],
            "class_thresholds": {k: [t.value, t.tie_share] for k, t in self.class_thresholds_.items()},
            "reference_accuracy": self.reference_accuracy_,
            "disagreement": self.disagreement_,
            "n_reference": self.n_reference_,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ATCEstimator:
        try:
            atc = cls(per_class=bool(data["per_class"]), min_class_samples=int(data["min_class_samples"]))
            atc.threshold_ = Threshold(value=float(data["threshold"][0]), tie_share=float(data["threshold"][1]))
            atc.class_thresholds_ = {
                str(k): Threshold(value=float(v[0]), tie_share=float(v[1])) for k, v in data["class_thresholds"].items()
            }
            atc.reference_accuracy_ = float(data["reference_accuracy"])
            atc.disagreement_ = float(data["disagreement"])
            atc.n_reference_ = int(data["n_reference"])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ValidationError(f"not an ATCEstimator dict: {exc}") from exc
        return atc


class DoCEstimator:
    """Difference of confidences: ``reference accuracy - (reference mean confidence - window mean confidence)``.

    Attributes:
        reference_accuracy_, reference_mean_confidence_: on the labelled reference.
        gap_variance_: variance per reference row of ``correct - confidence`` (the calibrator's
            uncertainty is ``sqrt(gap_variance_ / n_reference_)``).
        n_reference_: reference rows.
    """

    def fit(self, confidence: ArrayLike, correct: ArrayLike) -> Self:
        conf = _as_score(confidence, "confidence")
        c = _as_correct(correct, conf.size)
        if conf.size < _MIN_REFERENCE:
            raise InsufficientDataError(f"DoC needs at least {_MIN_REFERENCE} reference rows, got {conf.size}")
        self.reference_accuracy_ = float(c.mean())
        self.reference_mean_confidence_ = float(conf.mean())
        self.gap_variance_ = float(np.var(c - conf))
        self.n_reference_ = int(conf.size)
        return self

    def estimate(self, confidence: ArrayLike, *, confidence_level: float = 0.95) -> AccuracyEstimate:
        if not hasattr(self, "reference_accuracy_"):
            raise ValidationError("DoCEstimator is not fitted; call fit(confidence, correct) first")
        conf = _as_score(confidence, "confidence")
        if not conf.size:
            raise InsufficientDataError("DoC needs at least one prediction, got 0")
        mean = float(conf.mean())
        est = self.reference_accuracy_ - (self.reference_mean_confidence_ - mean)
        # realized minus estimate, if the gap carries over: the mean of (correct - confidence) per row
        return clipped_estimate(
            method="doc",
            estimate=est,
            std_error_sampling=math.sqrt(self.gap_variance_ / conf.size),
            std_error_calibration=math.sqrt(self.gap_variance_ / self.n_reference_),
            n=int(conf.size),
            n_reference=self.n_reference_,
            mean_confidence=mean,
            confidence_level=confidence_level,
        )


@dataclass(frozen=True, kw_only=True)
class Coverage:
    """Whether a window's embedding stays where the reference (and its calibration) had data.

    Attributes:
        n, n_far: window rows, and those past the reference's outlier threshold.
        far_share: ``n_far / n``.
        expected_share: the share of reference rows past the same threshold (``1 - quantile``).
        p_value: one-sided binomial test of "more rows are far than on the reference".
        unreliable: the share is significantly above expected and above ``max_share``.
        reason: one sentence when unreliable, else None.
    """

    n: int
    n_far: int
    far_share: float
    expected_share: float
    p_value: float
    unreliable: bool
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "n_far": self.n_far,
            "far_share": self.far_share,
            "expected_share": self.expected_share,
            "p_value": self.p_value,
            "unreliable": self.unreliable,
            "reason": self.reason,
        }


def embedding_coverage(
    n_far: int, n: int, *, expected_share: float = 0.01, max_share: float = 0.05, alpha: float = 0.01
) -> Coverage:
    """Is the share of window rows far from the reference embedding more than calibration can vouch for?

    A label-free estimate learns how confidence relates to correctness on the reference; inputs
    the reference never had (far in embedding space) carry no such knowledge. When more than
    ``max_share`` of the window is past the reference's own ``1 - expected_share`` quantile of
    outlier scores, significantly so (binomial, level ``alpha``), the estimate is unreliable.

    >>> embedding_coverage(80, 1000).unreliable, embedding_coverage(12, 1000).unreliable
    (True, False)
    """
    if n < 0 or not 0 <= n_far <= n:
        raise ValidationError(f"need 0 <= n_far <= n, got n_far={n_far}, n={n}")
    for name, value in (("expected_share", expected_share), ("max_share", max_share), ("alpha", alpha)):
        if not 0.0 < value < 1.0:
            raise ValidationError(f"{name} must lie strictly between 0 and 1, got {value!r}")
    share = n_far / n if n else 0.0
    p_value = float(stats.binom.sf(n_far - 1, n, expected_share)) if n else 1.0
    unreliable = share > max_share and p_value < alpha
    reason = (
        f"{share:.1%} of the window's embeddings lie beyond the reference's {1 - expected_share:.0%} outlier "
        f"threshold (expected {expected_share:.0%}): a shift the calibration never saw; the estimate is unreliable"
        if unreliable
        else None
    )
    return Coverage(
        n=n,
        n_far=n_far,
        far_share=share,
        expected_share=expected_share,
        p_value=p_value,
        unreliable=unreliable,
        reason=reason,
    )


def coverage_adjusted(
    estimate: AccuracyEstimate, *, n_far: int, sum_p_far: float, expected_share: float = 0.01
) -> AccuracyEstimate:
    """``estimate`` with the window's rows beyond the reference's coverage counted as unknown.

    The reference tells how confidence relates to correctness only where it had inputs. Of the
    ``n_far`` window rows past the reference's outlier threshold, the reference itself had a
    share ``expected_share``; the excess, a share ``λ = 1 - expected_share / far_share`` of
    them, lies where no calibration has been. Their accuracy is only known to lie in [0, 1]:
    their estimated probability of being right (``sum_p_far`` summed over the far rows, ``λ``
    of it) is replaced by the midpoint 1/2 (the point estimate with the least worst-case
    error), and the interval widens by the width of what is unknown, ``λ n_far / (2 n)`` on each
    side. With no excess the estimate is unchanged.

    >>> from drift.estimate import clipped_estimate
    >>> base = clipped_estimate(method="atc", estimate=0.9, std_error_sampling=0.0, std_error_calibration=0.0,
    ...                         n=1000, n_reference=1000, mean_confidence=0.95, confidence_level=0.95)
    >>> adjusted = coverage_adjusted(base, n_far=500, sum_p_far=450.0)
    >>> round(adjusted.estimate, 3), round(adjusted.unknown_share, 3), adjusted.method
    (0.704, 0.49, 'atc+coverage')
    """
    n = estimate.n
    if not 0 <= n_far <= n:
        raise ValidationError(f"need 0 <= n_far <= n ({n}), got {n_far}")
    if not 0.0 < expected_share < 1.0:
        raise ValidationError(f"expected_share must lie strictly between 0 and 1, got {expected_share!r}")
    share = n_far / n if n else 0.0
    lam = max(0.0, 1.0 - expected_share / share) if share > 0 else 0.0
    unknown = lam * n_far / n if n else 0.0
    est = min(max(estimate.estimate + (0.5 * lam * n_far - lam * sum_p_far) / n, 0.0), 1.0) if n else estimate.estimate
    z = z_value(estimate.confidence_level)
    half = z * estimate.std_error + unknown / 2
    return replace(
        estimate,
        estimate=est,
        ci_low=max(0.0, est - half),
        ci_high=min(1.0, est + half),
        method=f"{estimate.method}+coverage",
        unknown_share=unknown,
    )
