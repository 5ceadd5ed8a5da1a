"""Reading the cells of a raw batch, vectorised over the batch: numbers, timestamps, text,
arrays. Each function records the first failure of each row in a :class:`Failures`, naming
the field and the reason; :mod:`jobs.ingest.validate` applies them to whole rows.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Sequence
from datetime import UTC
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from jobs.config import ColumnGroup
from storage.bulk import Reject, raw_json
from storage.codec import utf8_encodable


class Failures:
    """First failure of each row of a batch."""

    def __init__(self, raw: pd.DataFrame, positions: Sequence[str]) -> None:
        self._raw = raw
        self._positions = positions
        self.bad = np.zeros(len(raw), dtype=bool)
        self._found: list[tuple[int, str | None, str]] = []

    def add(self, mask: np.ndarray, field: str | None, reason: str) -> None:
        new = np.asarray(mask, dtype=bool) & ~self.bad
        for index in np.flatnonzero(new):
            self._found.append((int(index), field, reason))
        self.bad |= new

    def add_rows(self, rows: dict[int, str], field: str) -> None:
        for index, reason in rows.items():
            if not self.bad[index]:
                self._found.append((index, field, reason))
                self.bad[index] = True

    def rejects(self) -> list[Reject]:
        records = self._raw.iloc[[i for i, _, _ in self._found]].to_dict("records") if self._found else []
        return [
            Reject(position=self._positions[i], field=field, reason=reason, raw=raw_json(record))
            for (i, field, reason), record in zip(self._found, records, strict=True)
        ]


def _arrow_text(series: pd.Series) -> bool:
    """Whether the cells are Arrow-backed text (CSV, Parquet, JSON lines): read at C speed."""
    return isinstance(series.dtype, pd.StringDtype) and series.dtype.storage == "pyarrow"


def column(raw: pd.DataFrame, name: str) -> pd.Series | None:
    return raw[name] if name in raw.columns else None


def missing_cells(series: pd.Series) -> np.ndarray:
    """Null, NaN or blank text."""
    missing = np.array(pd.isna(series), dtype=bool)
    if _arrow_text(series):
        # only a cell that does not start with a letter or digit can be blank: strip just those
        texts = pa.array(series.array)
        starts = pc.fill_null(pc.match_substring_regex(texts, "^[0-9A-Za-z]"), True)
        if isinstance(starts, pa.ChunkedArray):
            starts = starts.combine_chunks()
        others = np.flatnonzero(~np.asarray(starts.to_numpy(zero_copy_only=False), dtype=bool))
        if others.size:
            values = series.to_numpy(dtype=object, na_value=None)
            missing[others] |= np.array([isinstance(values[i], str) and not values[i].strip() for i in others])
    elif pd.api.types.is_string_dtype(series.dtype) and series.dtype != object:
        missing |= np.array(series.str.strip().eq("").fillna(False), dtype=bool)  # vectorised
    elif series.dtype == object:
        values = series.to_numpy(dtype=object)
        missing |= np.array([isinstance(v, str) and not v.strip() for v in values], dtype=bool)
    return missing


def number_column(series: pd.Series, field: str, failures: Failures) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        numbers = series.to_numpy(dtype=float, na_value=np.nan)
        failures.add(np.isnan(numbers), field, "missing value")
        failures.add(np.isinf(numbers), field, "not a finite number")
        return numbers
    failures.add(missing_cells(series), field, "missing value")
    numbers = text_numbers(series)
    failures.add(np.isnan(numbers), field, f"not a number: expected a numeric {field}")
    failures.add(~np.isfinite(numbers) & ~np.isnan(numbers), field, "not a finite number")
    return numbers


def timestamp_column(series: pd.Series, field: str, failures: Failures) -> pd.DatetimeIndex:
    failures.add(missing_cells(series), field, "missing value")
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        parsed = series.dt.tz_convert(UTC)
    elif pd.api.types.is_datetime64_dtype(series.dtype):
        parsed = series.dt.tz_localize(UTC)  # naive timestamps are taken as UTC
    else:
        parsed = _arrow_timestamps(series)
        if parsed is None:
            parsed = pd.to_datetime(series.astype(object), utc=True, errors="coerce", format="ISO8601")
    failures.add(parsed.isna().to_numpy(), field, "not an ISO-8601 timestamp")
    return pd.DatetimeIndex(parsed)


def _arrow_timestamps(series: pd.Series) -> pd.Series | None:
    """Arrow-backed text (CSV) read by Arrow's ISO-8601 cast, where it reads every cell: what it
    reads, it reads as pandas does (offsets, ``Z``, fractions to the microsecond); a cell it
    refuses (a space for the ``T``, a date alone, nanoseconds, a bad date) leaves the column
    to pandas."""
    if not _arrow_text(series):
        return None
    try:
        parsed = pc.cast(pa.array(series.array), pa.timestamp("us", tz="UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return pd.Series(parsed.to_pandas(), index=series.index)  # microseconds, as pandas reads such text


def text_column(series: pd.Series, field: str, failures: Failures, *, optional: bool = False) -> np.ndarray:
    """Text values ("" where missing); a missing value is a failure unless ``optional``."""
    missing = missing_cells(series)
    if not optional:
        failures.add(missing, field, "missing value")
    return _as_texts(series, missing, field, failures, fill="")


def _as_texts(
    series: pd.Series, missing: np.ndarray, field: str, failures: Failures, *, fill: str | None
) -> np.ndarray:
    """The cells as text in an object array, ``fill`` where missing. Text dtypes are taken as
    they are; other scalars become their text, and lists or mappings are failures."""
    if pd.api.types.is_string_dtype(series.dtype) and series.dtype != object:  # Parquet, CSV
        texts = series.to_numpy(dtype=object, na_value=fill)
        texts[missing] = fill
        return texts
    values = series.to_numpy(dtype=object)
    wrong = np.array([isinstance(v, list | dict | bytes | np.ndarray) for v in values], dtype=bool)
    failures.add(wrong & ~missing, field, "expected a text value")
    return np.array([fill if m else _text(v) for v, m in zip(values, missing, strict=True)], dtype=object)


MAX_ID_LENGTH = 200  # prediction_logs.prediction_id and labels.prediction_id


def too_long(values: np.ndarray, field: str, failures: Failures) -> None:
    lengths = np.fromiter((len(v) for v in values), dtype=np.int64, count=len(values))
    failures.add(lengths > MAX_ID_LENGTH, field, f"longer than {MAX_ID_LENGTH} characters")


def _text(value: object) -> str:
    """A value as text; an integral float is an integer that pandas widened (101.0 -> "101")
    because another row of the batch lacked the field, so it becomes the integer again."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def optional_text_column(series: pd.Series | None, field: str, failures: Failures) -> np.ndarray | None:
    """An optional text column (URIs) as an object array with None where missing; other
    scalars (an integer image id) become their text, as in :func:`text_column`."""
    if series is None:
        return None
    texts = _as_texts(series, missing_cells(series), field, failures, fill=None)
    unstorable(texts, field, failures)
    return texts


