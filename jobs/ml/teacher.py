"""A teacher: a larger model that labels unlabelled recent samples it is confident about, to grow
the training set when human labels are scarce (a big model generating training data for a small
one). Any Keras classifier over the student's input works; it is read through the student's
contract (input and preprocessing) with its own output kind.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from drift.errors import TrainingError, ValidationError
from jobs.ml import network
from jobs.ml.contract import Contract, OutputKind
from jobs.ml.imageset import ImageSet


@dataclass(frozen=True, kw_only=True)
class PseudoLabels:
    """The samples a teacher is confident about: entry ``i`` is ``images_in[indices[i]]``."""

    images: ImageSet
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


def teacher_contract(teacher: Any, student: Contract) -> Contract:
    """The student's contract with the teacher's own output kind (1 unit: sigmoid)."""
    units = int(teacher.output_shape[-1])
    output: OutputKind = "sigmoid" if units == 1 else ("logits" if student.output == "logits" else "softmax")
    if (1 if output == "sigmoid" else student.n_classes) != units:
        raise TrainingError(f"teacher outputs {units} values, the student has {student.n_classes} classes")
    if tuple(teacher.input_shape[1:]) != student.input_shape:
        raise TrainingError(f"teacher takes input {tuple(teacher.input_shape[1:])}, the student {student.input_shape}")
    return replace(student, output=output, embedding_layer=teacher.layers[-2].name)


def pseudo_label(
    teacher_path: Path | Any, images: ImageSet | np.ndarray, contract: Contract, min_confidence: float = 0.9
) -> PseudoLabels:
    """Label ``images`` with the teacher, keeping those with top probability >= ``min_confidence``."""
    if not 0.0 < min_confidence <= 1.0:
        raise ValidationError(f"min_confidence must be in (0, 1], got {min_confidence}")
    teacher = network.as_model(teacher_path)
    seen = teacher_contract(teacher, contract)
    data = images if isinstance(images, ImageSet) else ImageSet.of_arrays(np.asarray(images))
    got = network.predict_set(teacher, data, seen)
    ok = got.ok if got.ok is not None else np.ones(len(data), bool)
    conf = got.confidence
    idx = np.flatnonzero(ok & (conf >= min_confidence))
    labels = got.predicted[idx].astype(np.int64)
    return PseudoLabels(
        images=data.take(idx),
        labels=labels,
        confidence=conf[idx],
        indices=idx,
        min_confidence=min_confidence,
    )
