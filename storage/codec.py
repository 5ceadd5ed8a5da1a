"""Packing of array-valued columns into bytes and back, a whole batch at a time."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd

FLOAT32 = np.dtype("<f4")
FLOAT64 = np.dtype("<f8")


def utf8_encodable(text: str) -> bool:
    """Whether ``text`` encodes as UTF-8: a lone surrogate (from a ``\\ud800`` JSON escape)
    does not, and no database here stores it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def pack_rows(array: np.ndarray, dtype: np.dtype = FLOAT32) -> list[bytes]:
    """One ``bytes`` per row of a 2-D array, in little-endian ``dtype``."""
    contiguous = np.ascontiguousarray(array, dtype=dtype)
    if contiguous.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {contiguous.shape}")
    width = contiguous.shape[1] * dtype.itemsize
    buffer = contiguous.tobytes()
    return [buffer[i : i + width] for i in range(0, len(buffer), width)] if width else [b""] * len(array)


def unpack_rows(blobs: Sequence[bytes | None], width: int, dtype: np.dtype = FLOAT32) -> np.ndarray:
    """The 2-D array packed by :func:`pack_rows`; rows stored as NULL come back as NaN."""
    if not blobs:
        return np.empty((0, width), dtype=dtype)
    row_bytes = width * dtype.itemsize
    if None not in blobs and type(blobs[0]) is bytes:  # the common case: one join in C
        joined = b"".join(blobs)  # type: ignore[arg-type]
    else:
        nan_row = np.full(width, np.nan, dtype=dtype).tobytes()
        joined = b"".join(nan_row if b is None else bytes(b) for b in blobs)
    if len(joined) != row_bytes * len(blobs):
        raise ValueError(f"stored rows do not all hold {width} values of {dtype}")
    return np.frombuffer(joined, dtype=dtype).reshape(len(blobs), width).copy()


def pack_categories(frame: pd.DataFrame) -> list[str]:
    """Categorical features of each row as compact JSON objects.

    Categories repeat, so each distinct value is JSON-encoded once and the rows are
    assembled from the encoded pieces.
    """
    pieces = []
    for name in frame.columns:
        codes, uniques = pd.factorize(frame[name], use_na_sentinel=False)
        key = json.dumps(str(name), ensure_ascii=False)
        encoded = np.array([f"{key}:{json.dumps(u, ensure_ascii=False)}" for u in uniques.tolist()], dtype=object)
        pieces.append(encoded[codes].tolist())
    if not pieces:
        return ["{}"] * len(frame)
    return ["{" + ",".join(row) + "}" for row in zip(*pieces, strict=True)]


def unpack_categories(texts: Sequence[str | None], columns: Sequence[str]) -> pd.DataFrame:
    """The categorical features of stored rows; each distinct JSON text is parsed once."""
    codes, uniques = pd.factorize(pd.Series(texts, dtype=object), use_na_sentinel=False)
    parsed = pd.DataFrame.from_records(
        [json.loads(t) if isinstance(t, str) and t else {} for t in uniques], columns=list(columns)
    )
    return parsed.iloc[codes].reset_index(drop=True)
