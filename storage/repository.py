"""Queries and small writes used by the jobs. Every function takes an open Session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from drift.errors import ModelNotFound, ModelVersionNotFound
from storage.clock import wall_clock
from storage.models import (
    IngestedFile,
    IngestWatermark,
    JobRun,
    Label,
    Model,
    ModelVersion,
    PredictionLog,
    QuarantinedRow,
)


def ensure_model(session: Session, name: str, task: str) -> Model:
    """The model row for ``name``, created on first sight."""
    model = session.scalar(select(Model).where(Model.name == name))
    if model is None:
        model = Model(name=name, task=task, created_at=wall_clock())
        session.add(model)
        session.flush()
    return model


def get_model(session: Session, name: str) -> Model:
    model = session.scalar(select(Model).where(Model.name == name))
    if model is None:
        raise ModelNotFound(name)
    return model


def known_versions(session: Session, model_id: int) -> set[int]:
    return set(session.scalars(select(ModelVersion.version).where(ModelVersion.model_id == model_id)))


def get_version(session: Session, model: Model, version: int) -> ModelVersion:
    row = session.scalar(select(ModelVersion).where(ModelVersion.model_id == model.id, ModelVersion.version == version))
    if row is None:
        raise ModelVersionNotFound(model.name, version)
    return row


def register_version(
    session: Session,
    model: Model,
    version: int | None = None,
    *,
    artifact_path: str | None = None,
    status: str = "champion",
    parent_version: int | None = None,
    metrics: dict[str, Any] | None = None,
    lineage: dict[str, Any] | None = None,
) -> ModelVersion:
    """Add a version (the next number when ``version`` is None); an existing one is returned as is."""
    if version is None:
        current = session.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.model_id == model.id))
        version = (current or 0) + 1
    existing = session.scalar(
        select(ModelVersion).where(ModelVersion.model_id == model.id, ModelVersion.version == version)
    )
    if existing is not None:
        return existing
    if status == "champion":
        for other in session.scalars(
            select(ModelVersion).where(ModelVersion.model_id == model.id, ModelVersion.status == "champion")
        ):
            other.status = "retired"
    row = ModelVersion(
        model_id=model.id,
        version=version,
        status=status,
        artifact_path=artifact_path,
        parent_version=parent_version,
        metrics=metrics or {},
        lineage=lineage or {},
        created_at=wall_clock(),
        promoted_at=wall_clock() if status == "champion" else None,
    )
    session.add(row)
    session.flush()
    return row


def get_watermark(session: Session, model_id: int, stream: str, source_key: str) -> IngestWatermark:
    row = session.scalar(
        select(IngestWatermark).where(
            IngestWatermark.model_id == model_id,
            IngestWatermark.stream == stream,
            IngestWatermark.source_key == source_key,
        )
    )
    if row is None:
        row = IngestWatermark(model_id=model_id, stream=stream, source_key=source_key, rows_seen=0)
        session.add(row)
        session.flush()
    return row


def get_file_record(session: Session, model_id: int, stream: str, sha256: str) -> IngestedFile | None:
    return session.scalar(
        select(IngestedFile).where(
            IngestedFile.model_id == model_id, IngestedFile.stream == stream, IngestedFile.sha256 == sha256
        )
    )


@dataclass(frozen=True, kw_only=True)
class ModelStatus:
    name: str
    task: str
    champion: int | None
    versions: list[int]
    predictions: int
    labels: int
    quarantined: int
    first_ts: datetime | None
    last_ts: datetime | None  # the last accepted row's time
    quarantined_last_day: int  # rows quarantined in the 24 hours before the status was taken
    accepted_last_day: int  # accepted rows with a timestamp in those 24 hours

    @property
    def quarantine_share_last_day(self) -> float | None:
        total = self.quarantined_last_day + self.accepted_last_day
        return self.quarantined_last_day / total if total else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "champion": self.champion,
            "versions": self.versions,
            "predictions": self.predictions,
            "labels": self.labels,
            "quarantined": self.quarantined,
            "first_ts": self.first_ts.isoformat() if self.first_ts else None,
            "last_ts": self.last_ts.isoformat() if self.last_ts else None,
            "quarantined_last_day": self.quarantined_last_day,
            "accepted_last_day": self.accepted_last_day,
            "quarantine_share_last_day": self.quarantine_share_last_day,
        }


def model_status(session: Session, model: Model, now: datetime | None = None) -> ModelStatus:
    versions = list(
        session.scalars(select(ModelVersion).where(ModelVersion.model_id == model.id).order_by(ModelVersion.version))
    )
    count, first, last = session.execute(
        select(func.count(), func.min(PredictionLog.ts), func.max(PredictionLog.ts)).where(
            PredictionLog.model_id == model.id
        )
    ).one()
    labels = session.scalar(select(func.count()).select_from(Label).where(Label.model_id == model.id)) or 0
    quarantined = (
        session.scalar(select(func.count()).select_from(QuarantinedRow).where(QuarantinedRow.model_id == model.id)) or 0
    )
    day_ago = (now or wall_clock()) - timedelta(days=1)
    accepted_last_day = session.scalar(
        select(func.count()).where(PredictionLog.model_id == model.id, PredictionLog.ts >= day_ago)
    )
    quarantined_last_day = session.scalar(
        select(func.count()).where(QuarantinedRow.model_id == model.id, QuarantinedRow.created_at >= day_ago)
    )
    return ModelStatus(
        name=model.name,
        task=model.task,
        champion=next((v.version for v in versions if v.status == "champion"), None),
        versions=[v.version for v in versions],
        predictions=int(count or 0),
        labels=int(labels),
        quarantined=int(quarantined),
        first_ts=first,
        last_ts=last,
        quarantined_last_day=int(quarantined_last_day or 0),
        accepted_last_day=int(accepted_last_day or 0),
    )


def list_models(session: Session) -> list[Model]:
    return list(session.scalars(select(Model).order_by(Model.name)))


def recent_runs(session: Session, limit: int = 10, job: str | None = None, model: str | None = None) -> list[JobRun]:
    stmt = select(JobRun).order_by(JobRun.started_at.desc(), JobRun.id.desc()).limit(limit)
    if job is not None:
        stmt = stmt.where(JobRun.job == job)
    if model is not None:
        stmt = stmt.where(JobRun.model == model)
    return list(session.scalars(stmt))


def quarantined_rows(session: Session, model_id: int | None = None, limit: int = 50) -> list[QuarantinedRow]:
    stmt = select(QuarantinedRow).order_by(QuarantinedRow.id.desc()).limit(limit)
    if model_id is not None:
        stmt = stmt.where(QuarantinedRow.model_id == model_id)
    return list(session.scalars(stmt))


def quarantined_positions(session: Session, model_id: int, stream: str, source: str, positions: list[str]) -> set[str]:
    """Which of ``positions`` of ``source`` are already in the quarantine."""
    if not positions:
        return set()
    return set(
        session.scalars(
            select(QuarantinedRow.position).where(
                QuarantinedRow.model_id == model_id,
                QuarantinedRow.stream == stream,
                QuarantinedRow.source == source,
                QuarantinedRow.position.in_(positions),
            )
        )
    )
