"""Preflight: the source's columns checked against the config before the first row is read.

A renamed feature, a mistyped column mapping or a wrong embedding size would otherwise reject
every row. :func:`preflight_columns` compares a sample of the source (the first rows of a SQL
table or query, of each file waiting in a folder) with every column the config names and says,
per missing column, which config key names it, what the source holds instead and, where one is
close, "did you mean". The ingest job runs it first and stops on a problem with a
:class:`~drift.errors.ConfigError`, before any row is read or any watermark moves;
``driftkeeper ingest --check`` runs only this.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from drift.errors import ConfigError
from jobs.config import ColumnGroup, FileSource, ModelSettings
from jobs.ingest.sources import TIMESTAMP_FIELD, SqlReader, file_format, list_files, read_file_batches
from storage.engine import make_source_engine

SAMPLE_ROWS = 50

# canonical prediction fields read only when present (checked when the config maps them)
_OPTIONAL_PREDICTION_FIELDS = ("predicted_label", "confidence", "input_uri", "mask_uri")
_OPTIONAL_LABEL_FIELDS = ("labelled_at", "mask_uri")


@dataclass(frozen=True, kw_only=True)
class Expected:
    """A source column the config asks for, and the config key that names it."""

    column: str
    key: str
    required: bool = True
    canonical: str | None = None  # the field's own name, when the config maps it to another column


@dataclass(frozen=True, kw_only=True)
class PreflightResult:
    """One source (a table, a query or a file) checked against one model's stream."""

    model: str
    stream: str
    source: str
    columns: tuple[str, ...]  # what the source holds
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "stream": self.stream,
            "source": self.source,
            "columns": list(self.columns),
            "problems": list(self.problems),
        }


def expected_columns(model: ModelSettings, stream: str, columns: dict[str, str]) -> list[Expected]:
    """Every source column the config names for ``stream``, with the key to fix if it is wrong."""
    prefix = f"models[{model.name}]"

    def mapped(name: str, fallback_key: str | None = None) -> Expected:
        if name in columns:
            return Expected(column=columns[name], key=f"{prefix}.{stream}.columns.{name}", canonical=name)
        key = fallback_key or f"{prefix}.{stream}.columns.{name} (not set: the column is expected as {name!r})"
        return Expected(column=name, key=key)

    if stream == "labels":
        wanted = [mapped("prediction_id")]
        label = mapped("label")
        if model.task == "segmentation":  # a class label or a true mask: checked in preflight_columns
            label = Expected(column=label.column, key=label.key, required=False, canonical=label.canonical)
        wanted.append(label)
        wanted += [mapped(name) for name in _OPTIONAL_LABEL_FIELDS if name in columns]
        return wanted
    wanted = [mapped(name) for name in ("prediction_id", "timestamp", "model_version")]
    wanted += [mapped(name) for name in _OPTIONAL_PREDICTION_FIELDS if name in columns]
    if model.task == "segmentation" and "confidence" not in columns:
        wanted.append(mapped("confidence"))
    wanted += [mapped(feature.name, f"{prefix}.features[{feature.name}]") for feature in model.features]
    wanted += _group_columns(model.probabilities, f"{prefix}.probabilities")
    if model.embedding is not None:
        wanted += _group_columns(model.embedding, f"{prefix}.embedding")
    return wanted


def _group_columns(group: ColumnGroup, key: str) -> list[Expected]:
    if group.column is not None:
        return [Expected(column=group.column, key=f"{key}.column")]
    assert group.columns is not None
    return [Expected(column=c, key=f"{key}.columns[{i}]") for i, c in enumerate(group.columns)]


def preflight_columns(
    model: ModelSettings,
    stream: str,
    columns: dict[str, str],
    source: str,
    sample: pd.DataFrame,
    *,
    extra: Sequence[Expected] = (),
) -> PreflightResult:
    """Check a sample of ``source`` (its first rows, or an empty frame with its columns)."""
    present = tuple(str(c) for c in sample.columns)
    problems: list[str] = []
    expected = list(extra) + expected_columns(model, stream, columns)
    mask = columns.get("mask_uri", "mask_uri")
    for item in expected:
        # the only optional one: a segmentation label, which a true mask column may replace
        if item.column not in present and (item.required or mask not in present):
            problems.append(_missing(item, present, source))
    problems += _width_problems(model, stream, sample, source)
    if not present and not len(sample):  # an empty file or table: nothing to compare yet
        problems = []
    return PreflightResult(
        model=model.name, stream=stream, source=source, columns=present, problems=tuple(dict.fromkeys(problems))
    )


