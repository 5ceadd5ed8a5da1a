"""Row validation of raw source batches, vectorised over the batch.

A row that breaks a rule becomes a :class:`storage.bulk.Reject` naming the field and the
reason (its first failure); the other rows go on. Nothing is dropped silently.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pandas as pd

from jobs.config import ColumnGroup, ModelSettings
from jobs.images import read_mask
from storage.bulk import PredictionRows, Reject, raw_json


@dataclass(frozen=True, kw_only=True)
class LabelRows:
    prediction_id: list[str]
    label: list[str]
    labelled_at: pd.DatetimeIndex
    mask_uri: list[str | None] | None = None  # the true masks (segmentation)

    def __len__(self) -> int:
        return len(self.prediction_id)


class _Failures:
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


def _column(raw: pd.DataFrame, name: str) -> pd.Series | None:
    return raw[name] if name in raw.columns else None


def _missing(series: pd.Series) -> np.ndarray:
    """Null, NaN or blank text."""
    missing = np.array(pd.isna(series), dtype=bool)
    if pd.api.types.is_string_dtype(series.dtype) and series.dtype != object:
        missing |= np.array(series.str.strip().eq("").fillna(False), dtype=bool)  # vectorised
    elif series.dtype == object:
        values = series.to_numpy(dtype=object)
        missing |= np.array([isinstance(v, str) and not v.strip() for v in values], dtype=bool)
    return missing


def _numbers(series: pd.Series, field: str, failures: _Failures) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        numbers = series.to_numpy(dtype=float, na_value=np.nan)
        failures.add(np.isnan(numbers), field, "missing value")
        failures.add(np.isinf(numbers), field, "not a finite number")
        return numbers
    failures.add(_missing(series), field, "missing value")
    numbers = np.fromiter(map(_number, series.tolist()), dtype=np.float64, count=len(series))
    failures.add(np.isnan(numbers), field, f"not a number: expected a numeric {field}")
    failures.add(~np.isfinite(numbers) & ~np.isnan(numbers), field, "not a finite number")
    return numbers


def _timestamps(series: pd.Series, field: str, failures: _Failures) -> pd.DatetimeIndex:
    failures.add(_missing(series), field, "missing value")
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        parsed = series.dt.tz_convert(UTC)
    elif pd.api.types.is_datetime64_dtype(series.dtype):
        parsed = series.dt.tz_localize(UTC)  # naive timestamps are taken as UTC
    else:
        parsed = pd.to_datetime(series.astype(object), utc=True, errors="coerce", format="ISO8601")
    failures.add(parsed.isna().to_numpy(), field, "not an ISO-8601 timestamp")
    return pd.DatetimeIndex(parsed)


def _texts(series: pd.Series, field: str, failures: _Failures, *, optional: bool = False) -> np.ndarray:
    """Text values ("" where missing); a missing value is a failure unless ``optional``."""
    missing = _missing(series)
    if not optional:
        failures.add(missing, field, "missing value")
    if pd.api.types.is_string_dtype(series.dtype) and series.dtype != object:
        return np.where(missing, "", series.to_numpy(dtype=object, na_value=""))
    values = series.to_numpy(dtype=object)
    wrong = np.array([isinstance(v, list | dict | bytes | np.ndarray) for v in values], dtype=bool)
    failures.add(wrong, field, "expected a text value")
    return np.array(["" if m else _text(v) for v, m in zip(values, missing, strict=True)], dtype=object)


MAX_ID_LENGTH = 200  # prediction_logs.prediction_id and labels.prediction_id


def _too_long(values: np.ndarray, field: str, failures: _Failures) -> None:
    lengths = np.fromiter((len(v) for v in values), dtype=np.int64, count=len(values))
    failures.add(lengths > MAX_ID_LENGTH, field, f"longer than {MAX_ID_LENGTH} characters")


def _text(value: object) -> str:
    """A value as text; an integral float is an integer that pandas widened (101.0 -> "101")
    because another row of the batch lacked the field, so it becomes the integer again."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _optional_texts(series: pd.Series | None, field: str, failures: _Failures) -> np.ndarray | None:
    """An optional text column (URIs) as an object array with None where missing; other
    scalars (an integer image id) become their text, as in :func:`_texts`."""
    if series is None:
        return None
    missing = _missing(series)
    if pd.api.types.is_string_dtype(series.dtype) and series.dtype != object:  # text already (Parquet, CSV)
        texts = series.to_numpy(dtype=object, na_value=None)
        texts[missing] = None
    else:
        values = series.to_numpy(dtype=object)
        wrong = np.array([isinstance(v, list | dict | bytes | np.ndarray) for v in values], dtype=bool)
        failures.add(wrong & ~missing, field, "expected a text value")
        texts = np.array([None if m else _text(v) for v, m in zip(values, missing, strict=True)], dtype=object)
    _unstorable(texts, field, failures)
    return texts


