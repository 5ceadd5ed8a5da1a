"""Arrow readers for CSV and JSON-lines files: the same batches as the per-row readers, faster.

What is accepted, quarantined, numbered and resumed is defined by :mod:`jobs.ingest.python_readers`;
these readers give the same batches (rows, positions, rejects, ``consumed``) and hand whatever
they cannot read exactly that way back to it:

* CSV is read by ``pyarrow.csv`` in blocks, every column as text (no type guessing: validation
  reads the numbers), ``""`` as missing. A row with the wrong number of fields goes through
  ``invalid_row_handler`` and is quarantined with its row number; resuming skips whole rows
  (``skip_rows_after_names``). A file that starts with a byte-order mark, has a blank line or a
  repeated column name, or turns out not to be UTF-8, is read (from there on) by :mod:`csv`.
* JSON lines are read in blocks of ``batch_size`` non-blank lines by ``pyarrow.json``. A block
  with a line it would read otherwise (not an object, a duplicated key, an integer past 64 bits,
  a lone surrogate escape, bytes that are not UTF-8, two objects on a line...) is parsed line by
  line instead, so that each bad line is quarantined with its number and reason. Text that Arrow
  would read as a timestamp is kept as the text.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json

from jobs.ingest import python_readers
from jobs.ingest.rawbatch import RawBatch
from storage.bulk import Reject, raw_json

CSV_BLOCK_BYTES = 4 << 20
_BOM = b"\xef\xbb\xbf"


# ---------------------------------------------------------------- CSV


def csv_batches(path: Path, batch_size: int, skip: int) -> Iterator[RawBatch]:
    """Batches of ``batch_size`` rows (good and bad) from row ``skip`` on."""
    header = _csv_header(path)
    if header is None or not _arrow_reads_csv_as_csv_does(path, header):
        yield from python_readers.csv_batches(path, batch_size, skip)
        return
    batches = _ArrowCsv(path, header, batch_size, skip)
    try:
        yield from batches
    except (_AskCsv, pa.ArrowInvalid, UnicodeDecodeError):  # a blank line, or not UTF-8 after all
        yield from python_readers.csv_batches(path, batch_size, batches.emitted)


def _csv_header(path: Path) -> list[str] | None:
    with path.open("r", encoding="utf-8", errors="replace", newline="") as handle:
        return next(csv.reader(handle), None)


def _arrow_reads_csv_as_csv_does(path: Path, header: list[str]) -> bool:
    """Whether the file's start makes Arrow read it as :mod:`csv` does: no BOM (Arrow drops
    it), no blank first line, a header of distinct names. Blank lines further on are found
    while reading (:class:`_ArrowCsv`)."""
    if not header or len(set(header)) != len(header):
        return False
    with path.open("rb") as handle:
        start = handle.read(len(_BOM))
    return not start.startswith(_BOM) and start[:1] not in (b"\n", b"\r")


class _ArrowCsv:
    """The batches of one CSV file, cut at the same rows as :func:`python_readers.csv_batches`."""

    def __init__(self, path: Path, header: list[str], batch_size: int, skip: int) -> None:
        self.path = path
        self.header = header
        self.batch_size = batch_size
        self.skip = skip
        self.emitted = skip  # rows consumed by the batches handed out so far
        self._bad: dict[int, Reject] = {}  # row index -> reject, as the parser meets them

    def _on_invalid(self, row: pa_csv.InvalidRow) -> str:
        index = int(row.number) - 1 if row.number is not None else -1  # number counts the header row
        if index < 0:
            raise pa.ArrowInvalid("a malformed CSV row without a row number")
        fields = next(iter(_split_csv_row(row.text)), [])
        raw = raw_json(dict(zip(self.header, fields, strict=False))) if fields else ""
        reason = f"expected {len(self.header)} fields, got {len(fields)}"
        self._bad[index] = Reject(position=f"row {index}", field=None, reason=reason, raw=raw)
        return "skip"

    def __iter__(self) -> Iterator[RawBatch]:
        reader = pa_csv.open_csv(
            self.path,
            read_options=pa_csv.ReadOptions(
                use_threads=False, block_size=CSV_BLOCK_BYTES, skip_rows_after_names=self.skip
            ),
            parse_options=pa_csv.ParseOptions(
                newlines_in_values=True, ignore_empty_lines=False, invalid_row_handler=self._on_invalid
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.string() for name in self.header},
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
        if reader.schema.names != self.header:
            raise pa.ArrowInvalid("Arrow reads another header than csv does")
        pending: list[pa.RecordBatch] = []
        pending_index: list[np.ndarray] = []
        next_index = self.skip + 1  # the row index of the next good row not yet placed
        for record_batch in reader:
            if _has_empty_row(record_batch):  # a blank line, which csv rejects, or ",,,": ask csv
                raise _AskCsv
            index = self._place(next_index, record_batch.num_rows)
            if len(index):
                next_index = int(index[-1]) + 1
                pending.append(record_batch)
                pending_index.append(index)
            # a batch is whole once a later good row exists: every bad row before it is known
            while next_index > self.emitted + self.batch_size:
                yield self._take(pending, pending_index, self.emitted + self.batch_size)
        last = max([next_index - 1, *self._bad])
        while self.emitted < last or self.emitted == self.skip:
            yield self._take(pending, pending_index, min(last, self.emitted + self.batch_size))
            if last == self.skip:
                return

    def _place(self, start: int, count: int) -> np.ndarray:
        """Row indices of ``count`` good rows from ``start`` on, around the bad rows met so far."""
        bad = sorted(i for i in self._bad if i >= start)
        candidates = np.arange(start, start + count + len(bad), dtype=np.int64)
        if bad:
            candidates = candidates[~np.isin(candidates, np.asarray(bad, dtype=np.int64))]
        return candidates[:count]

    def _take(self, pending: list[pa.RecordBatch], pending_index: list[np.ndarray], end: int) -> RawBatch:
        """The batch of rows ``emitted + 1`` to ``end``, taken off the pending good and bad rows."""
        taken: list[pa.RecordBatch] = []
        index: list[np.ndarray] = []
        while pending and pending_index[0][0] <= end:
            batch, rows = pending[0], pending_index[0]
            cut = int(np.searchsorted(rows, end, side="right"))
            taken.append(batch.slice(0, cut))
            index.append(rows[:cut])
            if cut == len(rows):
                pending.pop(0)
                pending_index.pop(0)
            else:
                pending[0], pending_index[0] = batch.slice(cut), rows[cut:]
        schema = pa.schema([(name, pa.string()) for name in self.header])
        table = pa.Table.from_batches(taken, schema=schema)
        rows = np.concatenate(index) if index else np.empty(0, dtype=np.int64)
        rejects = [self._bad.pop(i) for i in sorted(i for i in self._bad if i <= end)]
        self.emitted = end
        return RawBatch(
            frame=table.to_pandas(),
            positions=[f"row {i}" for i in rows.tolist()],
            rejects=rejects,
            consumed=end,
        )


class _AskCsv(Exception):
    """The rest of this file is for :mod:`csv` to read."""


def _has_empty_row(batch: pa.RecordBatch) -> bool:
    if batch.num_rows == 0 or any(column.null_count == 0 for column in batch.columns):
        return False
    empty = pc.is_null(batch.column(0))
    for column in batch.columns[1:]:
        empty = pc.and_(empty, pc.is_null(column))
    return bool(pc.any(empty).as_py())


def _split_csv_row(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


# ---------------------------------------------------------------- JSON lines


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def jsonl_batches(path: Path, batch_size: int, skip: int) -> Iterator[RawBatch]:
    """Batches of ``batch_size`` non-blank lines from line ``skip`` on."""
    as_text: set[str] = set()  # fields Arrow would read as timestamps in this file
    numbers: list[int] = []
    lines: list[bytes] = []
    consumed = skip
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if number <= skip:
                continue
            consumed = number
            if not line.strip():
                continue
            numbers.append(number)
            lines.append(line)
            if len(lines) >= batch_size:
                yield _json_block(numbers, lines, consumed, as_text)
                numbers, lines = [], []
    if lines or consumed == skip:
        yield _json_block(numbers, lines, consumed, as_text)


def _json_block(numbers: list[int], lines: list[bytes], consumed: int, as_text: set[str]) -> RawBatch:
    frame = _arrow_json_frame(lines, as_text) if lines else None
    if frame is None:
        return python_readers.json_block(numbers, lines, consumed)
    return RawBatch(frame=frame, positions=[f"line {n}" for n in numbers], consumed=consumed)


def _arrow_json_frame(lines: list[bytes], as_text: set[str]) -> pd.DataFrame | None:
    """The lines as one frame, exactly as the line parser would build it; None if unsure."""
    block = b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines)
    if python_readers.LONG_INTEGER in block.translate(python_readers.DIGIT_RUNS) or (
        b"\\u" in block and _SURROGATE_ESCAPE.search(block)  # the regex only where an escape is
    ):
        return None
    try:
        block.decode("utf-8")
        table = _read_json(block, as_text)
        found = {f.name for f in table.schema if pa.types.is_timestamp(f.type)}
        if found:
            as_text |= found
            table = _read_json(block, as_text)
        if table.num_rows != len(lines) or any(_holds_timestamp(f.type) for f in table.schema):
            return None
        # a field read as text is in the table even where no line has it: then ask the line parser
        if any(table.column(name).null_count == table.num_rows for name in as_text if name in table.schema.names):
            return None
        return table.to_pandas()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError, ValueError):
        return None


def _read_json(block: bytes, as_text: set[str]) -> pa.Table:
    schema = pa.schema([(name, pa.string()) for name in sorted(as_text)]) if as_text else None
    table = pa_json.read_json(
        io.BytesIO(block),
        read_options=pa_json.ReadOptions(use_threads=False, block_size=max(len(block), 1 << 16)),
        parse_options=pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer"),
    )
    if schema is None:
        return table
    # the explicit fields come first; put each field back where the lines have it
    first_seen = _key_order(block, table.schema.names)
    return table.select(sorted(table.schema.names, key=first_seen.__getitem__))


def _key_order(block: bytes, names: list[str]) -> dict[str, int]:
    """Each field's place in the first line (then the next lines) that has it."""
    order: dict[str, int] = {}
    for line in io.BytesIO(block):  # lazily: the first line names every field, as a rule
        missing = [n for n in names if n not in order]
        if not missing:
            break
        for name, _ in sorted(
            ((n, pos) for n in missing if (pos := line.find(_json_key(n))) >= 0), key=lambda item: item[1]
        ):
            order[name] = len(order)
    for name in names:
        order.setdefault(name, len(order))
    return order


def _json_key(name: str) -> bytes:
    return json.dumps(name).encode() + b":"


def _holds_timestamp(kind: pa.DataType) -> bool:
    if pa.types.is_timestamp(kind):
        return True
    if pa.types.is_struct(kind):
        return any(_holds_timestamp(kind.field(i).type) for i in range(kind.num_fields))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _holds_timestamp(kind.value_type)
    return False