def unstorable(values: np.ndarray, field: str, failures: Failures) -> None:
    """Text no database here stores as given: a NUL character (PostgreSQL refuses it, SQLite's
    JSON reader cuts the text there) or a lone surrogate (not encodable as UTF-8)."""
    cells = values.tolist()
    try:
        joined = "".join(cells)  # all text: the common case, at C speed
    except TypeError:
        joined = "".join(v for v in cells if isinstance(v, str))
    if "\x00" not in joined and utf8_encodable(joined):
        return  # the common case: one check for the whole column
    failures.add(
        np.array([isinstance(v, str) and "\x00" in v for v in values], dtype=bool),
        field,
        "contains a NUL character, which cannot be stored",
    )
    failures.add(
        np.array([isinstance(v, str) and not utf8_encodable(v) for v in values], dtype=bool),
        field,
        "not valid Unicode text (a lone surrogate)",
    )


def numeric_block(raw: pd.DataFrame, names: Sequence[str], failures: Failures) -> np.ndarray | None:
    """Columns that are all present and numeric, converted at once; None to go column by column."""
    if not names or any(name not in raw.columns for name in names):
        return None
    dtypes = [raw[name].dtype for name in names]
    if all(pd.api.types.is_numeric_dtype(d) and not pd.api.types.is_bool_dtype(d) for d in dtypes):
        block = raw[list(names)].to_numpy(dtype=np.float64, na_value=np.nan)
    elif all(pd.api.types.is_string_dtype(d) for d in dtypes):  # text, as CSV gives it
        block = _parse_numbers(raw[list(names)])
        if block is None:
            return None
    else:
        return None
    bad = ~np.isfinite(block)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        first = bad[rows].argmax(axis=1)  # the first bad field of each bad row
        for column in np.unique(first):
            name = names[int(column)]
            picked = rows[first == column]
            values = block[picked, column]
            missing = np.zeros(len(raw), dtype=bool)
            missing[picked[np.isnan(values)]] = True
            failures.add(missing, name, "missing value")
            infinite = np.zeros(len(raw), dtype=bool)
            infinite[picked[~np.isnan(values)]] = True
            failures.add(infinite, name, "not a finite number")
    return block


