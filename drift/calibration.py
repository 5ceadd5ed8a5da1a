"""Calibration of a classifier's confidence: reliability curve and expected calibration error.

Bins are equal-mass (quantile) bins: the samples are sorted by confidence and cut into
``n_bins`` groups of (nearly) equal size, so every bin carries the same statistical weight
and no bin is empty. Ties are broken by position (stable sort), so equal confidences may
fall into neighbouring bins.

The expected calibration error is the count-weighted mean gap between a bin's accuracy and
its mean confidence::

    ECE = sum_b (n_b / n) * |accuracy_b - confidence_b|

Example (six samples, three bins of two)::

    >>> curve = reliability_curve([0.1, 0.2, 0.5, 0.6, 0.9, 1.0], [0, 0, 1, 0, 1, 1], n_bins=3)
    >>> [round(c, 2) for c in curve.bin_confidence], list(curve.bin_accuracy)
    ([0.15, 0.55, 0.95], [0.0, 0.5, 1.0])
    >>> round(curve.ece, 4)  # (0.15 + 0.05 + 0.05) / 3
    0.0833

A reference-versus-window comparison is two :class:`CalibrationReport` and
:func:`compare_calibration`. :class:`ConfidenceCalibrator` learns the map from confidence to
the probability of being right on the reference (used by the label-free accuracy estimate in
:mod:`drift.performance`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from drift.errors import InsufficientDataError, ValidationError

__all__ = [
    "CalibrationComparison",
    "CalibrationReport",
    "ConfidenceCalibrator",
    "ReliabilityCurve",
    "calibration_report",
    "compare_calibration",
    "equal_mass_bins",
    "expected_calibration_error",
    "reliability_curve",
]

_PROBA_SUM_ATOL = 1e-2


def _none_if_nan(value: float | None) -> float | None:
    if value is None or math.isnan(value):
        return None
    return float(value)


def _as_confidence(confidence: ArrayLike, name: str = "confidence") -> NDArray[np.float64]:
    arr = np.asarray(confidence, dtype=np.float64)
    if arr.ndim != 1:
        raise ValidationError(f"{name} must be 1-D, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValidationError(f"{name} must be finite (no NaN or inf)")
    if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
        raise ValidationError(f"{name} must lie in [0, 1], got range [{arr.min()}, {arr.max()}]")
    return arr


def _as_correct(correct: ArrayLike, n: int) -> NDArray[np.float64]:
    arr = np.asarray(correct)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValidationError(f"correct must be 1-D with {n} entries (one per confidence), got {arr.shape}")
    if arr.dtype != np.bool_:
        values = np.unique(arr)
        if not np.all(np.isin(values, (0, 1))):
            raise ValidationError("correct must hold booleans or 0/1 values")
    return arr.astype(np.float64)


def _check_n_bins(n_bins: int) -> None:
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise ValidationError(f"n_bins must be a positive integer, got {n_bins!r}")


def equal_mass_bins(confidence: NDArray[np.float64], n_bins: int) -> list[NDArray[np.intp]]:
    """Positions of ``confidence`` split into ``min(n_bins, n)`` equal-mass bins, lowest first."""
    _check_n_bins(n_bins)
    order = np.argsort(confidence, kind="stable")
    n_eff = min(n_bins, order.size)
    return [chunk for chunk in np.array_split(order, n_eff) if chunk.size]


@dataclass(frozen=True, kw_only=True)
class ReliabilityCurve:
    """One point per equal-mass bin, lowest confidence first.

    Attributes:
        bin_lower, bin_upper: smallest and largest confidence in the bin.
        bin_confidence: mean confidence in the bin.
        bin_accuracy: share of correct predictions in the bin.
        bin_count: samples in the bin.
        n: total samples.
        ece: expected calibration error (count-weighted mean |accuracy - confidence|).
        mce: maximum calibration error (largest bin gap).
    """

    bin_lower: tuple[float, ...]
    bin_upper: tuple[float, ...]
    bin_confidence: tuple[float, ...]
    bin_accuracy: tuple[float, ...]
    bin_count: tuple[int, ...]
    n: int
    ece: float
    mce: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "bin_lower": list(self.bin_lower),
            "bin_upper": list(self.bin_upper),
            "bin_confidence": list(self.bin_confidence),
            "bin_accuracy": list(self.bin_accuracy),
            "bin_count": list(self.bin_count),
            "n": self.n,
            "ece": self.ece,
            "mce": self.mce,
        }


def reliability_curve(confidence: ArrayLike, correct: ArrayLike, n_bins: int = 10) -> ReliabilityCurve:
    """Reliability curve over equal-mass bins.

    Args:
        confidence: confidence of each prediction, in [0, 1].
        correct: whether each prediction was right (bool or 0/1).
        n_bins: number of bins; fewer when there are fewer samples than bins.

    Raises:
        InsufficientDataError: no samples.
        ValidationError: shapes or values out of range.
    """
    conf = _as_confidence(confidence)
    corr = _as_correct(correct, conf.shape[0])
    _check_n_bins(n_bins)
    if conf.size == 0:
        raise InsufficientDataError("reliability_curve needs at least one sample, got 0")
    bins = equal_mass_bins(conf, n_bins)
    lower = tuple(float(conf[b].min()) for b in bins)
    upper = tuple(float(conf[b].max()) for b in bins)
    mean_conf = tuple(float(conf[b].mean()) for b in bins)
    acc = tuple(float(corr[b].mean()) for b in bins)
    counts = tuple(int(b.size) for b in bins)
    gaps = np.abs(np.asarray(acc) - np.asarray(mean_conf))
    n = int(conf.size)
    ece = float(np.dot(np.asarray(counts, dtype=np.float64) / n, gaps))
    return ReliabilityCurve(
        bin_lower=lower,
        bin_upper=upper,
        bin_confidence=mean_conf,
        bin_accuracy=acc,
        bin_count=counts,
        n=n,
        ece=ece,
        mce=float(gaps.max()),
    )


def expected_calibration_error(confidence: ArrayLike, correct: ArrayLike, n_bins: int = 10) -> float:
    """Expected calibration error with equal-mass bins (see :func:`reliability_curve`)."""
    return reliability_curve(confidence, correct, n_bins).ece


@dataclass(frozen=True, kw_only=True)
class CalibrationReport:
    """Top-label and per-class (one-vs-rest) calibration of a window or reference.

    Attributes:
        n: samples.
        n_bins: bins requested.
        accuracy: top-label accuracy.
        mean_confidence: mean top-label confidence.
        ece: top-label expected calibration error.
        curve: top-label reliability curve.
        class_labels: label order of the probability columns.
        class_counts: true occurrences of each class.
        class_ece: one-vs-rest ECE of each class (probability column vs ``y == class``), or
            ``None`` where the class occurs fewer than ``min_class_samples`` times.
        min_class_samples: the threshold used for ``class_ece``.
    """

    n: int
    n_bins: int
    accuracy: float
    mean_confidence: float
    ece: float
    curve: ReliabilityCurve
    class_labels: tuple[str, ...]
    class_counts: tuple[int, ...]
    class_ece: tuple[float | None, ...]
    min_class_samples: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "n_bins": self.n_bins,
            "accuracy": self.accuracy,
            "mean_confidence": self.mean_confidence,
            "ece": self.ece,
            "curve": self.curve.to_dict(),
            "class_labels": list(self.class_labels),
            "class_counts": list(self.class_counts),
            "class_ece": {lab: _none_if_nan(e) for lab, e in zip(self.class_labels, self.class_ece, strict=True)},
            "min_class_samples": self.min_class_samples,
        }


def calibration_report(
    probabilities: ArrayLike,
    y_true_idx: ArrayLike,
    class_labels: Sequence[str],
    n_bins: int = 10,
    *,
    min_class_samples: int = 50,
) -> CalibrationReport:
    """Top-label and per-class calibration from class probabilities.

    Args:
        probabilities: ``(n, C)`` class probabilities; each row sums to 1 (within 0.01).
        y_true_idx: true class index (0..C-1) of each row.
        class_labels: names of the C columns, in order.
        n_bins: equal-mass bins for every curve.
        min_class_samples: a class needs this many true occurrences for its one-vs-rest ECE.

    Raises:
        InsufficientDataError: no rows.
        ValidationError: shapes, values or labels that do not fit together.
    """
    proba = np.asarray(probabilities, dtype=np.float64)
    labels = tuple(str(c) for c in class_labels)
    if proba.ndim != 2:
        raise ValidationError(f"probabilities must be 2-D (n, n_classes), got shape {proba.shape}")
    n, c = proba.shape
    if c != len(labels) or c < 2:
        raise ValidationError(
            f"class_labels must name each of the {c} probability columns (at least 2), got {len(labels)}"
        )
    if len(set(labels)) != len(labels):
        raise ValidationError(f"class_labels must be unique, got {list(labels)}")
    if n == 0:
        raise InsufficientDataError("calibration_report needs at least one row, got 0")
    if not np.all(np.isfinite(proba)) or proba.min() < 0.0 or proba.max() > 1.0:
        raise ValidationError("probabilities must be finite and lie in [0, 1]")
    if not np.allclose(proba.sum(axis=1), 1.0, atol=_PROBA_SUM_ATOL):
        raise ValidationError(f"each row of probabilities must sum to 1 (within {_PROBA_SUM_ATOL})")
    y = np.asarray(y_true_idx)
    if y.shape != (n,):
        raise ValidationError(f"y_true_idx must be 1-D with {n} entries, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= c:
        raise ValidationError(f"y_true_idx must hold integer class indices in 0..{c - 1}")
    _check_n_bins(n_bins)
    if min_class_samples < 1:
        raise ValidationError(f"min_class_samples must be >= 1, got {min_class_samples}")

    pred = proba.argmax(axis=1)
    top = proba[np.arange(n), pred]
    correct = pred == y
    curve = reliability_curve(top, correct, n_bins)
    counts = np.bincount(y, minlength=c)
    class_ece: list[float | None] = []
    for j in range(c):
        if counts[j] < min_class_samples:
            class_ece.append(None)
        else:
            class_ece.append(reliability_curve(proba[:, j], y == j, n_bins).ece)
    return CalibrationReport(
        n=n,
        n_bins=int(n_bins),
        accuracy=float(correct.mean()),
        mean_confidence=float(top.mean()),
        ece=curve.ece,
        curve=curve,
        class_labels=labels,
        class_counts=tuple(int(k) for k in counts),
        class_ece=tuple(class_ece),
        min_class_samples=int(min_class_samples),
    )


@dataclass(frozen=True, kw_only=True)
class CalibrationComparison:
    """Window minus reference. Positive ``ece_delta`` means the window is worse calibrated.

    ``class_ece_delta`` is ``None`` for a class whose ECE is missing on either side.
    """

    ece_reference: float
    ece_current: float
    ece_delta: float
    accuracy_delta: float
    mean_confidence_delta: float
    class_labels: tuple[str, ...]
    class_ece_delta: tuple[float | None, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ece_reference": self.ece_reference,
            "ece_current": self.ece_current,
            "ece_delta": self.ece_delta,
            "accuracy_delta": self.accuracy_delta,
            "mean_confidence_delta": self.mean_confidence_delta,
            "class_ece_delta": {
                lab: _none_if_nan(d) for lab, d in zip(self.class_labels, self.class_ece_delta, strict=True)
            },
        }


def compare_calibration(reference: CalibrationReport, current: CalibrationReport) -> CalibrationComparison:
    """Deltas of a window's calibration against the reference's (same class labels)."""
    if reference.class_labels != current.class_labels:
        raise ValidationError(
            f"reports have different class labels: {list(reference.class_labels)} vs {list(current.class_labels)}"
        )
    deltas = tuple(
        None if r is None or w is None else w - r for r, w in zip(reference.class_ece, current.class_ece, strict=True)
    )
    return CalibrationComparison(
        ece_reference=reference.ece,
        ece_current=current.ece,
        ece_delta=current.ece - reference.ece,
        accuracy_delta=current.accuracy - reference.accuracy,
        mean_confidence_delta=current.mean_confidence - reference.mean_confidence,
        class_labels=reference.class_labels,
        class_ece_delta=deltas,
    )


_CALIBRATION_METHODS = ("isotonic", "histogram")
_MIN_CALIBRATION_SAMPLES = 20


class ConfidenceCalibrator:
    """Maps a model's confidence to the probability that the prediction is right.

    Fitted on the reference's confidences and correctness, by isotonic regression
    (``method="isotonic"``, monotone, clipped outside the fitted range) or by equal-mass
    histogram binning (``method="histogram"``, ``n_bins`` bins, piecewise constant).

    Attributes:
        method, n_bins: the settings.
        n_reference_: reference samples it was fitted on.
        reference_accuracy_: accuracy on the reference.
        knots_x_, knots_y_: the fitted step/piecewise-linear function (isotonic: knots
            interpolated linearly; histogram: upper confidence of each bin and its accuracy).
    """

    def __init__(self, method: Literal["isotonic", "histogram"] = "isotonic", n_bins: int = 10) -> None:
        if method not in _CALIBRATION_METHODS:
            raise ValidationError(f"method must be one of {list(_CALIBRATION_METHODS)}, got {method!r}")
        _check_n_bins(n_bins)
        self.method = method
        self.n_bins = n_bins

    def fit(self, confidence: ArrayLike, correct: ArrayLike, sample_weight: ArrayLike | None = None) -> Self:
        """Fit on the reference's confidences and whether each prediction was right.

        ``sample_weight`` (e.g. importance weights of the reference rows towards a window)
        weighs each row; ``reference_accuracy_`` is then the weighted accuracy.
        """
        conf = _as_confidence(confidence)
        corr_f = _as_correct(correct, conf.shape[0])
        if conf.size < _MIN_CALIBRATION_SAMPLES:
            raise InsufficientDataError(
                f"calibrator needs at least {_MIN_CALIBRATION_SAMPLES} reference samples, got {conf.size}"
            )
        weight = np.ones(conf.size) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if weight.shape != conf.shape or not np.all(np.isfinite(weight)) or weight.min() < 0 or weight.sum() <= 0:
            raise ValidationError(f"sample_weight must hold {conf.size} finite weights >= 0, not all zero")
        if self.method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
            iso.fit(conf, corr_f, sample_weight=weight)
            self.knots_x_ = np.asarray(iso.X_thresholds_, dtype=np.float64)
            self.knots_y_ = np.asarray(iso.y_thresholds_, dtype=np.float64)
        else:
            groups = equal_mass_bins(conf, self.n_bins)
            self.knots_x_ = np.array([conf[g].max() for g in groups])
            self.knots_y_ = np.array(
                [np.average(corr_f[g], weights=weight[g]) if weight[g].sum() > 0 else corr_f[g].mean() for g in groups]
            )
        self.n_reference_ = int(conf.size)
        self.reference_accuracy_ = float(np.average(corr_f, weights=weight))
        return self

    def to_dict(self) -> dict[str, Any]:
        """The fitted calibrator as JSON-ready values (see :meth:`from_dict`)."""
        self._check_fitted()
        return {
            "method": self.method,
            "n_bins": self.n_bins,
            "knots_x": self.knots_x_.tolist(),
            "knots_y": self.knots_y_.tolist(),
            "n_reference": self.n_reference_,
            "reference_accuracy": self.reference_accuracy_,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConfidenceCalibrator:
        """Rebuild a fitted calibrator from :meth:`to_dict` output."""
        try:
            cal = cls(method=data["method"], n_bins=int(data["n_bins"]))
            knots_x = np.asarray(data["knots_x"], dtype=np.float64)
            knots_y = np.asarray(data["knots_y"], dtype=np.float64)
            n_reference = int(data["n_reference"])
            reference_accuracy = float(data["reference_accuracy"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"not a ConfidenceCalibrator dict: {exc}") from exc
        if knots_x.ndim != 1 or knots_x.shape != knots_y.shape or knots_x.size == 0:
            raise ValidationError("knots_x and knots_y must be non-empty lists of equal length")
        cal.knots_x_, cal.knots_y_ = knots_x, knots_y
        cal.n_reference_, cal.reference_accuracy_ = n_reference, reference_accuracy
        return cal

    def _check_fitted(self) -> None:
        if not hasattr(self, "knots_x_"):
            raise ValidationError("ConfidenceCalibrator is not fitted; call fit(confidence, correct) first")

    def predict(self, confidence: ArrayLike) -> NDArray[np.float64]:
        """Calibrated probability that each prediction is right."""
        self._check_fitted()
        conf = _as_confidence(confidence)
        if self.method == "isotonic":
            return np.interp(conf, self.knots_x_, self.knots_y_)
        bins = np.searchsorted(self.knots_x_[:-1], conf, side="left")
        return self.knots_y_[bins]
