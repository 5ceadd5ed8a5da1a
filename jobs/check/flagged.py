"""Predictions worth a human look, as stored in ``flagged_predictions``."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class FlagKind(StrEnum):
    """Why a prediction was flagged."""

    CONFIDENTLY_WRONG = "confidently_wrong"  # confident, and the label (or the mask's IoU) disagrees
    CONFIDENT_OUTLIER = "confident_outlier"  # confident on an input unlike the reference's


@dataclass(frozen=True, kw_only=True)
class Flagged:
    """A prediction worth a human look."""

    prediction_id: str
    kind: FlagKind
    confidence: float
    score: float | None
    predicted_label: str
    true_label: str | None
    input_uri: str | None

    def to_dict(self, *, rounded: bool = True) -> dict[str, Any]:
        """JSON; ``rounded`` (for people) keeps six digits, else the values round-trip exactly."""
        digits = 6 if rounded else None
        return {
            "prediction_id": self.prediction_id,
            "kind": str(self.kind),
            "confidence": round(self.confidence, digits) if digits else self.confidence,
            "score": None if self.score is None else (round(self.score, digits) if digits else self.score),
            "predicted_label": self.predicted_label,
            "true_label": self.true_label,
            "input_uri": self.input_uri,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Flagged:
        return cls(
            prediction_id=str(data["prediction_id"]),
            kind=FlagKind(data["kind"]),
            confidence=float(data["confidence"]),
            score=None if data["score"] is None else float(data["score"]),
            predicted_label=str(data["predicted_label"]),
            true_label=None if data["true_label"] is None else str(data["true_label"]),
            input_uri=data["input_uri"],
        )