def _unstorable(values: np.ndarray, field: str, failures: _Failures) -> None:
    """Text no database here stores as given: a NUL character (PostgreSQL refuses it, SQLite's
    JSON reader cuts the text there) or a lone surrogate (not encodable as UTF-8)."""
    texts = [v for v in values.tolist() if isinstance(v, str)]
    joined = "".join(texts)
    try:
        joined.encode("utf-8")
        if "\x00" not in joined:
            return  # the common case: one check for the whole column
    except UnicodeEncodeError:
        pass
    failures.add(
        np.array([isinstance(v, str) and "\x00" in v for v in values], dtype=bool),
        field,
        "contains a NUL character, which cannot be stored",
    )
    failures.add(
        np.array([isinstance(v, str) and not _encodable(v) for v in values], dtype=bool),
        field,
        "not valid Unicode text (a lone surrogate)",
    )


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _numeric_block(raw: pd.DataFrame, names: Sequence[str], failures: _Failures) -> np.ndarray | None:
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


def _parse_numbers(frame: pd.DataFrame) -> np.ndarray | None:
    """Text cells (CSV) as numbers in one pass per column, with :func:`_number`'s rule; None
    if any cell is not a plain number (a blank, a word, "nan"), for the column-by-column path
    to name each bad cell."""
    n = len(frame)
    columns = []
    for j in range(frame.shape[1]):  # by position: two features may read the same column
        values = frame.iloc[:, j].tolist()
        if not all(isinstance(v, str) for v in values):
            return None
        joined = "".join(values)
        if not joined.isascii() or "_" in joined:
            return None
        try:
            columns.append(np.fromiter(map(float, values), dtype=np.float64, count=n))
        except ValueError:
            return None
    block = np.column_stack(columns) if columns else np.empty((n, 0))
    return None if np.isnan(block).any() else block


def _arrays(raw: pd.DataFrame, group: ColumnGroup, field: str, width: int, failures: _Failures) -> np.ndarray:
    """An (n, width) float array from a JSON-array column or from one column per element."""
    n = len(raw)
    if group.columns is not None:
        block = _numeric_block(raw, group.columns, failures)
        if block is not None:
            return block
        out = np.full((n, width), np.nan)
        for j, name in enumerate(group.columns):
            series = _column(raw, name)
            if series is None:
                failures.add(np.ones(n, dtype=bool), name, f"missing field {name!r} ({field})")
                continue
            out[:, j] = _numbers(series, name, failures)
        return out
    assert group.column is not None
    series = _column(raw, group.column)
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


