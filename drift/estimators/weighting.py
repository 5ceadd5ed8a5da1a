"""Importance weighting of the labelled reference towards a window, by a domain classifier on embeddings.

A logistic regression learns to tell window embeddings from reference embeddings. For a
reference row with predicted window-probability ``p`` the density ratio is
``w = p / (1 - p) · n_reference / n_window``: reference rows that look like the window count
more. Weights are clipped at ``clip`` (times their mean) and normalized to mean 1. The
probabilities of the reference rows are cross-fitted (each half scored by a classifier fitted
on the other half), so the classifier does not weigh the rows it memorized.

:func:`importance_weighted_accuracy` is the weighted accuracy of the labelled reference; its
standard error is the sandwich ``sqrt(sum w^2 (c - est)^2) / sum w``, and the effective sample
size ``(sum w)^2 / sum w^2`` says how many reference rows it really rests on. When the window
lies where the reference has (almost) no rows, no weighting can help: the effective sample
size collapses and the domain classifier's AUC approaches 1.

The weights also serve the other estimators: a calibrator or an ATC threshold fitted on the
weighted reference (``sample_weight``) is one fitted on a reference that looks like the window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from drift.errors import InsufficientDataError, ValidationError
from drift.estimate import AccuracyEstimate, clipped_estimate

__all__ = ["DomainWeights", "domain_weights", "importance_weighted_accuracy"]

_MIN_ROWS = 10


def _as_matrix(values: ArrayLike, name: str) -> NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2 or not np.all(np.isfinite(arr)):
        raise ValidationError(f"{name} must be a finite 2-D array (rows, dims), got shape {arr.shape}")
    if arr.shape[0] < _MIN_ROWS:
        raise InsufficientDataError(f"{name} needs at least {_MIN_ROWS} rows, got {arr.shape[0]}")
    return arr


@dataclass(frozen=True, kw_only=True)
class DomainWeights:
    """Importance weights of the reference rows towards one window.

    Attributes:
        weights: one per reference row, mean 1.
        effective_sample_size: ``(sum w)^2 / sum w^2``.
        auc: cross-fitted AUC of the domain classifier (0.5: the window looks like the reference).
        clip: weights were clipped at ``clip`` times their mean before normalizing.
        n_clipped: reference rows whose weight was clipped.
        n_window: window rows the classifier saw.
    """

    weights: NDArray[np.float64]
    effective_sample_size: float
    auc: float
    clip: float
    n_clipped: int
    n_window: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "effective_sample_size": self.effective_sample_size,
            "auc": self.auc,
            "clip": self.clip,
            "n_clipped": self.n_clipped,
            "n_window": self.n_window,
        }


def domain_weights(
    reference_embedding: ArrayLike,
    window_embedding: ArrayLike,
    *,
    clip: float = 20.0,
    regularization: float = 1.0,
    folds: int = 2,
    seed: int = 0,
) -> DomainWeights:
    """Density-ratio weights of the reference rows towards the window (see the module docstring).

    Args:
        reference_embedding: ``(n_reference, d)`` embeddings of the labelled reference rows.
        window_embedding: ``(n_window, d)`` embeddings of the window.
        clip: largest weight, as a multiple of the mean weight (> 1).
        regularization: inverse L2 strength ``C`` of the logistic regression.
        folds: cross-fitting folds (>= 2).
        seed: fold assignment.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    ref = _as_matrix(reference_embedding, "reference_embedding")
    win = _as_matrix(window_embedding, "window_embedding")
    if ref.shape[1] != win.shape[1]:
        raise ValidationError(f"embeddings differ in width: reference {ref.shape[1]}, window {win.shape[1]}")
    if clip <= 1.0:
        raise ValidationError(f"clip must be > 1, got {clip!r}")
    if folds < 2:
        raise ValidationError(f"folds must be >= 2, got {folds}")
    x = StandardScaler().fit_transform(np.vstack([ref, win]))
    y = np.r_[np.zeros(ref.shape[0]), np.ones(win.shape[0])]
    p = np.empty(y.size)
    for train, test in StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(x, y):
        classifier = LogisticRegression(C=regularization, max_iter=1000)
        classifier.fit(x[train], y[train])
        p[test] = classifier.predict_proba(x[test])[:, 1]
    auc = float(roc_auc_score(y, p))
    p_ref = np.clip(p[: ref.shape[0]], 1e-6, 1 - 1e-6)
    raw = p_ref / (1.0 - p_ref) * (ref.shape[0] / win.shape[0])
    cap = clip * float(raw.mean())
    n_clipped = int((raw > cap).sum())
    weights = np.minimum(raw, cap)
    weights = weights / weights.mean()
    ess = float(weights.sum() ** 2 / np.sum(weights**2))
    return DomainWeights(
        weights=weights, effective_sample_size=ess, auc=auc, clip=clip, n_clipped=n_clipped, n_window=int(win.shape[0])
    )


def importance_weighted_accuracy(
    reference_correct: ArrayLike,
    weights: DomainWeights,
    *,
    reference_confidence: ArrayLike | None = None,
    confidence_level: float = 0.95,
) -> AccuracyEstimate:
    """The reference's accuracy weighted towards the window.

    ``std_error_calibration`` is the sandwich standard error of the weighted mean (the reference
    is finite); ``std_error_sampling`` the spread of the window's own realized accuracy around
    its expectation, ``sqrt(est (1 - est) / n_window)``. ``mean_confidence`` is the weighted
    mean reference confidence when ``reference_confidence`` is given, else NaN.
    """
    c = np.asarray(reference_correct, dtype=np.float64)
    w = weights.weights
    if c.shape != w.shape:
        raise ValidationError(f"reference_correct must have one entry per weight ({w.size}), got shape {c.shape}")
    est = float(np.average(c, weights=w))
    se_reference = float(math.sqrt(np.sum(w**2 * (c - est) ** 2)) / w.sum())
    mean_conf = float("nan")
    if reference_confidence is not None:
        mean_conf = float(np.average(np.asarray(reference_confidence, dtype=np.float64), weights=w))
    return clipped_estimate(
        method="importance_weighting",
        estimate=est,
        std_error_sampling=math.sqrt(est * (1.0 - est) / weights.n_window),
        std_error_calibration=se_reference,
        n=weights.n_window,
        n_reference=int(w.size),
        mean_confidence=mean_conf,
        confidence_level=confidence_level,
        effective_sample_size=weights.effective_sample_size,
    )
