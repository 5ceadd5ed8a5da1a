"""The weekly summary (``summary.json``, schema 2), typed: what ``reports`` renders and the
report job fills.

A tree of frozen dataclasses. :meth:`WeeklySummary.to_dict` is the JSON of ``summary.json``
(keys in field order, tuples as lists, datetimes as ISO 8601, statuses as their strings) and
:meth:`WeeklySummary.from_dict` reads it back, validated by pydantic; a summary that does not
fit raises :class:`~drift.errors.ValidationError` naming the key. ``None`` means "no data" for
a section (no check ran, no model that produces it).

It lives in ``reports`` because ``reports`` owns the shape it renders; it imports only
``drift`` and ``storage`` (statuses), so ``jobs`` imports it and ``reports`` never imports jobs.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Self

from drift.concern import Concern, VerdictLevel
from drift.errors import ValidationError
from drift.records import Record
from drift.result import ColumnKind
from drift.segmentation import MaskQuality
from reports.baselines import Baselines
from reports.slices import Slices
from storage.statuses import RetrainDecision, WeekStatus

SCHEMA = 2
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
READABLE_SCHEMAS = (1, 2)  # schema 1 (before verdict levels) is read as schema 2

Number = int | float  # metrics keep ints as ints


class _Record(Record):
    record_name = "summary"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Window(_Record):
    """The week's window: Monday 00:00 UTC to the Monday after."""

    start: datetime
    end: datetime


@dataclasses.dataclass(frozen=True, kw_only=True)
class Revision(_Record):
    """Late labels changed the week's verdict after it was first given."""

    at: datetime
    previous: WeekStatus
    why: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class Verdict(_Record):
    """``status``: no-data, or the level (ok, watch, act) of the week's main check, with its
    concerns ranked by level, then impact (see :mod:`drift.concern`)."""

    status: WeekStatus
    headline: str
    reasons: tuple[Concern, ...] = ()
    revised: Revision | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ServingVersion(_Record):
    """The version that served most of the week's predictions (not necessarily today's champion)."""

    version: int
    promoted_at: datetime | None
    metrics: dict[str, Number]  # the gate's figures when it was promoted
    export_dir: str | None
    champion_now: bool  # whether it is still the champion when the report is written
    reference_week: str | None = None  # the ISO week its reference set was taken from, if from a window


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClassPerformance(_Record):
    """Realized per-class precision, recall and F1 of the week, and its confusion matrix (rows: true)."""

    labels: tuple[str, ...]
    precision: tuple[float | None, ...]
    recall: tuple[float | None, ...]
    f1: tuple[float | None, ...]
    support: tuple[int, ...]
    confusion_matrix: tuple[tuple[int, ...], ...]
    n_labelled: int
    label_coverage: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class Action(_Record):
    """One thing to do this week, most useful first."""

    kind: str  # label, retrain, slice, data
    text: str
    href: str | None = None  # a file next to the report (the CSV of predictions to label)

    def __post_init__(self) -> None:
        if self.href is not None and not _FILE_NAME.fullmatch(self.href):
            raise ValidationError(f"summary action: href {self.href!r} must be a file name in the report's folder")


@dataclasses.dataclass(frozen=True, kw_only=True)
class CheckRun(_Record):
    """One version's check of the week (the last one stored)."""

    version: int
    n_rows: int
    drifted: bool
    outputs_drifted: bool | None
    embedding_drifted: bool | None
    retrain_worthy: bool
    reasons: tuple[str, ...]
    policy: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrendPoint(_Record):
    """A column's score in one of the past weeks."""

    week: str
    score: float | None
    drifted: bool | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ColumnRow(_Record):
    """One tested column (a feature, an output), with its weekly trend."""

    column: str
    kind: ColumnKind
    method: str
    score: float | None  # None: not finite (JSON has no NaN)
    p_value: float | None
    effect: float | None
    threshold: float
    drifted: bool
    trend: tuple[TrendPoint, ...] = ()


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClassDistribution(_Record):
    """Share of predictions per class, reference against current."""

    labels: tuple[str, ...]
    reference: tuple[float, ...]
    current: tuple[float, ...]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConfidenceHistogram(_Record):
    """Share of predictions per confidence bin (``edges`` has one more entry than the shares)."""

    edges: tuple[float, ...]
    reference: tuple[float, ...]
    current: tuple[float, ...]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Outputs(_Record):
    columns: tuple[ColumnRow, ...]
    class_distribution: ClassDistribution | None
    confidence: ConfidenceHistogram | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Embedding(_Record):
    method: str
    score: float | None
    p_value: float | None
    drifted: bool


