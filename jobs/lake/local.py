"""Lake sources read in this process with ``pyarrow.dataset`` (``compute: local``).

A Parquet lake is read as hive-partitioned files; a Delta table as the files of its current
snapshot, listed by its transaction log (:func:`delta_snapshot`).

Only the partitions of the segments asked for are opened, a batch at a time, so memory stays
flat at any row count; the work is one Python process, like a pass over stored rows.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from drift import ReferenceProfile
from drift.errors import ConfigError
from jobs.check.windows import FindingsInputs
from jobs.config import LakeSource, ModelSettings
from jobs.lake.base import DayState, IdentifiedRows, Segment
from jobs.lake.partial import LakeEngine, batch_states, identified_rows, merge_into

BATCH_ROWS = 100_000
STREAM_BUFFER = 1 << 20


def partition_days(segments: Sequence[Segment]) -> list[str]:
    """The partition values (``YYYY-MM-DD``) holding the segments' rows."""
    days: set[str] = set()
    for start, end in segments:
        day = start.replace(hour=0, minute=0, second=0, microsecond=0)
        while day < end:
            days.add(f"{day:%Y-%m-%d}")
            day += timedelta(days=1)
    return sorted(days)


def delta_snapshot(path: str) -> Any:
    """The current snapshot of a Delta table, read from its transaction log by ``deltalake``
    (delta-rs): its Parquet files and their partition values, no JVM needed. Reader features
    delta-rs does not support (deletion vectors, say) are refused by it with a clear error."""
    try:
        from deltalake import DeltaTable
    except ImportError as exc:
        raise ConfigError("format: delta needs the deltalake package (pip install 'deltalake>=1.0')") from exc
    try:
        return DeltaTable(path)
    except Exception as exc:  # deltalake's TableNotFoundError and friends
        raise ConfigError(f"lake source {path}: not a readable Delta table: {exc}") from exc


class LakeTable:
    """One lake table's partitions and files, with pyarrow (local paths or fsspec URIs)."""

    def __init__(self, source: LakeSource) -> None:
        self.source = source
        if source.format == "delta":
            self.dataset = delta_snapshot(source.path).to_pyarrow_dataset()
        else:
            partitioning = ds.partitioning(pa.schema([(source.partition_column, pa.string())]), flavor="hive")
            self.dataset = ds.dataset(source.path, format="parquet", partitioning=partitioning)

    def _day_filter(self, days: Sequence[str]) -> ds.Expression:
        return pc.field(self.source.partition_column).isin(list(days))

    def batches(
        self, days: Sequence[str], columns: Sequence[str] | None = None
    ) -> Iterator[tuple[str, pa.RecordBatch]]:
        """(partition day, batch) of the given days, file by file.

        Each file is streamed by ``pyarrow.parquet`` through a 1 MiB buffer, page by page, so
        memory holds a batch, not a whole row group (a 500,000-row row group read through the
        dataset scanner peaked at 1.1 GB, streamed at 0.5 GB, and three times faster).
        """
        for fragment in self.dataset.get_fragments(filter=self._day_filter(days)):
            day = str(ds.get_partition_keys(fragment.partition_expression)[self.source.partition_column])
            with self.dataset.filesystem.open_input_file(fragment.path) as handle:
                reader = pq.ParquetFile(handle, pre_buffer=False, buffer_size=STREAM_BUFFER)
                yield from (
                    (day, batch)
                    for batch in reader.iter_batches(batch_size=BATCH_ROWS, columns=list(columns) if columns else None)
                )

    def files_by_day(self, days: Sequence[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for fragment in self.dataset.get_fragments(filter=self._day_filter(days)):
            day = str(ds.get_partition_keys(fragment.partition_expression)[self.source.partition_column])
            out.setdefault(day, []).append(fragment.path)
        return out

    def watermark(self, days: Sequence[str]) -> dict[str, int]:
        """Per partition, the newest file's modification time (ns) plus its file count."""
        files = self.files_by_day(days)
        fs = self.dataset.filesystem
        out = {}
        for day, paths in files.items():
            infos = fs.get_file_info(paths)
            out[day] = max(int(i.mtime_ns or 0) for i in infos) + len(paths)
        return out


class LocalLake(LakeEngine):
    """A lake source profiled batch by batch in this process."""

    kind = "lake-local"

    def __init__(self, model: ModelSettings, source: LakeSource, known_versions: Collection[int], tolerance: float):
        super().__init__(model, source, known_versions, tolerance)
        self.table = LakeTable(source)

    def versions(self, start: datetime, end: datetime) -> list[int]:
        name = self.source.columns.get("model_version", "model_version")
        found: set[int] = set()
        for _, batch in self.table.batches(partition_days([(start, end)]), columns=[name]):
            values = pc.unique(batch.column(name)).to_pylist()
            found |= {int(v) for v in values if isinstance(v, int | float) and float(v).is_integer()}
        return sorted(v for v in found if v in self.known_versions)

    def watermarks(self, version: int, days: Sequence[datetime]) -> dict[datetime, int]:
        marks = self.table.watermark([f"{d:%Y-%m-%d}" for d in days])
        return {d: marks.get(f"{d:%Y-%m-%d}", 0) for d in days}

    def rows_by_id(self, version: int, start: datetime, end: datetime, ids: Sequence[str]) -> IdentifiedRows:
        wanted = pa.array(sorted(set(ids)), type=pa.string())
        if not len(wanted):
            return IdentifiedRows.empty()
        picks = self.row_filter(version, start, end)
        parts = [
            identified_rows(picks, batch, wanted, f"{self.source.path}#{day}#{i}")
            for i, (day, batch) in enumerate(self.table.batches(partition_days([(start, end)])))
        ]
        return IdentifiedRows.concat([p for p in parts if len(p)])

    def compute(
        self, version: int, segments: Sequence[Segment], reference: ReferenceProfile, inputs: FindingsInputs
    ) -> dict[datetime, DayState]:
        job = self.job(version, segments, reference, inputs)
        merged: dict[int, DayState] = {}
        for i, (day, batch) in enumerate(self.table.batches(partition_days(segments))):
            merge_into(merged, batch_states(job, batch, day, f"{self.source.path}#{day}#{i}"))
        return {segments[i][0]: state for i, state in merged.items()}
