"""The binned representation every drift method reads.

A numeric column is described on *cells* laid out around sorted edges ``e_0 < ... < e_{K-1}``:
``(-inf, e_0), {e_0}, (e_0, e_1), {e_1}, ..., {e_{K-1}}, (e_{K-1}, inf)`` — 2K+1 cells,
alternating open intervals and single points ("atoms"). Each side stores its count and the
sum of its values per cell.

* On raw rows (``engine="fast"``) a column keeps its values (:class:`NumericValues`): KS
  reads them directly (:mod:`drift.ks`, exact without a full sort); the other methods read
  cells whose edges are every distinct value of both samples, built on first use, so all
  mass sits on atoms and every method is exact (KS, Wasserstein, chi-square, JS, PSI
  equal scipy's / evidently's numbers).
* On profiles the edges come from the reference (its distinct values when it has few, else
  fine quantiles). KS is then evaluated at every cell boundary, which is exact whenever
  one of the samples has no mass inside an open cell (always for the reference, whose
  values are the edges, when it has at most ``max_edges`` distinct values) and otherwise
  underestimates D by at most the mass of one cell. Wasserstein places each open cell's
  mass at its mean (exact for atoms and for the under/overflow cells' contribution to the
  mean), an error bounded by the cells' widths times their mass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


class CellIndexer:
    """Maps values to cell indices on fixed edges, O(1) per value.

    A uniform grid over the central edges remembers, for each grid cell, how many edges
    lie below it and the first edge inside it. A value in a grid cell holding at most one
    edge needs one comparison with that edge; values in crowded grid cells or beyond the
    grid use a binary search. Because ``x * scale + offset`` (rounded, clipped, truncated)
    is monotone in ``x`` and edges are mapped by the same function, the result equals
    ``np.searchsorted(edges, x, "left")`` exactly.
    """

    def __init__(self, edges: FloatArray) -> None:
        self.edges = np.asarray(edges, dtype=np.float64)
        k = self.edges.size
        self._grid: tuple[float, float, float, IntArray, IntArray, FloatArray] | None = None
        # The grid spans the central edges, so that a far outlier does not stretch it.
        a, b = k // 200, k - 1 - k // 200
        if k >= 2 and b > a and math.isfinite(self.edges[b] - self.edges[a]):
            size = min(max(64 * k, 1024), 1 << 21)
            scale = size / float(self.edges[b] - self.edges[a])
            offset = 1.0 - float(self.edges[a]) * scale
            top = float(size + 2)
            ge = self._grid_of(self.edges, scale, offset, top)
            below = np.searchsorted(ge, np.arange(size + 4), side="left").astype(np.int64)
            per_cell = np.diff(below)
            first = self.edges[np.minimum(below[:-1], k - 1)]
            self._grid = (scale, offset, top, 2 * below[:-1], per_cell, first)

    @staticmethod
    def _grid_of(x: FloatArray, scale: float, offset: float, top: float) -> IntArray:
        t = x * scale
        t += offset
        np.clip(t, 0.0, top, out=t)
        return t.astype(np.int64)  # truncation of a non-negative value: floor

    def cells(self, x: FloatArray) -> IntArray:
        """Cell index (0 .. 2K) of each finite value: ``2 * left_index + (x is an edge)``."""
        k = self.edges.size
        if k == 0:
            return np.zeros(x.size, dtype=np.int64)
        if self._grid is None:
            return self._search_cells(x)
        scale, offset, top, below2, per_cell, first = self._grid
        g = self._grid_of(x, scale, offset, top)
        n_in = per_cell[g]
        cand = first[g]
        out = below2[g]
        out += 2 * ((cand < x) & (n_in > 0))
        out += (cand == x) & (n_in > 0)
        crowded = np.flatnonzero(n_in > 1)
        if crowded.size:
            out[crowded] = self._search_cells(x[crowded])
        return out

    def _search_cells(self, x: FloatArray) -> IntArray:
        idx = np.searchsorted(self.edges, x, side="left").astype(np.int64)
        on_edge = self.edges[np.minimum(idx, self.edges.size - 1)] == x
        return 2 * idx + (on_edge & (idx < self.edges.size))

    def left_index(self, x: FloatArray) -> IntArray:
        """Number of edges strictly below each value (``searchsorted(..., "left")``)."""
        return self.cells(x) // 2


def cell_stats(indexer: CellIndexer, x: FloatArray) -> tuple[IntArray, FloatArray]:
    """Per-cell counts and sums of the finite values ``x``."""
    n_cells = 2 * indexer.edges.size + 1
    cells = indexer.cells(x)
    counts = np.bincount(cells, minlength=n_cells).astype(np.int64)
    sums = np.asarray(np.bincount(cells, weights=x, minlength=n_cells), dtype=np.float64)
    return counts, sums


@dataclass(frozen=True, kw_only=True, eq=False)
class NumericBins:
    """Reference and current mass of one numeric column on shared cells."""

    edges: FloatArray
    ref_counts: IntArray
    cur_counts: IntArray
    ref_sums: FloatArray
    cur_sums: FloatArray
    ref_std: float
    ref_unique: int
    exact: bool

    @property
    def n_ref(self) -> int:
        return int(self.ref_counts.sum())

    @property
    def n_cur(self) -> int:
        return int(self.cur_counts.sum())

    def positions(self, counts: IntArray, sums: FloatArray) -> FloatArray:
        """Where each cell's mass sits: the edge for atoms, the mean for open cells."""
        with np.errstate(invalid="ignore", divide="ignore"):
            pos = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        pos[1::2] = self.edges
        return pos

    @cached_property
    def open_mass(self) -> bool:
        """True when some value of either side lies strictly between edges."""
        return bool(self.ref_counts[0::2].any() or self.cur_counts[0::2].any())

    @classmethod
    def from_values(cls, ref: FloatArray, cur: FloatArray) -> NumericBins:
        """Exact representation: the edges are every distinct value of both samples."""
        r_vals, r_n = _runs(np.sort(ref))
        c_vals, c_n = _runs(np.sort(cur))
        # both are sorted: a stable sort of the two runs is a merge
        merged = np.sort(np.concatenate([r_vals, c_vals]), kind="stable")
        edges, _ = _runs(merged)
        n_cells = 2 * edges.size + 1
        ref_counts = np.zeros(n_cells, dtype=np.int64)
        cur_counts = np.zeros(n_cells, dtype=np.int64)
        ref_counts[1 + 2 * np.searchsorted(edges, r_vals)] = r_n
        cur_counts[1 + 2 * np.searchsorted(edges, c_vals)] = c_n
        ref_sums = np.zeros(n_cells)
        ref_sums[1::2] = ref_counts[1::2] * edges
        cur_sums = np.zeros(n_cells)
        cur_sums[1::2] = cur_counts[1::2] * edges
        return cls(
            edges=edges,
            ref_counts=ref_counts,
            cur_counts=cur_counts,
            ref_sums=ref_sums,
            cur_sums=cur_sums,
            ref_std=float(np.std(ref)) if ref.size else 0.0,
            ref_unique=int(r_vals.size),
            exact=True,
        )


