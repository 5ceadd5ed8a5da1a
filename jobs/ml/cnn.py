"""The small MobileNet-flavoured digits classifier (Keras 3, TensorFlow backend).

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

Every backbone layer's name starts with ``backbone_``; the head is ``embedding`` (+ dropout)
and ``probabilities``. Head-only retraining freezes the backbone (:func:`set_backbone_trainable`).

TensorFlow is imported inside functions only. Seeds: :func:`seed_everything` sets Keras', numpy's
and Python's seeds and TensorFlow's op determinism, so a training run is repeatable on one machine.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from drift.errors import TrainingError, ValidationError
from jobs.demo.digits import CLASS_LABELS, IMAGE_SIZE, DigitsData

if TYPE_CHECKING:
    import keras

BACKBONE_PREFIX = "backbone_"
FEATURES_LAYER = f"{BACKBONE_PREFIX}pool"
HEAD_LAYERS = ("embedding", "head_dropout", "probabilities")
EMBEDDING_LAYER = "embedding"
OUTPUT_LAYER = "probabilities"
EMBEDDING_DIM = 32
NUM_CLASSES = 10
INPUT_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 1)


@dataclass(frozen=True, kw_only=True)
class Predictions:
    """Softmax probabilities ``(N, 10)`` and penultimate-layer embeddings ``(N, 32)``, float32."""

    probabilities: np.ndarray
    embeddings: np.ndarray

    @property
    def predicted(self) -> np.ndarray:
        """Predicted class indices ``(N,)``."""
        return np.asarray(self.probabilities.argmax(axis=1), dtype=np.int64)

    @property
    def confidence(self) -> np.ndarray:
        """Top-class probability ``(N,)``."""
        return np.asarray(self.probabilities.max(axis=1), dtype=np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"probabilities": self.probabilities.tolist(), "embeddings": self.embeddings.tolist()}


@dataclass(frozen=True, kw_only=True)
class TrainedModel:
    """A trained model, where it was saved (if it was) and how it did."""

    model: keras.Model = field(repr=False)
    path: Path | None
    seed: int
    epochs: int
    train_seconds: float
    train_accuracy: float
    val_accuracy: float | None
    test_accuracy: float | None
    history: dict[str, list[float]] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path) if self.path else None,
            "seed": self.seed,
            "epochs": self.epochs,
            "train_seconds": round(self.train_seconds, 3),
            "train_accuracy": self.train_accuracy,
            "val_accuracy": self.val_accuracy,
            "test_accuracy": self.test_accuracy,
            "history": self.history,
        }


def _keras() -> Any:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    return keras


def seed_everything(seed: int) -> None:
    """Seed Python, numpy, Keras and TensorFlow, and make TensorFlow ops deterministic."""
    keras = _keras()
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def as_model_input(images: np.ndarray) -> np.ndarray:
    """``(N, 32, 32)`` or ``(N, 32, 32, 1)`` images in [0, 1] -> float32 ``(N, 32, 32, 1)``."""
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 3:
        x = x[..., None]
    if x.shape[1:] != INPUT_SHAPE:
        raise ValidationError(f"expected images of shape (N, 32, 32[, 1]), got {np.shape(images)}")
    return x


def _separable_block(keras: Any, x: Any, filters: int, stride: int, name: str) -> Any:
    layers = keras.layers
    x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_dw_bn")(x)
    x = layers.ReLU(6.0, name=f"{name}_dw_relu")(x)
    x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_pw_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_pw_relu")(x)


def build_model(*, width: int = 16, dropout: float = 0.1, name: str = "digits_cnn") -> keras.Model:
    """Build the (uncompiled) classifier; ``width`` scales the filter counts."""
    keras = _keras()
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
    emb = layers.Dense(EMBEDDING_DIM, activation="relu", name=EMBEDDING_LAYER)(x)
    x = layers.Dropout(dropout, name=HEAD_LAYERS[1])(emb)
    out = layers.Dense(NUM_CLASSES, activation="softmax", name=OUTPUT_LAYER)(x)
    return keras.Model(inputs, out, name=name)


def backbone_layers(model: keras.Model) -> list[Any]:
    """The layers of the feature extractor (names starting with ``backbone_``)."""
    return [layer for layer in model.layers if layer.name.startswith(BACKBONE_PREFIX)]


def head_layers(model: keras.Model) -> list[Any]:
    """The classification head: every layer with weights that is not in the backbone."""
    return [layer for layer in model.layers if layer.weights and not layer.name.startswith(BACKBONE_PREFIX)]


def set_backbone_trainable(model: keras.Model, trainable: bool) -> None:
    """Freeze (``False``) or unfreeze the backbone; recompile afterwards."""
    for layer in backbone_layers(model):
        layer.trainable = trainable


def backbone_weights(model: keras.Model) -> list[np.ndarray]:
    """Copies of the backbone's weights, for equality checks."""
    return [np.array(w) for layer in backbone_layers(model) for w in layer.get_weights()]


