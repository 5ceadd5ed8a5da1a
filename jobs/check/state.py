"""The label-free findings of a window as mergeable state, kept per day beside its profile.

A day's :class:`DayFindings` is built from its rows in the same pass that profiles them
(:mod:`jobs.check.windows`); a week's is the merge of seven days, so the next weekly check
reads no row for these parts:

* the row count;
* confident outliers: their count and the top ``TOP_K`` by outlier score (a bounded heap);
* the accuracy estimate's :class:`~drift.estimate.CalibratedSums`, tied to the calibration
  they were made with (``calibration`` is its fingerprint): new reference labels mean a new
  calibrator, and the day is recomputed. With an embedding they also count the rows past the
  reference's outlier threshold (and their calibrated probabilities), which the estimate counts
  as unknown and which mark it unreliable; days stored before those counts existed carry
  another fingerprint and are recomputed (or, pruned, merge without an estimate).

Label-dependent findings (realized performance, confidently wrong, calibration curves) are
not kept here: labels arrive for weeks, so each check computes them from the window's
labelled rows only.
"""

from __future__ import annotations

import hashlib
import heapq
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drift.calibration import ConfidenceCalibrator
from drift.estimate import CalibratedSums, Calibrator, ClassCalibrator
from drift.outliers import EmbeddingOutlierDetector
from jobs.check.flagged import Flagged, FlagKind

TOP_K = 20  # confident outliers kept per day: a week's top 20 is among its days' top 20s
CLASS_CALIBRATION_MIN = 500  # reference rows a predicted label needs for a calibrator of its own
_ESTIMATE_VERSION = b"estimate-v2"  # per-class calibration, far-row counts: older days are recomputed


@dataclass(frozen=True, kw_only=True)
class Calibration:
    """The reference-fitted calibrator of the accuracy estimate, with the fingerprint of its inputs.

    With the reference's logged predicted labels, a label with at least ``CLASS_CALIBRATION_MIN``
    reference rows gets a calibrator of its own (:class:`~drift.estimate.ClassCalibrator`).
    """

    calibrator: Calibrator
    fingerprint: str

    @classmethod
    def fit(cls, confidence: np.ndarray, correct: np.ndarray, predicted: np.ndarray | None = None) -> Calibration:
        digest = hashlib.sha256(_ESTIMATE_VERSION)
        digest.update(np.ascontiguousarray(confidence, dtype=np.float64).tobytes())
        digest.update(np.ascontiguousarray(correct, dtype=bool).tobytes())
        calibrator: Calibrator
        if predicted is not None:
            digest.update("\x1f".join(str(v) for v in predicted).encode())
            calibrator = ClassCalibrator(CLASS_CALIBRATION_MIN).fit(confidence, correct, predicted)
        else:
            calibrator = ConfidenceCalibrator().fit(confidence, correct)
        return cls(calibrator=calibrator, fingerprint=digest.hexdigest()[:32])


@dataclass(frozen=True, kw_only=True)
class DayFindings:
    """Mergeable label-free findings of some rows (a day, a week)."""

    n_rows: int = 0
    min_confidence: float | None = None  # the threshold a confident outlier passed
    n_outliers: int = 0
    outliers: tuple[Flagged, ...] = ()  # the highest outlier scores, best first, at most TOP_K
    calibration: str | None = None  # fingerprint of the calibration behind ``estimate``
    estimate: CalibratedSums | None = None
    top_k: int = field(default=TOP_K, compare=False)

    @classmethod
    def of_rows(
        cls,
        *,
        prediction_id: np.ndarray,
        confidence: np.ndarray,
        predicted_label: np.ndarray,
        input_uri: np.ndarray,
        embedding: np.ndarray | None,
        detector: EmbeddingOutlierDetector | None,
        min_confidence: float,
        calibration: Calibration | None,
        top_k: int = TOP_K,
    ) -> DayFindings:
        outliers: list[Flagged] = []
        n_outliers = 0
        far: np.ndarray | None = None
        if detector is not None and embedding is not None and len(confidence):
            scores = detector.score(embedding)
            far = scores > detector.threshold_
            mask = (confidence >= min_confidence) & far
            n_outliers = int(mask.sum())
            index = np.flatnonzero(mask)
            best = heapq.nlargest(top_k, index, key=lambda i: (float(scores[i]), str(prediction_id[i])))
            outliers = [
                Flagged(
                    prediction_id=str(prediction_id[i]),
                    kind=FlagKind.CONFIDENT_OUTLIER,
                    confidence=float(confidence[i]),
                    score=float(scores[i]),
                    predicted_label=str(predicted_label[i]),
                    true_label=None,
                    input_uri=input_uri[i],
                )
                for i in best
            ]
        return cls(
            n_rows=len(confidence),
            min_confidence=min_confidence,
            n_outliers=n_outliers,
            outliers=tuple(outliers),
            calibration=calibration.fingerprint if calibration is not None else None,
            estimate=(
                CalibratedSums.of(calibration.calibrator, confidence, predicted_label, far)
                if calibration is not None
                else None
            ),
            top_k=top_k,
        )

    def made_with(self, min_confidence: float, calibration: Calibration | None, top_k: int) -> bool:
        """Whether this state answers for these settings (else its day is recomputed)."""
        wanted = calibration.fingerprint if calibration is not None else None
        if self.n_rows == 0:
            return True
        return self.min_confidence == min_confidence and self.calibration == wanted and self.top_k >= top_k

    def merge(self, other: DayFindings) -> DayFindings:
        if self.n_rows == 0:
            return other
        if other.n_rows == 0:
            return self
        same = self.calibration == other.calibration and self.estimate is not None and other.estimate is not None
        top_k = max(self.top_k, other.top_k)
        ranked = heapq.nlargest(top_k, self.outliers + other.outliers, key=lambda f: (f.score or 0.0, f.prediction_id))
        return DayFindings(
            n_rows=self.n_rows + other.n_rows,
            min_confidence=self.min_confidence,
            n_outliers=self.n_outliers + other.n_outliers,
            outliers=tuple(ranked),
            calibration=self.calibration if same else None,
            estimate=self.estimate.merge(other.estimate) if same and self.estimate and other.estimate else None,
            top_k=top_k,
        )

    @classmethod
    def merge_all(cls, parts: list[DayFindings]) -> DayFindings:
        merged = cls()
        for part in parts:
            merged = merged.merge(part)
        return merged

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_rows": self.n_rows,
            "min_confidence": self.min_confidence,
            "n_outliers": self.n_outliers,
            "outliers": [f.to_dict(rounded=False) for f in self.outliers],
            "calibration": self.calibration,
            "estimate": self.estimate.to_dict() if self.estimate is not None else None,
            "top_k": self.top_k,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DayFindings:
        return cls(
            n_rows=int(data["n_rows"]),
            min_confidence=data["min_confidence"],
            n_outliers=int(data["n_outliers"]),
            outliers=tuple(Flagged.from_dict(f) for f in data["outliers"]),
            calibration=data["calibration"],
            estimate=CalibratedSums.from_dict(data["estimate"]) if data["estimate"] is not None else None,
            top_k=int(data.get("top_k", TOP_K)),
        )
