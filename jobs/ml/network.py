"""Any team's Keras image classifier, driven by its :class:`~jobs.ml.contract.Contract`.

Nothing here knows a layer name or a shape of its own: the input shape, the output kind
(softmax, logits or one sigmoid unit), the embedding layer and where the head starts all come
from the contract. :func:`split` cuts a model at ``contract.head_starts_at`` into a frozen
feature extractor and a trainable head (Keras 3 builds both from the model's own graph, so
they share its weights); :func:`predict` gives class probabilities and embeddings for images
in memory or streamed from an :class:`~jobs.ml.imageset.ImageSet`.

TensorFlow is imported inside functions only. :func:`seed_everything` sets Keras', numpy's and
Python's seeds and TensorFlow's op determinism, so a training run repeats on one machine.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from drift.errors import TrainingError, ValidationError
from jobs.ml.contract import Contract, resolve_contract
from jobs.ml.imageset import ImageSet
from jobs.ml.preprocess import model_input

if TYPE_CHECKING:
    import keras

PROBABILITIES = "probabilities"
EMBEDDING = "embedding"


@dataclass(frozen=True, kw_only=True)
class Predictions:
    """Class probabilities ``(N, K)`` and embeddings ``(N, D)``, float32; ``ok`` marks rows that loaded."""

    probabilities: np.ndarray
    embeddings: np.ndarray
    ok: np.ndarray | None = None
    failures: dict[str, int] = field(default_factory=dict)

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


def keras_module() -> Any:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter, not ours
    import keras

    return keras


def seed_everything(seed: int) -> None:
    """Seed Python, numpy, Keras and TensorFlow, and make TensorFlow ops deterministic."""
    keras = keras_module()
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


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


def atomic_save(model: keras.Model, out_path: Path) -> None:
    """Save through a temporary file in the same folder and a rename: never half a model file."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(suffix=".keras", dir=out_path.parent, prefix=f".{out_path.stem}.")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        save_model(model, tmp)
        tmp.replace(out_path)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise TrainingError(f"cannot save the model to {out_path}: {exc}") from exc


def load_model(path: Path | str) -> keras.Model:
    """Load a ``.keras`` file; a missing or unreadable file raises TrainingError."""
    keras = keras_module()
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"model file {path} does not exist")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises ValueError, OSError, zipfile errors...
        raise TrainingError(f"cannot load Keras model {path}: {exc}") from exc


def as_model(model_or_path: Any) -> Any:
    return load_model(model_or_path) if isinstance(model_or_path, str | Path) else model_or_path


INFERENCE_PIXELS = 4_000_000  # input values per eager inference batch (~1 GB of activations at 224x224x3)