def backbone_features(model: keras.Model, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """The frozen backbone's pooled features ``(N, 256)`` (the head's input), float32."""
    keras = _keras()
    x = as_model_input(images)
    extractor = keras.Model(model.input, model.get_layer(FEATURES_LAYER).output)
    parts = [np.asarray(extractor(x[i : i + batch_size], training=False)) for i in range(0, len(x), batch_size)]
    width = int(model.get_layer(FEATURES_LAYER).output.shape[-1])
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, width), np.float32)


def head_model(model: keras.Model) -> keras.Model:
    """The head as its own model on backbone features; it shares (trains) ``model``'s head weights."""
    keras = _keras()
    inputs = keras.Input(shape=(int(model.get_layer(FEATURES_LAYER).output.shape[-1]),), name="features")
    x = inputs
    for name in HEAD_LAYERS:
        x = model.get_layer(name)(x)
    return keras.Model(inputs, x, name=f"{model.name}_head")


def compile_model(model: keras.Model, learning_rate: float) -> None:
    keras = _keras()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        weighted_metrics=["accuracy"],
    )


def save_model(model: keras.Model, path: Path) -> Path:
    """Save as a ``.keras`` file (parents created)."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValidationError(f"a Keras model file must end in .keras, got {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # Keras 3.15 calls np.array() on TF variables, which numpy 2.x flags once per weight.
        warnings.filterwarnings(
            "ignore", message="__array__ implementation doesn't accept a copy keyword", category=DeprecationWarning
        )
        model.save(path)
    return path


def load_model(path: Path) -> keras.Model:
    """Load a ``.keras`` file; a missing or unreadable file raises TrainingError."""
    keras = _keras()
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"model file {path} does not exist")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises ValueError, OSError, zipfile errors...
        raise TrainingError(f"cannot load Keras model {path}: {exc}") from exc


def with_embedding(model: keras.Model) -> keras.Model:
    """A model sharing the weights of ``model`` with outputs ``{"probabilities", "embedding"}``."""
    keras = _keras()
    return keras.Model(
        model.input,
        {OUTPUT_LAYER: model.output, EMBEDDING_LAYER: model.get_layer(EMBEDDING_LAYER).output},
        name=f"{model.name}_with_embedding",
    )


def predict(model_or_path: keras.Model | Path | str, images: np.ndarray, batch_size: int = 512) -> Predictions:
    """Probabilities and embeddings for ``images`` (a batch of 32x32 images in [0, 1])."""
    model = model_or_path if not isinstance(model_or_path, str | Path) else load_model(Path(model_or_path))
    x = as_model_input(images)
    both = with_embedding(model)
    probs, embs = [], []
    for start in range(0, len(x), batch_size):
        out = both(x[start : start + batch_size], training=False)
        probs.append(np.asarray(out[OUTPUT_LAYER], dtype=np.float32))
        embs.append(np.asarray(out[EMBEDDING_LAYER], dtype=np.float32))
    if not probs:
        return Predictions(
            probabilities=np.zeros((0, NUM_CLASSES), np.float32),
            embeddings=np.zeros((0, EMBEDDING_DIM), np.float32),
        )
    return Predictions(probabilities=np.concatenate(probs), embeddings=np.concatenate(embs))


def accuracy(model: keras.Model, images: np.ndarray, labels: np.ndarray) -> float:
    return float((predict(model, images).predicted == np.asarray(labels)).mean())


def random_shift(images: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Shift each image ``(N, H, W, C)`` by up to ``max_shift`` pixels (zero fill), seeded."""
    if max_shift <= 0:
        return images
    n, h, w = images.shape[:3]
    pad = ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0))
    padded = np.pad(images, pad)
    dy, dx = rng.integers(0, 2 * max_shift + 1, size=(2, n))
    out = np.empty_like(images)
    for i in range(n):
        out[i] = padded[i, dy[i] : dy[i] + h, dx[i] : dx[i] + w]
    return out


