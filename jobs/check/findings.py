"""Absurd-confidence findings of a window: what drift alone does not say.

* realized performance once labels arrive (with label coverage and a confidence interval);
* confidently wrong predictions (confidence >= the model's threshold, label disagrees),
  their rate against the reference's and whether it rose significantly;
* confident outliers: confident predictions on inputs far from the reference in embedding
  space (Mahalanobis distance past the reference's own 99th percentile);
* calibration (reliability curves, ECE) of the reference and of the window;
* a label-free accuracy estimate from calibrated confidences (calibration fitted on the
  reference's labelled rows, per predicted label where a label has enough of them), with the
  window's rows whose embedding lies past the reference's outlier threshold (beyond the
  reference's own share) counted as unknown and the estimate marked unreliable when there are
  significantly many (:func:`drift.estimators.coverage_adjusted`,
  :func:`drift.estimators.embedding_coverage`); checked against realized accuracy, with the
  exact variance of the labelled rows, when labels exist.

Segmentation models log per-image summaries (pixel share per class as ``probabilities``, the
mean pixel confidence as ``confidence``) and, optionally, the predicted mask's URI; labels may
carry the true mask's URI. With both masks readable inside ``image_roots``, each labelled image
gets its IoU, and "confidently wrong" becomes a confident mask (mean pixel confidence >= the
threshold) with a mean IoU below ``iou_threshold``. Realized accuracy, calibration and the
accuracy estimate are for classification only; a segmentation window gets its mean IoU instead.

The statistics are in :mod:`drift`; this module gathers the arrays from storage in chunks.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy.orm import Session

from drift import ReferenceProfile
from drift.calibration import reliability_curve
from drift.errors import ValidationError
from drift.estimate import estimate_from_sums
from drift.estimators import coverage_adjusted, embedding_coverage
from drift.outliers import EmbeddingOutlierDetector
from drift.performance import check_estimate, confidently_wrong, estimate_accuracy, realized_performance
from drift.segmentation import confident_mask_errors, iou_per_class
from jobs.check.figures import MIN_LABELS, CheckFigures
from jobs.check.flagged import Flagged, FlagKind
from jobs.check.frames import embedding_columns, layout
from jobs.check.labelled_rows import external_labelled, stored_labelled
from jobs.check.state import TOP_K, Calibration, DayFindings
from jobs.check.windows import FindingsInputs
from jobs.config import ModelSettings
from jobs.images import read_mask
from storage.models import Model, ReferenceSet
from storage.windows import input_uris, iter_rows

if TYPE_CHECKING:
    from jobs.lake.base import ExternalDays


@dataclass(frozen=True, kw_only=True)
class Findings:
    figures: CheckFigures
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


@dataclass(frozen=True, kw_only=True)
class MaskScores:
    """IoU of labelled segmentation rows whose predicted and true masks could both be read."""

    scored: np.ndarray  # bool per row: both masks read and compared
    iou: np.ndarray  # mean IoU per row over the classes present in either mask (NaN where not scored)
    per_class: np.ndarray  # (rows, classes) IoU (NaN where a class is absent from both, or not scored)
    n_with_masks: int  # rows that name both masks
    skipped: dict[str, int]  # why rows naming both masks were not scored, with counts

    @property
    def n_scored(self) -> int:
        return int(self.scored.sum())


def score_masks(model: ModelSettings, pred_uris: np.ndarray, true_uris: np.ndarray) -> MaskScores:
    """IoU per image of predicted vs true masks (see :func:`drift.segmentation.iou_per_class`).

    Rows that do not name both masks are left out; rows whose masks are missing, outside the
    image roots, unreadable or of different shapes are counted in ``skipped`` and left out.
    """
    n, k = len(pred_uris), len(model.class_labels)
    scored = np.zeros(n, dtype=bool)
    per_class = np.full((n, k), np.nan)
    skipped: Counter[str] = Counter()
    both = [i for i in range(n) if pred_uris[i] is not None and true_uris[i] is not None]
    for i in both:
        pred, problem = read_mask(pred_uris[i], model.image_roots, k)
        if pred is None:
            skipped[f"predicted mask {problem}"] += 1
            continue
        true, problem = read_mask(true_uris[i], model.image_roots, k)
        if true is None:
            skipped[f"true mask {problem}"] += 1
            continue
        try:
            per_class[i] = iou_per_class(pred, true, k)
        except ValidationError:  # e.g. shapes differ
            skipped["masks differ in shape"] += 1
            continue
        scored[i] = True
    iou = np.full(n, np.nan)
    if scored.any():  # drift.segmentation.mean_iou: the mean over the classes present in either mask
        iou[scored] = np.nanmean(per_class[scored], axis=1)
    return MaskScores(scored=scored, iou=iou, per_class=per_class, n_with_masks=len(both), skipped=dict(skipped))


def _mask_verdicts(confidence: np.ndarray, scores: MaskScores, model: ModelSettings) -> tuple[int, int]:
    """(confident mask errors, confident masks) among the scored rows."""
    conf = confidence[scores.scored]
    errors = confident_mask_errors(conf, scores.iou[scores.scored], model.confidence_threshold, model.iou_threshold)
    return int(errors.sum()), int((conf >= model.confidence_threshold).sum())


def _reference_mask_counts(
    session: Session, model: ModelSettings, model_row: Model, version: int, reference_row: ReferenceSet
) -> tuple[tuple[int, int] | None, float | None]:
    """Confident mask errors and mean IoU of a production-window reference's labelled masks."""
    window = (reference_row.extras or {}).get("window")
    if not window:
        return None, None
    start, end = (datetime.fromisoformat(t) for t in window)
    errors = confident = scored = 0
    iou_sum = 0.0
    for rows in iter_rows(
        session, model_row.id, layout(model), version=version, start=start, end=end, labelled_only=True
    ):
        assert rows.mask_uri is not None and rows.true_mask_uri is not None
        scores = score_masks(model, rows.mask_uri, rows.true_mask_uri)
        e, c = _mask_verdicts(rows.confidence, scores, model)
        errors, confident, scored = errors + e, confident + c, scored + scores.n_scored
        iou_sum += float(scores.iou[scores.scored].sum())
    return ((errors, confident) if confident else None), (iou_sum / scored if scored else None)


