"""Retraining a segmentation model: true masks, a teacher's confident pixels, a mean-IoU gate.

For a model with ``task: segmentation`` the retrain job (:mod:`jobs.retrain.job`) plans, leases,
records and registers as for a classifier, and hands the training and the gate to
:func:`train_and_judge`:

- **learns from** the champion's training set (``retrain.training_data``: an ``.npz`` with
  ``x_train`` images, ``y_train`` class-index masks, ``x_test``, ``y_test``) plus the recent
  labelled production images whose label carries a true mask (``mask_uri``), recent ones
  weighted up; and, with ``retrain.teacher_path``, the recent *unlabelled* images labelled by a
  larger segmentation model, pixel by pixel: pixels below ``teacher_min_confidence`` are
  ignored (zero weight), images with too few confident pixels left out. This is how the
  product's users built their small MobileNet segmenter in the first place.
- **head** mode freezes every layer before ``contract.head_starts_at`` (the encoder), **full**
  trains everything.
- **the gate** judges mean IoU on the held-out recent masks (``min_accuracy_gain`` is the gain
  in mean IoU it needs) and on the original test set (``max_test_accuracy_drop`` the drop it
  tolerates), then exports to TFLite, each variant verified by pixel-argmax agreement >= 99%.

Images and masks go through the one preprocessing (:mod:`jobs.ml.preprocess`) and
:func:`jobs.images.read_mask`; masks are resized to the model's input with nearest-neighbour.
A missing or unreadable image or mask is left out and counted by reason.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from drift.errors import TrainingError
from jobs.config import ModelSettings, Settings
from jobs.images import read_mask
from jobs.ml.contract import Contract
from jobs.ml.imageset import ImageSet
from jobs.ml.preprocess import model_input
from jobs.retrain.data import Samples, storage_options
from jobs.retrain.gate import Challenger, GateDecision, export_record, version_dir
from jobs.retrain.periods import HoldoutSplit


def _resized(mask: np.ndarray, contract: Contract) -> np.ndarray:
    if mask.shape == (contract.height, contract.width):
        return mask.astype(np.uint8)
    from PIL import Image

    img = Image.fromarray(mask.astype(np.uint8)).resize((contract.width, contract.height), Image.Resampling.NEAREST)
    return np.asarray(img, dtype=np.uint8)


def load_pairs(
    images: ImageSet, mask_uris: np.ndarray, model: ModelSettings, contract: Contract, settings: Settings
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Counter[str]]:
    """Model-ready images, their masks at the input size, which rows loaded, and why others did not."""
    batch = images.load(np.arange(len(images)), contract)
    ok = batch.ok.copy()
    reasons: Counter[str] = Counter(r for r in batch.reasons if r)
    masks = np.zeros((len(images), contract.height, contract.width), np.uint8)
    options = storage_options(settings)
    for i, uri in enumerate(mask_uris):
        mask, problem = read_mask(uri, model.image_roots, contract.n_classes, storage_options=options)
        if mask is None:
            if ok[i]:
                reasons[f"mask {problem}"] += 1
            ok[i] = False
        else:
            masks[i] = _resized(mask, contract)
    return batch.x, masks, ok, reasons


def _base(model: ModelSettings, contract: Contract) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    location = model.retrain.training_data
    if location is None or not str(location).endswith(".npz"):
        raise TrainingError(
            "a segmentation model's retrain.training_data must be an .npz with x_train, y_train (masks), x_test, y_test"
        )
    try:
        with np.load(location) as data:
            arrays = [data[k] for k in ("x_train", "y_train", "x_test", "y_test")]
    except (OSError, KeyError, ValueError) as exc:
        raise TrainingError(f"{location}: cannot read the training data: {exc}") from exc
    x_train, y_train, x_test, y_test = arrays
    masks = [np.stack([_resized(m, contract) for m in y]) if len(y) else y for y in (y_train, y_test)]
    return model_input(x_train, contract), masks[0], model_input(x_test, contract), masks[1]


def train_and_judge(
    settings: Settings,
    model: ModelSettings,
    contract: Contract,
    champion_path: str,
    version: int,
    plan: Any,
    samples: Samples,
    split: HoldoutSplit,
    window: tuple[datetime, datetime],
    unlabelled: ImageSet | None,
) -> tuple[Challenger, GateDecision]:
    """Train the challenger on true masks (and teacher pixels), then judge it on mean IoU; see the module."""
    from jobs.ml.segmentation import load_segmenter, pseudo_label_masks, retrain_segmenter
    from jobs.ml.segmentation_gate import evaluate_segmenter, segmentation_gate

    policy = model.retrain
    if samples.mask_uris is None:
        raise TrainingError("no labelled production samples carry a true mask (mask_uri)")
    x, masks, ok, skipped = load_pairs(samples.images, samples.mask_uris, model, contract, settings)
    held = split.held
    train_rows, held_rows = ~held & ok, held & ok
    weights = samples.recency_weights() * 3.0  # new samples weigh more than the base set's
    new_x, new_m, new_w = x[train_rows], masks[train_rows], weights[train_rows]
    n_teacher = 0
    if policy.teacher_path is not None and unlabelled is not None and len(unlabelled):
        loaded = unlabelled.load(np.arange(len(unlabelled)), contract)
        pseudo = pseudo_label_masks(
            load_segmenter(Path(policy.teacher_path)), loaded.x[loaded.ok], policy.teacher_min_confidence
        )
        n_teacher = pseudo.n_kept
        if n_teacher:
            new_x = np.concatenate([new_x, loaded.x[loaded.ok][pseudo.kept]])
            new_m = np.concatenate([new_m, pseudo.masks])
            new_w = np.concatenate([new_w, np.ones(n_teacher)])
    base_x, base_m, test_x, test_m = _base(model, contract)
    out_path = version_dir(settings, model, version) / "model.keras"
    result = retrain_segmenter(
        Path(champion_path), (base_x, base_m), (new_x, new_m, new_w.astype(np.float32)), mode=policy.mode,
        epochs=policy.epochs, seed=policy.seed, out_path=out_path, batch_size=min(policy.batch_size, 16),
        head_starts_at=contract.head_starts_at,
    )  # fmt: skip
    challenger = Challenger(path=out_path, skipped=dict(skipped), seconds=result.seconds)
    data = {
        "window": [t.isoformat() for t in window],
        "n_holdout": int(held_rows.sum()),
        "n_train_new": int(train_rows.sum()),
        "n_teacher": n_teacher,
        "images_skipped": {"samples": samples.skipped, "training": dict(skipped)},
    }
    if held_rows.sum() < policy.min_holdout:
        reason = f"only {int(held_rows.sum())} held-out recent masks to judge on (< {policy.min_holdout})"
        return challenger, GateDecision(promote=False, reasons=(reason,), data=data)
    n = contract.n_classes
    champion, trained = load_segmenter(Path(champion_path)), load_segmenter(out_path)
    recent = [evaluate_segmenter(m, x[held_rows], masks[held_rows], n) for m in (champion, trained)]
    test = [evaluate_segmenter(m, test_x, test_m, n) for m in (champion, trained)]
    promote, reasons = segmentation_gate(
        recent[0], recent[1], test[0], test[1], min_iou_gain=policy.min_accuracy_gain,
        max_test_iou_drop=policy.max_test_accuracy_drop,
    )  # fmt: skip
    metrics = {
        "recent_mean_iou": recent[1].mean_iou,
        "champion_recent_mean_iou": recent[0].mean_iou,
        "test_mean_iou": test[1].mean_iou,
        "champion_test_mean_iou": test[0].mean_iou,
        "n_holdout": int(held_rows.sum()),
        "n_teacher": n_teacher,
    }
    if not promote:
        return challenger, GateDecision(promote=False, reasons=tuple(reasons), metrics=metrics, data=data)
    export = _export(settings, model, out_path, version, plan, base_x, test_x, window)
    if not export["passed"]:
        return challenger, GateDecision(
            promote=False, reasons=tuple(export["reasons"]), metrics=metrics, export=export, data=data
        )
    return challenger, GateDecision(
        promote=True, reasons=(*reasons, "TFLite export verified"), metrics=metrics, export=export, data=data
    )


def _export(
    settings: Settings, model: ModelSettings, challenger: Path, version: int, plan: Any, base_x: np.ndarray,
    test_x: np.ndarray, window: tuple[datetime, datetime],
) -> dict[str, Any]:  # fmt: skip
    from jobs.ml.segmentation_export import export_segmenter

    report = export_segmenter(
        challenger,
        version_dir(settings, model, version) / "export",
        base_x[:200],
        test_x[:200],
        model.class_labels,
        {
            "model_name": model.name,
            "version": version,
            "parent_version": plan.champion,
            "training_data_window": [t.isoformat() for t in window],
            "drift_run_id": plan.drift_run_id,
        },
        model.retrain.size_budget_bytes,
        min_pixel_agreement=model.retrain.min_export_agreement,
    )
    return export_record(report, "pixel_agreement")


def segmentation_reference(
    model: ModelSettings, contract: Contract, challenger: Path, rows: Any, images: ImageSet, holdout: Samples,
    settings: Settings,
) -> tuple[Any, dict[str, Any]] | None:  # fmt: skip
    """The new version's reference: the latest window's images as its masks summarise them (pixel
    shares as the outputs), and its masks' dominant class on the held-out labelled slice."""
    from drift.segmentation import mask_summary
    from jobs.check.frames import model_frame
    from jobs.check.reference import build_reference
    from jobs.ml.segmentation import load_segmenter, predict_proba

    segmenter = load_segmenter(challenger)
    batch = images.load(np.arange(len(images)), contract)
    if not batch.ok.any():
        return None
    proba = predict_proba(segmenter, batch.x[batch.ok])
    summaries = [mask_summary(p, model.class_labels) for p in proba]
    ok = batch.ok
    frame = model_frame(
        model,
        probabilities=np.array([s.pixel_share for s in summaries]),
        numeric=rows.numeric[ok],
        categorical=rows.categorical[ok].reset_index(drop=True),
        embedding=None,
    )
    labels = np.asarray(model.class_labels, dtype=object)
    held = holdout.images.load(np.arange(len(holdout)), contract)
    held_proba = predict_proba(segmenter, held.x[held.ok]) if held.ok.any() else np.zeros((0, 1, 1, len(labels)))
    held_summaries = [mask_summary(p, model.class_labels) for p in held_proba]
    extras = {
        "labelled": {
            "confidence": [s.mean_confidence for s in held_summaries],
            "y_true": labels[holdout.y[held.ok]].tolist(),
            "y_pred": [labels[int(np.argmax(s.pixel_share))] for s in held_summaries],
        }
    }
    return build_reference(model, frame), extras
