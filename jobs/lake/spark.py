"""Lake sources profiled by Spark (``compute: spark``): ``mapInArrow`` over the day partitions.

Each Spark task turns its Arrow batches into day states with the very code of the local path
(:func:`jobs.lake.partial.batch_states`) and emits one JSON-serialised partial state per
segment; the driver merges them. Only those partials travel to the driver: a few of them
per task, each bounded (cells, the bottom-k sample, the top-k outliers), so the driver's
memory does not grow with the row count.

The session comes from ``settings.spark``: ``master`` (``local[2]`` in tests, a cluster URL
in production) or ``remote`` (a Spark Connect URL, ``sc://host:15002``, with ``pyspark-client``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Collection, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from drift import ReferenceProfile
from drift.errors import ConfigError
from jobs.check.windows import FindingsInputs
from jobs.config import LakeSource, ModelSettings, SparkSettings
from jobs.lake.base import DayState, IdentifiedRows, Segment
from jobs.lake.local import delta_snapshot, partition_days
from jobs.lake.partial import BatchJob, LakeEngine, RowFilter, batch_states, identified_rows, merge_into

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

STATE_SCHEMA = "segment int, state string"
ROWS_SCHEMA = "prediction_id string, confidence double, predicted_label string, input_uri string"


def file_set_mark(paths: Sequence[str]) -> int:
    """A 62-bit number naming a set of files (0: none)."""
    if not paths:
        return 0
    digest = hashlib.sha256("\n".join(sorted(paths)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 2


def spark_session(settings: SparkSettings) -> SparkSession:
    """A Spark session as configured (the running one, if any, is reused)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ConfigError("compute: spark needs pyspark (pip install 'pyspark>=4.0', and Java 17)") from exc
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers run this interpreter
    builder: Any = SparkSession.builder.appName(settings.app_name)
    builder = builder.remote(settings.remote) if settings.remote else builder.master(settings.master)
    builder = builder.config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
    builder = builder.config("spark.sql.session.timeZone", "UTC")
    # batches as large as the local path's: each one is validated and profiled as a whole
    builder = builder.config("spark.sql.execution.arrow.maxRecordsPerBatch", "100000")
    for key, value in settings.conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def _partials(job: BatchJob, partition_column: str) -> Any:
    """The function each task runs: its batches -> one JSON partial state per segment."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        merged: dict[int, DayState] = {}
        for i, batch in enumerate(batches):
            if not batch.num_rows:
                continue
            days = batch.column(partition_column)
            for day in sorted({str(d) for d in days.to_pylist()}):
                part = batch.filter(pa.compute.equal(days, day)) if len(set(days.to_pylist())) > 1 else batch
                part = part.drop_columns([partition_column])
                merge_into(merged, batch_states(job, part, day, f"spark#{day}#{os.getpid()}-{i}"))
        if merged:
            yield pa.RecordBatch.from_pydict(
                {
                    "segment": pa.array(list(merged), type=pa.int32()),
                    "state": pa.array([json.dumps(s.to_dict()) for s in merged.values()], type=pa.string()),
                }
            )

    return run


def _identified(picks: RowFilter, partition_column: str) -> Any:
    """The function each task runs on rows already picked by id: the accepted ones, four fields."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for i, batch in enumerate(batches):
            rows = identified_rows(picks, batch.drop_columns([partition_column]), None, f"spark#{os.getpid()}-{i}")
            if len(rows):
                yield rows.to_arrow()

    return run


def delta_files(snapshot: Any, root: str, column: str) -> list[tuple[str, str | None]]:
    """Each file of a Delta snapshot (its URI) with its value of the partition column."""
    table = pa.table(snapshot.get_add_actions(flatten=True))
    name = f"partition.{column}"
    if name not in table.column_names:
        raise ConfigError(f"Delta table {root} is not partitioned by {column!r} (partition_column)")
    out = []
    for path, value in zip(table.column("path").to_pylist(), table.column(name).to_pylist(), strict=True):
        uri = path if "://" in path or path.startswith("/") else f"{root.rstrip('/')}/{path}"
        out.append((uri, None if value is None else str(value)))
    return out