def _segmentation_findings(
    session: Session,
    model: ModelSettings,
    model_row: Model,
    version: int,
    reference_row: ReferenceSet,
    labelled: tuple[np.ndarray, ...] | None,
    top_k: int,
) -> tuple[dict[str, Any], list[Flagged]]:
    """Mean IoU of the window and confident masks with a low IoU, ranked by confidence (lowest IoU next)."""
    figure: dict[str, Any] = {
        "iou_threshold": model.iou_threshold,
        "n_labelled": 0,
        "n_with_masks": 0,
        "n_scored": 0,
        "n_skipped": 0,
        "skipped": {},
        "mean_iou": None,
        "per_class_iou": dict.fromkeys(model.class_labels),
        "reference_mean_iou": None,
    }
    if labelled is None:
        return {"segmentation": figure}, []
    conf, y_true, y_pred, ids, uris, pred_masks, true_masks = labelled
    scores = score_masks(model, pred_masks, true_masks)
    reference_counts, reference_iou = _reference_mask_counts(session, model, model_row, version, reference_row)
    figure |= {
        "n_labelled": len(conf),
        "n_with_masks": scores.n_with_masks,
        "n_scored": scores.n_scored,
        "n_skipped": sum(scores.skipped.values()),
        "skipped": scores.skipped,
        "reference_mean_iou": reference_iou,
    }
    if not scores.n_scored:
        return {"segmentation": figure}, []
    per_class = scores.per_class[scores.scored]
    present = ~np.isnan(per_class)
    figure["mean_iou"] = float(scores.iou[scores.scored].mean())
    figure["per_class_iou"] = {
        label: float(np.nanmean(per_class[:, j])) if present[:, j].any() else None
        for j, label in enumerate(model.class_labels)
    }
    index = np.flatnonzero(scores.scored)
    iou = scores.iou[index]
    # an image is right when its mask reaches the IoU threshold: the model claims every mask is
    # right, so "label disagrees" becomes "IoU below the threshold"
    stats = confidently_wrong(
        conf[index],
        iou >= model.iou_threshold,
        np.ones(len(index), dtype=bool),
        model.confidence_threshold,
        reference_counts,
    )
    wrong = stats.to_dict() | {"iou_threshold": model.iou_threshold, "kind": "mask"}
    errors = index[confident_mask_errors(conf[index], iou, model.confidence_threshold, model.iou_threshold)]
    ranked = sorted(errors, key=lambda i: (-conf[i], scores.iou[i]))[:top_k]
    flagged = [
        Flagged(
            prediction_id=str(ids[i]),
            kind=FlagKind.CONFIDENTLY_WRONG,
            confidence=float(conf[i]),
            score=float(scores.iou[i]),
            predicted_label=str(y_pred[i]),
            true_label=str(y_true[i]),
            input_uri=uris[i],
        )
        for i in ranked
    ]
    return {"segmentation": figure, "confidently_wrong": wrong}, flagged


