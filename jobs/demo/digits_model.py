"""The demo's own networks: the small MobileNet-flavoured digits classifier and its teacher.

Architecture (32x32x1 in, 10 softmax classes out, ~75k parameters at ``width=16``; every
convolution is followed by BatchNorm and ReLU6)::

    backbone_stem     Conv2D 16, 3x3, stride 2                   -> 16x16x16
    backbone_block1   DepthwiseConv 3x3 + pointwise 32            -> 16x16x32
    backbone_block2   DepthwiseConv 3x3 stride 2 + pointwise 64   ->  8x8x64
    backbone_block3   DepthwiseConv 3x3 stride 2 + pointwise 128  ->  4x4x128
    backbone_block4   DepthwiseConv 3x3 + pointwise 128           ->  4x4x128
    backbone_expand   Conv2D 256, 1x1                             ->  4x4x256
    backbone_pool     GlobalAveragePooling                        ->  256
    embedding         Dense 32, ReLU           (the head)       ->  32   logged as the embedding
    probabilities     Dense 10, softmax        (the head)       ->  10

Its contract (:data:`DIGITS_CONTRACT`, also in the example config) names ``embedding`` as the
embedding layer and as where head-only training starts. Nothing outside the demo knows these
names: retraining and export read them from the contract like any team's model.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from drift.errors import ValidationError
from jobs.demo.digits import CLASS_LABELS, DRIFT_TRANSFORMS, IMAGE_SIZE, DigitsData, apply_drift
from jobs.ml import network
from jobs.ml.contract import Contract, ModelContract
from jobs.ml.imageset import ImageSet
from jobs.ml.preprocess import shift_images

BACKBONE_PREFIX = "backbone_"
EMBEDDING_DIM = 32
NUM_CLASSES = 10
INPUT_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 1)
DIGITS_CONTRACT = ModelContract(
    height=IMAGE_SIZE,
    width=IMAGE_SIZE,
    channels=1,
    color_mode="grayscale",
    resize="bilinear",
    scale=1.0 / 255.0,
    offset=0.0,
    output="softmax",
    embedding_layer="embedding",
    head_starts_at="embedding",
)


def digits_contract() -> Contract:
    """The demo classifier's resolved contract (what resolving it against its file gives)."""
    return Contract(**DIGITS_CONTRACT.model_dump(), class_labels=CLASS_LABELS, embedding_dim=EMBEDDING_DIM)


def _separable_block(keras: Any, x: Any, filters: int, stride: int, name: str) -> Any:
    layers = keras.layers
    x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_dw_bn")(x)
    x = layers.ReLU(6.0, name=f"{name}_dw_relu")(x)
    x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_pw_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_pw_relu")(x)


def build_model(*, width: int = 16, dropout: float = 0.1, name: str = "digits_cnn") -> Any:
    """Build the (uncompiled) classifier; ``width`` scales the filter counts."""
    keras = network.keras_module()
    layers = keras.layers
    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    x = layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False, name=f"{BACKBONE_PREFIX}stem")(inputs)
    x = layers.BatchNormalization(momentum=0.9, name=f"{BACKBONE_PREFIX}stem_bn")(x)
    x = layers.ReLU(6.0, name=f"{BACKBONE_PREFIX}stem_relu")(x)
    x = _separable_block(keras, x, 2 * width, 1, f"{BACKBONE_PREFIX}block1")
    x = _separable_block(keras, x, 4 * width, 2, f"{BACKBONE_PREFIX}block2")
    x = _separable_block(keras, x, 8 * width, 2, f"{BACKBONE_PREFIX}block3")
    x = _separable_block(keras, x, 8 * width, 1, f"{BACKBONE_PREFIX}block4")
    # MobileNet's final 1x1 expansion: most of the weights, little compute at 4x4.
    x = layers.Conv2D(16 * width, 1, use_bias=False, name=f"{BACKBONE_PREFIX}expand")(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"{BACKBONE_PREFIX}expand_bn")(x)
    x = layers.ReLU(6.0, name=f"{BACKBONE_PREFIX}expand_relu")(x)
    x = layers.GlobalAveragePooling2D(name=f"{BACKBONE_PREFIX}pool")(x)
    emb = layers.Dense(EMBEDDING_DIM, activation="relu", name="embedding")(x)
    x = layers.Dropout(dropout, name="head_dropout")(emb)
    out = layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, out, name=name)


def fit_shifted(
    model: Any, x: np.ndarray, y: np.ndarray, *, epochs: int, batch_size: int, seed: int, max_shift: int = 2
) -> dict[str, list[float]]:
    """Fit epoch by epoch on a seeded shuffle with every image shifted by up to ``max_shift`` pixels.

    The digits are perfectly centred: a model that never saw a shift loses half its accuracy on
    a one-pixel shift.
    """
    x = np.asarray(x, np.float32)
    x = x[..., None] if x.ndim == 3 else x
    rng = np.random.default_rng(seed)
    history: dict[str, list[float]] = {}
    for _ in range(epochs):
        order = rng.permutation(len(x))
        dy, dx = rng.integers(0, 2 * max_shift + 1, size=(2, len(x)))
        hist = model.fit(
            shift_images(x[order], dy, dx, max_shift), y[order], epochs=1, batch_size=batch_size, shuffle=False,
            verbose=0,
        )  # fmt: skip
        for key, values in hist.history.items():
            history.setdefault(key, []).append(float(values[-1]))
    return history


