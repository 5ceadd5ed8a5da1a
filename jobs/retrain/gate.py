"""Training a challenger, judging it against the champion, and what a promotion installs.

TensorFlow is imported here only inside the functions (the ``ml`` extra).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from drift import ReferenceProfile
from jobs.check.frames import model_frame
from jobs.check.reference import build_reference
from jobs.config import ModelSettings, RetrainSettings, Settings
from jobs.ml.contract import Contract
from jobs.ml.imageset import ImageSet
from jobs.retrain.data import Samples, storage_options, window_inputs
from jobs.retrain.periods import HoldoutScore, HoldoutSplit, score
from jobs.retrain.training_data import TrainingData
from storage import repository

VERIFY_AT_MOST = 1000  # original-test images the export verifies each variant on


@dataclass(frozen=True, kw_only=True)
class GateDecision:
    promote: bool
    reasons: tuple[str, ...]
    metrics: dict[str, Any] = field(default_factory=dict)
    export: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)


def version_dir(settings: Settings, model: ModelSettings, version: int) -> Path:
    return settings.paths.models_dir / model.name / f"v{version}"


def teacher_samples(model: ModelSettings, images: ImageSet, now: datetime, contract: Contract) -> Samples | None:
    """Unlabelled recent images the teacher labels with at least ``teacher_min_confidence``, stamped ``now``."""
    policy = model.retrain
    if policy.teacher_path is None or len(images) == 0:
        return None
    from jobs.ml.teacher import pseudo_label

    labelled = pseudo_label(policy.teacher_path, images, contract, policy.teacher_min_confidence)
    n = len(labelled.labels)
    return Samples(
        prediction_id=np.array([f"teacher-{i}" for i in labelled.indices], dtype=object),
        images=labelled.images,
        y=np.asarray(labelled.labels, dtype=np.int64),
        predicted=np.asarray(labelled.labels, dtype=np.int64),
        confidence=np.zeros(n),
        ts=pd.DatetimeIndex([pd.Timestamp(now)] * n),
    )


@dataclass(frozen=True, kw_only=True)
class Challenger:
    """The trained challenger's file and what training left out (images that could not be read)."""

    path: Path
    skipped: dict[str, int] = field(default_factory=dict)
    seconds: float | None = None


def train_challenger(
    settings: Settings,
    model: ModelSettings,
    contract: Contract,
    champion_path: str,
    version: int,
    base: TrainingData,
    train: Samples,
    extra: Samples | None = None,
) -> Challenger:
    """Train version ``version`` from the champion's file into its version folder.

    ``extra``: teacher-labelled samples, added with the lowest weight and never counted as
    confidently wrong.
    """
    out_path = version_dir(settings, model, version) / "model.keras"
    policy = model.retrain
    weights = train.recency_weights()
    wrong = train.confidently_wrong(model.confidence_threshold)
    images, y = train.images, train.y
    if extra is not None and len(extra):
        images = ImageSet.concat([images, extra.images])
        y = np.concatenate([y, extra.y])
        weights = np.concatenate([weights, np.ones(len(extra))])
        wrong = np.concatenate([wrong, np.zeros(len(extra), dtype=bool)])
    if policy.custom_command:
        from jobs.ml.custom_trainer import run_custom_trainer

        samples_path = out_path.parent / "new_samples.csv"
        samples_path.parent.mkdir(parents=True, exist_ok=True)
        labels = np.asarray(model.class_labels, dtype=object)
        pd.DataFrame(
            {
                "uri": [e if isinstance(e, str) else f"array:{e}" for e in images.entries],
                "label": labels[y],
                "weight": weights,
                "confidently_wrong": wrong,
            }
        ).to_csv(samples_path, index=False)
        spec = {
            "model": model.name,
            "version": version,
            "champion_path": champion_path,
            "base_training_data": policy.training_data,
            "new_samples": str(samples_path),
            "class_labels": list(model.class_labels),
            "mode": policy.mode,
            "epochs": policy.epochs,
            "seed": policy.seed,
            "output_path": str(out_path),
        }
        return Challenger(path=run_custom_trainer(list(policy.custom_command), spec, out_path.parent, contract))
    from jobs.ml.train import NewSamples, retrain

    result = retrain(
        Path(champion_path),
        contract,
        base.train,
        NewSamples(images=images, labels=y, weights=weights, confidently_wrong=wrong),
        mode=policy.mode,
        epochs=policy.epochs,
        seed=policy.seed,
        out_path=out_path,
        batch_size=policy.batch_size,
        shift_pixels=policy.shift_pixels,
        head_shift_copies=policy.head_shift_copies,
        max_train_samples=policy.max_train_samples,
    )
    return Challenger(path=out_path, skipped=result.skipped, seconds=result.train_seconds)