def inference_batch(contract: Contract, requested: int) -> int:
    """A batch size for eager inference whose activations stay bounded: ``requested`` for small
    inputs (32x32 digits: 512), fewer for large ones (224x224x3: 26). Eager Keras calls keep a
    batch's intermediate activations until it returns: 512 images at 224x224x3 took 11 GB."""
    h, w, c = contract.input_shape
    return max(8, min(requested, INFERENCE_PIXELS // (h * w * c)))


def class_probabilities(raw: np.ndarray, contract: Contract) -> np.ndarray:
    """The model's raw output as class probabilities ``(N, K)`` per ``contract.output``."""
    out = np.asarray(raw, dtype=np.float32)
    if contract.output == "sigmoid":
        p = out.reshape(len(out), -1)[:, :1]
        return np.concatenate([1.0 - p, p], axis=1).astype(np.float32)
    if contract.output == "logits":
        shifted = out - out.max(axis=-1, keepdims=True)
        e = np.exp(shifted)
        return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
    return out


def with_embedding(model: keras.Model, contract: Contract) -> keras.Model:
    """A model sharing ``model``'s weights with outputs ``{"probabilities": raw output, "embedding"}``."""
    keras = keras_module()
    return keras.Model(
        model.input,
        {PROBABILITIES: model.output, EMBEDDING: model.get_layer(contract.embedding_layer).output},
        name=f"{model.name}_with_embedding",
    )


def _flat_embedding(values: Any) -> np.ndarray:
    e = np.asarray(values, dtype=np.float32)
    return e.reshape(len(e), -1)


def predict(model_or_path: Any, images: np.ndarray, contract: Contract, batch_size: int = 256) -> Predictions:
    """Probabilities and embeddings for in-memory images (uint8 or unit floats, any size)."""
    return predict_inputs(model_or_path, model_input(images, contract), contract, batch_size)


def predict_inputs(model_or_path: Any, x: np.ndarray, contract: Contract, batch_size: int = 256) -> Predictions:
    """Like :func:`predict`, for inputs already preprocessed (model-ready float32)."""
    both = with_embedding(as_model(model_or_path), contract)
    probs, embs = [], []
    batch_size = inference_batch(contract, batch_size)
    for start in range(0, len(x), batch_size):
        out = both(x[start : start + batch_size], training=False)
        probs.append(class_probabilities(np.asarray(out[PROBABILITIES]), contract))
        embs.append(_flat_embedding(out[EMBEDDING]))
    return _joined(probs, embs, contract)


def predict_set(model_or_path: Any, images: ImageSet, contract: Contract, batch_size: int = 64) -> Predictions:
    """Like :func:`predict`, streaming an ImageSet; rows that failed to load are not ``ok`` (zeros)."""
    both = with_embedding(as_model(model_or_path), contract)
    probs, embs, oks = [], [], []
    failures: dict[str, int] = {}
    for batch in images.batches(contract, inference_batch(contract, batch_size)):
        out = both(batch.x, training=False)
        probs.append(class_probabilities(np.asarray(out[PROBABILITIES]), contract))
        embs.append(_flat_embedding(out[EMBEDDING]))
        oks.append(batch.ok)
        for reason in batch.reasons:
            if reason:
                failures[reason] = failures.get(reason, 0) + 1
    joined = _joined(probs, embs, contract)
    ok = np.concatenate(oks) if oks else np.zeros(0, bool)
    return Predictions(probabilities=joined.probabilities, embeddings=joined.embeddings, ok=ok, failures=failures)


def probabilities_of(
    model_or_path: Any, images: ImageSet | np.ndarray, contract: Contract, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities of any single-output classifier (no embedding needed) and which rows loaded."""
    model = as_model(model_or_path)
    data = images if isinstance(images, ImageSet) else ImageSet.of_arrays(np.asarray(images))
    probs, oks = [], []
    for batch in data.batches(contract, inference_batch(contract, batch_size)):
        probs.append(class_probabilities(np.asarray(model(batch.x, training=False)), contract))
        oks.append(batch.ok)
    if not probs:
        return np.zeros((0, contract.n_classes), np.float32), np.zeros(0, bool)
    return np.concatenate(probs), np.concatenate(oks)


def _joined(probs: list[np.ndarray], embs: list[np.ndarray], contract: Contract) -> Predictions:
    if not probs:
        return Predictions(
            probabilities=np.zeros((0, contract.n_classes), np.float32),
            embeddings=np.zeros((0, contract.embedding_dim), np.float32),
        )
    return Predictions(probabilities=np.concatenate(probs), embeddings=np.concatenate(embs))


@dataclass(frozen=True, kw_only=True)
class Split:
    """A model cut at its head: ``extractor(x)`` feeds ``head``; ``head_layers`` train in head mode."""

    extractor: Any = field(repr=False)
    head: Any = field(repr=False)
    head_layers: frozenset[str]


def split(model: keras.Model, contract: Contract) -> Split:
    """Cut ``model`` where ``contract.head_starts_at`` begins (both parts share its weights)."""
    keras = keras_module()
    start = model.get_layer(contract.head_starts_at)
    features = start.input
    if isinstance(features, list | tuple):
        raise ValidationError(f"contract.head_starts_at {start.name!r} has several inputs; pick a layer with one")
    extractor = keras.Model(model.input, features, name=f"{model.name}_extractor")
    head = keras.Model(features, model.output, name=f"{model.name}_head")
    names = {layer.name for layer in head.layers} & {layer.name for layer in model.layers}
    return Split(extractor=extractor, head=head, head_layers=frozenset(names))


def set_trainable(model: keras.Model, parts: Split | None) -> None:
    """Freeze every layer outside ``parts.head_layers`` (``None``: unfreeze all); recompile afterwards."""
    for layer in model.layers:
        layer.trainable = parts is None or layer.name in parts.head_layers


def targets(y: np.ndarray, contract: Contract) -> np.ndarray:
    """Class indices as the loss wants them: floats ``(N, 1)`` for a sigmoid, else int64."""
    y = np.asarray(y, dtype=np.int64)
    if len(y) and (y.min() < 0 or y.max() >= contract.n_classes):
        raise ValidationError(f"labels must be class indices 0..{contract.n_classes - 1}")
    return y.astype(np.float32)[:, None] if contract.output == "sigmoid" else y


def compile_model(model: keras.Model, contract: Contract, learning_rate: float) -> None:
    keras = keras_module()
    if contract.output == "sigmoid":
        loss: Any = "binary_crossentropy"
        metric: Any = keras.metrics.BinaryAccuracy(name="accuracy")
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=contract.output == "logits")
        metric = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss=loss, weighted_metrics=[metric])


def trainable_counts(model: keras.Model) -> tuple[int, int]:
    """(trainable, frozen) parameter counts."""
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    total = sum(int(np.prod(v.shape)) for v in model.weights)
    return trainable, total - trainable


def contract_for_file(
    path: Path | str, configured: Any, class_labels: tuple[str, ...], *, task: Any = "classification"
) -> Contract:
    """Load the ``.keras`` file and resolve the configured contract against it (see jobs.ml.contract)."""
    return resolve_contract(load_model(path), configured, class_labels, source=str(path), task=task)
