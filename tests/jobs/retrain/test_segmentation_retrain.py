"""Segmentation retraining through the retrain job, on SQLite and PostgreSQL: true masks and a
teacher's confident pixels, the mean-IoU gate, a TFLite export verified pixel by pixel,
promotion and rollback.

The champion is a small MobileNetV2-encoder segmenter trained on clean synthetic scenes; in
production the scenes drift (colour cast, low light, a busy texture) and it fails on them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("tensorflow")

from jobs.config import Settings
from jobs.ingest.run import ingest
from jobs.retrain import registry
from jobs.retrain.job import retrain
from storage import repository
from tests.jobs.logdata import write_jsonl

pytestmark = [pytest.mark.tf, pytest.mark.slow]
SIZE = 32
CLASSES = ("background", "subject", "defect")
START = datetime(2026, 10, 5, tzinfo=UTC)
WEEK = timedelta(days=7)


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from jobs.demo.scenes import synthetic_scenes
    from jobs.ml import segmentation as seg

    folder = tmp_path_factory.mktemp("seg")
    x, m = synthetic_scenes(160, SIZE, seed=0)
    champion = seg.build_segmenter(SIZE, len(CLASSES), seed=0)
    seg.fit_segmenter(champion, x, m, epochs=6, learning_rate=3e-3, seed=0)
    path = seg.save_segmenter(champion, folder / "champion.keras")
    teacher = seg.build_seg_teacher(SIZE, len(CLASSES), alpha=0.5, seed=1)
    tx, tm = synthetic_scenes(120, SIZE, seed=5, drift="light")
    seg.fit_segmenter(teacher, np.concatenate([x, tx]), np.concatenate([m, tm]), epochs=5, learning_rate=3e-3, seed=1)
    teacher_path = seg.save_segmenter(teacher, folder / "teacher.keras")
    test_x, test_m = synthetic_scenes(40, SIZE, seed=4)
    np.savez(folder / "train.npz", x_train=x, y_train=m, x_test=test_x, y_test=test_m)
    names = [layer.name for layer in champion.layers]
    return {"champion": path, "teacher": teacher_path, "npz": folder / "train.npz",
            "head": names[names.index(seg.ENCODER_NAME) + 1]}  # fmt: skip


def _png(path: Path, array: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return str(path)


def _week(root: Path, tag: str, start: datetime, n: int, seed: int, drift: bool, champion: Any):
    """What the app logs for ``n`` scenes: its mask summary, the image, its mask; and the true masks."""
    from drift.segmentation import mask_summary
    from jobs.demo.scenes import synthetic_scenes
    from jobs.ml.segmentation import predict_proba

    x, true = synthetic_scenes(n, SIZE, seed=seed, drift="light" if drift else None)
    proba = predict_proba(champion, x)
    predictions, labels = [], []
    for i in range(n):
        pid = f"{tag}{i:03d}"
        summary = mask_summary(proba[i], CLASSES)
        shares = np.round(summary.pixel_share, 6)
        shares[-1] = round(1.0 - shares[:-1].sum(), 6)
        predictions.append({
            "prediction_id": pid, "timestamp": (start + i * WEEK / n).isoformat(), "model_version": 1,
            "probabilities": json.dumps(shares.tolist()), "confidence": round(summary.mean_confidence, 6),
            "uncertain_share": summary.uncertain_share, "input_uri": _png(root / "img" / f"{pid}.png", x[i]),
            "mask_uri": _png(root / "pred" / f"{pid}.png", proba[i].argmax(-1).astype(np.uint8)),
        })  # fmt: skip
        if i % 5:  # 80% get a true mask, a few days later
            labels.append({"prediction_id": pid, "mask_uri": _png(root / "true" / f"{pid}.png", true[i]),
                           "labelled_at": (start + WEEK).isoformat()})  # fmt: skip
    return predictions, labels


def _settings(database_url: str, tmp_path: Path, team: dict[str, Any]) -> Settings:
    model = {
        "name": "scenes",
        "task": "segmentation",
        "class_labels": list(CLASSES),
        "features": [{"name": "uncertain_share", "type": "numeric"}],
        "predictions": {"kind": "files", "path": str(tmp_path / "drop")},
        "labels": {"kind": "files", "path": str(tmp_path / "labels")},
        "image_roots": [str(tmp_path / "prod")],
        "contract": {"scale": 1 / 127.5, "offset": -1.0, "head_starts_at": team["head"]},
        "retrain": {"training_data": str(team["npz"]), "teacher_path": str(team["teacher"]), "epochs": 4,
                    "min_holdout": 10, "max_test_accuracy_drop": 0.1, "teacher_min_confidence": 0.9,
                    "recent_days": 21},
    }  # fmt: skip
    return Settings(
        database={"url": database_url},
        paths={"var_dir": tmp_path, "models_dir": tmp_path / "models", "reports_dir": tmp_path / "reports"},
        models=[model],
    )


def test_a_segmenter_retrains_from_masks_and_a_teacher_and_is_gated_on_mean_iou(database, tmp_path, team):
    from jobs.check.reference import reference_from_window
    from jobs.ml.segmentation import load_segmenter

    settings = _settings(database.url, tmp_path, team)
    champion = load_segmenter(team["champion"])
    with database.session_factory.begin() as s:
        repository.register_version(
            s, repository.ensure_model(s, "scenes", "segmentation"), 1, artifact_path=str(team["champion"])
        )
    for week, drift in ((0, False), (1, True)):
        predictions, labels = _week(tmp_path / "prod", f"w{week}", START + week * WEEK, 60, 10 + week, drift, champion)
        write_jsonl(tmp_path / "drop" / f"w{week}.jsonl", predictions)
        write_jsonl(tmp_path / "labels" / f"w{week}.jsonl", labels[: len(labels) // (1 if drift else 4)])
    ingest(database.session_factory, settings)
    reference_from_window(database.session_factory, settings.models[0], 1, START, START + WEEK)

    outcome = retrain(database.session_factory, settings, "scenes", force=True, now=START + 2 * WEEK)
    assert outcome.decision == "promoted", (outcome.reasons, outcome.metrics)
    metrics = outcome.metrics
    assert metrics["recent_mean_iou"] > metrics["champion_recent_mean_iou"] + 0.2, metrics
    assert metrics["test_mean_iou"] >= metrics["champion_test_mean_iou"] - 0.1
    assert metrics["n_teacher"] > 0 and metrics["n_holdout"] >= 10
    assert any(r.startswith("recent mean IoU") for r in outcome.reasons)
    assert all(a >= 0.99 for a in outcome.export["agreement"].values()), outcome.export
    manifest = json.loads((Path(outcome.export["out_dir"]) / "manifest.json").read_text())
    assert manifest["outputs"]["mask"]["shape"] == [1, SIZE, SIZE, len(CLASSES)]
    with database.session_factory.begin() as s:
        row = repository.get_model(s, "scenes")
        assert registry.champion(s, row).version == 2
        assert registry.rollback(s, row)[0].version == 1
