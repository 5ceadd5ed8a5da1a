"""The per-row readers of text files: JSON lines parsed line by line, CSV by :mod:`csv`.

They define what is accepted and what is quarantined, with which position and reason. The
Arrow readers (:mod:`jobs.ingest.arrow_files`) take the common case faster and hand a block
they cannot read exactly as these would back to them.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from jobs.ingest.rawbatch import RawBatch
from storage.bulk import Reject, raw_json
from storage.codec import utf8_encodable


def jsonl_batches(path: Path, batch_size: int, skip: int) -> Iterator[RawBatch]:
    """Batches of ``batch_size`` non-blank lines from line ``skip`` on, parsed line by line."""
    numbers: list[int] = []
    lines: list[bytes] = []
    consumed = skip
    with path.open("rb") as handle:  # bytes: orjson reads them without a decode
        for number, line in enumerate(handle, start=1):
            if number <= skip:
                continue
            consumed = number
            if not line.strip():
                continue
            numbers.append(number)
            lines.append(line)
            if len(lines) >= batch_size:
                yield json_block(numbers, lines, consumed)
                numbers, lines = [], []
    if lines or consumed == skip:
        yield json_block(numbers, lines, consumed)


def json_block(numbers: list[int], lines: list[bytes], consumed: int) -> RawBatch:
    """Non-blank lines (with their line numbers) as one batch: records, and rejects with why."""
    records: list[dict[str, Any]] = []
    positions: list[str] = []
    rejects: list[Reject] = []
    for number, line in zip(numbers, lines, strict=True):
        record, problem = parse_json_line(line)
        if record is not None:
            records.append(record)
            positions.append(f"line {number}")
        else:
            raw = line.decode("utf-8", "replace").rstrip("\r\n")
            rejects.append(Reject(position=f"line {number}", field=None, reason=problem, raw=raw))
    return RawBatch(frame=pd.DataFrame.from_records(records), positions=positions, rejects=rejects, consumed=consumed)


# A run of 19 digits may be an integer past 64 bits, which orjson would turn into a float. Found
# by mapping digits to "9" and the rest to " " (a C-speed pass; a regex backtracks on numbers).
DIGIT_RUNS = bytes(ord("9") if ord("0") <= b <= ord("9") else ord(" ") for b in range(256))
LONG_INTEGER = b"9" * 19


def parse_json_line(line: bytes) -> tuple[dict[str, Any] | None, str]:
    """A JSON-lines record, or None and why not.

    orjson parses the common line (~2.5x json's speed); the standard library takes lines
    with integers orjson cannot hold exactly and lines orjson refuses (NaN, Infinity), so
    that what is accepted does not depend on the parser; bytes that are not UTF-8 are read
    as U+FFFD. A lone surrogate escape (``\\ud800``) cannot be stored as text and rejects the
    line.
    """
    record: Any = None
    fast = LONG_INTEGER not in line.translate(DIGIT_RUNS)
    if fast:
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            fast = False
    if not fast:
        try:
            record = json.loads(line.decode("utf-8", "replace"))
        except json.JSONDecodeError as exc:
            return None, f"not valid JSON: {exc.msg}"
        if not utf8_encodable(json.dumps(record, ensure_ascii=False, default=str)):
            return None, "not valid Unicode text (a lone surrogate)"
    if not isinstance(record, dict):
        return None, "expected a JSON object"
    return record, ""


def csv_batches(path: Path, batch_size: int, skip: int) -> Iterator[RawBatch]:
    with path.open("r", encoding="utf-8", errors="replace", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            yield RawBatch(frame=pd.DataFrame(), positions=[], consumed=0)
            return
        rows: list[list[str | None]] = []
        positions: list[str] = []
        rejects: list[Reject] = []
        consumed = skip
        for index, row in enumerate(reader, start=1):
            if index <= skip:
                continue
            consumed = index
            if len(row) != len(header):
                raw = raw_json(dict(zip(header, row, strict=False))) if row else ""
                rejects.append(
                    Reject(
                        position=f"row {index}",
                        field=None,
                        reason=f"expected {len(header)} fields, got {len(row)}",
                        raw=raw,
                    )
                )
            else:
                rows.append([v if v != "" else None for v in row])
                positions.append(f"row {index}")
            if len(rows) + len(rejects) >= batch_size:
                yield RawBatch(
                    frame=pd.DataFrame(rows, columns=header, dtype=object),
                    positions=positions,
                    rejects=rejects,
                    consumed=consumed,
                )
                rows, positions, rejects = [], [], []
        if rows or rejects or consumed == skip:
            yield RawBatch(
                frame=pd.DataFrame(rows, columns=header, dtype=object),
                positions=positions,
                rejects=rejects,
                consumed=consumed,
            )
