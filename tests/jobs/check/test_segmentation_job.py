"""Segmentation models end to end: ingest summaries and masks, check a week, on SQLite and PostgreSQL.

Masks are 16x16 class-index PNGs filled in raster order (each class a contiguous run of at
least 16 pixels), so every image's IoU is known exactly (computed with drift.segmentation).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sqlalchemy import select

from drift.segmentation import mean_iou
from jobs.check.job import check
from jobs.check.reference import reference_from_window
from jobs.config import ModelSettings, Settings
from jobs.ingest.run import ingest
from jobs.ingest.validate import validate_labels, validate_predictions
from storage import repository
from storage.models import FlaggedPrediction, Label, PredictionLog, QuarantinedRow
from tests.jobs.logdata import write_jsonl

CLASSES = ("background", "road", "car")
SIDE = 16
REF_START = datetime(2026, 10, 1, tzinfo=UTC)
WEEK_START = datetime(2026, 11, 2, tzinfo=UTC)
WEEK_END = WEEK_START + timedelta(days=7)
BASE_MIX = (0.6, 0.3, 0.1)


def _mask(counts: np.ndarray) -> np.ndarray:
    """A (SIDE, SIDE) mask: class 0 for the first counts[0] pixels (raster order), then class 1, ..."""
    return np.repeat(np.arange(len(counts)), counts).reshape(SIDE, SIDE).astype(np.uint8)


def _save(path: Path, mask: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask).save(path)
    return str(path)


@dataclass
class Week:
    """Generated rows of one window, with what the test expects of them."""

    predictions: list[dict[str, Any]]
    labels: list[dict[str, Any]]
    iou: dict[str, float]  # prediction id -> mean IoU of its masks


def _week(
    root: Path,
    tag: str,
    start: datetime,
    n: int,
    *,
    seed: int,
    mix: tuple[float, ...] = BASE_MIX,
    wrong: int = 0,
) -> Week:
    """``n`` images over 7 days; the ``wrong`` most confident masks get a true mask of permuted classes."""
    rng = np.random.default_rng(seed)
    confidence = rng.uniform(0.6, 0.99, size=n).round(4)
    confident_order = np.argsort(-confidence, kind="stable")
    wrong_ids = set(confident_order[:wrong].tolist())
    out = Week(predictions=[], labels=[], iou={})
    step = timedelta(days=7) / n
    for i in range(n):
        counts = 16 + rng.multinomial(SIDE * SIDE - 16 * len(CLASSES), mix)
        pred = _mask(counts)
        if i in wrong_ids:
            true = ((pred.astype(int) + 1) % len(CLASSES)).astype(np.uint8)  # every pixel's class is wrong
        else:
            shift = int(rng.integers(-2, 3))  # the boundary between the first two classes moves a little
            true = _mask(counts + np.array([shift, -shift, 0]))
        pid = f"{tag}{i:04d}"
        shares = (counts / counts.sum()).round(6)
        shares[-1] = round(1.0 - shares[:-1].sum(), 6)
        out.predictions.append(
            {
                "prediction_id": pid,
                "timestamp": (start + i * step).isoformat(),
                "model_version": 1,
                "probabilities": json.dumps(shares.tolist()),
                "confidence": float(confidence[i]),
                "uncertain_share": float(rng.uniform(0, 0.2)),
                "input_uri": str(root / "images" / f"{pid}.png"),
                "mask_uri": _save(root / "pred" / f"{pid}.png", pred),
            }
        )
        out.labels.append(
            {
                "prediction_id": pid,
                "mask_uri": _save(root / "true" / f"{pid}.png", true),
                "labelled_at": "2026-11-20T00:00:00+00:00",
            }
        )
        out.iou[pid] = mean_iou(pred, true, len(CLASSES))
    return out


def _settings(database_url: str, tmp_path: Path, root: Path) -> Settings:
    model = {
        "name": "roads",
        "task": "segmentation",
        "class_labels": list(CLASSES),
        "features": [{"name": "uncertain_share", "type": "numeric"}],
        "predictions": {"kind": "files", "path": str(tmp_path / "drop")},
        "labels": {"kind": "files", "path": str(tmp_path / "labels")},
        "confidence_threshold": 0.9,
        "image_roots": [str(root)],
    }
    return Settings(database={"url": database_url}, ingest={"batch_size": 5000}, models=[model])


def _run(database, tmp_path: Path, week: Week, reference: Week, after_ingest=None):
    root = tmp_path / "masks"
    settings = _settings(database.url, tmp_path, root)
    with database.session_factory.begin() as s:
        repository.register_version(s, repository.ensure_model(s, "roads", "segmentation"), 1)
    write_jsonl(tmp_path / "drop" / "ref.jsonl", reference.predictions)
    write_jsonl(tmp_path / "labels" / "ref.jsonl", reference.labels)
    write_jsonl(tmp_path / "drop" / "week.jsonl", week.predictions)
    write_jsonl(tmp_path / "labels" / "week.jsonl", week.labels)
    ingest(database.session_factory, settings)
    if after_ingest is not None:
        after_ingest()
    reference_from_window(database.session_factory, settings.models[0], 1, REF_START, REF_START + timedelta(days=7))
    [report] = check(database.session_factory, settings, "roads", end=WEEK_END, now=WEEK_END)
    return report


def test_confident_masks_with_a_low_iou_are_flagged_first_and_unreadable_masks_skipped(database, tmp_path):
    root = tmp_path / "masks"
    reference = _week(root, "r", REF_START, 300, seed=1)
    week = _week(root, "w", WEEK_START, 300, seed=2, wrong=12)
    outside = week.predictions[int(np.argmax([r["confidence"] for r in week.predictions]))]
    moved = tmp_path / "elsewhere" / "pred.png"  # the most confident (and wrong) mask, logged outside the roots
    moved.parent.mkdir()
    Path(outside["mask_uri"]).rename(moved)
    outside["mask_uri"] = str(moved)
    gone = next(lab for lab in week.labels if week.iou[lab["prediction_id"]] >= 0.5)
    report = _run(database, tmp_path, week, reference, after_ingest=lambda: Path(gone["mask_uri"]).unlink())

    confidence = {r["prediction_id"]: r["confidence"] for r in week.predictions}
    skipped = {outside["prediction_id"], gone["prediction_id"]}
    expected_errors = sorted(
        (pid for pid, iou in week.iou.items() if pid not in skipped and confidence[pid] >= 0.9 and iou < 0.5),
        key=lambda pid: (-confidence[pid], week.iou[pid]),
    )
    assert len(expected_errors) == 11  # 12 injected, one of them skipped
    assert all(iou >= 0.75 for pid, iou in week.iou.items() if pid not in expected_errors and pid not in skipped)
    flagged = [f for f in report.flagged if f.kind == "confidently_wrong"]
    assert [f.prediction_id for f in flagged] == expected_errors
    assert [f.score for f in flagged] == pytest.approx([week.iou[pid] for pid in expected_errors])
    first = next(r for r in week.predictions if r["prediction_id"] == flagged[0].prediction_id)
    assert flagged[0].predicted_label == CLASSES[int(np.argmax(json.loads(first["probabilities"])))]
    assert flagged[0].true_label in CLASSES and flagged[0].input_uri == first["input_uri"]

    seg = report.figures.segmentation
    assert seg.n_labelled == 300 and seg.n_with_masks == 300
    assert seg.n_scored == 298 and seg.n_skipped == 2
    assert seg.skipped == {
        "predicted mask missing or outside image_roots": 1,
        "true mask missing or outside image_roots": 1,
    }
    scored = [iou for pid, iou in week.iou.items() if pid not in skipped]
    assert seg.mean_iou == pytest.approx(np.mean(scored))
    assert set(seg.per_class_iou) == set(CLASSES) and all(0 < v <= 1 for v in seg.per_class_iou.values())
    assert seg.reference_mean_iou > 0.75

    wrong = report.figures.confidently_wrong
    assert wrong.n_errors == 11 and wrong.n_labelled == 298 and wrong.iou_threshold == 0.5
    assert wrong.reference_errors == 0 and wrong.rose_significantly is True
    assert any("confidently-wrong rate rose" in r for r in report.reasons)
    assert report.figures.realized_performance is None and report.figures.estimated_performance is None

    with database.session_factory() as s:
        stored = s.scalars(select(FlaggedPrediction).where(FlaggedPrediction.run_id == report.run_id)).all()
        labels = dict(s.execute(select(Label.prediction_id, Label.label)).all())
        masks = dict(s.execute(select(PredictionLog.prediction_id, PredictionLog.mask_uri)).all())
    assert {f.prediction_id for f in stored} == set(expected_errors)
    assert masks[outside["prediction_id"]] == str(moved)
    # a label row with only a mask stores the mask's dominant class as its label
    some = week.labels[5]
    dominant = CLASSES[int(np.bincount(np.asarray(Image.open(some["mask_uri"])).ravel(), minlength=3).argmax())]
    assert labels[some["prediction_id"]] == dominant


@pytest.mark.parametrize("shifted", [False, True], ids=["same-class-mix", "class-mix-shifted"])
def test_pixel_share_drift_follows_the_class_mix(database, tmp_path, shifted):
    root = tmp_path / "masks"
    reference = _week(root, "r", REF_START, 300, seed=1)
    week = _week(root, "w", WEEK_START, 300, seed=3, mix=(0.3, 0.3, 0.4) if shifted else BASE_MIX)
    report = _run(database, tmp_path, week, reference)
    drifted = {c.column for c in report.result.columns if c.drifted}
    assert report.outputs_drifted is shifted
    if shifted:
        assert {"prob_background", "prob_car"} <= drifted
    else:
        assert not drifted
        assert not [f for f in report.flagged if f.kind == "confidently_wrong"]


def test_label_rows_need_a_class_label_or_a_readable_mask(database, tmp_path):
    root = tmp_path / "masks"
    reference = _week(root, "r", REF_START, 300, seed=1)
    week = _week(root, "w", WEEK_START, 40, seed=2)
    outside = tmp_path / "elsewhere" / "true.png"
    outside.parent.mkdir()
    _save(outside, _mask(np.array([200, 40, 16])))
    at = "2026-11-20T00:00:00+00:00"
    week.labels[0] = {"prediction_id": "w0000", "labelled_at": at}
    week.labels[1] = {"prediction_id": "w0001", "mask_uri": str(outside), "labelled_at": at}
    week.labels[2] = {"prediction_id": "w0002", "label": "car", "mask_uri": None, "labelled_at": at}
    week.labels[3] = {"prediction_id": "w0003", "label": "truck", "labelled_at": at}
    _run(database, tmp_path, week, reference)
    with database.session_factory() as s:
        rejects = s.execute(select(QuarantinedRow.position, QuarantinedRow.field, QuarantinedRow.reason)).all()
        labels = dict(s.execute(select(Label.prediction_id, Label.label)).all())
    by_field = {(field, reason) for _, field, reason in rejects}
    assert ("label", "missing value (give a class label or a 'mask_uri')") in by_field
    assert ("mask_uri", "true mask missing or outside image_roots") in by_field
    assert ("label", "unknown label (allowed: background, road, car)") in by_field
    assert len(rejects) == 3
    assert labels["w0002"] == "car" and "w0000" not in labels and "w0001" not in labels


def test_segmentation_predictions_need_the_mean_pixel_confidence():
    model = ModelSettings(name="roads", task="segmentation", class_labels=CLASSES)
    raw = pd.DataFrame(
        {
            "prediction_id": ["a"],
            "timestamp": ["2026-11-02T00:00:00+00:00"],
            "model_version": [1],
            "probabilities": ["[0.5, 0.3, 0.2]"],
            "mask_uri": ["masks/a.png"],
        }
    )
    rows, rejects = validate_predictions(raw, ["line 1"], model, {}, {1}, 0.01)
    assert len(rows) == 0 and [r.field for r in rejects] == ["confidence"]
    rows, rejects = validate_predictions(raw.assign(confidence=[0.8]), ["line 1"], model, {}, {1}, 0.01)
    assert not rejects and rows.mask_uri is not None and rows.mask_uri.tolist() == ["masks/a.png"]
    assert rows.predicted_label.tolist() == ["background"] and rows.confidence.tolist() == [0.8]


def test_classification_labels_still_need_a_class_label():
    model = ModelSettings(name="pets", class_labels=("cat", "dog"))
    raw = pd.DataFrame({"prediction_id": ["a", "b"], "label": ["cat", None], "mask_uri": ["m.png", "m.png"]})
    labels, rejects = validate_labels(raw, ["line 1", "line 2"], model, {})
    assert labels.label == ["cat"] and labels.mask_uri is None
    assert [(r.position, r.field, r.reason) for r in rejects] == [("line 2", "label", "missing value")]
