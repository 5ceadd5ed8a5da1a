"""Confident outliers: confident predictions on inputs unlike the reference (no labels needed).

An :class:`EmbeddingOutlierDetector` is fitted on the reference's embeddings. It scores new
embeddings by their distance to the reference and sets its threshold at the reference's own
``quantile`` (default 99th percentile) of the same score, so about 1% of inputs drawn like
the reference exceed it.

* ``kind="mahalanobis"``: Mahalanobis distance to the reference mean under a Ledoit-Wolf
  shrinkage covariance. O(n·d²), fast; assumes one roughly elliptical cloud. The reference's
  own scores are in-sample (negligible bias when n_reference >> d).
* ``kind="knn"``: Euclidean distance to the k-th nearest reference point, exact (brute force).
  Distances come from float32 BLAS as ``||a||² + ||b||² - 2a·b`` on data centred on the
  reference mean, in chunks of ``chunk_size`` rows, selecting with ``np.partition``; memory is
  about ``chunk_size × n_reference × 4`` bytes. The reference's own scores are leave-one-out:
  the distance of a reference point to its k-th nearest *other* reference point. The cost is
  O(n·n_reference·d); ``max_reference`` fits on a seeded random subsample of at most that many
  reference rows to bound it. Distances carry float32 rounding (relative error ~1e-5, more
  for near-duplicates, where the absolute error is ~1e-3·scale).

Example::

    >>> rng = np.random.default_rng(0)
    >>> det = EmbeddingOutlierDetector(kind="knn", k=5).fit(rng.normal(size=(2000, 4)))
    >>> scores = det.score(np.vstack([rng.normal(size=(3, 4)), np.full((1, 4), 10.0)]))
    >>> confident_outliers(scores, [0.99, 0.99, 0.5, 0.99], det.threshold_).tolist()
    [False, False, False, True]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from drift.errors import InsufficientDataError, InvalidSpecError, ValidationError

__all__ = [
    "EmbeddingOutlierDetector",
    "OutlierKind",
    "OutlierSummary",
    "confident_outliers",
    "summarize_outliers",
]

OutlierKind = Literal["knn", "mahalanobis"]
_KINDS = ("mahalanobis", "knn")


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


class EmbeddingOutlierDetector:
    """Distance of embeddings to a reference set, with a threshold from the reference itself.

    Args:
        kind: ``"knn"`` or ``"mahalanobis"``.
        k: neighbour rank for ``"knn"`` (ignored by ``"mahalanobis"``).
        quantile: the threshold is this quantile of the reference's own scores.
        chunk_size: rows scored at a time (bounds memory; does not change results).
        max_reference: fit on a random subsample of at most this many reference rows (None: all).
        seed: seed of that subsample.

    Learned attributes (after :meth:`fit`): ``n_features_in_``, ``n_reference_`` (rows kept),
    ``location_`` (reference mean), ``precision_`` (mahalanobis only), ``reference_scores_``
    (leave-one-out for knn) and ``threshold_``.
    """

    def __init__(
        self,
        kind: OutlierKind = "knn",
        k: int = 5,
        quantile: float = 0.99,
        chunk_size: int = 256,
        max_reference: int | None = None,
        seed: int = 0,
    ) -> None:
        if kind not in _KINDS:
            raise InvalidSpecError(f"kind must be one of {list(_KINDS)}, got {kind!r}")
        if not _is_int(k) or k < 1:
            raise InvalidSpecError(f"k must be a positive integer, got {k!r}")
        if not 0.0 < quantile < 1.0:
            raise InvalidSpecError(f"quantile must lie strictly between 0 and 1, got {quantile!r}")
        if not _is_int(chunk_size) or chunk_size < 1:
            raise InvalidSpecError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        if max_reference is not None and (not _is_int(max_reference) or max_reference <= k):
            raise InvalidSpecError(f"max_reference must be None or an integer above k={k}, got {max_reference!r}")
        self.kind = kind
        self.k = k
        self.quantile = quantile
        self.chunk_size = chunk_size
        self.max_reference = max_reference
        self.seed = seed

    # -- fitting -------------------------------------------------------------------------------

    def fit(self, reference: ArrayLike) -> Self:
        """Fit on the reference embeddings ``(n, d)`` and set ``threshold_``."""
        ref = self._as_matrix(reference, "reference")
        if self.max_reference is not None and ref.shape[0] > self.max_reference:
            rng = np.random.default_rng(self.seed)
            keep = np.sort(rng.choice(ref.shape[0], size=self.max_reference, replace=False))
            ref = ref[keep]
        n, d = ref.shape
        needed = self.k + 1 if self.kind == "knn" else 2
        if n < needed:
            raise InsufficientDataError(f"{self.kind} detector needs at least {needed} reference rows, got {n}")
        self.n_features_in_ = d
        self.n_reference_ = n
        self.location_ = ref.mean(axis=0)
        if self.kind == "mahalanobis":
            from sklearn.covariance import LedoitWolf

            lw = LedoitWolf(assume_centered=False).fit(ref)
            self.precision_ = np.asarray(lw.precision_, dtype=np.float64)
        else:
            # one GEMM gives ||b||² - 2a·b: rows [b, ||b||²] against query rows [-2a, 1]
            centred = ref - self.location_
            augmented = np.empty((n, d + 1), dtype=np.float32)
            augmented[:, :d] = centred
            augmented[:, d] = np.einsum("ij,ij->i", centred, centred)
            self._reference_augmented = augmented
        self.reference_scores_ = self._score_all(ref, leave_one_out=self.kind == "knn")
        self.threshold_ = float(np.quantile(self.reference_scores_, self.quantile))
        return self

    # -- scoring -------------------------------------------------------------------------------

    def score(self, x: ArrayLike) -> NDArray[np.float64]:
        """Distance of each row of ``x`` to the reference (higher = more unusual).

        ``x`` is converted chunk by chunk, so a large float32 array is never copied whole.
        """
        if not hasattr(self, "threshold_"):
            raise ValidationError("EmbeddingOutlierDetector is not fitted; call fit(reference) first")
        arr = np.asarray(x)
        if arr.ndim != 2 or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise ValidationError(f"x must be a 2-D real array (n, d), got shape {arr.shape}, dtype {arr.dtype}")
        if arr.shape[1] != self.n_features_in_:
            raise ValidationError(f"x has {arr.shape[1]} columns, the reference had {self.n_features_in_}")
        return self._score_all(arr, leave_one_out=False)

    def _score_all(self, x: NDArray[Any], *, leave_one_out: bool) -> NDArray[np.float64]:
        out = np.empty(x.shape[0], dtype=np.float64)
        for start in range(0, x.shape[0], self.chunk_size):
            block = np.asarray(x[start : start + self.chunk_size], dtype=np.float64)
            if not np.all(np.isfinite(block)):
                bad = start + int(np.flatnonzero(~np.isfinite(block).all(axis=1))[0])
                raise ValidationError(f"x must be finite (no NaN or inf); row {bad} is not")
            centred = block - self.location_
            if self.kind == "mahalanobis":
                d2 = np.einsum("ij,ij->i", centred @ self.precision_, centred)
            else:
                d2 = self._knn_sq(centred, start if leave_one_out else None)
            out[start : start + block.shape[0]] = np.sqrt(np.maximum(d2, 0.0))
        return out

    def _knn_sq(self, centred: NDArray[np.float64], loo_offset: int | None) -> NDArray[np.float64]:
        """Squared k-th nearest reference distance of one block of centred rows.

        With ``loo_offset``, the block is reference rows ``loo_offset...`` and each row's own
        distance is excluded (leave-one-out).
        """
        kth = self.k - 1
        m, d = centred.shape
        q = np.empty((m, d + 1), dtype=np.float32)
        q[:, :d] = centred * -2.0
        q[:, d] = 1.0
        g = q @ self._reference_augmented.T  # (block, n_ref) float32: ||b||² - 2a·b
        if loo_offset is not None:
            rows = np.arange(m)
            g[rows, loo_offset + rows] = np.inf
        g.partition(kth, axis=1)
        return g[:, kth].astype(np.float64) + np.einsum("ij,ij->i", centred, centred)

    @staticmethod
    def _as_matrix(values: ArrayLike, name: str) -> NDArray[np.float64]:
        arr = np.asarray(values, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] < 1:
            raise ValidationError(f"{name} must be 2-D (n, d) embeddings, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValidationError(f"{name} must be finite (no NaN or inf)")
        return arr


def confident_outliers(
    scores: ArrayLike, confidence: ArrayLike, threshold: float, min_confidence: float = 0.9
) -> NDArray[np.bool_]:
    """Mask of predictions that are outliers (``score > threshold``) and confident
    (``confidence >= min_confidence``)."""
    s = np.asarray(scores, dtype=np.float64)
    c = np.asarray(confidence, dtype=np.float64)
    if s.ndim != 1 or c.shape != s.shape:
        raise ValidationError(f"scores and confidence must be 1-D of equal length, got {s.shape} and {c.shape}")
    if not 0.0 <= min_confidence <= 1.0:
        raise ValidationError(f"min_confidence must lie in [0, 1], got {min_confidence!r}")
    if math.isnan(threshold):
        raise ValidationError("threshold must be a number, got NaN")
    return np.asarray((s > threshold) & (c >= min_confidence), dtype=np.bool_)


@dataclass(frozen=True, kw_only=True)
class OutlierSummary:
    """Confident outliers of one window.

    Attributes:
        n: predictions in the window.
        threshold, min_confidence: the rule used.
        n_outliers, outlier_rate: predictions above the threshold, whatever their confidence
            (about ``1 - quantile`` when the window looks like the reference).
        n_confident: predictions with confidence >= min_confidence.
        count: confident outliers; ``rate = count / n``.
        rate_among_confident: ``count / n_confident`` (None when no prediction is confident).
        top: positions (or ids) of the top-K confident outliers, ranked by score descending
            (ties: higher confidence first, then input order); ``top_scores`` and
            ``top_confidences`` go with them.
    """

    n: int
    threshold: float
    min_confidence: float
    n_outliers: int
    outlier_rate: float | None
    n_confident: int
    count: int
    rate: float | None
    rate_among_confident: float | None
    top: tuple[Any, ...]
    top_scores: tuple[float, ...]
    top_confidences: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "threshold": self.threshold,
            "min_confidence": self.min_confidence,
            "n_outliers": self.n_outliers,
            "outlier_rate": self.outlier_rate,
            "n_confident": self.n_confident,
            "count": self.count,
            "rate": self.rate,
            "rate_among_confident": self.rate_among_confident,
            "top": list(self.top),
            "top_scores": list(self.top_scores),
            "top_confidences": list(self.top_confidences),
        }


def summarize_outliers(
    scores: ArrayLike,
    confidence: ArrayLike,
    threshold: float,
    *,
    min_confidence: float = 0.9,
    top_k: int = 10,
    ids: ArrayLike | None = None,
) -> OutlierSummary:
    """Rate, count and top-K of confident outliers in a window (see :class:`OutlierSummary`)."""
    if not _is_int(top_k) or top_k < 0:
        raise ValidationError(f"top_k must be a non-negative integer, got {top_k!r}")
    mask = confident_outliers(scores, confidence, threshold, min_confidence)
    s = np.asarray(scores, dtype=np.float64)
    c = np.asarray(confidence, dtype=np.float64)
    n = int(s.size)
    flagged = np.flatnonzero(mask)
    order = flagged[np.lexsort((-c[flagged], -s[flagged]))][:top_k]
    if ids is None:
        top: tuple[Any, ...] = tuple(int(i) for i in order)
    else:
        id_arr = np.asarray(ids)
        if id_arr.shape != s.shape:
            raise ValidationError(f"ids must have one entry per score ({n}), got shape {id_arr.shape}")
        top = tuple(id_arr[order].tolist())
    n_outliers = int((s > threshold).sum())
    n_confident = int((c >= min_confidence).sum())
    count = int(mask.sum())
    return OutlierSummary(
        n=n,
        threshold=float(threshold),
        min_confidence=float(min_confidence),
        n_outliers=n_outliers,
        outlier_rate=n_outliers / n if n else None,
        n_confident=n_confident,
        count=count,
        rate=count / n if n else None,
        rate_among_confident=count / n_confident if n_confident else None,
        top=top,
        top_scores=tuple(float(v) for v in s[order]),
        top_confidences=tuple(float(v) for v in c[order]),
    )