def validate_predictions(
    raw: pd.DataFrame,
    positions: Sequence[str],
    model: ModelSettings,
    columns: dict[str, str],
    known_versions: Collection[int],
    tolerance: float,
) -> tuple[PredictionRows, list[Reject]]:
    """Split a raw batch into storable rows and rejects (with their reasons)."""
    failures = _Failures(raw, positions)
    n = len(raw)

    def field(name: str) -> pd.Series | None:
        return _column(raw, columns.get(name, name))

    def required(name: str) -> pd.Series:
        series = field(name)
        if series is None:
            source_name = columns.get(name, name)
            failures.add(np.ones(n, dtype=bool), source_name, f"missing field {source_name!r}")
            return pd.Series([None] * n, index=raw.index, dtype=object)
        return series

    prediction_id = _texts(required("prediction_id"), columns.get("prediction_id", "prediction_id"), failures)
    _too_long(prediction_id, columns.get("prediction_id", "prediction_id"), failures)
    _unstorable(prediction_id, columns.get("prediction_id", "prediction_id"), failures)
    ts = _timestamps(required("timestamp"), columns.get("timestamp", "timestamp"), failures)
    version_name = columns.get("model_version", "model_version")
    versions = _numbers(required("model_version"), version_name, failures)
    failures.add(np.isfinite(versions) & (versions != np.round(versions)), version_name, "not an integer")
    known = np.array(sorted(known_versions), dtype=float)
    unknown = np.isfinite(versions) & ~np.isin(versions, known)
    allowed = ", ".join(str(int(v)) for v in known) or "none registered"
    for value in np.unique(versions[unknown & ~failures.bad]):
        failures.add(unknown & (versions == value), version_name, f"unknown model version {value:g} (known: {allowed})")

    labels = np.asarray(model.class_labels, dtype=object)
    probabilities = _arrays(raw, model.probabilities, "probabilities", len(labels), failures)
    prob_field = model.probabilities.column or "probabilities"
    finite = np.isfinite(probabilities).all(axis=1)
    failures.add(
        finite & ((probabilities < 0) | (probabilities > 1)).any(axis=1), prob_field, "probability outside [0, 1]"
    )
    sums = probabilities.sum(axis=1)
    off = finite & (np.abs(sums - 1.0) > tolerance)
    failures.add_rows(
        {int(i): f"probabilities sum to {sums[i]:.4f}, not 1 (±{tolerance:g})" for i in np.flatnonzero(off)},
        prob_field,
    )

    label_series = field("predicted_label")
    if label_series is not None:
        label_name = columns.get("predicted_label", "predicted_label")
        predicted = _texts(label_series, label_name, failures)
        unknown_label = ~np.isin(predicted, labels) & ~_missing(label_series)
        failures.add(unknown_label, label_name, f"unknown label (allowed: {', '.join(model.class_labels)})")
    else:
        predicted = labels[np.nan_to_num(probabilities, nan=0.0).argmax(axis=1)] if n else np.empty(0, dtype=object)
    conf_series = field("confidence")
    if conf_series is None and model.task == "segmentation":
        conf_name = columns.get("confidence", "confidence")
        reason = f"missing field {conf_name!r} (the mean pixel confidence; required for segmentation)"
        failures.add(np.ones(n, dtype=bool), conf_name, reason)
    if conf_series is not None:
        conf_name = columns.get("confidence", "confidence")
        confidence = _numbers(conf_series, conf_name, failures)
        failures.add((confidence < 0) | (confidence > 1), conf_name, "confidence outside [0, 1]")
    else:
        confidence = np.nan_to_num(probabilities, nan=0.0).max(axis=1) if n else np.empty(0)

    numeric = None
    if model.numeric_features:
        names = tuple(columns.get(f, f) for f in model.numeric_features)
        numeric = _numeric_block(raw, names, failures)
        if numeric is None:
            numeric = np.column_stack(
                [_numbers(required(f), columns.get(f, f), failures) for f in model.numeric_features]
            )
    categorical = None
    if model.categorical_features:
        categorical = pd.DataFrame(  # object: a text no database stores is quarantined below, not raised here
            {f: _texts(required(f), columns.get(f, f), failures) for f in model.categorical_features}, dtype=object
        )
        for f in model.categorical_features:
            _unstorable(categorical[f].to_numpy(dtype=object), columns.get(f, f), failures)
    embedding = None
    if model.embedding is not None:
        width = model.embedding.width
        assert width is not None
        embedding = _arrays(raw, model.embedding, "embedding", width, failures)
    input_uri = _optional_texts(field("input_uri"), columns.get("input_uri", "input_uri"), failures)
    mask_uri = _optional_texts(field("mask_uri"), columns.get("mask_uri", "mask_uri"), failures)

    good = ~failures.bad
    rows = PredictionRows(
        prediction_id=prediction_id[good],
        ts=ts[good],
        model_version=versions[good].astype(np.int64),
        predicted_label=np.asarray(predicted, dtype=object)[good],
        confidence=confidence[good],
        probabilities=probabilities[good].astype(np.float32),
        numeric_features=numeric[good] if numeric is not None else None,
        categorical_features=categorical[good].reset_index(drop=True) if categorical is not None else None,
        embedding=embedding[good].astype(np.float32) if embedding is not None else None,
        input_uri=input_uri[good] if input_uri is not None else None,
        mask_uri=mask_uri[good] if mask_uri is not None else None,
    )
    return rows, failures.rejects()


