"""The exact two-sample Kolmogorov-Smirnov statistic D, from ordered cell counts or from raw values.

D is computed as an integer: with ``g = gcd(n1, n2)``, the CDF gap at any point is
``R * (n2 / g) - C * (n1 / g)`` divided by ``(n1 / g) * n2``, where R and C count the values
at or below the point. So every path here returns the same float for the same samples.

On raw values, :func:`ks_statistic` needs no full sort. A monotone map
``x -> trunc(clip(x * scale + offset))`` puts the values of both sides into up to 65,536
bins over the central 99% of a strided sample, each a run of consecutive values in sorted
order (the same map on both sides, and monotone, so a bin never interleaves with another).
The gap at every bin boundary is an attained value of the gap, hence a lower bound of D.
Inside a bin the gap moves by at most the bin's count on each side, so only bins holding
values of both sides whose bound exceeds the best boundary gap can hide a larger one.
Those bins are dropped when they hold a single distinct value (ties), split further while
that pays (heavy tails: ``trunc(pos * 2**k)`` nests exactly in ``trunc(pos)``), and the
values left in them are sorted and the gap evaluated at each. The result is the gap's
maximum over all values, exact, in linear time plus a sort of the (usually few) values left;
at worst (values closer than the grid resolves) about the cost of sorting everything.

>>> rng = np.random.default_rng(0)
>>> a, b = rng.normal(size=5000), rng.normal(0.1, 1.0, size=7000)
>>> ks_statistic(a, b) == ks_statistic_sorted(a, b)
True
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from drift.binned import FloatArray, IntArray

__all__ = ["ks_from_counts", "ks_statistic", "ks_statistic_sorted"]

#: below this many values in all, :func:`ks_statistic` sorts them (as fast, and simpler)
SORT_BELOW = 20_000


def _scale(n1: int, n2: int) -> tuple[int, int, int]:
    """``(a, b, denominator)``: the gap is ``R * a - C * b``, D is ``max |gap| / denominator``."""
    g = math.gcd(n1, n2)
    return n2 // g, n1 // g, (n1 // g) * n2


def ks_from_counts(ref_counts: IntArray, cur_counts: IntArray) -> float:
    """D evaluated at the end of each of a sequence of ordered cells (exact when every cell
    holds values of at most one side, or a single value)."""
    n1, n2 = int(ref_counts.sum()), int(cur_counts.sum())
    a, b, denominator = _scale(n1, n2)
    gap = np.cumsum(ref_counts) * a - np.cumsum(cur_counts) * b
    return float(np.abs(gap).max()) / denominator


def ks_statistic_sorted(ref: FloatArray, cur: FloatArray) -> float:
    """D of two samples of finite values by sorting them (the reference implementation)."""
    a, b, denominator = _scale(ref.size, cur.size)
    r, c = np.sort(ref), np.sort(cur)
    points = np.concatenate([r, c])
    gap = np.searchsorted(r, points, side="right").astype(np.int64) * a
    gap -= np.searchsorted(c, points, side="right").astype(np.int64) * b
    return float(np.abs(gap).max()) / denominator


def _bin_map(ref: FloatArray, cur: FloatArray, n_bins: int) -> tuple[float, float, float] | None:
    """``(scale, offset, top)`` of a uniform grid over the central 99% of a strided sample of
    both sides (values beyond fall into the two end bins), or None when it has no spread."""
    sample = np.sort(np.concatenate([ref[:: max(1, ref.size // 2048)], cur[:: max(1, cur.size // 2048)]]))
    k = sample.size // 200
    lo, hi = float(sample[k]), float(sample[-1 - k])
    if not hi > lo:
        lo, hi = float(sample[0]), float(sample[-1])
    width = hi - lo
    scale = n_bins / width if width > 0 else math.inf
    if not math.isfinite(scale) or not math.isfinite(lo * scale):
        return None
    return scale, 1.0 - lo * scale, float(n_bins + 1)


def _positions(x: FloatArray, scale: float, offset: float, top: float) -> FloatArray:
    """Grid positions in ``[0, top]``, monotone in ``x``; ``trunc`` of them is the bin."""
    t = x * scale
    t += offset
    np.clip(t, 0.0, top, out=t)
    return t


def _mixed(bins: tuple[NDArray[np.intp], ...], values: tuple[FloatArray, ...], size: int) -> NDArray[np.bool_]:
    """Bins holding more than one distinct value (over all the given sides)."""
    some = np.zeros(size)
    for b, v in zip(bins, values, strict=True):
        some[b] = v  # some value of each bin (which one does not matter)
    mixed = np.zeros(size, dtype=bool)
    for b, v in zip(bins, values, strict=True):
        mixed[b[v != some[b]]] = True
    return mixed


class _Side:
    """One sample's values in the bins still examined, with their bins, and per bin the count
    of this sample's values below the bin (over the whole sample)."""

    def __init__(self, values: FloatArray, bins: NDArray[np.intp], counts: IntArray) -> None:
        self.values, self.bins, self.counts = values, bins, counts
        self.below = np.cumsum(counts) - counts

    def keep(self, bins_kept: NDArray[np.bool_]) -> None:
        pick = np.flatnonzero(bins_kept[self.bins])
        self.values, self.bins = self.values.take(pick), self.bins.take(pick)

    def refine(
        self,
        grid: tuple[float, float, float],
        rank: NDArray[np.intp],
        parents: NDArray[np.intp],
        mult: float,
        factor: int,
    ) -> None:
        """Split each kept bin into ``factor`` sub-bins: ``trunc(pos * mult * factor)`` nests
        exactly in ``trunc(pos * mult)`` (both powers of two: the products are exact)."""
        pos = _positions(self.values, *grid)  # the same positions as the first time: same operations
        fine = (pos * (mult * factor)).astype(np.intp)
        sub = fine - (pos * mult).astype(np.intp) * factor
        self.bins = rank[self.bins] * factor + sub
        counts = np.bincount(self.bins, minlength=parents.size * factor).reshape(parents.size, factor)
        below = self.below[parents][:, None] + np.cumsum(counts, axis=1) - counts
        self.counts = counts.ravel()
        self.below = below.ravel()