def judge(
    settings: Settings,
    model: ModelSettings,
    contract: Contract,
    champion_path: str,
    challenger: Path,
    version: int,
    plan: Any,
    base: TrainingData,
    split: HoldoutSplit,
    holdout: Samples,
    window: tuple[datetime, datetime],
) -> GateDecision:
    """The gate: recent-data gain (weighted by period, see jobs.retrain.periods), original-test
    tolerance, confidently-wrong rate, then the export. ``holdout`` holds ``split``'s held-out
    samples, in order."""
    from jobs.ml.network import load_model, predict_set
    from jobs.ml.train import evaluate

    policy = model.retrain
    threshold = model.confidence_threshold
    n_drifted = split.n_drifted_held()
    data: dict[str, Any] = {
        "window": [t.isoformat() for t in window],
        "drift_window": [t.isoformat() for t in plan.drift_window] if plan.drift_window else None,
        "periods": [p.to_dict() for p in split.periods],
        "n_holdout": len(holdout),
        "n_holdout_drifted": n_drifted,
    }
    if len(holdout) < policy.min_holdout:
        reason = f"only {len(holdout)} held-out recent samples to judge on (< {policy.min_holdout})"
        return GateDecision(promote=False, reasons=(reason,), data=data)
    if plan.drift_window is not None and n_drifted == 0:
        reason = f"no held-out labelled samples from the drifted window (since {plan.drift_window[0]:%Y-%m-%d})"
        return GateDecision(promote=False, reasons=(reason,), data=data)
    assert base.test.labels is not None
    champion_model, challenger_model = load_model(champion_path), load_model(challenger)
    champ_test = evaluate(champion_model, base.test, base.test.labels, contract, threshold)
    chal_test = evaluate(challenger_model, base.test, base.test.labels, contract, threshold)
    champion_held = predict_set(champion_model, holdout.images, contract)
    scores = _holdout_score(
        split, champion_held, predict_set(challenger_model, holdout.images, contract), holdout, threshold,
        policy.drifted_weight,
    )  # fmt: skip
    data["images_unreadable"] = {"holdout": champion_held.failures, "test": champ_test.skipped}
    metrics = {"test_accuracy": chal_test.accuracy, "champion_test_accuracy": champ_test.accuracy, **scores.to_dict()}
    failures = recent_failures(
        policy, scores, test_accuracy=chal_test.accuracy, champion_test_accuracy=champ_test.accuracy
    )
    passed = [
        f"recent accuracy {scores.champion_accuracy:.1%} -> {scores.accuracy:.1%} ({scores.weighting})",
        f"test accuracy {champ_test.accuracy:.1%} -> {chal_test.accuracy:.1%}",
    ]
    if failures:
        return GateDecision(promote=False, reasons=tuple(failures), metrics=metrics, data=data)
    export = _export(settings, model, contract, challenger, version, plan, base, holdout, window)
    if not export["passed"]:
        return GateDecision(promote=False, reasons=tuple(export["reasons"]), metrics=metrics, export=export, data=data)
    return GateDecision(
        promote=True, reasons=(*passed, "TFLite export verified"), metrics=metrics, export=export, data=data
    )


def recent_failures(
    policy: RetrainSettings, scores: HoldoutScore, *, test_accuracy: float, champion_test_accuracy: float
) -> list[str]:
    """Why the challenger may not replace the champion on these figures (nothing: it may)."""
    gain = scores.accuracy - scores.champion_accuracy
    drop = champion_test_accuracy - test_accuracy
    failures = []
    if gain < policy.min_accuracy_gain:
        failures.append(
            f"recent accuracy {scores.accuracy:.1%} vs champion {scores.champion_accuracy:.1%} "
            f"({scores.weighting}): gain {gain:+.1%} < {policy.min_accuracy_gain:.1%}"
        )
    if drop > policy.max_test_accuracy_drop:
        failures.append(f"original test accuracy dropped {drop:.1%} (> {policy.max_test_accuracy_drop:.1%})")
    if scores.confidently_wrong_rate > scores.champion_confidently_wrong_rate:
        failures.append(
            f"confidently-wrong rate {scores.confidently_wrong_rate:.1%} worse than the champion's "
            f"{scores.champion_confidently_wrong_rate:.1%}"
        )
    return failures


