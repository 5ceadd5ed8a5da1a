"""Segmentation models: a small MobileNetV2 segmenter, its teacher, pseudo-labels, retraining, gate.

The segmenter (:func:`build_segmenter`) is a MobileNetV2 encoder (``weights=None``, nothing is
downloaded) nested as one layer named ``encoder``, with skip features from four of its layers
(:data:`SKIP_LAYERS`, strides 2, 4, 8 and 16) and a light decoder (bilinear upsampling,
depthwise 3x3 + pointwise 1x1 convolutions, layers named ``decoder_*``) ending in a per-pixel
softmax ``(size, size, n_classes)`` named ``mask``. Inputs are float32 RGB in [-1, 1]
(``pixel / 127.5 - 1``, MobileNetV2's convention; :func:`to_model_input`), described by
:func:`segmenter_contract`. ``mode="head"`` retraining freezes the encoder (its BatchNorm
statistics included) and trains the decoder only; ``mode="full"`` fine-tunes everything.

Masks are ``(N, H, W)`` class indices; :data:`IGNORE` (255) marks pixels without a label, which
get zero weight in training and are left out of IoU. :func:`pseudo_label_masks` turns a
teacher's confident pixels into such masks. :func:`segmentation_gate` compares evaluations
(:func:`jobs.ml.segmentation_gate.evaluate_segmenter`, IoU from :mod:`drift.segmentation`);
:func:`jobs.demo.scenes.synthetic_scenes` draws seeded scenes for tests and demos.

Training (:func:`fit_segmenter`, :func:`retrain_segmenter`) weights each pixel (0 at IGNORE),
seeds Keras and turns on TensorFlow's op determinism (process-wide), so a run repeats bit for
bit on one machine; on CPU that roughly doubles the train-step trace and slows each step. Every
BatchNorm uses momentum 0.9 (MobileNetV2's 0.999 would leave the inference statistics near their
initial values after the few hundred steps a retrain takes). TensorFlow is imported inside
functions only.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from drift.errors import InsufficientDataError, TrainingError, ValidationError

IGNORE = 255
ENCODER_NAME = "encoder"
DECODER_PREFIX = "decoder_"
OUTPUT_NAME = "mask"
INPUT_NAME = "image"
SKIP_LAYERS = ("block_1_expand_relu", "block_3_expand_relu", "block_6_expand_relu", "block_13_expand_relu")
DEFAULT_CLASS_LABELS = ("background", "subject", "defect")
DEFAULT_LEARNING_RATES = {"head": 2e-3, "full": 1e-3}
_VALID_MODES = ("head", "full")
_BN_MOMENTUM = 0.9


def segmenter_contract(size: int = 96, class_labels: Sequence[str] = DEFAULT_CLASS_LABELS) -> dict[str, Any]:
    """What a segmenter built here expects and returns (a fresh dict each call)."""
    return {
        "task": "segmentation",
        "height": size,
        "width": size,
        "channels": 3,
        "color_mode": "rgb",
        "resize": "bilinear",
        "scale": 1.0 / 127.5,
        "offset": -1.0,
        "formula": "input = pixel_uint8 * scale + offset",
        "output": "softmax",
        "output_name": OUTPUT_NAME,
        "class_labels": tuple(class_labels),
        "ignore_index": IGNORE,
    }


SEGMENTER_CONTRACT: dict[str, Any] = segmenter_contract()


def _keras() -> Any:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    return keras


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and Keras, and make TensorFlow ops deterministic (process-wide)."""
    keras = _keras()
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def to_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 RGB ``(N, H, W, 3)`` -> float32 in [-1, 1] (``pixel / 127.5 - 1``)."""
    x = np.asarray(images)
    if x.ndim != 4:
        raise ValidationError(f"images must be (N, H, W, C), got shape {x.shape}")
    if np.issubdtype(x.dtype, np.floating):  # model-ready already (jobs.ml.preprocess with the contract)
        return x.astype(np.float32, copy=False)
    if x.dtype != np.uint8 or x.shape[-1] != 3:
        raise ValidationError(f"images must be uint8 RGB pixels or model-ready floats, got {x.dtype} {x.shape}")
    return x.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


# ---------------------------------------------------------------------------------------------
# Models


def _segmenter(size: int, n_classes: int, alpha: float, widths: tuple[int, int, int], seed: int, name: str) -> Any:
    if size < 32 or size % 16:
        raise ValidationError(f"size must be a multiple of 16 and >= 32, got {size}")
    if n_classes < 2:
        raise ValidationError(f"n_classes must be >= 2, got {n_classes}")
    keras = _keras()
    layers = keras.layers
    keras.utils.set_random_seed(seed)
    base = keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=alpha, include_top=False, weights=None)
    for layer in base.layers:  # MobileNetV2's 0.999 leaves the statistics at their start after a few hundred steps
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = _BN_MOMENTUM
    encoder = keras.Model(base.input, [base.get_layer(n).output for n in SKIP_LAYERS], name=ENCODER_NAME)
    inputs = keras.Input((size, size, 3), name=INPUT_NAME)
    *skips, x = encoder(inputs)
    for i, (skip, filters) in enumerate(zip(reversed(skips), widths, strict=True)):
        p = f"{DECODER_PREFIX}{i}_"
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"{p}up")(x)
        x = layers.Concatenate(name=f"{p}concat")([x, skip])
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{p}dw")(x)
        x = layers.Conv2D(filters, 1, use_bias=False, name=f"{p}pw")(x)
        x = layers.BatchNormalization(momentum=_BN_MOMENTUM, name=f"{p}bn")(x)
        x = layers.ReLU(6.0, name=f"{p}relu")(x)
    x = layers.Conv2D(n_classes, 1, name=f"{DECODER_PREFIX}logits")(x)
    x = layers.UpSampling2D(2, interpolation="bilinear", name=f"{DECODER_PREFIX}up_out")(x)
    outputs = layers.Softmax(name=OUTPUT_NAME)(x)
    return keras.Model(inputs, outputs, name=name)


def build_segmenter(size: int = 96, n_classes: int = 3, alpha: float = 0.35, seed: int = 0) -> Any:
    """The small segmenter: MobileNetV2(alpha) encoder + a 64/48/32-wide decoder, seeded."""
    return _segmenter(size, n_classes, alpha, (64, 48, 32), seed, "segmenter")


def build_seg_teacher(size: int = 96, n_classes: int = 3, alpha: float = 1.0, seed: int = 0) -> Any:
    """The teacher: a wider MobileNetV2 encoder (alpha 1.0 by default) and a 128/96/64 decoder."""
    return _segmenter(size, n_classes, alpha, (128, 96, 64), seed, "seg_teacher")


def encoder_layers(model: Any) -> list[Any]:
    """The layers of the encoder (the nested MobileNetV2 part)."""
    return list(model.get_layer(ENCODER_NAME).layers)


def decoder_layers(model: Any) -> list[Any]:
    """The decoder's layers (``decoder_*`` and the ``mask`` softmax)."""
    return [ly for ly in model.layers if ly.name.startswith(DECODER_PREFIX) or ly.name == OUTPUT_NAME]