def _scan(r: _Side, c: _Side, a: int, b: int, best: int) -> tuple[int, NDArray[np.bool_]]:
    """The best gap including every bin end, and the bins that may hide a larger one."""
    start = r.below * a - c.below * b  # the gap just before each bin
    best = max(best, int(np.abs(start + r.counts * a - c.counts * b).max()))  # ... and at its end
    bound = np.maximum(np.abs(start + r.counts * a), np.abs(start - c.counts * b))
    return best, (r.counts > 0) & (c.counts > 0) & (bound > best)


#: stop refining bins when this few values remain in them (then sort those)
SORT_AT_MOST = 1 << 15
#: grid positions are below 2**17 and have 53 bits: beyond 2**36 a finer grid splits nothing
_MAX_MULT = float(1 << 36)


def ks_statistic(ref: FloatArray, cur: FloatArray) -> float:
    """Exact D of two non-empty samples of finite values (see the module docstring)."""
    n1, n2 = ref.size, cur.size
    if n1 + n2 < SORT_BELOW:
        return ks_statistic_sorted(ref, cur)
    n_bins = int(min(max((n1 + n2) // 32, 1024), 1 << 16))
    grid = _bin_map(ref, cur, n_bins)
    if grid is None:
        return ks_statistic_sorted(ref, cur)
    a, b, denominator = _scale(n1, n2)
    sides = []
    for x in (ref, cur):
        bins = _positions(x, *grid).astype(np.intp)  # truncation of a non-negative value: floor
        sides.append(_Side(x, bins, np.bincount(bins, minlength=n_bins + 2).astype(np.int64)))
    r, c = sides
    best, suspect = _scan(r, c, a, b, 0)
    mult = 1.0
    n_before = 2 * (n1 + n2)
    while suspect.any():
        r.keep(suspect)
        c.keep(suspect)
        n_left = r.values.size + c.values.size
        if n_left > SORT_AT_MOST:  # bins holding one distinct value hide nothing
            suspect &= _mixed((r.bins, c.bins), (r.values, c.values), suspect.size)
            r.keep(suspect)
            c.keep(suspect)
            n_left = r.values.size + c.values.size
        if n_left <= SORT_AT_MOST or mult >= _MAX_MULT or 2 * n_left > n_before:
            break  # few left, or splitting no longer helps (values too close for the grid)
        n_before = n_left
        parents = np.flatnonzero(suspect)
        rank = np.cumsum(suspect) - 1
        factor = 1 << int(min(max(math.ceil(math.log2(n_left / parents.size)), 1), 12))
        for side in (r, c):
            side.refine(grid, rank, parents, mult, factor)
        mult *= factor
        best, suspect = _scan(r, c, a, b, best)
    if not (suspect.any() and r.values.size and c.values.size):
        return best / denominator
    r_vals, c_vals = np.sort(r.values), np.sort(c.values)
    # the bins are monotone in the values: sorted values have the sorted bins
    r_bins, c_bins = np.sort(r.bins), np.sort(c.bins)
    points = np.concatenate([r_vals, c_vals])
    at = np.concatenate([r_bins, c_bins])
    # values <= a point = those below its bin + those in its bin up to it
    r_le = r.below[at] + np.searchsorted(r_vals, points, side="right") - np.searchsorted(r_bins, at, side="left")
    c_le = c.below[at] + np.searchsorted(c_vals, points, side="right") - np.searchsorted(c_bins, at, side="left")
    return max(best, int(np.abs(r_le * a - c_le * b).max())) / denominator