def _number(value: object) -> float:
    """A cell as a number, NaN if it is none. Text is read as ``float()`` reads it (correctly
    rounded) but only in plain ASCII without digit separators, so "1_000" or Arabic-Indic
    digits are not numbers, whichever path reads them."""
    if isinstance(value, str):
        if not value.isascii() or "_" in value:
            return np.nan
        try:
            return float(value)
        except ValueError:
            return np.nan
    if isinstance(value, numbers.Real | Decimal):  # Decimal: a SQL source's NUMERIC column
        return float(value)
    return np.nan


# What float() reads the same as Arrow's text-to-double cast (both correctly rounded); the
# other cells a plain-ASCII float() may still read ("inf", " 1.5") go through _number.
_PLAIN_NUMBER = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"


def text_numbers(series: pd.Series) -> np.ndarray:
    """``_number`` of every cell, NaN where none; Arrow-backed text (CSV, Parquet) is parsed
    in C and only the cells that are not plain decimal numbers one by one."""
    if not _arrow_text(series):
        return np.fromiter(map(_number, series.tolist()), dtype=np.float64, count=len(series))
    texts = pa.array(series.array)
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if _only_number_bytes(texts):  # digits, signs, points and exponents: what both read alike
        plain = pc.is_valid(texts)
    else:
        plain = pc.fill_null(pc.match_substring_regex(texts, _PLAIN_NUMBER), False)
    try:
        parsed = pc.cast(pc.if_else(plain, texts, pa.scalar(None, texts.type)), pa.float64())
    except pa.ArrowInvalid:  # a cell Arrow will not read as float() does: every cell by _number
        return np.fromiter(map(_number, series.tolist()), dtype=np.float64, count=len(series))
    numbers = np.asarray(parsed.to_numpy(zero_copy_only=False), dtype=np.float64).copy()
    not_plain = ~np.asarray(plain.to_numpy(zero_copy_only=False), dtype=bool)
    others = np.flatnonzero(not_plain & ~np.asarray(series.isna()))
    if len(others):
        values = series.to_numpy(dtype=object)
        numbers[others] = [_number(values[i]) for i in others]
    return numbers


_NUMBER_BYTES = b"0123456789+-.eE"


def _only_number_bytes(texts: pa.Array) -> bool:
    """Whether the text cells hold only the bytes of plain decimal numbers (nulls aside)."""
    if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
        return False
    offset_type = np.int64 if pa.types.is_large_string(texts.type) else np.int32
    buffers = texts.buffers()
    if len(texts) == 0 or buffers[2] is None:
        return True
    offsets = np.frombuffer(buffers[1], dtype=offset_type)[texts.offset : texts.offset + len(texts) + 1]
    data = memoryview(buffers[2])[int(offsets[0]) : int(offsets[-1])]
    return not bytes(data).translate(None, _NUMBER_BYTES)