def validate_labels(
    raw: pd.DataFrame,
    positions: Sequence[str],
    model: ModelSettings,
    columns: dict[str, str],
    now: datetime | None = None,
) -> tuple[LabelRows, list[Reject]]:
    """Labels need a prediction id and a known class label; ``labelled_at`` defaults to now.

    A segmentation model's label may carry ``mask_uri`` (the true class-index mask) instead of
    a class label: the mask's dominant class (most pixels; ties to the first class) is then
    stored as the label, so that ``labels.label`` stays a class, comparable with the
    prediction's dominant class. Such a mask must be readable inside ``image_roots`` when the
    label is ingested; a row with neither a label nor a mask is rejected naming the label field.
    """
    failures = _Failures(raw, positions)
    n = len(raw)
    id_name = columns.get("prediction_id", "prediction_id")
    label_name = columns.get("label", "label")
    mask_name = columns.get("mask_uri", "mask_uri")
    time_name = columns.get("labelled_at", "labelled_at")
    segmentation = model.task == "segmentation"
    masks = _optional_texts(_column(raw, mask_name), mask_name, failures) if segmentation else None
    has_mask = np.array([m is not None for m in masks], dtype=bool) if masks is not None else np.zeros(n, dtype=bool)
    if id_name not in raw.columns:
        failures.add(np.ones(n, dtype=bool), id_name, f"missing field {id_name!r}")
    ids = _texts(raw[id_name], id_name, failures) if id_name in raw.columns else np.array([""] * n, dtype=object)
    _too_long(ids, id_name, failures)
    _unstorable(ids, id_name, failures)
    either = f" (give a class label or a {mask_name!r})" if segmentation else ""
    if label_name in raw.columns:
        label_series = raw[label_name]
        given = ~_missing(label_series)
        failures.add(~given & ~has_mask, label_name, "missing value" + either)
        values = _texts(label_series, label_name, failures, optional=True)
    else:
        given = np.zeros(n, dtype=bool)
        failures.add(~has_mask, label_name, f"missing field {label_name!r}" + either)
        values = np.array([""] * n, dtype=object)
    failures.add(
        given & ~np.isin(values, np.asarray(model.class_labels, dtype=object)) & ~failures.bad,
        label_name,
        f"unknown label (allowed: {', '.join(model.class_labels)})",
    )
    if masks is not None:
        unreadable: dict[int, str] = {}
        for i in np.flatnonzero(has_mask & ~given & ~failures.bad):
            mask, problem = read_mask(masks[i], model.image_roots, len(model.class_labels))
            if mask is None:
                unreadable[int(i)] = f"true mask {problem}"
            else:
                counts = np.bincount(mask.ravel(), minlength=len(model.class_labels))
                values[i] = model.class_labels[int(counts.argmax())]
        failures.add_rows(unreadable, mask_name)
    if time_name in raw.columns:
        labelled_at = _timestamps(raw[time_name], time_name, failures)
    else:
        labelled_at = pd.DatetimeIndex([now or datetime.now(UTC)] * n)
    good = ~failures.bad
    return (
        LabelRows(
            prediction_id=ids[good].tolist(),
            label=values[good].tolist(),
            labelled_at=labelled_at[good],
            mask_uri=masks[good].tolist() if masks is not None else None,
        ),
        failures.rejects(),
    )