def set_encoder_trainable(model: Any, trainable: bool, head_starts_at: str | None = None) -> None:
    """Freeze (``False``) or unfreeze the encoder; a frozen encoder's BatchNorm runs in inference mode.

    ``head_starts_at`` (a team's model, from its contract): the encoder is every layer before
    that one in the model's layer order; without it, the layer named ``encoder``.
    """
    if head_starts_at is None:
        model.get_layer(ENCODER_NAME).trainable = trainable
        return
    names = [layer.name for layer in model.layers]
    if head_starts_at not in names:
        raise ValidationError(f"contract.head_starts_at {head_starts_at!r} is not a layer of {model.name}")
    for layer in model.layers[: names.index(head_starts_at)]:
        layer.trainable = trainable


def save_segmenter(model: Any, path: Path) -> Path:
    """Save as ``.keras`` through a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValidationError(f"a Keras model file must end in .keras, got {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(suffix=".keras", dir=path.parent, prefix=f".{path.stem}.")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        model.save(tmp)
        tmp.replace(path)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise TrainingError(f"cannot save segmenter to {path}: {exc}") from exc
    return path


def load_segmenter(path: Path) -> Any:
    """Load a ``.keras`` segmenter; a missing or unreadable file raises TrainingError."""
    keras = _keras()
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"model file {path} does not exist")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:
        raise TrainingError(f"cannot load Keras model {path}: {exc}") from exc


def predict_proba(model_or_path: Any, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Per-pixel class probabilities ``(N, H, W, C)`` float32 for uint8 images."""
    model = load_segmenter(Path(model_or_path)) if isinstance(model_or_path, str | Path) else model_or_path
    x = to_model_input(images)
    parts = [np.asarray(model(x[i : i + batch_size], training=False), np.float32) for i in range(0, len(x), batch_size)]
    if not parts:
        return np.zeros((0, *x.shape[1:3], int(model.output.shape[-1])), np.float32)
    return np.concatenate(parts)


# ---------------------------------------------------------------------------------------------
# Pseudo-labels


