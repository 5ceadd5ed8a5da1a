"""Quarantine replay: validate quarantined rows again, against today's config and registry.

A config typo or an unregistered version rejects rows that are fine. Once the cause is fixed,
:func:`replay` reads the raw rows back from the quarantine (kept whole for this), validates
them exactly as ingestion does (:func:`jobs.ingest.pipeline.prepare_batch`) and, per chunk, in
one transaction: stores the accepted rows (a prediction id already stored is not stored twice)
and takes them out of the quarantine; the others stay, with their new reason. Rows quarantined
while a replay runs are the next replay's. It holds the stream's ingest lease, so it never runs
alongside an ingest of the same stream, and running it again is harmless.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from drift.records import Record
from jobs.config import ModelSettings, Settings
from jobs.ingest import sources
from jobs.ingest.pipeline import BatchContext, Prepared, prepare_batch
from jobs.ingest.run import INGEST_LEASE, STREAMS
from jobs.runner.progress import Progress
from storage import bulk, quarantine, repository
from storage.leases import renewing_lease
from storage.models import QuarantinedRow

log = logging.getLogger(__name__)

CHUNK = 5000
NOT_AN_OBJECT = "cannot be replayed: the quarantined row is not a JSON object (a line that did not parse)"


@dataclass(frozen=True, kw_only=True)
class ReplayReport(Record):
    """What a replay of one stream did (or, dry, would do)."""

    record_name = "replay report"

    model: str
    stream: str
    dry_run: bool
    examined: int
    accepted: int  # taken out of the quarantine: stored now, or stored already (duplicates)
    stored: int  # of those, rows that were not in the logs yet
    still_rejected: int
    reasons: dict[str, int] = field(default_factory=dict)  # why the rest stay, most rows first


@dataclass
class _Tally:
    examined: int = 0
    accepted: int = 0
    stored: int = 0
    still_rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


def replay(
    session_factory: sessionmaker[Session],
    settings: Settings,
    model_name: str,
    *,
    reason: str | None = None,
    since: datetime | None = None,
    dry_run: bool = False,
    streams: Iterable[str] = STREAMS,
    progress: Progress | None = None,
) -> list[ReplayReport]:
    """Replay the quarantined rows of ``model_name`` whose reason contains ``reason`` and that
    were quarantined since ``since`` (all of them by default), stream by stream."""
    model = settings.model(model_name)
    with session_factory() as session:
        model_id = repository.get_model(session, model.name).id
        dialect = session.connection().dialect.name
    replayer = _Replayer(session_factory, settings, model, model_id, dialect, reason, since, dry_run, progress)
    reports = []
    for stream in streams:
        # a dry run changes nothing, so it needs no lease; a real one never runs beside an ingest
        lease = f"ingest:{model.name}:{stream}"
        with nullcontext() if dry_run else renewing_lease(session_factory, lease, INGEST_LEASE):
            tally = replayer.replay_stream(stream)
        report = ReplayReport(
            model=model.name,
            stream=stream,
            dry_run=dry_run,
            examined=tally.examined,
            accepted=tally.accepted,
            stored=tally.stored,
            still_rejected=tally.still_rejected,
            reasons=dict(tally.reasons.most_common()),
        )
        log.info(
            "replay %s/%s%s: %d examined, %d accepted (%d new), %d still rejected",
            model.name,
            stream,
            " (dry run)" if dry_run else "",
            tally.examined,
            tally.accepted,
            tally.stored,
            tally.still_rejected,
        )
        reports.append(report)
    return reports


@dataclass(frozen=True)
class _Replayer:
    session_factory: sessionmaker[Session]
    settings: Settings
    model: ModelSettings
    model_id: int
    dialect: str
    reason: str | None
    since: datetime | None
    dry_run: bool
    progress: Progress | None

    def replay_stream(self, stream: str) -> _Tally:
        tally = _Tally()
        with self.session_factory() as session:
            up_to = quarantine.last_id(session, self.model_id, stream)
            known = repository.known_versions(session, self.model_id)
        source = self.model.predictions if stream == "predictions" else self.model.labels
        context = BatchContext(
            stream=stream,
            model=self.model,
            columns=dict(source.columns) if source is not None else {},
            versions=frozenset(known),
            tolerance=self.settings.ingest.probability_tolerance,
            dialect=self.dialect,
            model_id=self.model_id,
        )
        after = 0
        while True:
            with self.session_factory.begin() as session:
                rows = quarantine.rows_to_replay(
                    session,
                    self.model_id,
                    stream,
                    after_id=after,
                    limit=CHUNK,
                    reason=self.reason,
                    since=self.since,
                    up_to_id=up_to,
                )
                if not rows:
                    return tally
                after = rows[-1].id
                self._replay_chunk(session, context, rows, tally)
            if self.progress is not None:
                self.progress.advance(len(rows), f"{self.model.name}/{stream} replay")

    def _replay_chunk(self, session: Session, context: BatchContext, rows: list[QuarantinedRow], tally: _Tally) -> None:
        prepared, unreadable = _prepare(context, rows)
        rejected = {int(r.position): r for r in prepared.rejects}
        accepted = [q.id for q in rows if q.id not in rejected and q.id not in unreadable]
        tally.examined += len(rows)
        tally.accepted += len(accepted)
        tally.still_rejected += len(rejected) + len(unreadable)
        tally.reasons.update(r.reason for r in rejected.values())
        tally.reasons.update(NOT_AN_OBJECT for _ in unreadable)
        if self.dry_run:
            return
        tally.stored += _store(session, self.model_id, prepared)
        quarantine.release(session, accepted)
        changed = []
        for q in rows:
            again = rejected.get(q.id)
            if again is not None and (again.field, again.reason) != (q.field, q.reason):
                changed.append((q.id, again.field, again.reason))
        quarantine.set_reasons(session, changed)


def _prepare(context: BatchContext, rows: list[QuarantinedRow]) -> tuple[Prepared, set[int]]:
    """The rows validated as a batch (positions are their quarantine ids); ids of rows whose
    raw content is not a JSON object, which no config can make valid."""
    records: list[dict[str, Any]] = []
    positions: list[str] = []
    unreadable: set[int] = set()
    for q in rows:
        try:
            record = json.loads(q.raw)
        except ValueError:
            record = None
        if isinstance(record, dict):
            records.append(record)
            positions.append(str(q.id))
        else:
            unreadable.add(q.id)
    batch = sources.RawBatch(frame=pd.DataFrame.from_records(records), positions=positions)
    return prepare_batch(context, batch), unreadable


def _store(session: Session, model_id: int, prepared: Prepared) -> int:
    conn = session.connection()
    if prepared.encoded is not None:
        return bulk.write_predictions(conn, prepared.encoded)
    if prepared.labels is not None:
        labels = prepared.labels
        return bulk.upsert_labels(
            conn, model_id, labels.prediction_id, labels.label, labels.labelled_at, labels.mask_uri
        )
    return 0
