"""A bounded, mergeable sample of rows (bottom-k sampling).

Each row gets a pseudo-random key: a seeded hash of its content (a few columns of it), so
the same row gets the same key in whatever batch it arrives. The sample keeps the ``k``
rows with the smallest keys. Because "the k smallest of the union" equals "the k smallest
of the k smallest of each part", merging two samples gives exactly the sample of the
concatenated rows, in any order or grouping. Any prefix of the sample (the ``j`` smallest
keys) is itself a uniform sample of ``j`` rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from drift.errors import IncompatibleProfilesError, InvalidSpecError

#: columns hashed into a row's key (more cost, fewer ties between distinct rows)
KEY_COLUMNS = 8


def _hash_key(seed: int) -> str:
    return f"dk{seed:014d}"[-16:]


def row_keys(frame: pd.DataFrame, key_columns: Sequence[str], seed: int) -> NDArray[np.uint64]:
    """Seeded 64-bit keys from the content of ``key_columns`` (numeric ones cast to float64)."""
    if len(frame) == 0:
        return np.zeros(0, dtype=np.uint64)
    parts = {}
    for name in key_columns:
        col = frame[name]
        if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
            parts[name] = col.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            parts[name] = col.astype(str).to_numpy()
    hashed = pd.util.hash_pandas_object(pd.DataFrame(parts), index=False, hash_key=_hash_key(seed))
    return hashed.to_numpy(dtype=np.uint64)


@dataclass(frozen=True, kw_only=True, eq=False)
class RowSample:
    """Up to ``k`` rows with the smallest keys, sorted by key.

    Attributes:
        k: capacity.
        keys: the kept rows' keys, ascending.
        rows: the kept rows (only the sampled columns), in key order, index 0..n-1.
    """

    k: int
    keys: NDArray[np.uint64]
    rows: pd.DataFrame

    def __post_init__(self) -> None:
        if self.k < 1:
            raise InvalidSpecError(f"sample size must be at least 1, got {self.k}")

    def __len__(self) -> int:
        return int(self.keys.size)

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, columns: Sequence[str], k: int, *, key_columns: Sequence[str], seed: int = 0
    ) -> RowSample:
        keys = row_keys(frame, key_columns, seed)
        chosen = np.argpartition(keys, k - 1)[:k] if keys.size > k else np.arange(keys.size)
        chosen = chosen[np.argsort(keys[chosen], kind="stable")]
        rows = frame.iloc[chosen][list(columns)].reset_index(drop=True)
        return cls(k=k, keys=keys[chosen], rows=rows)

    def head(self, n: int) -> pd.DataFrame:
        """The ``n`` rows with the smallest keys (a uniform sample of the profiled rows)."""
        return self.rows.iloc[:n]

    def merge(self, other: RowSample) -> RowSample:
        return RowSample.merge_all([self, other])

    @staticmethod
    def merge_all(samples: Sequence[RowSample]) -> RowSample:
        """The sample of all the samples' rows together (one concatenation)."""
        first = samples[0]
        for other in samples[1:]:
            if other.k != first.k or list(other.rows.columns) != list(first.rows.columns):
                raise IncompatibleProfilesError("samples differ in size or columns")
        keys = np.concatenate([s.keys for s in samples])
        order = np.argsort(keys, kind="stable")[: first.k]
        rows = pd.concat([s.rows for s in samples], ignore_index=True).iloc[order].reset_index(drop=True)
        return RowSample(k=first.k, keys=keys[order], rows=rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "keys": [format(int(x), "x") for x in self.keys],
            "columns": {str(c): _json_column(self.rows[c]) for c in self.rows.columns},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RowSample:
        keys = np.array([int(x, 16) for x in data["keys"]], dtype=np.uint64)
        rows = pd.DataFrame({c: pd.Series(v, dtype=_dtype_of(v)) for c, v in data["columns"].items()})
        return cls(k=int(data["k"]), keys=keys, rows=rows)


def _json_column(series: pd.Series) -> list[Any]:
    """A column as JSON-ready values; float columns are converted at C speed, NaN/inf -> None."""
    if pd.api.types.is_float_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64)
        finite = np.isfinite(values)
        if finite.all():
            return values.tolist()
        return [v if ok else None for v, ok in zip(values.tolist(), finite.tolist(), strict=True)]
    return [_json_value(v) for v in series.tolist()]


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _dtype_of(values: list[Any]) -> Any:
    """int64 for all-int columns, float64 for numbers (None as NaN), else object."""
    if values:
        try:
            kind = np.asarray(values).dtype.kind  # at C speed: the common all-int / all-float columns
        except (ValueError, TypeError, OverflowError):
            kind = "O"
        if kind == "i":
            return np.int64
        if kind == "f":
            return np.float64
        if kind != "O":  # strings, bools: as before, objects
            return object
    present = [v for v in values if v is not None]
    if present and len(present) == len(values) and all(type(v) is int for v in present):
        return np.int64
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return np.float64
    return object
