"""One confidence calibrator per predicted label, for models that log their own predicted label.

A binary model with a tuned threshold logs the larger probability as its confidence even when
it predicts the other class, so the same confidence means different chances of being right
per predicted label. :class:`ClassCalibrator` fits a
:class:`~drift.calibration.ConfidenceCalibrator` per label with enough reference rows and the
global one for the rest.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from drift.calibration import ConfidenceCalibrator
from drift.errors import ValidationError
from drift.inputs import as_1d, as_confidence

__all__ = ["Calibrator", "ClassCalibrator", "calibrated"]


class ClassCalibrator:
    """One :class:`ConfidenceCalibrator` per predicted label, the global one for rare labels.

    For models that log their own predicted label: a binary model with a tuned threshold logs
    the larger probability as its confidence even when it predicts the other class, so the
    same confidence means different chances of being right per predicted label.

    Attributes:
        global_: the calibrator of all reference rows.
        by_label_: predicted label -> its calibrator (labels with ``min_class_samples`` rows).
        n_reference_, reference_accuracy_: as :class:`ConfidenceCalibrator`'s.
    """

    def __init__(self, min_class_samples: int = 50) -> None:
        if min_class_samples < 20:
            raise ValidationError(f"min_class_samples must be >= 20 (a calibrator's minimum), got {min_class_samples}")
        self.min_class_samples = min_class_samples

    def fit(
        self, confidence: ArrayLike, correct: ArrayLike, predicted: ArrayLike, sample_weight: ArrayLike | None = None
    ) -> ClassCalibrator:
        conf = as_confidence(confidence, "confidence")
        labels = as_1d(predicted, "predicted", conf.size).astype(str)
        corr = np.asarray(correct)
        weight = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        self.global_ = ConfidenceCalibrator().fit(conf, corr, weight)
        self.by_label_: dict[str, ConfidenceCalibrator] = {}
        for label in np.unique(labels):
            rows = labels == label
            if rows.sum() >= self.min_class_samples and (weight is None or weight[rows].sum() > 0):
                part = None if weight is None else weight[rows]
                self.by_label_[str(label)] = ConfidenceCalibrator().fit(conf[rows], corr[rows], part)
        self.n_reference_ = self.global_.n_reference_
        self.reference_accuracy_ = self.global_.reference_accuracy_
        return self

    def predict(self, confidence: ArrayLike, predicted: ArrayLike | None = None) -> NDArray[np.float64]:
        """Calibrated probability that each prediction is right, by its predicted label."""
        if not hasattr(self, "global_"):
            raise ValidationError("ClassCalibrator is not fitted; call fit(confidence, correct, predicted) first")
        conf = as_confidence(confidence, "confidence")
        p = self.global_.predict(conf)
        if predicted is None:
            return p
        labels = as_1d(predicted, "predicted", conf.size).astype(str)
        for label, calibrator in self.by_label_.items():
            rows = labels == label
            if rows.any():
                p[rows] = calibrator.predict(conf[rows])
        return p


Calibrator = ConfidenceCalibrator | ClassCalibrator


def calibrated(calibrator: Calibrator, conf: NDArray[np.float64], predicted: ArrayLike | None) -> NDArray[np.float64]:
    if isinstance(calibrator, ClassCalibrator):
        return calibrator.predict(conf, predicted)
    return calibrator.predict(conf)