def _accuracy(model: Any, images: np.ndarray, labels: np.ndarray, contract: Contract) -> float:
    return float((network.predict(model, images, contract).predicted == np.asarray(labels)).mean())


def train_baseline(
    data: DigitsData,
    *,
    epochs: int = 10,
    seed: int = 0,
    learning_rate: float = 5e-3,
    batch_size: int = 64,
    width: int = 16,
    out_path: Path | None = None,
) -> network.TrainedModel:
    """Train the champion from scratch on ``data.x_train``; evaluate on val and test; save if asked."""
    if data.labels != CLASS_LABELS:
        raise ValidationError(f"the demo CNN has classes {CLASS_LABELS}, data has {data.labels}")
    contract = digits_contract()
    network.seed_everything(seed)
    model = build_model(width=width)
    network.compile_model(model, contract, learning_rate)
    started = time.perf_counter()
    history = fit_shifted(model, data.x_train, data.y_train, epochs=epochs, batch_size=batch_size, seed=seed)
    seconds = time.perf_counter() - started
    path = network.save_model(model, out_path) if out_path is not None else None
    return network.TrainedModel(
        model=model,
        path=path,
        seed=seed,
        epochs=epochs,
        train_seconds=seconds,
        train_accuracy=_accuracy(model, data.x_train, data.y_train, contract),
        val_accuracy=_accuracy(model, data.x_val, data.y_val, contract),
        test_accuracy=_accuracy(model, data.x_test, data.y_test, contract),
        history=history,
    )


def build_teacher(*, width: int = 32, name: str = "digits_teacher") -> Any:
    """A larger plain CNN (~100k parameters) used as the demo's teacher."""
    keras = network.keras_module()
    layers = keras.layers
    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    x = inputs
    for i, filters in enumerate((width, 2 * width, 4 * width)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(64, activation="relu", name="dense")(x)
    x = layers.Dropout(0.2, name="dropout")(x)
    out = layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, out, name=name)


def train_teacher(
    data: DigitsData,
    *,
    epochs: int = 6,
    seed: int = 0,
    drift_kinds: tuple[str, ...] = ("darken", "blur", "rotate"),
    learning_rate: float = 3e-3,
    width: int = 32,
    out_path: Path | None = None,
) -> network.TrainedModel:
    """Train the teacher on ``data.x_train`` plus one drift-augmented copy per kind in ``drift_kinds``.

    Strengths are drawn uniformly in [0.3, 1.0] per image, so the teacher stays confident on
    the drifted inputs the champion gets wrong. Accuracies are measured on clean val/test.
    """
    unknown = [k for k in drift_kinds if k not in DRIFT_TRANSFORMS]
    if unknown:
        raise ValidationError(f"unknown drift kinds {unknown}; allowed: {', '.join(sorted(DRIFT_TRANSFORMS))}")
    rng = np.random.default_rng(seed)
    xs, ys = [data.x_train], [data.y_train]
    for k, kind in enumerate(drift_kinds):
        strengths = rng.uniform(0.3, 1.0, size=len(data.x_train))
        augmented = np.concatenate(
            [
                apply_drift(data.x_train[i : i + 1], kind, float(s), seed=seed * 100_003 + k * 10_007 + i)
                for i, s in enumerate(strengths)
            ]
        )
        xs.append(augmented)
        ys.append(data.y_train)
    x, y = np.concatenate(xs), np.concatenate(ys)
    contract = digits_contract()
    network.seed_everything(seed)
    model = build_teacher(width=width)
    network.compile_model(model, contract, learning_rate)
    started = time.perf_counter()
    history = fit_shifted(model, x, y, epochs=epochs, batch_size=64, seed=seed)
    seconds = time.perf_counter() - started
    path = network.save_model(model, out_path) if out_path is not None else None

    def acc(images: np.ndarray, labels: np.ndarray) -> float:
        from jobs.ml.teacher import teacher_contract

        got = network.predict(model, images, teacher_contract(model, contract))
        return float((got.predicted == labels).mean())

    return network.TrainedModel(
        model=model,
        path=path,
        seed=seed,
        epochs=epochs,
        train_seconds=seconds,
        train_accuracy=acc(data.x_train, data.y_train),
        val_accuracy=acc(data.x_val, data.y_val),
        test_accuracy=acc(data.x_test, data.y_test),
        history=history,
    )


def digits_base_set(data: DigitsData) -> tuple[ImageSet, ImageSet]:
    """The demo's training and test sets as ImageSets."""
    return ImageSet.of_arrays(data.x_train, data.y_train), ImageSet.of_arrays(data.x_test, data.y_test)