@dataclass(frozen=True, kw_only=True)
class PseudoMasks:
    """A teacher's confident pixels as masks.

    Attributes:
        masks: ``(K, H, W)`` uint8 class indices of the kept images, :data:`IGNORE` where the
            teacher's top probability is below ``min_confidence``.
        kept: ``(K,)`` indices of the kept images into the images given.
        confident_share: ``(N,)`` share of confident pixels of every image given.
        min_confidence: the per-pixel threshold used.
        min_confident_share: images with a smaller share of confident pixels were dropped.
    """

    masks: np.ndarray
    kept: np.ndarray
    confident_share: np.ndarray
    min_confidence: float
    min_confident_share: float

    @property
    def n_images(self) -> int:
        return len(self.confident_share)

    @property
    def n_kept(self) -> int:
        return len(self.kept)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_images": self.n_images,
            "n_kept": self.n_kept,
            "mean_confident_share": float(self.confident_share.mean()) if self.n_images else math.nan,
            "min_confidence": self.min_confidence,
            "min_confident_share": self.min_confident_share,
        }


def pseudo_label_masks(
    teacher: Any, images: np.ndarray, min_confidence: float = 0.9, *, min_confident_share: float = 0.5
) -> PseudoMasks:
    """Label ``images`` with the teacher's per-pixel argmax, keeping only confident pixels.

    Pixels whose top probability is below ``min_confidence`` become :data:`IGNORE`; images
    with fewer than ``min_confident_share`` confident pixels are dropped.
    """
    if not 0.0 < min_confidence <= 1.0 or not 0.0 <= min_confident_share <= 1.0:
        raise ValidationError(
            f"min_confidence must lie in (0, 1] and min_confident_share in [0, 1], "
            f"got {min_confidence!r}, {min_confident_share!r}"
        )
    proba = predict_proba(teacher, images)
    if proba.shape[-1] >= IGNORE:
        raise ValidationError(f"at most {IGNORE - 1} classes fit a uint8 mask with IGNORE={IGNORE}")
    confident = proba.max(axis=-1) >= min_confidence
    masks = np.where(confident, proba.argmax(axis=-1), IGNORE).astype(np.uint8)
    share = confident.reshape(len(images), -1).mean(axis=1) if len(images) else np.zeros(0)
    kept = np.flatnonzero(share >= min_confident_share)
    result = PseudoMasks(
        masks=masks[kept],
        kept=kept,
        confident_share=share.astype(np.float64),
        min_confidence=float(min_confidence),
        min_confident_share=float(min_confident_share),
    )
    for arr in (result.masks, result.kept, result.confident_share):
        arr.setflags(write=False)
    return result


# ---------------------------------------------------------------------------------------------
# Training


