"""Segmentation retraining: the segmenter, IGNORE pixels, pseudo-labels, head/full retrain, gate, export.

One module-scoped pipeline (64x64 scenes, seeded): a champion trained on clean scenes, a teacher
trained on clean + drifted scenes, the teacher's confident pixels on new drifted scenes, and a
head and a full retrain of the champion from them, measured on held-out drifted scenes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drift.errors import InsufficientDataError, ValidationError
from jobs.demo import scenes
from jobs.ml import segmentation as seg
from jobs.ml import segmentation_gate as sgate

pytestmark = [pytest.mark.tf, pytest.mark.slow]

SIZE = 64
N_CLASSES = 3


@dataclass(frozen=True, kw_only=True)
class Pipeline:
    clean: tuple[np.ndarray, np.ndarray]
    new_x: np.ndarray
    new_true: np.ndarray
    held: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    champion_path: Path
    champion_sha256: str
    teacher: Any
    pseudo: seg.PseudoMasks
    head: seg.SegRetrainResult
    full: seg.SegRetrainResult


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    pytest.importorskip("tensorflow", reason="needs the ml extra (tensorflow)")
    out = tmp_path_factory.mktemp("seg")
    clean = scenes.synthetic_scenes(160, SIZE, seed=0)
    drifted = scenes.synthetic_scenes(96, SIZE, seed=1, drift="light")
    new_x, new_true = scenes.synthetic_scenes(128, SIZE, seed=2, drift="light")
    champion = seg.build_segmenter(SIZE, N_CLASSES, seed=0)
    seg.fit_segmenter(champion, *clean, epochs=6, learning_rate=3e-3, seed=0)
    champion_path = seg.save_segmenter(champion, out / "champion.keras")
    teacher = seg.build_seg_teacher(SIZE, N_CLASSES, alpha=0.5, seed=1)
    teacher_x, teacher_m = (np.concatenate(pair) for pair in zip(clean, drifted, strict=True))
    seg.fit_segmenter(teacher, teacher_x, teacher_m, epochs=5, learning_rate=3e-3, seed=1)
    pseudo = seg.pseudo_label_masks(teacher, new_x, min_confidence=0.9)
    new = (new_x[pseudo.kept], pseudo.masks)
    sha = _sha256(champion_path)
    return Pipeline(
        clean=clean,
        new_x=new_x,
        new_true=new_true,
        held=scenes.synthetic_scenes(40, SIZE, seed=3, drift="light"),
        test=scenes.synthetic_scenes(40, SIZE, seed=4),
        champion_path=champion_path,
        champion_sha256=sha,
        teacher=teacher,
        pseudo=pseudo,
        head=seg.retrain_segmenter(
            champion_path, clean, new, mode="head", epochs=4, seed=0, out_path=out / "head.keras"
        ),
        full=seg.retrain_segmenter(
            champion_path, clean, new, mode="full", epochs=2, seed=0, out_path=out / "full.keras"
        ),
    )


@pytest.fixture(scope="module")
def evals(pipeline: Pipeline) -> dict[str, sgate.SegEval]:
    found = {}
    for name, path in (
        ("champion", pipeline.champion_path),
        ("head", pipeline.head.path),
        ("full", pipeline.full.path),
    ):
        found[f"{name}_held"] = sgate.evaluate_segmenter(path, *pipeline.held, N_CLASSES)
        found[f"{name}_test"] = sgate.evaluate_segmenter(path, *pipeline.test, N_CLASSES)
    return found


# ---------------------------------------------------------------------------------------------
# Model, contract, data


def test_segmenter_shapes_names_and_contract() -> None:
    pytest.importorskip("tensorflow")
    model = seg.build_segmenter(96, 3, seed=0)
    assert tuple(model.input.shape) == (None, 96, 96, 3)
    assert tuple(model.output.shape) == (None, 96, 96, 3)
    assert model.layers[-1].name == "mask"
    names = {ly.name for ly in seg.encoder_layers(model)}
    assert set(seg.SKIP_LAYERS) <= names
    assert not names & {ly.name for ly in seg.decoder_layers(model)}
    x = seg.to_model_input(np.array([[[[0, 255, 128]]]], np.uint8).repeat(96, 1).repeat(96, 2))
    proba = np.asarray(model(x, training=False))
    assert proba.shape == (1, 96, 96, 3)
    np.testing.assert_allclose(proba.sum(axis=-1), 1.0, atol=1e-5)
    assert x.min() == -1.0 and x.max() == 1.0
    assert seg.SEGMENTER_CONTRACT["height"] == 96 and seg.SEGMENTER_CONTRACT["offset"] == -1.0
    assert seg.SEGMENTER_CONTRACT["class_labels"] == ("background", "subject", "defect")
    with pytest.raises(ValidationError, match="multiple of 16"):
        seg.build_segmenter(50)


def test_synthetic_scenes_are_seeded_and_drift_changes_the_look() -> None:
    a_x, a_m = scenes.synthetic_scenes(12, 32, seed=5)
    b_x, b_m = scenes.synthetic_scenes(12, 32, seed=5)
    d_x, _ = scenes.synthetic_scenes(12, 32, seed=5, drift="light")
    assert a_x.dtype == np.uint8 and a_x.shape == (12, 32, 32, 3) and a_m.shape == (12, 32, 32)
    np.testing.assert_array_equal(a_x, b_x)
    np.testing.assert_array_equal(a_m, b_m)
    assert set(np.unique(a_m)) == {0, 1, 2}
    assert d_x.mean() < 0.6 * a_x.mean()  # low light
    assert d_x[..., 2].mean() > d_x[..., 0].mean()  # blue cast
    with pytest.raises(ValidationError, match="allowed"):
        scenes.synthetic_scenes(1, 32, drift="fog")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# IGNORE pixels


def test_targets_give_ignore_pixels_zero_weight() -> None:
    masks = np.array([[[0, 255], [2, 1]], [[255, 255], [1, 1]]], np.uint8)
    labels, weights = seg.segmentation_targets(masks, np.array([1.0, 3.0]), n_classes=3)
    assert labels.tolist() == [[[0, 0], [2, 1]], [[0, 0], [1, 1]]]
    assert weights.tolist() == [[[1, 0], [1, 1]], [[0, 0], [3, 3]]]
    with pytest.raises(ValidationError, match="outside"):
        seg.segmentation_targets(np.array([[[3]]], np.uint8), n_classes=3)


def test_ignore_pixels_do_not_change_the_loss_or_its_gradient(pipeline: Pipeline) -> None:
    import keras
    import tensorflow as tf

    model = seg.load_segmenter(pipeline.champion_path)
    x = seg.to_model_input(pipeline.clean[0][:4])
    masks = pipeline.clean[1][:4].copy()
    masks[:, :, : SIZE // 2] = seg.IGNORE  # the left half of every image unlabelled
    labels, weights = seg.segmentation_targets(masks)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()  # what compile_segmenter trains with

    def loss_and_grads(y: np.ndarray) -> tuple[float, list[np.ndarray]]:
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=False), sample_weight=weights)
        grads = tape.gradient(loss, model.trainable_variables)
        return float(loss), [np.asarray(g) for g in grads]

    other = labels.copy()
    other[:, :, : SIZE // 2] = 2  # different classes under the IGNORE pixels
    loss_a, grads_a = loss_and_grads(labels)
    loss_b, grads_b = loss_and_grads(other)
    assert loss_a == loss_b
    assert all(np.array_equal(a, b) for a, b in zip(grads_a, grads_b, strict=True))
    flipped = labels.copy()
    flipped[:, :, SIZE // 2 :] = 2  # a labelled pixel changes: the loss does too
    assert loss_and_grads(flipped)[0] > loss_a + 0.1
    all_ignored = np.full_like(masks, seg.IGNORE)
    with pytest.raises(InsufficientDataError, match="labelled pixel"):
        seg.fit_segmenter(model, pipeline.clean[0][:4], all_ignored, epochs=1)


# ---------------------------------------------------------------------------------------------
# Pseudo-labels


class _FixedProba:
    """A stand-in teacher returning fixed per-pixel probabilities."""

    def __init__(self, proba: np.ndarray) -> None:
        self.proba = proba

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        return self.proba[: len(x)]


def test_pseudo_labels_keep_confident_pixels_and_drop_unsure_images() -> None:
    proba = np.full((2, 2, 2, 3), 1 / 3, np.float32)
    proba[0, 0, 0] = [0.95, 0.03, 0.02]
    proba[0, 0, 1] = [0.02, 0.02, 0.96]
    proba[0, 1, 0] = [0.05, 0.91, 0.04]
    proba[1, 0, 0] = [0.0, 0.0, 1.0]
    images = np.zeros((2, 2, 2, 3), np.uint8)
    pm = seg.pseudo_label_masks(_FixedProba(proba), images, 0.9, min_confident_share=0.5)
    assert pm.kept.tolist() == [0]
    assert pm.masks.tolist() == [[[0, 2], [1, 255]]]
    assert pm.confident_share.tolist() == [0.75, 0.25]
    assert pm.n_images == 2 and pm.n_kept == 1
    assert not pm.masks.flags.writeable
    assert seg.pseudo_label_masks(_FixedProba(proba), images, 0.9, min_confident_share=0.0).n_kept == 2


def test_teacher_pseudo_labels_on_drifted_scenes_are_confident_and_right(pipeline: Pipeline) -> None:
    assert pipeline.teacher.count_params() > 2 * (pipeline.head.trainable_params + pipeline.head.frozen_params)
    pm = pipeline.pseudo
    proba = seg.predict_proba(pipeline.teacher, pipeline.new_x[pm.kept]).max(axis=-1)
    labelled = pm.masks != seg.IGNORE
    assert np.all(proba[labelled] >= 0.9) and np.all(proba[~labelled] < 0.9)
    assert pm.n_kept >= 0.9 * pm.n_images
    assert 0.6 < labelled.mean() < 1.0
    assert (pm.masks[labelled] == pipeline.new_true[pm.kept][labelled]).mean() > 0.97


# ---------------------------------------------------------------------------------------------
# Retraining


def test_champion_is_good_on_clean_and_bad_on_drifted_scenes(evals: dict[str, sgate.SegEval]) -> None:
    assert evals["champion_test"].mean_iou > 0.75
    assert evals["champion_held"].mean_iou < 0.35


def test_head_retrain_freezes_the_encoder_and_lifts_drifted_iou(
    pipeline: Pipeline, evals: dict[str, sgate.SegEval]
) -> None:
    champion, head = seg.load_segmenter(pipeline.champion_path), seg.load_segmenter(pipeline.head.path)
    enc_c, enc_h = champion.get_layer("encoder").get_weights(), head.get_layer("encoder").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(enc_c, enc_h, strict=True))  # BN statistics included
    dec_c = [w for ly in seg.decoder_layers(champion) for w in ly.get_weights()]
    dec_h = [w for ly in seg.decoder_layers(head) for w in ly.get_weights()]
    assert not any(np.array_equal(a, b) for a, b in zip(dec_c, dec_h, strict=True))
    r = pipeline.head
    assert (r.mode, r.n_base, r.n_new) == ("head", 160, pipeline.pseudo.n_kept)
    assert r.trainable_params + r.frozen_params == champion.count_params()
    assert r.trainable_params < 0.3 * champion.count_params()
    assert 0.0 < r.final_loss < r.losses[0]
    assert _sha256(pipeline.champion_path) == pipeline.champion_sha256
    assert not list(pipeline.head.path.parent.glob(".*.keras"))  # no temporary file left
    assert evals["head_held"].mean_iou > evals["champion_held"].mean_iou + 0.3


def test_full_retrain_lifts_drifted_iou_and_keeps_clean_iou(
    pipeline: Pipeline, evals: dict[str, sgate.SegEval]
) -> None:
    assert pipeline.full.trainable_params > 0.9 * (pipeline.full.trainable_params + pipeline.full.frozen_params)
    assert evals["full_held"].mean_iou > evals["champion_held"].mean_iou + 0.4
    assert evals["full_test"].mean_iou > evals["champion_test"].mean_iou - 0.05
    assert _sha256(pipeline.champion_path) == pipeline.champion_sha256


def test_retrain_is_repeatable_with_the_same_seed(pipeline: Pipeline, tmp_path: Path) -> None:
    base = (pipeline.clean[0][:16], pipeline.clean[1][:16])
    new = (pipeline.new_x[pipeline.pseudo.kept][:16], pipeline.pseudo.masks[:16], np.full(16, 2.0))
    runs = [
        seg.retrain_segmenter(
            pipeline.champion_path, base, new, mode="head", epochs=1, seed=3, out_path=tmp_path / f"r{i}.keras"
        )
        for i in range(2)
    ]
    assert runs[0].losses == runs[1].losses
    a, b = (seg.load_segmenter(r.path).get_weights() for r in runs)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_retrain_refuses_to_overwrite_the_champion_and_unknown_modes(pipeline: Pipeline) -> None:
    data = (pipeline.clean[0][:2], pipeline.clean[1][:2])
    with pytest.raises(ValidationError, match="differ from the champion"):
        seg.retrain_segmenter(pipeline.champion_path, data, data, epochs=1, out_path=pipeline.champion_path)
    with pytest.raises(ValidationError, match="allowed: head, full"):
        seg.retrain_segmenter(
            pipeline.champion_path,
            data,
            data,
            mode="last",  # type: ignore[arg-type]
            epochs=1,
            out_path=pipeline.champion_path.with_name("x.keras"),
        )


# ---------------------------------------------------------------------------------------------
# Gate


def _eval(miou: float) -> sgate.SegEval:
    return sgate.SegEval(mean_iou=miou, per_class_iou=(miou, miou, miou), pixel_accuracy=0.9, n=10, n_pixels=40960)


@pytest.mark.parametrize(
    ("recent", "test", "promote"),
    [
        pytest.param((0.41, 0.63), (0.80, 0.79), True, id="gain-and-small-test-drop"),
        pytest.param((0.41, 0.44), (0.80, 0.80), False, id="gain-below-margin"),
        pytest.param((0.41, 0.63), (0.80, 0.70), False, id="test-drop-too-large"),
        pytest.param((0.63, 0.41), (0.80, 0.85), False, id="worse-on-recent"),
    ],
)
def test_gate_decisions(recent: tuple[float, float], test: tuple[float, float], promote: bool) -> None:
    ok, reasons = sgate.segmentation_gate(
        _eval(recent[0]), _eval(recent[1]), _eval(test[0]), _eval(test[1]), min_iou_gain=0.05, max_test_iou_drop=0.02
    )
    assert ok is promote
    assert reasons[0].startswith(f"recent mean IoU {recent[0]:.2f} -> {recent[1]:.2f}")
    assert reasons[1].startswith(f"test mean IoU {test[0]:.2f} -> {test[1]:.2f}")


def test_gate_refuses_evals_on_different_masks_and_undefined_iou() -> None:
    with pytest.raises(ValidationError, match="not on the same masks"):
        sgate.segmentation_gate(
            _eval(0.4), replace(_eval(0.6), n=11), _eval(0.8), _eval(0.8), min_iou_gain=0.0, max_test_iou_drop=0.0
        )
    ok, reasons = sgate.segmentation_gate(
        _eval(float("nan")), _eval(0.6), _eval(0.8), _eval(0.8), min_iou_gain=0.0, max_test_iou_drop=0.0
    )
    assert not ok and "undefined" in reasons[0]


def test_gate_promotes_the_real_challenger(evals: dict[str, sgate.SegEval]) -> None:
    ok, reasons = sgate.segmentation_gate(
        evals["champion_held"],
        evals["full_held"],
        evals["champion_test"],
        evals["full_test"],
        min_iou_gain=0.1,
        max_test_iou_drop=0.05,
    )
    assert ok, reasons


# ---------------------------------------------------------------------------------------------
# Export


def test_export_three_variants_agree_per_pixel_and_manifest_describes_the_mask(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    from jobs.ml.segmentation_export import export_segmenter

    held_x = pipeline.held[0]
    verify = seg.to_model_input(np.concatenate([held_x[:16], pipeline.test[0][:16]]))
    fields = {"model_name": "scenes-seg", "version": 2, "parent_version": 1, "drift_run_id": "run-7", "team": "qa"}
    report = export_segmenter(
        pipeline.full.path,
        tmp_path,
        seg.to_model_input(pipeline.new_x[:64]),
        verify,
        seg.DEFAULT_CLASS_LABELS,
        fields,
        size_budget_bytes=1_500_000,
    )
    assert report.passed, report.reasons
    assert report.n_verify == 32
    for v in report.variants:
        assert v.pixel_agreement >= 0.99 and v.min_pixel_agreement == 0.99, v.name
        assert v.sha256 == _sha256(v.path)
    assert report.variant("float32").max_abs_prob_diff < 1e-4
    assert report.variant("int8").size_bytes < 0.7 * report.variant("float32").size_bytes
    manifest = json.loads(report.manifest_path.read_text())
    assert manifest["task"] == "segmentation"
    assert manifest["outputs"]["mask"]["shape"] == [1, SIZE, SIZE, N_CLASSES]
    assert manifest["outputs"]["mask"]["activation"] == "softmax"
    assert "argmax" in manifest["outputs"]["mask"]["decode"]
    assert manifest["input"]["shape"] == [1, SIZE, SIZE, 3]
    assert manifest["input"]["normalisation"]["offset"] == -1.0
    assert manifest["labels"] == ["background", "subject", "defect"]
    assert report.labels_path.read_text() == "background\nsubject\ndefect\n"
    assert manifest["all_checks_passed"] and manifest["extra"] == {"team": "qa"}
    assert manifest["files"]["model_int8.tflite"]["pixel_agreement"] == report.variant("int8").pixel_agreement
    with pytest.raises(ValidationError, match="finite model-ready inputs"):
        export_segmenter(pipeline.full.path, tmp_path / "bad", verify * np.inf, verify, ("a", "b", "c"), fields, 10**6)