class SparkLake(LakeEngine):
    """A lake source profiled by a Spark cluster (or ``local[N]``)."""

    kind = "lake-spark"

    def __init__(
        self,
        model: ModelSettings,
        source: LakeSource,
        known_versions: Collection[int],
        tolerance: float,
        spark: SparkSettings,
    ) -> None:
        super().__init__(model, source, known_versions, tolerance)
        self.settings = spark
        self._session: SparkSession | None = None

    @property
    def session(self) -> SparkSession:
        if self._session is None:
            self._session = spark_session(self.settings)
        return self._session

    def _frame(self, days: Sequence[str]) -> DataFrame:
        from pyspark.sql import functions as F

        if self.source.format == "delta":
            return self._delta_frame(days)
        frame = self.session.read.format("parquet").load(self.source.path)
        return frame.where(F.col(self.source.partition_column).isin(list(days)))

    def _delta_frame(self, days: Sequence[str]) -> DataFrame:
        """The days' files of the Delta table's current snapshot (from its log, by ``deltalake``),
        read by Spark as Parquet: no Delta jars needed on the cluster. Their partition values
        are in the hive-style paths delta-rs and Spark write."""
        from pyspark.sql import functions as F

        snapshot = delta_snapshot(self.source.path)
        column = self.source.partition_column
        wanted = set(days)
        files = [uri for uri, value in delta_files(snapshot, self.source.path, column) if value in wanted]
        if not files:
            return self.session.createDataFrame([], self._delta_schema(snapshot))
        frame = self.session.read.option("basePath", self.source.path).parquet(*files)
        return frame.where(F.col(column).isin(list(days)))

    def _delta_schema(self, snapshot: Any) -> Any:
        from pyspark.sql.pandas.types import from_arrow_schema

        return from_arrow_schema(snapshot.to_pyarrow_dataset().schema)

    def versions(self, start: datetime, end: datetime) -> list[int]:
        name = self.source.columns.get("model_version", "model_version")
        rows = self._frame(partition_days([(start, end)])).select(name).distinct().collect()
        found = {int(r[0]) for r in rows if isinstance(r[0], int | float) and float(r[0]).is_integer()}
        return sorted(v for v in found if v in self.known_versions)

    def watermarks(self, version: int, days: Sequence[datetime]) -> dict[datetime, int]:
        """A hash of each partition's file names (from the table's metadata, no row read):
        Spark writes new files under new names, so an added or rewritten file changes it."""
        labels = [f"{d:%Y-%m-%d}" for d in days]
        files: dict[str, list[str]] = {}
        marker = f"{self.source.partition_column}="
        for path in self._frame(labels).inputFiles():
            part = next((p[len(marker) :] for p in path.split("/") if p.startswith(marker)), None)
            if part is not None:
                files.setdefault(part, []).append(path)
        return {d: file_set_mark(files.get(label, [])) for d, label in zip(days, labels, strict=True)}

    def rows_by_id(self, version: int, start: datetime, end: datetime, ids: Sequence[str]) -> IdentifiedRows:
        """The rows of ``ids``, picked by a semi-join with a broadcast table of the ids."""
        from pyspark.sql import functions as F

        wanted = sorted(set(ids))
        if not wanted:
            return IdentifiedRows.empty()
        name = self.source.columns.get("prediction_id", "prediction_id")
        keys = self.session.createDataFrame([(i,) for i in wanted], "dk_id string")
        frame = self._frame(partition_days([(start, end)]))
        picked = frame.join(F.broadcast(keys), F.col(name).cast("string") == keys["dk_id"], "left_semi")
        picks = self.row_filter(version, start, end)
        return IdentifiedRows.from_arrow(
            picked.mapInArrow(_identified(picks, self.source.partition_column), ROWS_SCHEMA).toArrow()
        )

    def compute(
        self, version: int, segments: Sequence[Segment], reference: ReferenceProfile, inputs: FindingsInputs
    ) -> dict[datetime, DayState]:
        job = self.job(version, segments, reference, inputs)
        frame = self._frame(partition_days(segments))
        merged: dict[int, DayState] = {}
        for row in frame.mapInArrow(_partials(job, self.source.partition_column), STATE_SCHEMA).toLocalIterator():
            merge_into(merged, {int(row[0]): DayState.from_dict(json.loads(row[1]))})
        return {segments[i][0]: state for i, state in merged.items()}
