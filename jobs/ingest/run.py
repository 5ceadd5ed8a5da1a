"""The ingest job: pull predictions and labels of each configured model, exactly once.

Each batch is one transaction holding its rows, its quarantined rejects and the advance of
the source's watermark (SQL) or of the file's progress record (files). A crash or a kill
mid-job loses at most the open batch's transaction; the rerun starts where the last
committed batch ended, and unique prediction ids make any replay harmless.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from jobs.config import FileSource, ModelSettings, Settings, SqlSource
from jobs.ingest import sources
from jobs.ingest.breaker import trip_if_rejected
from jobs.ingest.pipeline import BatchContext, Prepared, prefetched, prepare_batch
from jobs.ingest.preflight import check_file, check_sql, raise_problems
from jobs.runner.progress import Progress
from storage import bulk, repository
from storage.clock import wall_clock
from storage.engine import make_source_engine
from storage.leases import renewing_lease
from storage.models import IngestedFile

log = logging.getLogger(__name__)

STREAMS = ("predictions", "labels")
INGEST_LEASE = timedelta(minutes=5)


@dataclass(frozen=True, kw_only=True)
class IngestReport:
    model: str
    stream: str
    source: str
    rows_read: int
    inserted: int
    duplicates: int
    quarantined: int
    files_taken: int
    files_skipped: int
    batches: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class _Tally:
    rows_read: int = 0
    inserted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    files_taken: int = 0
    files_skipped: int = 0
    batches: int = 0


BatchHook = Callable[[str, int], None]
"""Called inside each batch's transaction, after its writes (tests inject crashes here)."""


