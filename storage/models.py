"""The schema: SQLAlchemy 2 typed ORM models, the same on SQLite and PostgreSQL.

Hot-path columns of :class:`PredictionLog` hold arrays as little-endian ``float32`` bytes
(class probabilities, embedding) and the numeric features as ``float64`` bytes in the order
of the model's declared feature list; categorical features are kept as JSON text. This keeps
ingestion at raw-driver speed and lets readers decode a whole window with one
``numpy.frombuffer``. :mod:`storage.codec` does the packing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identity.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    PostgreSQL stores ``timestamptz``; SQLite keeps no zone, so values are stored as UTC
    and come back marked as UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Model(Base):
    """A monitored model, known by its configured name."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    task: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())

    versions: Mapped[list[ModelVersion]] = relationship(
        back_populates="model", order_by="ModelVersion.version", cascade="all, delete-orphan"
    )


class ModelVersion(Base):
    """One trained version of a model, with its artefacts, metrics and lineage."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="challenger")
    artifact_path: Mapped[str | None] = mapped_column(Text)
    export_dir: Mapped[str | None] = mapped_column(Text)
    parent_version: Mapped[int | None] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    lineage: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
    promoted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    model: Mapped[Model] = relationship(back_populates="versions")


class PredictionLog(Base):
    """One logged production prediction. ``prediction_id`` is unique per model."""

    __tablename__ = "prediction_logs"
    __table_args__ = (
        UniqueConstraint("model_id", "prediction_id", name="uq_prediction_logs_model_prediction"),
        Index("ix_prediction_logs_model_ts", "model_id", "ts"),
        # a version's rows of a window, in (ts, id) order: what the check reads, chunk by chunk
        Index("ix_prediction_logs_model_version_ts", "model_id", "model_version", "ts"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    prediction_id: Mapped[str] = mapped_column(String(200))
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    model_version: Mapped[int] = mapped_column(Integer)
    predicted_label: Mapped[str] = mapped_column(String(200))
    confidence: Mapped[float] = mapped_column(Float)
    probabilities: Mapped[bytes] = mapped_column(LargeBinary)
    numeric_features: Mapped[bytes | None] = mapped_column(LargeBinary)
    categorical_features: Mapped[str | None] = mapped_column(Text)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    input_uri: Mapped[str | None] = mapped_column(Text)
    mask_uri: Mapped[str | None] = mapped_column(Text)  # segmentation: the predicted class-index mask (PNG)


class Label(Base):
    """A ground-truth label, joined to its prediction by ``prediction_id``.

    Labels live in their own table so that they may arrive before or long after their
    prediction; a later label for the same prediction replaces an earlier one.

    For a segmentation model ``label`` is the true mask's dominant class (the class with the
    most pixels, computed at ingestion when the row carries only ``mask_uri``), comparable
    with the prediction's ``predicted_label`` (its dominant predicted class); the mask itself
    is what IoU is measured on.
    """

    __tablename__ = "labels"
    __table_args__ = (UniqueConstraint("model_id", "prediction_id", name="uq_labels_model_prediction"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    prediction_id: Mapped[str] = mapped_column(String(200))
    label: Mapped[str] = mapped_column(String(200))
    labelled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    mask_uri: Mapped[str | None] = mapped_column(Text)  # segmentation: the true class-index mask (PNG)


class IngestWatermark(Base):
    """How far an incremental SQL source has been read: the last (timestamp, id) taken."""

    __tablename__ = "ingest_watermarks"
    __table_args__ = (UniqueConstraint("model_id", "stream", "source_key", name="uq_watermarks_source"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    stream: Mapped[str] = mapped_column(String(20))
    source_key: Mapped[str] = mapped_column(String(64))
    last_ts: Mapped[str | None] = mapped_column(Text)
    last_id: Mapped[str | None] = mapped_column(Text)
    rows_seen: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())


class IngestedFile(Base):
    """A dropped file, known by the sha256 of its content, so renames and re-drops are no-ops."""

    __tablename__ = "ingested_files"
    __table_args__ = (UniqueConstraint("model_id", "stream", "sha256", name="uq_ingested_files_content"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    stream: Mapped[str] = mapped_column(String(20))
    sha256: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(Text)
    rows_done: Mapped[int] = mapped_column(BigInteger, default=0)
    completed: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())


class QuarantinedRow(Base):
    """A rejected input row, kept whole with the reason it was rejected."""

    __tablename__ = "quarantine"
    __table_args__ = (Index("ix_quarantine_model_stream", "model_id", "stream"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    stream: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(Text)
    position: Mapped[str] = mapped_column(Text)
    field: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())


class JobRun(Base):
    """One run of a job (ingest, check, report, retrain), whoever started it."""

    __tablename__ = "job_runs"
    __table_args__ = (Index("ix_job_runs_job_started", "job", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job: Mapped[str] = mapped_column(String(40))
    model: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(20), default="running")
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)


class ReferenceSet(Base):
    """The reference of a model version: a profile plus a bounded sample, stored once.

    ``profile`` is :meth:`drift.ReferenceProfile.to_dict`; a check never rescans the rows
    it was built from.
    """

    __tablename__ = "reference_sets"
    __table_args__ = (UniqueConstraint("model_id", "version", name="uq_reference_sets_model_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(40))
    fingerprint: Mapped[str] = mapped_column(String(64))
    n_rows: Mapped[int] = mapped_column(BigInteger)
    profile: Mapped[dict[str, Any]] = mapped_column()
    extras: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WindowProfileRow(Base):
    """A mergeable profile of one day of one model version's predictions.

    Profiles are binned on the reference's edges, so each is tied to the reference
    ``fingerprint``; a weekly check merges seven of them instead of reading the rows.
    """

    __tablename__ = "window_profiles"
    __table_args__ = (UniqueConstraint("model_id", "version", "day", "fingerprint", name="uq_window_profiles_day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    day: Mapped[datetime] = mapped_column(UTCDateTime)
    fingerprint: Mapped[str] = mapped_column(String(64))
    n_rows: Mapped[int] = mapped_column(BigInteger)
    last_row_id: Mapped[int] = mapped_column(BigInteger)
    profile: Mapped[dict[str, Any]] = mapped_column()
    # the day's label-free findings state (jobs.check.state.DayFindings); None: computed before it existed
    findings: Mapped[dict[str, Any] | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DriftRun(Base):
    """One drift check of a window against its version's reference, with the verdicts and why."""

    __tablename__ = "drift_runs"
    __table_args__ = (Index("ix_drift_runs_model_window", "model_id", "window_end"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    n_rows: Mapped[int] = mapped_column(BigInteger)
    drifted: Mapped[bool] = mapped_column(Boolean)
    outputs_drifted: Mapped[bool | None] = mapped_column(Boolean)
    embedding_drifted: Mapped[bool | None] = mapped_column(Boolean)
    retrain_worthy: Mapped[bool] = mapped_column(Boolean, default=False)
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    figures: Mapped[dict[str, Any]] = mapped_column(default=dict)
    engine: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    verdict: Mapped[dict[str, Any] | None] = mapped_column()  # drift.concern.Verdict; None before verdicts
    revision: Mapped[dict[str, Any] | None] = mapped_column()  # set when late labels changed the verdict


class DriftColumnResult(Base):
    """One column's test in a drift run (kept as rows for trends across weeks)."""

    __tablename__ = "drift_column_results"
    __table_args__ = (Index("ix_drift_column_results_run", "run_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("drift_runs.id", ondelete="CASCADE"))
    column: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    method: Mapped[str] = mapped_column(String(40))
    score: Mapped[float | None] = mapped_column(Float)
    p_value: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    drifted: Mapped[bool] = mapped_column(Boolean)


class FlaggedPrediction(Base):
    """A prediction kept from a check: confidently wrong, or a confident outlier.

    Flagged rows outlive raw-row retention; the report shows them and retraining uses them.
    """

    __tablename__ = "flagged_predictions"
    __table_args__ = (
        Index("ix_flagged_predictions_run", "run_id"),
        Index("ix_flagged_predictions_model_prediction", "model_id", "prediction_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("drift_runs.id", ondelete="CASCADE"))
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    prediction_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(30))
    confidence: Mapped[float] = mapped_column(Float)
    score: Mapped[float | None] = mapped_column(Float)
    predicted_label: Mapped[str] = mapped_column(String(200))
    true_label: Mapped[str | None] = mapped_column(String(200))
    input_uri: Mapped[str | None] = mapped_column(Text)


class Lease(Base):
    """A named lock held in the database, with an expiry, shared by every process."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RetrainRun(Base):
    """One retraining attempt: why it started, what the gate decided, with the figures."""

    __tablename__ = "retrain_runs"
    __table_args__ = (Index("ix_retrain_runs_model_started", "model_id", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    trigger: Mapped[str] = mapped_column(String(40))
    drift_run_id: Mapped[int | None] = mapped_column(ForeignKey("drift_runs.id", ondelete="SET NULL"))
    parent_version: Mapped[int | None] = mapped_column(Integer)
    version: Mapped[int | None] = mapped_column(Integer)
    decision: Mapped[str] = mapped_column(String(20), default="running")
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    export: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)


class AlertState(Base):
    """What was last alerted for one alert identity (its fingerprint): the level, firing or resolved.

    ``key`` names the identity (``verdict:<model>:<week>``, ``blind:...``, ``job:<job>:<model>``,
    ``retrain:<model>:<run>``); ``fingerprint`` is its hash, the Alertmanager fingerprint.
    """

    __tablename__ = "alert_states"
    __table_args__ = (
        UniqueConstraint("fingerprint", name="uq_alert_states_fingerprint"),
        Index("ix_alert_states_kind_model", "kind", "model"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(20))
    model: Mapped[str | None] = mapped_column(Text)
    group_key: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    rank: Mapped[int] = mapped_column(Integer, default=0)
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    annotations: Mapped[dict[str, Any]] = mapped_column(default=dict)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_sent_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AlertDelivery(Base):
    """One message to one channel: delivered or failed (with the error, secrets redacted)."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (Index("ix_alert_deliveries_created", "created_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    channel: Mapped[str] = mapped_column(String(20))
    group_key: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))  # the message's: firing or resolved
    delivered: Mapped[bool] = mapped_column(Boolean)
    attempts: Mapped[int] = mapped_column(Integer)
    summary: Mapped[str] = mapped_column(Text)
    fingerprints: Mapped[list[Any]] = mapped_column(default=list)
    error: Mapped[str | None] = mapped_column(Text)


class ReviewDecision(Base):
    """One reviewer's decision on one prediction: a label, a skip, or the accept/reject of a mask.

    A decision that stores a label writes it to ``labels`` (the same path as ingested labels) at
    ``decided_at``, remembering the label it replaced so that an undo can restore it. A
    prediction with a decision leaves the review queue; deleting the decision (undo) returns it.
    ``external_id`` names an imported annotation (Label Studio), so an import is idempotent.
    """

    __tablename__ = "review_decisions"
    __table_args__ = (
        Index("ix_review_decisions_model_prediction", "model_id", "prediction_id"),
        Index("ix_review_decisions_model_reviewer", "model_id", "reviewer", "id"),
        Index("ix_review_decisions_model_decided", "model_id", "decided_at"),
        UniqueConstraint("model_id", "external_id", name="uq_review_decisions_external"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    prediction_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(30))  # the queue it came from (jobs.review.queue.ReviewKind)
    verdict: Mapped[str] = mapped_column(String(10))  # label, skip, accept or reject
    label: Mapped[str | None] = mapped_column(String(200))  # the label stored; None: none (skip, reject)
    predicted_label: Mapped[str] = mapped_column(String(200))
    reviewer: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(20))  # review, label-studio
    external_id: Mapped[str | None] = mapped_column(String(300))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime)
    previous_label: Mapped[str | None] = mapped_column(String(200))
    previous_labelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    previous_mask_uri: Mapped[str | None] = mapped_column(Text)


class ReviewQueueItem(Base):
    """A prediction in a model's review queue: flagged by a check, unsure, or a control sample.

    Kept up to date incrementally from the flagged predictions, the predictions and the labels
    stored since the last look (:class:`ReviewQueueSync`), so that a page of the queue is one
    index range scan. ``is_open`` is false once the prediction has a decision (or, but for a
    confidently wrong one, a label); ``priority`` is confidence × outlier score.
    """

    __tablename__ = "review_queue_items"
    __table_args__ = (
        UniqueConstraint("model_id", "prediction_id", name="uq_review_queue_items_prediction"),
        Index("ix_review_queue_items_order", "model_id", "is_open", "priority", "ts", "prediction_id"),
        Index("ix_review_queue_items_source", "model_id", "source", "is_open", "priority", "ts", "prediction_id"),
        Index("ix_review_queue_items_ts", "model_id", "is_open", "ts"),
        Index("ix_review_queue_items_source_ts", "model_id", "source", "is_open", "ts"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    prediction_id: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(30))  # confidently_wrong, confident_outlier, low_confidence, control
    is_open: Mapped[bool] = mapped_column(Boolean)
    priority: Mapped[float] = mapped_column(Float)
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    model_version: Mapped[int] = mapped_column(Integer)
    predicted_label: Mapped[str] = mapped_column(String(200))
    confidence: Mapped[float] = mapped_column(Float)
    score: Mapped[float | None] = mapped_column(Float)
    true_label: Mapped[str | None] = mapped_column(String(200))
    input_uri: Mapped[str | None] = mapped_column(Text)
    mask_uri: Mapped[str | None] = mapped_column(Text)
    categorical_features: Mapped[str | None] = mapped_column(Text)


class ReviewQueueSync(Base):
    """How far a model's review queue has taken in flagged predictions, predictions and labels,
    and the rules (confidence bound, control share) its unflagged items were chosen by."""

    __tablename__ = "review_queue_sync"

    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), primary_key=True)
    flagged_id: Mapped[int] = mapped_column(BigInteger, default=0)
    prediction_row_id: Mapped[int] = mapped_column(BigInteger, default=0)
    label_id: Mapped[int] = mapped_column(BigInteger, default=0)
    low_below: Mapped[float] = mapped_column(Float)
    control_share: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