def _outlier_detector(model: ModelSettings, reference: ReferenceProfile) -> EmbeddingOutlierDetector | None:
    names = list(embedding_columns(model))
    sample = reference.stats.sample.rows
    if not names or len(sample) < 2 * len(names) or not set(names) <= set(sample.columns):
        return None
    return EmbeddingOutlierDetector(kind="mahalanobis").fit(sample[names].to_numpy(np.float64))


def findings_inputs(
    session: Session,
    model: ModelSettings,
    model_row: Model,
    version: int,
    reference: ReferenceProfile,
    reference_row: ReferenceSet,
    *,
    top_k: int = TOP_K,
) -> tuple[FindingsInputs, LabelledArrays | None]:
    """What a pass over the window's rows needs for the label-free findings, and the reference's labels."""
    ref = reference_labels(session, model, model_row, version, reference_row) if model.task != "segmentation" else None
    calibration = (
        Calibration.fit(ref.confidence, ref.correct, ref.y_pred) if ref is not None and len(ref) >= MIN_LABELS else None
    )
    inputs = FindingsInputs(
        detector=_outlier_detector(model, reference),
        calibration=calibration,
        min_confidence=model.confidence_threshold,
        top_k=top_k,
    )
    return inputs, ref


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
    state: DayFindings,
    inputs: FindingsInputs,
    reference_labelled: LabelledArrays | None,
    external: ExternalDays | None = None,
) -> Findings:
    """All figures of the window [start, end) of ``version``.

    The label-free parts come from ``state`` (the window's merged per-day state, made with
    ``inputs``); the label-dependent ones read the window's labelled rows, and only those:
    stored ones, or, for predictions kept outside (``external``), those its engine finds.
    """
    threshold = model.confidence_threshold
    n_rows = state.n_rows
    figures: dict[str, Any] = {"n_rows": n_rows}
    flagged: list[Flagged] = []
    if n_rows == 0:
        return Findings(figures=CheckFigures(n_rows=0))
    # the state keeps no URIs: they are read for the few outliers flagged, with the labelled rows
    outliers = state.outliers[: inputs.top_k] if inputs.detector is not None else ()
    outlier_ids = [f.prediction_id for f in outliers]
    if external is not None:  # one pass over the source for both
        labelled, outlier_uris = external_labelled(session, external, model_row.id, version, start, end, outlier_ids)
    else:
        labelled = stored_labelled(session, model, model_row, version, start, end)
        outlier_uris = input_uris(session, model_row.id, outlier_ids) if outlier_ids else {}
    if inputs.detector is not None:
        figures["confident_outliers"] = {
            "count": state.n_outliers,
            "rate": state.n_outliers / n_rows,
            "threshold": float(inputs.detector.threshold_),
            "min_confidence": threshold,
            "method": "mahalanobis",
        }
        outliers = tuple(replace(f, input_uri=outlier_uris.get(f.prediction_id)) for f in outliers)
        flagged += _with_true_labels(outliers, labelled)
    if model.task == "segmentation":
        more, wrong_masks = _segmentation_findings(
            session, model, model_row, version, reference_row, labelled, inputs.top_k
        )
        return Findings(figures=CheckFigures.from_dict(figures | more), flagged=tuple(flagged + wrong_masks))
    ref = reference_labelled
    current = None
    if labelled is not None:
        conf, y_true, y_pred, ids, uris, _, _ = labelled
        current = LabelledArrays(confidence=conf, y_true=y_true, y_pred=y_pred)
        realized = realized_performance(y_true, y_pred, model.class_labels, n_predictions=n_rows)
        figures["realized_performance"] = realized.to_dict() | {
            "reference_accuracy": float(ref.correct.mean()) if ref is not None and len(ref) >= MIN_LABELS else None
        }
        reference_counts = _confident_counts(ref, threshold) if ref is not None else None
        wrong = confidently_wrong(conf, y_true, y_pred, threshold, reference_counts)
        figures["confidently_wrong"] = wrong.to_dict()
        order = np.argsort(-conf, kind="stable")
        errors = [i for i in order if conf[i] >= threshold and y_true[i] != y_pred[i]][: inputs.top_k]
        flagged += [
            Flagged(
                prediction_id=str(ids[i]),
                kind=FlagKind.CONFIDENTLY_WRONG,
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
    if ref is not None and inputs.calibration is not None and state.estimate is not None:
        figures["estimated_performance"] = _estimate_entry(inputs, state, reference, ref, current)
    return Findings(figures=CheckFigures.from_dict(figures), flagged=tuple(flagged))


def _estimate_entry(
    inputs: FindingsInputs,
    state: DayFindings,
    reference: ReferenceProfile,
    ref: LabelledArrays,
    current: LabelledArrays | None,
) -> dict[str, Any]:
    """The estimate of the window from its merged sums, its coverage, and its check against labels."""
    assert inputs.calibration is not None and state.estimate is not None
    calibrator = inputs.calibration.calibrator
    sums = state.estimate
    estimate = estimate_from_sums(calibrator, sums)
    coverage = None
    if inputs.detector is not None and sums.n_far is not None and sums.sum_p_far is not None:
        expected = 1.0 - inputs.detector.quantile
        coverage = embedding_coverage(sums.n_far, sums.n, expected_share=expected)
        estimate = coverage_adjusted(estimate, n_far=sums.n_far, sum_p_far=sums.sum_p_far, expected_share=expected)
    sample = reference.stats.sample.rows
    reference_estimate = (
        estimate_accuracy(
            calibrator,
            sample["confidence"].to_numpy(),
            sample["predicted"].astype(str).to_numpy() if "predicted" in sample.columns else None,
        ).estimate
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
        "unreliable": coverage is not None and coverage.unreliable,
        "unreliable_reason": coverage.reason if coverage is not None else None,
        "coverage": coverage.to_dict() if coverage is not None else None,
    }
    if current is not None and len(current) >= MIN_LABELS:
        # the calibrated estimate of the labelled rows themselves: its sampling variance is exact
        on_labelled = estimate_accuracy(calibrator, current.confidence, current.y_pred.astype(str))
        verdict = check_estimate(on_labelled, float(current.correct.mean()), len(current))
        entry["check"] = verdict.to_dict()
        entry["trustworthy"] = verdict.trustworthy
        if not verdict.trustworthy:
            entry["warning"] = (
                "the calibration fitted on the reference no longer holds (realized "
                f"{verdict.realized:.1%} vs estimated {verdict.estimated:.1%}); do not trust the estimate"
            )
    if entry["warning"] is None and coverage is not None and coverage.unreliable:
        entry["warning"] = coverage.reason
    return entry


def _with_true_labels(outliers: tuple[Flagged, ...], labelled: tuple[np.ndarray, ...] | None) -> list[Flagged]:
    """The outliers with the labels that have arrived for them (labels come late: not in the stored state)."""
    if labelled is None:
        return list(outliers)
    truth = dict(zip(labelled[3].tolist(), labelled[1].tolist(), strict=True))
    return [replace(f, true_label=str(truth[f.prediction_id])) if f.prediction_id in truth else f for f in outliers]


def _or_none(values: np.ndarray | None, n: int) -> np.ndarray:
    return values if values is not None else np.full(n, None, dtype=object)


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