class Ingestor:
    """Loads one model's streams; built per run, holds no state between runs."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        settings: Settings,
        model: ModelSettings,
        *,
        progress: Progress | None = None,
        before_commit: BatchHook | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.settings = settings
        self.model = model
        self.progress = progress
        self.before_commit = before_commit
        with session_factory.begin() as session:
            self.model_id = repository.ensure_model(session, model.name, model.task).id
            self._dialect = session.connection().dialect.name

    def run(self, streams: Iterable[str] = STREAMS) -> list[IngestReport]:
        reports = []
        for stream in streams:
            source = self.model.ingested_source(stream)
            if source is None:  # none, or its rows stay where they are (lake, push-down): nothing to pull
                continue
            start = time.monotonic()
            tally = _Tally()
            # one ingest of a model's stream at a time, whoever starts it (CLI, cron, daemon)
            with renewing_lease(self.session_factory, f"ingest:{self.model.name}:{stream}", INGEST_LEASE):
                if isinstance(source, SqlSource):
                    described = self._ingest_sql(stream, source, tally)
                else:
                    described = self._ingest_files(stream, source, tally)
            report = IngestReport(
                model=self.model.name,
                stream=stream,
                source=described,
                seconds=round(time.monotonic() - start, 3),
                **vars(tally),
            )
            log.info(
                "ingest %s/%s from %s: %d read, %d new, %d duplicates, %d quarantined",
                self.model.name,
                stream,
                described,
                tally.rows_read,
                tally.inserted,
                tally.duplicates,
                tally.quarantined,
            )
            reports.append(report)
        return reports

    # ------------------------------------------------------------ one batch

    def _prepare(
        self, stream: str, batch: sources.RawBatch, versions: set[int], last_key: tuple[Any, Any] | None = None
    ) -> Prepared:
        """Validate and encode a batch: pure CPU work, done on the prefetch thread."""
        return prepare_batch(self._batch_context(stream, versions), batch, last_key)

    def _batch_context(self, stream: str, versions: set[int]) -> BatchContext:
        return BatchContext(
            stream=stream,
            model=self.model,
            columns=self._columns(stream),
            versions=frozenset(versions),
            tolerance=self.settings.ingest.probability_tolerance,
            dialect=self._dialect,
            model_id=self.model_id,
        )

    def _store(self, session: Session, stream: str, source_name: str, prepared: Prepared, tally: _Tally) -> None:
        ingest = self.settings.ingest
        trip_if_rejected(
            source_name,
            prepared.rejects,
            prepared.rows_read,
            max_share=ingest.max_reject_share,
            min_rows=ingest.breaker_min_rows,
        )
        conn = session.connection()
        inserted = 0
        if prepared.encoded is not None:
            inserted = bulk.write_predictions(conn, prepared.encoded)
        elif prepared.labels is not None:
            labels = prepared.labels
            inserted = bulk.upsert_labels(
                conn, self.model_id, labels.prediction_id, labels.label, labels.labelled_at, labels.mask_uri
            )
        tally.inserted += inserted
        tally.duplicates += prepared.valid - inserted
        tally.quarantined += bulk.insert_rejects(conn, self.model_id, stream, source_name, prepared.rejects)
        tally.rows_read += prepared.rows_read
        tally.batches += 1
        if self.progress is not None:
            self.progress.advance(prepared.rows_read, f"{self.model.name}/{stream}")

    def _columns(self, stream: str) -> dict[str, str]:
        source = self.model.predictions if stream == "predictions" else self.model.labels
        return dict(source.columns) if source is not None else {}

    def _versions(self) -> set[int]:
        with self.session_factory() as session:
            return repository.known_versions(session, self.model_id)

    # ------------------------------------------------------------ SQL

    def _ingest_sql(self, stream: str, source: SqlSource, tally: _Tally) -> str:
        field = sources.TIMESTAMP_FIELD[stream]
        engine = make_source_engine(source.url.get_secret_value())
        reader = sources.SqlReader(source, engine, self._columns(stream).get(field, field))
        try:
            described = reader.describe()
            raise_problems([check_sql(self.model, stream, reader)])  # before the first row is read
            self._quarantine_null_timestamps(stream, reader, described, tally)
            with self.session_factory.begin() as session:
                mark = repository.get_watermark(session, self.model_id, stream, reader.key)
                cursor: list[str | None] = [mark.last_ts, mark.last_id]
            versions = self._versions()

            def produce() -> Prepared | None:
                frame, positions = reader.fetch_after(cursor[0], cursor[1], self.settings.ingest.batch_size)
                if not len(frame):
                    return None
                last = frame.iloc[-1]
                key = (_plain(last[reader.ts_column]), _plain(last[reader.id_column]))
                cursor[:] = [sources.encode_key(key[0]), sources.encode_key(key[1])]
                return self._prepare(stream, sources.RawBatch(frame=frame, positions=positions), versions, key)

            for prepared in prefetched(produce):
                assert prepared.last_key is not None
                with self.session_factory.begin() as session:
                    self._store(session, stream, described, prepared, tally)
                    mark = repository.get_watermark(session, self.model_id, stream, reader.key)
                    mark.last_ts = sources.encode_key(prepared.last_key[0])
                    mark.last_id = sources.encode_key(prepared.last_key[1])
                    mark.rows_seen += prepared.rows_read
                    mark.updated_at = wall_clock()
                    if self.before_commit is not None:
                        self.before_commit(stream, tally.batches)
        finally:
            reader.close()
            engine.dispose()
        return described

    def _quarantine_null_timestamps(
        self, stream: str, reader: sources.SqlReader, described: str, tally: _Tally
    ) -> None:
        """Rows without a timestamp are invisible to the watermark: quarantine each once.

        Every such row is looked at on every run (paging by id, from the start: a new one may
        sort anywhere), and only those not yet in the quarantine are added. They should be rare.
        """
        cursor: str | None = None
        while True:
            frame, positions = reader.fetch_null_timestamps(cursor, self.settings.ingest.batch_size)
            if not len(frame):
                return
            cursor = sources.encode_key(_plain(frame.iloc[-1][reader.id_column]))
            with self.session_factory.begin() as session:
                known = repository.quarantined_positions(session, self.model_id, stream, described, positions)
                rejects = [
                    bulk.Reject(
                        position=p,
                        field=reader.ts_column,
                        reason="missing timestamp: the row cannot be read incrementally",
                        raw=bulk.raw_json(r),
                    )
                    for p, r in zip(positions, frame.to_dict("records"), strict=True)
                    if p not in known
                ]
                tally.quarantined += bulk.insert_rejects(
                    session.connection(), self.model_id, stream, described, rejects
                )
                tally.rows_read += len(rejects)

    # ------------------------------------------------------------ files

    def _ingest_files(self, stream: str, source: FileSource, tally: _Tally) -> str:
        versions = self._versions()
        waiting: list[tuple[Path, str, int]] = []
        for path in sources.list_files(source):
            digest = sources.file_sha256(path)
            with self.session_factory() as session:
                record = repository.get_file_record(session, self.model_id, stream, digest)
                if (record is not None and record.completed) or any(digest == d for _, d, _ in waiting):
                    tally.files_skipped += 1
                    log.debug("skip %s: its content is taken (or was before) as another file", path)
                    continue
                waiting.append((path, digest, record.rows_done if record is not None else 0))
        # every waiting file is checked before the first row of any is read
        raise_problems([check_file(self.model, stream, source, path) for path, _, _ in waiting])
        for path, digest, skip in waiting:
            fmt = sources.file_format(path, source.format)
            self._ingest_one_file(stream, path, fmt, digest, skip, versions, tally)
            tally.files_taken += 1
        return str(source.path)

    def _ingest_one_file(
        self, stream: str, path: Path, fmt: str, digest: str, skip: int, versions: set[int], tally: _Tally
    ) -> None:
        context = self._batch_context(stream, versions)
        batch_size = self.settings.ingest.batch_size
        batches = sources.read_file_batches(path, fmt, batch_size, skip)

        def produce() -> Prepared | None:
            batch = next(batches, None)
            return None if batch is None else prepare_batch(context, batch)

        for prepared in prefetched(produce):
            with self.session_factory.begin() as session:
                record = repository.get_file_record(session, self.model_id, stream, digest)
                if record is None:
                    record = IngestedFile(
                        model_id=self.model_id,
                        stream=stream,
                        sha256=digest,
                        name=str(path),
                        rows_done=0,
                        completed=False,
                    )
                    session.add(record)
                self._store(session, stream, str(path), prepared, tally)
                record.rows_done = prepared.consumed
                record.updated_at = wall_clock()
                if self.before_commit is not None:
                    self.before_commit(stream, tally.batches)
        with self.session_factory.begin() as session:
            record = repository.get_file_record(session, self.model_id, stream, digest)
            if record is None:  # an empty file
                record = IngestedFile(model_id=self.model_id, stream=stream, sha256=digest, name=str(path), rows_done=0)
                session.add(record)
            record.completed = True


def _plain(value: Any) -> Any:
    """numpy / pandas scalars as plain Python values, for watermarks."""
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "item"):
        return value.item()
    return value


def ingest(
    session_factory: sessionmaker[Session],
    settings: Settings,
    model: str | None = None,
    *,
    streams: Iterable[str] = STREAMS,
    progress: Progress | None = None,
) -> list[IngestReport]:
    """Ingest every configured model (or just ``model``); the job's entry point."""
    reports: list[IngestReport] = []
    for model_settings in settings.select_models(model):
        reports += Ingestor(session_factory, settings, model_settings, progress=progress).run(streams)
    return reports