@dataclasses.dataclass(frozen=True, kw_only=True)
class CalibrationBin(_Record):
    confidence: float
    accuracy: float
    count: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class CalibrationCurve(_Record):
    ece: float
    bins: tuple[CalibrationBin, ...]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Calibration(_Record):
    reference: CalibrationCurve | None
    current: CalibrationCurve | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Example(_Record):
    """A flagged prediction shown in a thumbnail grid."""

    prediction_id: str
    input_uri: str | None
    thumbnail: str | None  # a data: URI; the view embeds only small PNGs
    true_label: str | None
    predicted_label: str
    confidence: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class OutlierExample(Example):
    score: float  # the outlier score


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConfidentlyWrong(_Record):
    count: int
    rate: float | None
    reference_rate: float | None
    rose_significantly: bool
    examples: tuple[Example, ...] = ()


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConfidentOutliers(_Record):
    count: int
    rate: float | None
    examples: tuple[OutlierExample, ...] = ()


Segmentation = MaskQuality  # the check's segmentation figure, shown as it is


@dataclasses.dataclass(frozen=True, kw_only=True)
class PerformanceWeek(_Record):
    """Estimated (label-free) against realized accuracy of one week, with their intervals."""

    week: str
    estimated_accuracy: float | None
    estimate_low: float | None
    estimate_high: float | None
    realized_accuracy: float | None
    realized_low: float | None
    realized_high: float | None
    label_coverage: float
    n_labelled: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class Performance(_Record):
    weeks: tuple[PerformanceWeek, ...]
    trustworthy: bool
    warning: str | None
    classes: ClassPerformance | None = None  # the week's own labels, per class


