"""The digits CNN: accuracy, predictions with embeddings, backbone/head split, determinism."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drift.errors import TrainingError, ValidationError
from jobs.demo.digits import DigitsData


def test_importing_jobs_ml_does_not_import_tensorflow() -> None:
    code = (
        "import sys, jobs.ml, jobs.demo.digits, jobs.ml.image_features, jobs.demo.simulator, "
        "jobs.ml.cnn, jobs.ml.train, jobs.ml.export; "
        "sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[3]
    assert subprocess.run([sys.executable, "-c", code], cwd=root).returncode == 0


@pytest.mark.tf
def test_baseline_reaches_90_percent_test_accuracy(champion: Any) -> None:
    assert champion.test_accuracy >= 0.90
    assert champion.val_accuracy >= 0.90
    assert champion.to_dict()["epochs"] == 8


@pytest.mark.tf
def test_predict_gives_probabilities_and_embeddings(champion: Any, digits: DigitsData) -> None:
    from jobs.ml import cnn

    preds = cnn.predict(champion.model, digits.x_test[:50], batch_size=16)
    assert preds.probabilities.shape == (50, 10) and preds.probabilities.dtype == np.float32
    assert preds.embeddings.shape == (50, 32) and preds.embeddings.dtype == np.float32
    np.testing.assert_allclose(preds.probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(preds.confidence, preds.probabilities.max(axis=1))
    from_file = cnn.predict(champion.path, digits.x_test[:50])
    np.testing.assert_allclose(from_file.probabilities, preds.probabilities, atol=1e-6)
    np.testing.assert_allclose(from_file.embeddings, preds.embeddings, atol=1e-5)
    empty = cnn.predict(champion.model, digits.x_test[:0])
    assert empty.probabilities.shape == (0, 10) and empty.embeddings.shape == (0, 32)


@pytest.mark.tf
def test_backbone_and_head_split(champion: Any) -> None:
    from jobs.ml import cnn

    model = champion.model
    head = [layer.name for layer in cnn.head_layers(model)]
    assert head == [cnn.EMBEDDING_LAYER, cnn.OUTPUT_LAYER]
    backbone = cnn.backbone_layers(model)
    assert backbone and all(layer.name.startswith("backbone_") for layer in backbone)
    assert model.get_layer(cnn.EMBEDDING_LAYER).units == 32


@pytest.mark.tf
def test_training_is_deterministic_for_a_seed(digits: DigitsData) -> None:
    pytest.importorskip("tensorflow", reason="needs the ml extra (tensorflow)")
    from jobs.ml import cnn

    def weights(seed: int) -> list[np.ndarray]:
        cnn.seed_everything(seed)
        model = cnn.build_model(width=4)
        cnn.compile_model(model, 5e-3)
        cnn.fit(model, digits.x_train[:96], digits.y_train[:96], epochs=1, batch_size=32, seed=seed)
        return [np.array(w) for w in model.get_weights()]

    a, b = weights(1), weights(1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    fresh = cnn.build_model(width=4).get_weights()  # a third seed-less init differs: training did something
    assert not all(np.array_equal(x, z) for x, z in zip(a, fresh, strict=True))


@pytest.mark.tf
def test_bad_inputs(tmp_path: Path, champion: Any) -> None:
    from jobs.ml import cnn

    with pytest.raises(TrainingError, match="does not exist"):
        cnn.load_model(tmp_path / "missing.keras")
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(TrainingError, match="cannot load"):
        cnn.load_model(tmp_path / "junk.keras")
    with pytest.raises(ValidationError, match="shape"):
        cnn.predict(champion.model, np.zeros((2, 28, 28)))
    with pytest.raises(ValidationError, match=r"\.keras"):
        cnn.save_model(champion.model, tmp_path / "model.h5")
