"""A teacher: a larger model that labels unlabelled recent samples it is confident about,
to grow the training set when human labels are scarce (a big model generating training data
for a small one).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from drift.errors import TrainingError, ValidationError
from jobs.demo.digits import CLASS_LABELS, DRIFT_TRANSFORMS, DigitsData, apply_drift
from jobs.ml import cnn
from jobs.ml.train import _probabilities


@dataclass(frozen=True, kw_only=True)
class PseudoLabels:
    """The samples a teacher is confident about: ``images[i]`` is ``images_in[indices[i]]``."""

    images: np.ndarray
    labels: np.ndarray
    confidence: np.ndarray
    indices: np.ndarray
    min_confidence: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": len(self.labels),
            "min_confidence": self.min_confidence,
            "indices": self.indices.tolist(),
            "labels": self.labels.tolist(),
        }


def build_teacher(*, width: int = 32, name: str = "digits_teacher") -> Any:
    """A larger plain CNN (~100k parameters) used as a teacher; any Keras classifier works too."""
    keras = cnn._keras()
    layers = keras.layers
    inputs = keras.Input(shape=cnn.INPUT_SHAPE, name="image")
    x = inputs
    for i, filters in enumerate((width, 2 * width, 4 * width)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(64, activation="relu", name="dense")(x)
    x = layers.Dropout(0.2, name="dropout")(x)
    out = layers.Dense(cnn.NUM_CLASSES, activation="softmax", name="probabilities")(x)
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
) -> cnn.TrainedModel:
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
    cnn.seed_everything(seed)
    model = build_teacher(width=width)
    cnn.compile_model(model, learning_rate)
    started = time.perf_counter()
    history = cnn.fit(model, x, y, epochs=epochs, batch_size=64, seed=seed)
    seconds = time.perf_counter() - started
    path = cnn.save_model(model, out_path) if out_path is not None else None

    def acc(images: np.ndarray, labels: np.ndarray) -> float:
        return float((_probabilities(model, images).argmax(axis=1) == labels).mean())

    return cnn.TrainedModel(
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


def pseudo_label(teacher_path: Path | Any, images: np.ndarray, min_confidence: float = 0.9) -> PseudoLabels:
    """Label ``images`` with the teacher, keeping those with top probability >= ``min_confidence``."""
    if not 0.0 < min_confidence <= 1.0:
        raise ValidationError(f"min_confidence must be in (0, 1], got {min_confidence}")
    teacher = cnn.load_model(Path(teacher_path)) if isinstance(teacher_path, str | Path) else teacher_path
    probs = _probabilities(teacher, images)
    if probs.shape[1:] != (len(CLASS_LABELS),):
        raise TrainingError(f"teacher outputs shape {probs.shape[1:]}, expected ({len(CLASS_LABELS)},)")
    conf = probs.max(axis=1)
    idx = np.flatnonzero(conf >= min_confidence)
    return PseudoLabels(
        images=np.asarray(images)[idx],
        labels=probs.argmax(axis=1)[idx].astype(np.int64),
        confidence=conf[idx],
        indices=idx,
        min_confidence=min_confidence,
    )


# ---------------------------------------------------------------------------------------------
# Custom trainer