def _parse_numbers(frame: pd.DataFrame) -> np.ndarray | None:
    """Text cells (CSV) as numbers in one pass per column, by :func:`_number`'s rule; None if
    any cell is not a plain number (a blank, a word, "nan"), for the column-by-column path to
    name each bad cell."""
    n = len(frame)
    block = _cast_all(frame)
    if block is None:
        # by position: two features may read the same column
        columns = [text_numbers(frame.iloc[:, j]) for j in range(frame.shape[1])]
        block = np.column_stack(columns) if columns else np.empty((n, 0))
    return None if np.isnan(block).any() else block


def _cast_all(frame: pd.DataFrame) -> np.ndarray | None:
    """Every column at once, in one Arrow cast, where all are Arrow-backed text with no missing
    cell and only the bytes of plain decimal numbers (what :func:`text_numbers` casts in C one
    column at a time); None otherwise, or where Arrow refuses a cell."""
    chunks: list[pa.Array] = []
    for j in range(frame.shape[1]):
        series = frame.iloc[:, j]
        if not _arrow_text(series):
            return None
        texts = pa.array(series.array)
        chunks += texts.chunks if isinstance(texts, pa.ChunkedArray) else [texts]
    if not chunks or len({c.type for c in chunks}) != 1:
        return None
    joined = pa.concat_arrays(chunks)
    if joined.null_count or not _only_number_bytes(joined):
        return None
    try:
        parsed = pc.cast(joined, pa.float64())
    except pa.ArrowInvalid:
        return None
    values = np.asarray(parsed.to_numpy(zero_copy_only=False), dtype=np.float64)
    return np.ascontiguousarray(values.reshape(frame.shape[1], len(frame)).T)


def array_column(raw: pd.DataFrame, group: ColumnGroup, field: str, width: int, failures: Failures) -> np.ndarray:
    """An (n, width) float array from a JSON-array column or from one column per element."""
    n = len(raw)
    if group.columns is not None:
        block = numeric_block(raw, group.columns, failures)
        if block is not None:
            return block
        out = np.full((n, width), np.nan)
        for j, name in enumerate(group.columns):
            series = column(raw, name)
            if series is None:
                failures.add(np.ones(n, dtype=bool), name, f"missing field {name!r} ({field})")
                continue
            out[:, j] = number_column(series, name, failures)
        return out
    assert group.column is not None
    series = column(raw, group.column)
    if series is None:
        failures.add(np.ones(n, dtype=bool), group.column, f"missing field {group.column!r}")
        return np.full((n, width), np.nan)
    values = series.to_numpy(dtype=object)
    if n and all(isinstance(v, str) for v in values):
        try:  # one C-level parse for the whole batch; per row only if some row is bad
            fast = np.asarray(json.loads("[" + ",".join(values) + "]"), dtype=float)
            if fast.shape == (n, width):
                failures.add(~np.isfinite(fast).all(axis=1), group.column, "array holds non-finite values")
                return fast
        except (ValueError, TypeError):
            pass
    out = np.full((n, width), np.nan)
    bad: dict[int, str] = {}
    for i, value in enumerate(values):
        try:
            item = json.loads(value) if isinstance(value, str) else value
            if item is None or (isinstance(item, float) and np.isnan(item)):
                bad[i] = "missing value"
                continue
            row = np.asarray(item, dtype=float)
        except (ValueError, TypeError):
            bad[i] = f"expected a JSON array of {width} numbers"
            continue
        if row.shape != (width,):
            bad[i] = f"expected {width} values, got {row.size}"
        elif not np.isfinite(row).all():
            bad[i] = "array holds non-finite values"
        else:
            out[i] = row
    failures.add_rows(bad, group.column)
    return out