def _runs(sorted_values: FloatArray) -> tuple[FloatArray, IntArray]:
    """The distinct values of a sorted array and how often each occurs."""
    n = sorted_values.size
    if n == 0:
        return sorted_values, np.zeros(0, dtype=np.int64)
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(sorted_values[1:], sorted_values[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    return sorted_values[starts], np.diff(starts, append=n).astype(np.int64)


@dataclass(frozen=True, kw_only=True, eq=False)
class NumericValues:
    """The finite values of one numeric column on each side, as read from rows (exact).

    Methods that need cells read :attr:`bins` (built on first use: every distinct value
    an edge); KS reads the values themselves (:func:`drift.ks.ks_statistic`, no sort).
    The arrays may be read-only views of the caller's frame: never modify them.
    """

    ref: FloatArray
    cur: FloatArray

    @property
    def n_ref(self) -> int:
        return int(self.ref.size)

    @property
    def n_cur(self) -> int:
        return int(self.cur.size)

    @cached_property
    def bins(self) -> NumericBins:
        return NumericBins.from_values(self.ref, self.cur)

    def count_distinct(self, at_most: int) -> int:
        """Distinct values over both sides, or ``at_most + 1`` when there are more."""
        probe = np.concatenate([self.ref[:256], self.cur[:256]])
        if np.unique(probe).size > at_most:
            return at_most + 1
        # few distinct values so far: hashing all of them is fast
        return min(int(pd.unique(np.concatenate([self.ref, self.cur])).size), at_most + 1)


def _sort_key(value: Any) -> tuple[str, str]:
    return (type(value).__name__, str(value))


@dataclass(frozen=True, kw_only=True, eq=False)
class CategoryCounts:
    """Reference and current counts per category (the union of both sides' categories)."""

    keys: tuple[Any, ...]
    ref_counts: IntArray
    cur_counts: IntArray
    exact: bool = True

    @property
    def n_ref(self) -> int:
        return int(self.ref_counts.sum())

    @property
    def n_cur(self) -> int:
        return int(self.cur_counts.sum())

    @classmethod
    def from_mappings(cls, ref: dict[Any, int], cur: dict[Any, int]) -> CategoryCounts:
        keys = tuple(sorted(set(ref) | set(cur), key=_sort_key))
        return cls(
            keys=keys,
            ref_counts=np.array([ref.get(k, 0) for k in keys], dtype=np.int64),
            cur_counts=np.array([cur.get(k, 0) for k in keys], dtype=np.int64),
        )

    @classmethod
    def from_values(cls, ref: pd.Series, cur: pd.Series) -> CategoryCounts:
        return cls.from_mappings(value_counts(ref), value_counts(cur))

    @classmethod
    def from_bins(cls, bins: NumericBins) -> CategoryCounts:
        """Numeric values as categories: atoms by value; open cells holding mass become one
        pseudo-category each (then approximate: their distinct values are unknown)."""
        total = bins.ref_counts + bins.cur_counts
        used = np.flatnonzero(total)
        keys: list[Any] = []
        for cell in used:
            if cell % 2:
                keys.append(float(bins.edges[cell // 2]))
            else:
                keys.append(f"cell{cell}")
        return cls(
            keys=tuple(keys),
            ref_counts=bins.ref_counts[used],
            cur_counts=bins.cur_counts[used],
            exact=not bins.open_mass,
        )


def value_counts(series: pd.Series) -> dict[Any, int]:
    """Counts of the non-missing values, keyed by plain Python scalars."""
    vc = series.value_counts(dropna=True, sort=False)
    return {_plain(k): int(v) for k, v in vc.items() if v > 0}


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass(frozen=True, kw_only=True, eq=False)
class ColumnData:
    """Everything a method needs about one column: numeric bins and/or category counts."""

    name: str
    type: str
    #: cells (from a profile) or raw values (from rows; their exact cells are built on demand)
    numeric: NumericBins | NumericValues | None = None
    categorical: CategoryCounts | None = None

    @property
    def bins(self) -> NumericBins | None:
        """The numeric cells, ``None`` for a categorical column."""
        if isinstance(self.numeric, NumericValues):
            return self.numeric.bins
        return self.numeric

    @cached_property
    def categories(self) -> CategoryCounts:
        if self.categorical is not None:
            return self.categorical
        bins = self.bins
        assert bins is not None
        return CategoryCounts.from_bins(bins)

    @property
    def n_ref(self) -> int:
        return self.numeric.n_ref if self.numeric is not None else self.categories.n_ref

    @property
    def n_cur(self) -> int:
        return self.numeric.n_cur if self.numeric is not None else self.categories.n_cur

    @cached_property
    def n_unique(self) -> int:
        """Distinct non-missing values over both sides (as evidently's ``nunique`` of the union)."""
        bins = self.bins
        if bins is not None:
            return int(np.count_nonzero(bins.ref_counts + bins.cur_counts))
        return len(self.categories.keys)

    def count_distinct(self, at_most: int) -> int:
        """:attr:`n_unique`, or ``at_most + 1`` when larger (cheap on raw values)."""
        if isinstance(self.numeric, NumericValues):
            return self.numeric.count_distinct(at_most)
        return min(self.n_unique, at_most + 1)

    @classmethod
    def from_series(cls, name: str, kind: str, ref: pd.Series, cur: pd.Series) -> ColumnData:
        """Exact representation from raw values; NaN and infinities are dropped (as evidently)."""
        if kind == "numeric":
            return cls(name=name, type=kind, numeric=NumericValues(ref=finite_values(ref), cur=finite_values(cur)))
        return cls(name=name, type=kind, categorical=CategoryCounts.from_values(ref, cur))


def finite_values(series: pd.Series) -> FloatArray:
    """The finite values of a numeric column as float64 (NaN, None and infinities dropped).

    A float64 column without missing or infinite values comes back as a read-only view
    of the frame's data (no copy).
    """
    if series.dtype == np.float64:
        values = series.to_numpy()
    else:
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(values)
    out = values.view() if finite.all() else values[finite]
    out.flags.writeable = False
    return out
