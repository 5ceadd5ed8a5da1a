"""The check's findings, typed: what a drift run stores as ``figures`` and the report reads.

Each figure is a frozen dataclass whose :meth:`to_dict` is the JSON stored with the run (and
shown in ``check --json`` and ``summary.json``), and whose :meth:`from_dict` reads it back,
validated by pydantic. Readers (the retrain policy, the report) use the attributes, never the
raw keys.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from drift.records import Record as BaseRecord
from drift.segmentation import MaskQuality

MIN_LABELS = 30  # fewer labels than this say little: no calibration curve, no accuracy drop


class Record(BaseRecord):
    record_name = "figures"


@dataclasses.dataclass(frozen=True, kw_only=True)
class OutlierFigure(Record):
    """Confident predictions on inputs far from the reference in embedding space."""

    count: int
    rate: float
    threshold: float  # the outlier score past which an input is an outlier
    min_confidence: float
    method: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class RealizedFigure(Record):
    """Realized performance on the labels that arrived (see :class:`drift.performance.RealizedPerformance`)."""

    labels: tuple[str, ...]
    n_labelled: int
    n_predictions: int
    label_coverage: float
    accuracy: float | None
    accuracy_ci: tuple[float | None, float | None]
    confidence_level: float
    macro_f1: float | None
    per_class_recall: dict[str, float | None]
    per_class_precision: dict[str, float | None]
    per_class_f1: dict[str, float | None]
    per_class_support: dict[str, int]
    confusion_matrix: tuple[tuple[int, ...], ...]
    reference_accuracy: float | None = None

    @property
    def enough_labels(self) -> bool:
        return self.n_labelled >= MIN_LABELS


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConfidentlyWrongFigure(Record):
    """Confident predictions whose label (or mask) disagrees, against the reference's rate."""

    threshold: float
    n_labelled: int
    n_confident: int
    n_errors: int
    rate: float | None
    reference_errors: int | None
    reference_n: int | None
    reference_rate: float | None
    p_value: float | None
    alpha: float
    rose_significantly: bool
    kind: str = "label"  # "label", or "mask" for segmentation (an IoU below ``iou_threshold``)
    iou_threshold: float | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class CurveFigure(Record):
    """A reliability curve over equal-mass bins."""

    bin_lower: tuple[float, ...]
    bin_upper: tuple[float, ...]
    bin_confidence: tuple[float, ...]
    bin_accuracy: tuple[float, ...]
    bin_count: tuple[int, ...]
    n: int
    ece: float
    mce: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class CalibrationFigure(Record):
    reference: CurveFigure | None = None
    current: CurveFigure | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class EstimateCheckFigure(Record):
    """The estimate against realized accuracy, once labels arrived."""

    trustworthy: bool
    checked: bool
    reason: str
    estimated: float
    realized: float | None
    difference: float | None
    n_labelled: int
    expected: tuple[float | None, float | None]
    z_score: float | None
    p_value: float | None
    tolerance: float | None
    variance: str = "binomial"  # "exact": sum p(1-p) of the labelled rows; "binomial": e(1-e)/n (older runs)


@dataclasses.dataclass(frozen=True, kw_only=True)
class CoverageFigure(Record):
    """How much of the window's embedding lies past the reference's outlier threshold."""

    n: int
    n_far: int
    far_share: float
    expected_share: float
    p_value: float
    unreliable: bool
    reason: str | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class EstimateFigure(Record):
    """The label-free accuracy estimate, with its interval (see :mod:`drift.estimate`).

    ``method`` names the estimator; ``unknown_share`` is the share of the window counted as
    unknown because its embedding lies where the reference had none, and ``unreliable`` (with
    ``unreliable_reason``) says the embedding shows a shift the calibration never saw. Runs
    stored before these fields read with their defaults.
    """

    estimate: float
    ci: tuple[float, float]
    std_error: float
    std_error_sampling: float
    std_error_calibration: float
    n: int
    n_reference: int
    mean_confidence: float
    confidence_level: float
    accuracy: float
    reference_accuracy: float  # the same estimator on the reference's own inputs
    reference_realized_accuracy: float
    trustworthy: bool
    warning: str | None
    check: EstimateCheckFigure | None = None
    method: str = "calibrated_confidence"
    effective_sample_size: float | None = None
    unknown_share: float = 0.0
    unreliable: bool = False
    unreliable_reason: str | None = None
    coverage: CoverageFigure | None = None


SegmentationFigure = MaskQuality  # mean IoU of the labelled masks (segmentation models)


@dataclasses.dataclass(frozen=True, kw_only=True)
class CheckFigures(Record):
    """Every finding of one checked window; absent ones are None."""

    n_rows: int
    confident_outliers: OutlierFigure | None = None
    realized_performance: RealizedFigure | None = None
    confidently_wrong: ConfidentlyWrongFigure | None = None
    calibration: CalibrationFigure | None = None
    estimated_performance: EstimateFigure | None = None
    segmentation: SegmentationFigure | None = None

    def to_dict(self) -> dict[str, Any]:
        """The stored JSON: absent figures are left out, as they always were."""
        return {k: v for k, v in super().to_dict().items() if v is not None}


def stored_figures(data: dict[str, Any] | None) -> CheckFigures | None:
    """The figures a drift run stored (None for a run stored without any)."""
    return CheckFigures.from_dict(data) if data else None
