"""What the production simulator simulates (:class:`Scenario`), and the digits scenario.

A scenario is the pool of production images with their true labels, how they vary and drift,
the per-image features the app logs, how images are written, and the model's predictor
(:func:`contract_predict`: a ``.keras`` or ``.tflite`` file read through its contract). The
photos scenario lives in :mod:`jobs.demo.photos`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from drift.errors import ValidationError
from jobs.demo.digits import CLASS_LABELS, DEFAULT_SPLIT_SEED, DRIFT_TRANSFORMS, apply_drift, jitter
from jobs.ml.image_features import FEATURE_COLUMNS, feature_matrix

if TYPE_CHECKING:
    from jobs.ml.contract import Contract

# the prediction_log columns around a scenario's features (jobs.demo.simulator writes them)
LOG_HEAD = ("prediction_id", "logged_at", "model_name", "model_version")
LOG_TAIL = ("device_tier", "camera", "probabilities", "embedding", "predicted_label", "confidence", "input_uri")
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")


Predict = Callable[[Path, np.ndarray], tuple[np.ndarray, np.ndarray]]


def contract_predict(contract: Contract) -> Predict:
    """``predict(model_path, pixels)`` for a ``.keras`` or ``.tflite`` file with this contract.

    ``pixels`` are what the app saw (uint8 or unit floats); it returns probabilities ``(N, K)``
    and embeddings ``(N, D)``, float32.
    """

    def predict(model_path: Path, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if model_path.suffix == ".tflite":
            from jobs.ml.export import TFLiteClassifier
            from jobs.ml.preprocess import model_input

            out = TFLiteClassifier(model_path, contract).predict(model_input(pixels, contract))
        elif model_path.suffix == ".keras":
            from jobs.ml import network

            out = network.predict(model_path, pixels, contract)
        else:
            raise ValidationError(f"model_path must be a .keras or .tflite file, got {model_path.name}")
        return out.probabilities, out.embeddings

    return predict


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """What the simulator simulates: the pool, variation, drift, features, image files, the model.

    ``vary(images, seed)`` and ``drift(images, kind, strength, seed)`` work on the pool's own
    representation (digits: float [0, 1]); ``to_pixels`` turns it into the uint8 pixels that are
    written as PNG (``image_mode`` ``"L"`` or ``"RGB"``), featurised by ``features(pixels) -> (N,
    len(feature_columns))`` and classified by ``predict(model_path, pixels)``.
    """

    name: str
    class_labels: tuple[str, ...]
    pool_x: np.ndarray
    pool_y: np.ndarray
    vary: Callable[[np.ndarray, int], np.ndarray]
    drift: Callable[[np.ndarray, str, float, int], np.ndarray]
    drift_kinds: tuple[str, ...]
    default_drift_kinds: tuple[str, ...]
    to_pixels: Callable[[np.ndarray], np.ndarray]
    features: Callable[[np.ndarray], np.ndarray]
    feature_columns: tuple[str, ...]
    image_mode: Literal["L", "RGB"]
    predict: Predict

    def __post_init__(self) -> None:
        if len(self.pool_x) != len(self.pool_y) or len(self.pool_y) == 0:
            raise ValidationError(f"the {self.name} pool needs images and as many labels, got {len(self.pool_x)}, "
                                  f"{len(self.pool_y)}")  # fmt: skip
        bad = [c for c in self.feature_columns if not _IDENTIFIER.match(c) or c in (*LOG_HEAD, *LOG_TAIL)]
        if bad or not self.feature_columns:
            raise ValidationError(f"feature columns must be new lower-case identifiers, got {bad or 'none'}")
        if self.image_mode not in ("L", "RGB"):
            raise ValidationError(f"image_mode must be L or RGB, got {self.image_mode!r}")


def _digits_pixels(images: np.ndarray) -> np.ndarray:
    return np.round(images * 255.0).astype(np.uint8)  # what the PNG holds and the app sees


def _digits_features(pixels: np.ndarray) -> np.ndarray:
    return feature_matrix(pixels.astype(np.float32) / 255.0)


def digits_scenario(data_seed: int = DEFAULT_SPLIT_SEED, predict: Predict | None = None) -> Scenario:
    """The digits demo: the production split of :func:`~jobs.demo.digits.load_digits_data`, 32x32 PNGs."""
    from jobs.demo.digits import load_digits_data
    from jobs.demo.digits_model import digits_contract

    data = load_digits_data(data_seed)
    return Scenario(
        name="digits", class_labels=CLASS_LABELS, pool_x=data.x_production, pool_y=data.y_production,
        vary=jitter, drift=apply_drift, drift_kinds=tuple(DRIFT_TRANSFORMS),
        default_drift_kinds=("darken", "blur", "rotate"), to_pixels=_digits_pixels, features=_digits_features,
        feature_columns=FEATURE_COLUMNS, image_mode="L", predict=predict or contract_predict(digits_contract()),
    )  # fmt: skip