def _holdout_score(
    split: HoldoutSplit, champion: Any, challenger: Any, holdout: Samples, threshold: float, drifted_weight: float
) -> HoldoutScore:
    """Both models' weighted figures on the held-out slice, from their predictions.

    A held-out image that could not be read counts as wrong for both models and confidently
    wrong for neither: the comparison stays fair, only the absolute figures drop.
    """
    readable = np.ones(len(holdout), bool) if champion.ok is None else champion.ok
    correct = (challenger.predicted == holdout.y) & readable
    champion_correct = (champion.predicted == holdout.y) & readable
    return score(
        split,
        correct=correct,
        confidently_wrong=~correct & readable & (challenger.confidence >= threshold),
        champion_correct=champion_correct,
        champion_confidently_wrong=~champion_correct & readable & (champion.confidence >= threshold),
        drifted_weight=drifted_weight,
    )


def sample_inputs(images: ImageSet, contract: Contract, at_most: int) -> np.ndarray:
    """Up to ``at_most`` readable images of ``images``, evenly spread, model-ready."""
    if len(images) == 0:
        return np.zeros((0, *contract.input_shape), np.float32)
    picked = np.unique(np.linspace(0, len(images) - 1, min(at_most, len(images))).astype(int))
    batch = images.load(picked, contract)
    return batch.x[batch.ok]


def _export(
    settings: Settings,
    model: ModelSettings,
    contract: Contract,
    challenger: Path,
    version: int,
    plan: Any,
    base: TrainingData,
    holdout: Samples,
    window: tuple[datetime, datetime],
) -> dict[str, Any]:
    from jobs.ml.export import export_tflite

    representative = np.concatenate(
        [sample_inputs(base.train, contract, 300), sample_inputs(holdout.images, contract, 100)]
    )
    report = export_tflite(
        challenger,
        version_dir(settings, model, version) / "export",
        representative,
        sample_inputs(base.test, contract, VERIFY_AT_MOST),
        contract,
        {
            "model_name": model.name,
            "version": version,
            "parent_version": plan.champion,
            "training_data_window": [t.isoformat() for t in window],
            "drift_run_id": plan.drift_run_id,
        },
        model.retrain.size_budget_bytes,
        min_agreement=model.retrain.min_export_agreement,
        min_agreement_int8=model.retrain.min_int8_agreement,
    )
    return export_record(report)


def export_record(report: Any, agreement: str = "agreement") -> dict[str, Any]:
    """What the retrain record and the version keep of an export (classifier or segmenter):
    pass/fail, where, why not, sizes and agreement (``agreement``: the variants' attribute) per file."""
    return {
        "passed": report.passed,
        "out_dir": str(report.out_dir),
        "reasons": list(report.reasons),
        "sizes": {v.path.name: v.size_bytes for v in report.variants},
        "agreement": {v.path.name: getattr(v, agreement) for v in report.variants},
        "seconds": round(report.seconds, 2),
    }


def challenger_reference(
    session_factory: sessionmaker[Session],
    settings: Settings,
    model: ModelSettings,
    contract: Contract,
    challenger: Path,
    holdout: Samples,
    window: tuple[datetime, datetime],
) -> tuple[ReferenceProfile, dict[str, Any]] | None:
    """The new version's reference: the latest window's inputs as the challenger sees them, and its
    predictions on the held-out labelled slice (for calibration and the confidently-wrong baseline)."""
    from jobs.ml.network import load_model, predict_set

    end = window[1]
    start = max(window[0], end - timedelta(days=model.drift.window_days))
    with session_factory() as session:
        model_row = repository.get_model(session, model.name)
        options = storage_options(settings)
        found = window_inputs(session, model, model_row, start, end, storage_options=options)
        if found is None:  # a quiet last week: the whole recent window
            start = window[0]
            found = window_inputs(session, model, model_row, start, end, storage_options=options)
    if found is None:
        return None
    rows, images = found
    if model.task == "segmentation":
        from jobs.retrain.segmentation import segmentation_reference

        return segmentation_reference(model, contract, challenger, rows, images, holdout, settings)
    trained = load_model(challenger)
    predictions = predict_set(trained, images, contract)
    ok = predictions.ok if predictions.ok is not None else np.ones(len(images), bool)
    if not ok.any():
        return None
    frame = model_frame(
        model,
        probabilities=predictions.probabilities[ok],
        numeric=rows.numeric[ok],
        categorical=rows.categorical[ok].reset_index(drop=True),
        embedding=predictions.embeddings[ok],
    )
    held = predict_set(trained, holdout.images, contract)
    held_ok = held.ok if held.ok is not None else np.ones(len(holdout), bool)
    labels = np.asarray(model.class_labels, dtype=object)
    extras = {
        "window": [start.isoformat(), end.isoformat()],
        "labelled": {
            "confidence": held.probabilities[held_ok].max(axis=1).astype(float).tolist(),
            "y_true": labels[holdout.y[held_ok]].tolist(),
            "y_pred": labels[held.probabilities[held_ok].argmax(axis=1)].tolist(),
        },
    }
    return build_reference(model, frame), extras
