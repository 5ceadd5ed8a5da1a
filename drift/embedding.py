"""Multivariate drift of an embedding: maximum mean discrepancy with an RBF kernel.

The kernel bandwidth is the median pairwise distance of the pooled sample (median
heuristic, over up to 150 evenly spread rows of each side). The p-value comes from a
permutation test: ``n_permutations`` seeded relabellings of the pooled rows give the
statistic's null distribution, to which a gamma distribution is fitted by its mean and
variance (Gretton et al. 2009), so that p-values far below ``1 / n_permutations`` stay
resolvable: the embedding's p-value is corrected together with the columns' (see
:mod:`drift.verdict`). At most ``max_rows`` rows per side are used (default 500; the
first rows of a bottom-k sample are themselves a uniform sample).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from drift.errors import InsufficientDataError, InvalidSpecError

#: rows per side whose pairwise distances set the kernel bandwidth
MEDIAN_ROWS = 150


@dataclass(frozen=True, kw_only=True)
class EmbeddingScore:
    """MMD² (biased estimate) between the two samples and its permutation p-value."""

    score: float
    p_value: float
    bandwidth: float
    n_reference: int
    n_current: int


def _as_matrix(x: ArrayLike, name: str) -> NDArray[np.float64]:
    m = np.asarray(x, dtype=np.float64)
    if m.ndim != 2:
        raise InvalidSpecError(f"{name} must be a 2-d array (rows, dims), got shape {m.shape}")
    return m[np.isfinite(m).all(axis=1)]


def mmd_test(
    reference: ArrayLike,
    current: ArrayLike,
    *,
    n_permutations: int = 100,
    max_rows: int = 500,
    seed: int = 0,
) -> EmbeddingScore:
    """Two-sample MMD test; rows with a non-finite value are dropped.

    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.normal(size=(200, 8)), rng.normal(size=(200, 8))
    >>> mmd_test(a, b).p_value > 0.05, mmd_test(a, b + 0.5).p_value < 0.001
    (True, True)
    """
    if n_permutations < 10:
        raise InvalidSpecError(f"n_permutations must be at least 10, got {n_permutations}")
    x = _as_matrix(reference, "reference")[:max_rows]
    y = _as_matrix(current, "current")[:max_rows]
    if x.shape[1] != y.shape[1]:
        raise InvalidSpecError(f"embedding widths differ: {x.shape[1]} vs {y.shape[1]}")
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise InsufficientDataError(f"the embedding test needs 2 rows per side, got {n} and {m}")
    z = np.vstack([x, y])
    sq = np.einsum("ij,ij->i", z, z)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (z @ z.T), 0.0)
    # median heuristic on a fixed spread of up to 2 x MEDIAN_ROWS rows of both sides
    pick = np.r_[
        np.linspace(0, n - 1, min(n, MEDIAN_ROWS)).astype(int),
        n + np.linspace(0, m - 1, min(m, MEDIAN_ROWS)).astype(int),
    ]
    sub = d2[np.ix_(pick, pick)]
    off = sub[np.triu_indices(pick.size, k=1)]
    med = float(np.median(off))
    if med <= 0:
        med = float(off.mean()) if off.mean() > 0 else 1.0
    kernel = np.exp(-d2 / med)  # exp(-||a-b||^2 / (2 s^2)) with s^2 = median / 2
    rng = np.random.default_rng(seed)
    weights = np.empty((n + m, n_permutations + 1))
    base = np.r_[np.full(n, 1.0 / n), np.full(m, -1.0 / m)]
    weights[:, 0] = base
    for j in range(1, n_permutations + 1):
        weights[:, j] = base[rng.permutation(n + m)]
    values = np.einsum("ij,ij->j", weights, kernel @ weights)
    observed, null = float(values[0]), values[1:]
    mean, var = float(null.mean()), float(null.var())
    if var > 0 and mean > 0:
        p = float(stats.gamma.sf(observed, a=mean**2 / var, scale=var / mean))
    else:
        p = float((1 + np.sum(null >= observed)) / (1 + n_permutations))
    return EmbeddingScore(score=observed, p_value=min(max(p, 0.0), 1.0), bandwidth=med**0.5, n_reference=n, n_current=m)