def _check_labels(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.int64)
    if len(x) != len(y) or len(x) == 0:
        raise ValidationError(f"need as many labels as samples (> 0), got {len(x)} samples, {len(y)} labels")
    if y.min() < 0 or y.max() >= NUM_CLASSES:
        raise ValidationError(f"labels must be class indices 0..{NUM_CLASSES - 1}")
    return y


def _fit_epochs(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    sample_weight: np.ndarray | None,
    seed: int,
    max_shift: int,
) -> dict[str, list[float]]:
    """Fit epoch by epoch on a seeded shuffle (and shift) of the data, fresh every epoch.

    Without shifts, one ``model.fit`` call runs all epochs (Keras' seeded shuffle): a call costs
    a few tenths of a second of set-up, which dominates when only the small head trains.
    """
    if epochs < 1:
        raise ValidationError(f"epochs must be >= 1, got {epochs}")
    weights = None if sample_weight is None else np.asarray(sample_weight, np.float32)
    rng = np.random.default_rng(seed)
    history: dict[str, list[float]] = {}
    try:
        if not max_shift:
            hist = model.fit(x, y, sample_weight=weights, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0)
            return {k: [float(v) for v in values] for k, values in hist.history.items()}
        for _ in range(epochs):
            order = rng.permutation(len(x))
            hist = model.fit(
                random_shift(x[order], max_shift, rng),
                y[order],
                sample_weight=None if weights is None else weights[order],
                epochs=1,
                batch_size=batch_size,
                shuffle=False,
                verbose=0,
            )
            for key, values in hist.history.items():
                history.setdefault(key, []).append(float(values[-1]))
    except Exception as exc:
        raise TrainingError(f"training failed: {exc}") from exc
    return history


def fit(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int = 32,
    sample_weight: np.ndarray | None = None,
    seed: int = 0,
    max_shift: int = 2,
) -> dict[str, list[float]]:
    """Fit a compiled image model; returns the per-epoch history; Keras errors become TrainingError.

    Each epoch sees a freshly shuffled copy of the data with every image shifted by up to
    ``max_shift`` pixels (numpy, seeded): the digits are perfectly centred, and a model that
    never saw a shift loses half its accuracy on a one-pixel shift.
    """
    x = as_model_input(x)
    y = _check_labels(x, y)
    return _fit_epochs(
        model, x, y, epochs=epochs, batch_size=batch_size, sample_weight=sample_weight, seed=seed,
        max_shift=max_shift,
    )  # fmt: skip


def fit_features(
    head: keras.Model,
    features: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int = 32,
    sample_weight: np.ndarray | None = None,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Fit a compiled :func:`head_model` on precomputed backbone features (no augmentation)."""
    features = np.asarray(features, dtype=np.float32)
    y = _check_labels(features, y)
    return _fit_epochs(
        head, features, y, epochs=epochs, batch_size=batch_size, sample_weight=sample_weight, seed=seed,
        max_shift=0,
    )  # fmt: skip


def train_baseline(
    data: DigitsData,
    *,
    epochs: int = 10,
    seed: int = 0,
    learning_rate: float = 5e-3,
    batch_size: int = 64,
    width: int = 16,
    out_path: Path | None = None,
) -> TrainedModel:
    """Train the champion from scratch on ``data.x_train``; evaluate on val and test; save if asked."""
    if data.labels != CLASS_LABELS:
        raise ValidationError(f"the demo CNN has classes {CLASS_LABELS}, data has {data.labels}")
    seed_everything(seed)
    model = build_model(width=width)
    compile_model(model, learning_rate)
    started = time.perf_counter()
    history = fit(model, data.x_train, data.y_train, epochs=epochs, batch_size=batch_size, seed=seed)
    seconds = time.perf_counter() - started
    path = save_model(model, out_path) if out_path is not None else None
    return TrainedModel(
        model=model,
        path=path,
        seed=seed,
        epochs=epochs,
        train_seconds=seconds,
        train_accuracy=accuracy(model, data.x_train, data.y_train),
        val_accuracy=accuracy(model, data.x_val, data.y_val),
        test_accuracy=accuracy(model, data.x_test, data.y_test),
        history=history,
    )