@dataclasses.dataclass(frozen=True, kw_only=True)
class Retrain(_Record):
    """A retrain that ran to its end this week."""

    at: datetime
    version: int | None
    decision: RetrainDecision
    reasons: tuple[str, ...]
    metrics: dict[str, Number]
    export_sizes: dict[str, int]

    def __post_init__(self) -> None:
        finished = RetrainDecision.finished()
        if self.decision not in finished:
            raise ValidationError(f"retrain decision {str(self.decision)!r} is not one of {', '.join(finished)}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class QuarantineReason(_Record):
    reason: str
    count: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class LabelDelay(_Record):
    """Days from prediction to label, over the week's predictions labelled so far."""

    n: int
    median: float
    p90: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataQuality(_Record):
    """Rows logged, labels arrived and rows rejected in the week, with the main rejection reasons."""

    rows: int
    labels: int
    quarantined: int
    reasons: tuple[QuarantineReason, ...] = ()
    label_delay_days: LabelDelay | None = None  # how late the week's predictions got their labels


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReviewProgress(_Record):
    """The review queue's progress since the week began (``driftkeeper review``)."""

    done: int
    skipped: int
    left: int  # as of the queue's last update
    per_minute: float | None
    agreement: float | None  # share of the reviewers' judgements agreeing with the model


@dataclasses.dataclass(frozen=True, kw_only=True)
class WeeklySummary(_Record):
    """Everything the weekly page shows; ``summary.json`` is its :meth:`to_dict`."""

    schema: int = SCHEMA
    model: str
    week: str
    window: Window
    generated_at: datetime
    verdict: Verdict
    serving: ServingVersion | None = None
    actions: tuple[Action, ...] = ()
    runs: tuple[CheckRun, ...] = ()
    features: tuple[ColumnRow, ...] | None = None  # most drifted first
    outputs: Outputs | None = None
    embedding: Embedding | None = None
    calibration: Calibration | None = None
    performance: Performance | None = None
    confidently_wrong: ConfidentlyWrong | None = None
    confident_outliers: ConfidentOutliers | None = None
    segmentation: Segmentation | None = None  # segmentation models only
    slices: Slices | None = None  # per value of the categorical features
    baselines: Baselines | None = None  # against the baseline version, and week over week
    retrains: tuple[Retrain, ...] = ()
    data_quality: DataQuality | None = None
    review: ReviewProgress | None = None
    evidently_report: str | None = None  # the detail page's file name, in the same folder

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Read ``summary.json`` back.

        Raises:
            ValidationError: the summary is not schema 1, or a section has the wrong shape.
        """
        if not isinstance(data, Mapping):
            raise ValidationError(f"summary must be an object, got {type(data).__name__}")
        if data.get("schema") not in READABLE_SCHEMAS:
            allowed = ", ".join(map(str, READABLE_SCHEMAS))
            raise ValidationError(f"summary schema {data.get('schema')!r} is not supported; allowed: {allowed}")
        return super().from_dict(_upgraded(data) if data.get("schema") == 1 else data)


def _upgraded(data: Mapping[str, Any]) -> dict[str, Any]:
    """A schema-1 summary as schema 2: its status as a level, its reasons as policy concerns,
    its champion as the serving version."""
    out = dict(data) | {"schema": SCHEMA}
    verdict = dict(out.get("verdict") or {})
    status = WeekStatus.legacy(str(verdict.get("status", "no-data")))
    level = VerdictLevel.OK if status in (WeekStatus.NO_DATA, WeekStatus.OK) else VerdictLevel(str(status))
    verdict["status"] = status
    verdict["reasons"] = [
        {"kind": "policy", "level": level, "impact": 0.0, "text": str(r)} for r in verdict.get("reasons") or ()
    ]
    out["verdict"] = verdict
    champion = out.pop("champion", None)
    out["serving"] = None if champion is None else dict(champion) | {"champion_now": True}
    return out


_INDEX_WEEK = re.compile(r"\d{4}-W\d{2}")
_RELATIVE_PATH = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")
STATUSES = tuple(WeekStatus)


@dataclasses.dataclass(frozen=True, kw_only=True)
class IndexEntry:
    """One week in a model's index of weekly reports; ``path`` defaults to ``<week>/report.html``.

    Raises:
        ValidationError: a week that is not ``YYYY-Www``, an unknown status, or a path that is
            not a plain relative path.
    """

    week: str
    status: WeekStatus
    headline: str | None = None
    path: str = ""
    revised: str | None = None  # "revised on DATE from LEVEL: why", when late labels changed the verdict
    realized_accuracy: float | None = None
    estimated_accuracy: float | None = None
    n_labelled: int | None = None
    label_coverage: float | None = None
    features_drifted: int | None = None
    features: int | None = None
    serving_version: int | None = None
    reference_week: str | None = None  # the serving version's reference week

    def __post_init__(self) -> None:
        if not isinstance(self.week, str) or not _INDEX_WEEK.fullmatch(self.week):
            raise ValidationError(f"index entry: week {self.week!r} is not like 2026-W38")
        if isinstance(self.status, str) and self.status in ("drift", "retrain"):  # an index of schema 1
            object.__setattr__(self, "status", WeekStatus.legacy(self.status))
        if self.status not in STATUSES:
            allowed = ", ".join(STATUSES)
            raise ValidationError(f"index entry {self.week}: status {self.status!r} is not one of {allowed}")
        object.__setattr__(self, "status", WeekStatus(self.status))
        path = self.path or f"{self.week}/report.html"
        if not _RELATIVE_PATH.fullmatch(path) or ".." in path.split("/"):
            raise ValidationError(
                f"index entry {self.week}: path {path!r} must be relative, like {self.week}/report.html"
            )
        object.__setattr__(self, "path", path)

    @classmethod
    def of(cls, summary: WeeklySummary) -> IndexEntry:
        """The index entry of a week's summary."""
        revised = summary.verdict.revised
        note = None
        if revised is not None:
            note = f"revised on {revised.at:%Y-%m-%d} from {revised.previous}: {revised.why}"
        own = None
        if summary.performance is not None:
            own = next((w for w in summary.performance.weeks if w.week == summary.week), None)
        serving = summary.serving
        return cls(
            week=summary.week,
            status=summary.verdict.status,
            headline=summary.verdict.headline,
            revised=note,
            realized_accuracy=own.realized_accuracy if own is not None else None,
            estimated_accuracy=own.estimated_accuracy if own is not None else None,
            n_labelled=own.n_labelled if own is not None else None,
            label_coverage=own.label_coverage if own is not None else None,
            features_drifted=sum(f.drifted for f in summary.features) if summary.features is not None else None,
            features=len(summary.features) if summary.features is not None else None,
            serving_version=serving.version if serving is not None else None,
            reference_week=serving.reference_week if serving is not None else None,
        )