def _missing(item: Expected, present: tuple[str, ...], source: str) -> str:
    suggestion = did_you_mean(item.column, present)
    if suggestion is None and item.canonical in present:  # mapped, but the source uses the field's own name
        suggestion = item.canonical
    hint = f"; did you mean {suggestion!r}?" if suggestion else ""
    listed = ", ".join(present) if len(present) <= 40 else ", ".join(present[:40]) + f", ... ({len(present)} in all)"
    return f"{item.key}: column {item.column!r} is not in {source}{hint} (its columns: {listed or 'none'})"


def did_you_mean(name: str, candidates: Sequence[str]) -> str | None:
    """The closest of ``candidates``: a case-insensitive match, one containing ``name`` (or
    contained in it), then difflib's closest."""
    lowered = {c.lower(): c for c in candidates}
    if name.lower() in lowered:
        return lowered[name.lower()]
    low = name.lower()
    containing = [c for c in candidates if low in c.lower() or (len(c) >= 3 and c.lower() in low)]
    if containing:
        return min(containing, key=lambda c: (abs(len(c) - len(name)), c))
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return close[0] if close else None


def _width_problems(model: ModelSettings, stream: str, sample: pd.DataFrame, source: str) -> list[str]:
    """A JSON-array column whose sampled rows all hold another number of values than configured."""
    if stream != "predictions" or not len(sample):
        return []
    groups = [("probabilities", model.probabilities, len(model.class_labels), "class_labels")]
    if model.embedding is not None and model.embedding.width is not None:
        groups.append(("embedding", model.embedding, model.embedding.width, "size"))
    problems = []
    for name, group, width, key in groups:
        if group.column is None or group.column not in sample.columns:
            continue
        lengths = {n for n in (_array_length(v) for v in sample[group.column].tolist()) if n is not None}
        if len(lengths) == 1 and (found := lengths.pop()) != width:
            what = f"{len(model.class_labels)} class_labels" if key == "class_labels" else f"size {width}"
            problems.append(
                f"models[{model.name}].{name}.{key}: {what}, but the first rows of {source} "
                f"hold {found} values in column {group.column!r}"
            )
    return problems


def _array_length(value: Any) -> int | None:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if isinstance(value, list | tuple | np.ndarray):
        return len(value)
    return None


# ---------------------------------------------------------------- the sources


def check_sql(model: ModelSettings, stream: str, reader: SqlReader) -> PreflightResult:
    """A table or query: its first rows against the config (the id column included)."""
    source = reader.describe()
    id_key = f"models[{model.name}].{stream}.id_column"
    return preflight_columns(
        model,
        stream,
        dict(reader.source.columns),
        source,
        reader.sample(SAMPLE_ROWS),
        extra=[Expected(column=reader.id_column, key=id_key)],
    )


def check_file(model: ModelSettings, stream: str, source: FileSource, path: Path) -> PreflightResult:
    """A file: its first rows (a CSV header, a Parquet schema, the keys of the first JSON lines)."""
    fmt = file_format(path, source.format)
    first = next(read_file_batches(path, fmt, SAMPLE_ROWS), None)
    sample = first.frame if first is not None else pd.DataFrame()
    return preflight_columns(model, stream, dict(source.columns), str(path), sample)


def check_stream(
    model: ModelSettings, stream: str, *, taken: Callable[[Path], bool] | None = None
) -> list[PreflightResult]:
    """Preflight one stream of ``model``: its SQL source, or each file of its folder not yet
    ``taken`` (all of them without a database to ask)."""
    source = model.ingested_source(stream)
    if source is None:
        return []
    if isinstance(source, FileSource):
        return [check_file(model, stream, source, p) for p in list_files(source) if taken is None or not taken(p)]
    column = TIMESTAMP_FIELD[stream]
    engine = make_source_engine(source.url.get_secret_value())
    try:
        return [check_sql(model, stream, SqlReader(source, engine, source.columns.get(column, column)))]
    finally:
        engine.dispose()


def raise_problems(results: Sequence[PreflightResult]) -> None:
    """A :class:`ConfigError` listing every problem found, if any."""
    problems = [p for r in results for p in r.problems]
    if problems:
        sources = sorted({r.source for r in results if r.problems})
        head = f"the config does not match the source ({', '.join(sources)}); nothing was read"
        raise ConfigError("\n  ".join([head, *problems]))
