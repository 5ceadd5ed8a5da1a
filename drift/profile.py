"""Profiles: what a check needs to know about a set of rows, without the rows.

:class:`ReferenceProfile` fixes, once per reference set, the cell edges of every numeric
column (the reference's distinct values when it has at most ``max_edges`` of them, else
``max_edges`` quantiles) and holds the reference's own statistics on those cells.
:meth:`ReferenceProfile.profile` turns any window of rows into a :class:`WindowProfile`
on the same cells: per-cell counts and sums (incl. under/overflow), count, sum, sum of
squares, min and max per numeric column; counts per category (incl. categories the
reference never saw); missing counts; and a bounded bottom-k row sample.
:meth:`WindowProfile.merge` is associative and commutative: counts merge exactly (a week
merged from seven daily profiles has the counts of the week profiled at once); sums
merge up to floating-point rounding.

Both profiles round-trip through JSON (``to_dict`` / ``from_dict``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from drift.binned import CellIndexer, FloatArray, IntArray, cell_stats, finite_values, value_counts
from drift.errors import IncompatibleProfilesError, InvalidSpecError
from drift.sample import KEY_COLUMNS, RowSample
from drift.spec import DriftSpec

PROFILE_VERSION = 1


@dataclass(frozen=True, kw_only=True, eq=False)
class NumericStats:
    """One numeric column of one window on the reference's cells."""

    counts: IntArray
    sums: FloatArray
    n_missing: int
    total: float
    total_sq: float
    min: float
    max: float

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def merge(self, other: NumericStats) -> NumericStats:
        if self.counts.shape != other.counts.shape:
            raise IncompatibleProfilesError("numeric cells differ")
        return NumericStats(
            counts=self.counts + other.counts,
            sums=self.sums + other.sums,
            n_missing=self.n_missing + other.n_missing,
            total=self.total + other.total,
            total_sq=self.total_sq + other.total_sq,
            min=min(self.min, other.min),
            max=max(self.max, other.max),
        )

    def to_dict(self) -> dict[str, Any]:
        nz = np.flatnonzero(self.counts)  # sparse: windows fill few of the fine cells
        return {
            "kind": "numeric",
            "size": int(self.counts.size),
            "cells": nz.tolist(),
            "counts": self.counts[nz].tolist(),
            "sums": self.sums[nz].tolist(),
            "n_missing": self.n_missing,
            "total": self.total,
            "total_sq": self.total_sq,
            "min": _finite_or_none(self.min),
            "max": _finite_or_none(self.max),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NumericStats:
        counts = np.zeros(d["size"], dtype=np.int64)
        sums = np.zeros(d["size"])
        counts[d["cells"]] = d["counts"]
        sums[d["cells"]] = d["sums"]
        return cls(
            counts=counts,
            sums=sums,
            n_missing=d["n_missing"],
            total=d["total"],
            total_sq=d["total_sq"],
            min=_or(d["min"], np.inf),
            max=_or(d["max"], -np.inf),
        )


@dataclass(frozen=True, kw_only=True, eq=False)
class CategoryStats:
    """One categorical column of one window: counts per category (do not mutate)."""

    counts: dict[Any, int]
    n_missing: int

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    def merge(self, other: CategoryStats) -> CategoryStats:
        counts = dict(self.counts)
        for key, value in other.counts.items():
            counts[key] = counts.get(key, 0) + value
        return CategoryStats(counts=counts, n_missing=self.n_missing + other.n_missing)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "categorical",
            "counts": [[k, v] for k, v in self.counts.items()],
            "n_missing": self.n_missing,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CategoryStats:
        return cls(counts={k: int(v) for k, v in d["counts"]}, n_missing=d["n_missing"])


ColumnStats = NumericStats | CategoryStats


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _or(x: float | None, default: float) -> float:
    return default if x is None else float(x)


@dataclass(frozen=True, kw_only=True, eq=False)
class WindowProfile:
    """A window's statistics on a reference's cells; merge windows with :meth:`merge`."""

    fingerprint: str
    n_rows: int
    columns: dict[str, ColumnStats]
    sample: RowSample

    def merge(self, other: WindowProfile) -> WindowProfile:
        """The profile of both windows' rows together."""
        return WindowProfile.merge_all([self, other])

    @staticmethod
    def merge_all(profiles: Sequence[WindowProfile]) -> WindowProfile:
        """The profile of all the windows' rows together (e.g. seven daily profiles)."""
        if not profiles:
            raise InvalidSpecError("nothing to merge")
        first = profiles[0]
        for other in profiles[1:]:
            if other.fingerprint != first.fingerprint:
                raise IncompatibleProfilesError(
                    "profiles built on different reference cells "
                    f"({first.fingerprint[:12]} vs {other.fingerprint[:12]})"
                )
            if set(other.columns) != set(first.columns):
                raise IncompatibleProfilesError("profiles cover different columns")
        cols: dict[str, ColumnStats] = {}
        for name, stats in first.columns.items():
            merged = stats
            for other in profiles[1:]:
                theirs = other.columns[name]
                if type(theirs) is not type(stats):
                    raise IncompatibleProfilesError(f"column {name!r} has different kinds")
                merged = merged.merge(theirs)  # type: ignore[arg-type]
            cols[name] = merged
        return WindowProfile(
            fingerprint=first.fingerprint,
            n_rows=sum(p.n_rows for p in profiles),
            columns=cols,
            sample=RowSample.merge_all([p.sample for p in profiles]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": PROFILE_VERSION,
            "fingerprint": self.fingerprint,
            "n_rows": self.n_rows,
            "columns": {k: v.to_dict() for k, v in self.columns.items()},
            "sample": self.sample.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WindowProfile:
        cols: dict[str, ColumnStats] = {
            k: NumericStats.from_dict(v) if v["kind"] == "numeric" else CategoryStats.from_dict(v)
            for k, v in d["columns"].items()
        }
        return cls(
            fingerprint=d["fingerprint"],
            n_rows=d["n_rows"],
            columns=cols,
            sample=RowSample.from_dict(d["sample"]),
        )


@dataclass(frozen=True, kw_only=True, eq=False)
class ReferenceProfile:
    """Cells, statistics and sample of a reference set; profiles windows on its cells.

    Attributes:
        spec: the columns and rules (inferred from the reference when not given).
        edges: cell edges per numeric column.
        ref_std: population standard deviation per numeric column (normed Wasserstein).
        ref_unique: distinct reference values per numeric column, counted up to ``max_edges + 1``.
        stats: the reference rows profiled on the cells.
        sample_size, seed: of the bottom-k samples.
    """

    spec: DriftSpec
    edges: dict[str, FloatArray]
    ref_std: dict[str, float]
    ref_unique: dict[str, int]
    stats: WindowProfile
    sample_size: int
    seed: int

    @property
    def fingerprint(self) -> str:
        return self.stats.fingerprint

    @property
    def n_rows(self) -> int:
        return self.stats.n_rows

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        spec: DriftSpec | None = None,
        *,
        sample_size: int = 1000,
        max_edges: int = 2000,
        seed: int = 0,
    ) -> ReferenceProfile:
        """Derive the cells from ``frame`` and profile it on them."""
        spec = spec if spec is not None else DriftSpec.infer(frame)
        _check_columns(frame, spec.all_columns, "reference")
        if max_edges < 10:
            raise InvalidSpecError(f"max_edges must be at least 10, got {max_edges}")
        edges: dict[str, FloatArray] = {}
        stds: dict[str, float] = {}
        uniques: dict[str, int] = {}
        for col in spec.columns:
            if col.type != "numeric":
                continue
            x = finite_values(frame[col.name])
            distinct = np.unique(x)
            uniques[col.name] = int(min(distinct.size, max_edges + 1))
            if distinct.size <= max_edges:
                edges[col.name] = distinct
            else:
                edges[col.name] = np.unique(np.quantile(x, np.linspace(0.0, 1.0, max_edges)))
            stds[col.name] = float(np.std(x)) if x.size else 0.0
        fingerprint = _fingerprint(spec, edges, sample_size, seed)
        stats = _profile(frame, spec, {n: CellIndexer(e) for n, e in edges.items()}, fingerprint, sample_size, seed)
        return cls(
            spec=spec,
            edges=edges,
            ref_std=stds,
            ref_unique=uniques,
            stats=stats,
            sample_size=sample_size,
            seed=seed,
        )

    @cached_property
    def _indexers(self) -> dict[str, CellIndexer]:
        return {name: CellIndexer(e) for name, e in self.edges.items()}

    def profile(self, frame: pd.DataFrame) -> WindowProfile:
        """Profile a window of rows on this reference's cells."""
        return _profile(frame, self.spec, self._indexers, self.fingerprint, self.sample_size, self.seed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": PROFILE_VERSION,
            "spec": self.spec.to_dict(),
            "edges": {k: v.tolist() for k, v in self.edges.items()},
            "ref_std": self.ref_std,
            "ref_unique": self.ref_unique,
            "stats": self.stats.to_dict(),
            "sample_size": self.sample_size,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReferenceProfile:
        if d.get("version") != PROFILE_VERSION:
            raise IncompatibleProfilesError(f"profile version {d.get('version')!r}, expected {PROFILE_VERSION}")
        return cls(
            spec=DriftSpec.from_dict(d["spec"]),
            edges={k: np.asarray(v, dtype=np.float64) for k, v in d["edges"].items()},
            ref_std={k: float(v) for k, v in d["ref_std"].items()},
            ref_unique={k: int(v) for k, v in d["ref_unique"].items()},
            stats=WindowProfile.from_dict(d["stats"]),
            sample_size=d["sample_size"],
            seed=d["seed"],
        )


def key_columns(spec: DriftSpec) -> tuple[str, ...]:
    """The columns hashed into the sample keys: numeric ones first, at most ``KEY_COLUMNS``."""
    numeric = [c.name for c in spec.columns if c.type == "numeric"]
    other = [c.name for c in spec.columns if c.type != "numeric"]
    return tuple((numeric + list(spec.embedding or ()) + other)[:KEY_COLUMNS])


def _profile(
    frame: pd.DataFrame,
    spec: DriftSpec,
    indexers: dict[str, CellIndexer],
    fingerprint: str,
    sample_size: int,
    seed: int,
) -> WindowProfile:
    _check_columns(frame, spec.all_columns, "window")
    cols: dict[str, ColumnStats] = {}
    for col in spec.columns:
        series = frame[col.name]
        if col.type == "numeric":
            cols[col.name] = _numeric_stats(indexers[col.name], series)
        else:
            counts = value_counts(series)
            cols[col.name] = CategoryStats(counts=counts, n_missing=int(len(series) - sum(counts.values())))
    sample = RowSample.from_frame(frame, spec.all_columns, sample_size, key_columns=key_columns(spec), seed=seed)
    return WindowProfile(fingerprint=fingerprint, n_rows=len(frame), columns=cols, sample=sample)


def _numeric_stats(indexer: CellIndexer, series: pd.Series) -> NumericStats:
    raw = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(raw)
    x = raw if finite.all() else raw[finite]
    counts, sums = cell_stats(indexer, x)
    return NumericStats(
        counts=counts,
        sums=sums,
        n_missing=int(raw.size - x.size),
        total=float(x.sum()),
        total_sq=float(np.dot(x, x)),
        min=float(x.min()) if x.size else np.inf,
        max=float(x.max()) if x.size else -np.inf,
    )


def _check_columns(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidSpecError(f"{what} lacks columns: {', '.join(missing)}")


def _fingerprint(spec: DriftSpec, edges: dict[str, FloatArray], sample_size: int, seed: int) -> str:
    h = hashlib.sha256()
    layout = [(c.name, c.type) for c in spec.columns]
    h.update(json.dumps([layout, spec.embedding, sample_size, seed], sort_keys=True, default=str).encode())
    for name in sorted(edges):
        h.update(name.encode())
        h.update(np.ascontiguousarray(edges[name], dtype=np.float64).tobytes())
    return h.hexdigest()
