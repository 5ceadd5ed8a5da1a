"""Absurd-confidence findings of a window: what drift alone does not say.

* realized performance once labels arrive (with label coverage and a confidence interval);
* confidently wrong predictions (confidence >= the model's threshold, label disagrees),
  their rate against the reference's and whether it rose significantly;
* confident outliers: confident predictions on inputs far from the reference in embedding
  space (Mahalanobis distance past the reference's own 99th percentile);
* calibration (reliability curves, ECE) of the reference and of the window;
* a label-free accuracy estimate from calibrated confidences (calibration fitted on the
  reference's labelled rows), checked against realized accuracy when labels exist.

The statistics are in :mod:`drift`; this module gathers the arrays from storage in chunks.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from drift import ReferenceProfile
from drift.calibration import ConfidenceCalibrator, reliability_curve
from drift.outliers import EmbeddingOutlierDetector
from drift.performance import check_estimate, confidently_wrong, estimate_accuracy, realized_performance
from jobs.config import ModelSettings
from jobs.frames import embedding_columns, layout
from storage.models import Model, ReferenceSet
from storage.windows import iter_rows

MIN_LABELS = 30


@dataclass(frozen=True, kw_only=True)
class Flagged:
    """A prediction worth a human look."""

    prediction_id: str
    kind: str  # "confidently_wrong" | "confident_outlier"
    confidence: float
    score: float | None
    predicted_label: str
    true_label: str | None
    input_uri: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "prediction_id": self.prediction_id,
            "kind": self.kind,
            "confidence": round(self.confidence, 6),
            "score": None if self.score is None else round(self.score, 6),
            "predicted_label": self.predicted_label,
            "true_label": self.true_label,
            "input_uri": self.input_uri,
        }


@dataclass(frozen=True, kw_only=True)
class Findings:
    figures: dict[str, Any] = field(default_factory=dict)
    flagged: tuple[Flagged, ...] = ()


@dataclass(frozen=True, kw_only=True)
class LabelledArrays:
    confidence: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray

    @property
    def correct(self) -> np.ndarray:
        return self.y_true == self.y_pred

    def __len__(self) -> int:
        return len(self.confidence)


def reference_labels(
    session: Session, model: ModelSettings, model_row: Model, version: int, reference_row: ReferenceSet
) -> LabelledArrays | None:
    """The reference's labelled predictions: stored with it, or (for a production window) the
    labels that have arrived since for that window."""
    stored = (reference_row.extras or {}).get("labelled")
    if stored:
        return LabelledArrays(
            confidence=np.asarray(stored["confidence"], dtype=float),
            y_true=np.asarray(stored["y_true"], dtype=object),
            y_pred=np.asarray(stored["y_pred"], dtype=object),
        )
    window = (reference_row.extras or {}).get("window")
    if not window:
        return None
    start, end = (datetime.fromisoformat(t) for t in window)
    parts = list(
        iter_rows(session, model_row.id, layout(model), version=version, start=start, end=end, labelled_only=True)
    )
    if not parts:
        return None
    return LabelledArrays(
        confidence=np.concatenate([p.confidence for p in parts]),
        y_true=np.concatenate([p.label for p in parts if p.label is not None]),
        y_pred=np.concatenate([p.predicted_label for p in parts]),
    )


def _outlier_detector(model: ModelSettings, reference: ReferenceProfile) -> EmbeddingOutlierDetector | None:
    names = list(embedding_columns(model))
    sample = reference.stats.sample.rows
    if not names or len(sample) < 2 * len(names) or not set(names) <= set(sample.columns):
        return None
    return EmbeddingOutlierDetector(kind="mahalanobis").fit(sample[names].to_numpy(np.float64))


def compute_findings(
    session: Session,
    model: ModelSettings,
    model_row: Model,
    version: int,
    reference: ReferenceProfile,
    reference_row: ReferenceSet,
    start: datetime,
    end: datetime,
    *,
    top_k: int = 20,
) -> Findings:
    """All figures of the window [start, end) of ``version``, reading its rows in chunks."""
    threshold = model.confidence_threshold
    detector = _outlier_detector(model, reference)
    confidences: list[np.ndarray] = []
    labelled_parts: list[tuple[np.ndarray, ...]] = []
    outlier_heap: list[tuple[float, str, Flagged]] = []
    n_rows = n_outliers = 0
    for rows in iter_rows(
        session, model_row.id, layout(model), version=version, start=start, end=end, with_labels=True
    ):
        n_rows += len(rows)
        confidences.append(rows.confidence)
        assert rows.label is not None
        has_label = np.array([v is not None for v in rows.label], dtype=bool)
        if has_label.any():
            labelled_parts.append(
                (
                    rows.confidence[has_label],
                    rows.label[has_label],
                    rows.predicted_label[has_label],
                    rows.prediction_id[has_label],
                    rows.input_uri[has_label],
                )
            )
        if detector is not None and rows.embedding is not None:
            scores = detector.score(rows.embedding)
            mask = (rows.confidence >= threshold) & (scores > detector.threshold_)
            n_outliers += int(mask.sum())
            for i in np.flatnonzero(mask):
                item = Flagged(
                    prediction_id=str(rows.prediction_id[i]),
                    kind="confident_outlier",
                    confidence=float(rows.confidence[i]),
                    score=float(scores[i]),
                    predicted_label=str(rows.predicted_label[i]),
                    true_label=None if rows.label[i] is None else str(rows.label[i]),
                    input_uri=rows.input_uri[i],
                )
                ranked = (float(scores[i]), item.prediction_id, item)
                if len(outlier_heap) < top_k:
                    heapq.heappush(outlier_heap, ranked)
                else:
                    heapq.heappushpop(outlier_heap, ranked)
    figures: dict[str, Any] = {"n_rows": n_rows}
    flagged: list[Flagged] = []
    if n_rows == 0:
        return Findings(figures=figures)
    all_confidence = np.concatenate(confidences)
    if detector is not None:
        figures["confident_outliers"] = {
            "count": n_outliers,
            "rate": n_outliers / n_rows,
            "threshold": float(detector.threshold_),
            "min_confidence": threshold,
            "method": "mahalanobis",
        }
        flagged += [entry[2] for entry in sorted(outlier_heap, reverse=True)]
    ref = reference_labels(session, model, model_row, version, reference_row)
    current = None
    if labelled_parts:
        conf, y_true, y_pred, ids, uris = (np.concatenate(c) for c in zip(*labelled_parts, strict=True))
        current = LabelledArrays(confidence=conf, y_true=y_true, y_pred=y_pred)
        realized = realized_performance(y_true, y_pred, model.class_labels, n_predictions=n_rows)
        figures["realized_performance"] = realized.to_dict() | {
            "reference_accuracy": float(ref.correct.mean()) if ref is not None and len(ref) >= MIN_LABELS else None
        }
        reference_counts = _confident_counts(ref, threshold) if ref is not None else None
        wrong = confidently_wrong(conf, y_true, y_pred, threshold, reference_counts)
        figures["confidently_wrong"] = wrong.to_dict()
        order = np.argsort(-conf, kind="stable")
        errors = [i for i in order if conf[i] >= threshold and y_true[i] != y_pred[i]][:top_k]
        flagged += [
            Flagged(
                prediction_id=str(ids[i]),
                kind="confidently_wrong",
                confidence=float(conf[i]),
                score=None,
                predicted_label=str(y_pred[i]),
                true_label=str(y_true[i]),
                input_uri=uris[i],
            )
            for i in errors
        ]
    figures["calibration"] = {
        "reference": _curve(ref),
        "current": _curve(current),
    }
    if ref is not None and len(ref) >= MIN_LABELS:
        calibrator = ConfidenceCalibrator().fit(ref.confidence, ref.correct)
        estimate = estimate_accuracy(calibrator, all_confidence)
        sample = reference.stats.sample.rows
        reference_estimate = (
            estimate_accuracy(calibrator, sample["confidence"].to_numpy()).estimate
            if "confidence" in sample.columns and len(sample)
            else float(ref.correct.mean())
        )
        entry: dict[str, Any] = estimate.to_dict() | {
            "accuracy": estimate.estimate,
            # the same estimator on the reference's own inputs, so that a drop compares like with like
            "reference_accuracy": reference_estimate,
            "reference_realized_accuracy": float(ref.correct.mean()),
            "trustworthy": True,
            "warning": None,
        }
        if current is not None and len(current) >= MIN_LABELS:
            on_labelled = estimate_accuracy(calibrator, current.confidence)
            verdict = check_estimate(on_labelled, float(current.correct.mean()), len(current))
            entry["check"] = verdict.to_dict()
            entry["trustworthy"] = verdict.trustworthy
            if not verdict.trustworthy:
                entry["warning"] = (
                    "the calibration fitted on the reference no longer holds (realized "
                    f"{verdict.realized:.1%} vs estimated {verdict.estimated:.1%}); do not trust the estimate"
                )
        figures["estimated_performance"] = entry
    return Findings(figures=figures, flagged=tuple(flagged))


def _confident_counts(labels: LabelledArrays, threshold: float) -> tuple[int, int] | None:
    confident = labels.confidence >= threshold
    if not confident.any():
        return None
    return int((confident & ~labels.correct).sum()), int(confident.sum())


def _curve(labels: LabelledArrays | None) -> dict[str, Any] | None:
    if labels is None or len(labels) < MIN_LABELS:
        return None
    curve = reliability_curve(labels.confidence, labels.correct, n_bins=min(10, max(2, len(labels) // 20)))
    return curve.to_dict()