def segmentation_targets(
    masks: np.ndarray, image_weights: np.ndarray | None = None, n_classes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Training targets: int32 labels (IGNORE replaced by 0) and float32 per-pixel weights
    (the image's weight, 0 at IGNORE pixels)."""
    m = np.asarray(masks)
    if m.ndim != 3 or not np.issubdtype(m.dtype, np.integer):
        raise ValidationError(f"masks must be (N, H, W) integer class indices, got {m.dtype} {m.shape}")
    w = np.ones(len(m), np.float32) if image_weights is None else np.asarray(image_weights, np.float32)
    if w.shape != (len(m),) or not np.all(np.isfinite(w)) or (w.size and w.min() < 0):
        raise ValidationError(f"image weights must be (N,) finite and >= 0, got shape {w.shape}")
    labelled = m != IGNORE
    if n_classes is not None and m[labelled].size and (m[labelled].min() < 0 or m[labelled].max() >= n_classes):
        raise ValidationError(f"masks hold class indices outside 0..{n_classes - 1} (and IGNORE={IGNORE})")
    labels = np.where(labelled, m, 0).astype(np.int32)
    return labels, (labelled * w[:, None, None]).astype(np.float32)


def compile_segmenter(model: Any, learning_rate: float) -> None:
    """Adam + sparse categorical crossentropy weighted per pixel; the optimizer is built up front
    (one trace of the train step instead of two)."""
    keras = _keras()
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", jit_compile=False)
    optimizer.build(model.trainable_variables)


def fit_segmenter(
    model: Any,
    images: np.ndarray,
    masks: np.ndarray,
    *,
    image_weights: np.ndarray | None = None,
    epochs: int,
    learning_rate: float = 3e-3,
    batch_size: int = 16,
    seed: int = 0,
) -> tuple[float, ...]:
    """Train ``model`` in place on uint8 images and masks (IGNORE pixels weigh 0); the loss per epoch.

    Raises:
        InsufficientDataError: no labelled pixel with a positive weight.
        TrainingError: Keras failed or the loss is not finite.
    """
    if epochs < 1 or batch_size < 1 or not learning_rate > 0:
        raise ValidationError(f"need epochs >= 1, batch_size >= 1, learning_rate > 0; got {epochs}, {batch_size}")
    x = to_model_input(images)
    n_classes = int(model.output.shape[-1])
    labels, weights = segmentation_targets(masks, image_weights, n_classes)
    if labels.shape != x.shape[:3]:
        raise ValidationError(f"images {x.shape[:3]} and masks {labels.shape} differ in shape")
    if not weights.any():
        raise InsufficientDataError(f"none of the {len(labels)} masks has a labelled pixel with a positive weight")
    seed_everything(seed)
    compile_segmenter(model, learning_rate)
    try:
        hist = model.fit(
            x, labels, sample_weight=weights, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0
        )
    except Exception as exc:
        raise TrainingError(f"segmenter training failed: {exc}") from exc
    losses = tuple(float(v) for v in hist.history["loss"])
    if not all(math.isfinite(v) for v in losses):
        raise TrainingError(f"segmenter training diverged: losses {losses}")
    return losses


@dataclass(frozen=True, kw_only=True)
class SegRetrainResult:
    """What :func:`retrain_segmenter` did; the model itself is at ``path``."""

    path: Path
    mode: str
    epochs: int
    learning_rate: float
    seed: int
    n_base: int
    n_new: int
    labelled_pixel_share: float
    trainable_params: int
    frozen_params: int
    seconds: float
    losses: tuple[float, ...]

    @property
    def final_loss(self) -> float:
        return self.losses[-1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "mode": self.mode,
            "epochs": self.epochs,
            "learning_rate": self.learning_rate,
            "seed": self.seed,
            "n_base": self.n_base,
            "n_new": self.n_new,
            "labelled_pixel_share": self.labelled_pixel_share,
            "trainable_params": self.trainable_params,
            "frozen_params": self.frozen_params,
            "seconds": round(self.seconds, 3),
            "final_loss": self.final_loss,
            "losses": list(self.losses),
        }


def retrain_segmenter(
    champion_path: Path,
    base: tuple[np.ndarray, np.ndarray],
    new: tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray | None],
    *,
    mode: Literal["head", "full"] = "head",
    epochs: int,
    learning_rate: float | None = None,
    seed: int = 0,
    out_path: Path,
    batch_size: int = 16,
    head_starts_at: str | None = None,
) -> SegRetrainResult:
    """Retrain the champion on ``base`` (weight 1) plus ``new`` (its per-image weights, default 1).

    Masks may hold :data:`IGNORE` pixels (e.g. from :func:`pseudo_label_masks`). ``mode="head"``
    freezes the encoder, ``"full"`` trains everything; ``learning_rate`` defaults to
    :data:`DEFAULT_LEARNING_RATES`. The champion file is never written: the model goes to
    ``out_path`` via a temporary file in its folder and an atomic rename.
    """
    if mode not in _VALID_MODES:
        raise ValidationError(f"unknown mode {mode!r}; allowed: {', '.join(_VALID_MODES)}")
    champion_path, out_path = Path(champion_path), Path(out_path)
    if out_path.resolve() == champion_path.resolve():
        raise ValidationError(f"out_path must differ from the champion's file {champion_path}")
    new_x, new_m = new[0], new[1]
    new_w = new[2] if len(new) > 2 else None
    base_x, base_m = base
    n_base, n_new = len(base_x), len(new_x)
    if len(base_m) != n_base or len(new_m) != n_new:
        raise ValidationError(
            f"images and masks differ in number: base {n_base}/{len(base_m)}, new {n_new}/{len(new_m)}"
        )
    weights = np.concatenate([np.ones(n_base, np.float32), np.ones(n_new, np.float32) if new_w is None else new_w])
    lr = DEFAULT_LEARNING_RATES[mode] if learning_rate is None else float(learning_rate)
    started = time.perf_counter()
    model = load_segmenter(champion_path)
    set_encoder_trainable(model, mode == "full", head_starts_at)
    masks = np.concatenate([np.asarray(base_m), np.asarray(new_m)])
    losses = fit_segmenter(
        model,
        np.concatenate([np.asarray(base_x), np.asarray(new_x)]),
        masks,
        image_weights=weights,
        epochs=epochs,
        learning_rate=lr,
        batch_size=batch_size,
        seed=seed,
    )
    save_segmenter(model, out_path)
    trainable = int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))
    return SegRetrainResult(
        path=out_path,
        mode=mode,
        epochs=epochs,
        learning_rate=lr,
        seed=seed,
        n_base=n_base,
        n_new=n_new,
        labelled_pixel_share=float((masks != IGNORE).mean()),
        trainable_params=trainable,
        frozen_params=int(model.count_params()) - trainable,
        seconds=time.perf_counter() - started,
        losses=losses,
    )
