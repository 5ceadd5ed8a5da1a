"""The demo's digits CNN through the generic network module: accuracy, predictions, head split, determinism."""

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
        "jobs.ml.network, jobs.ml.train, jobs.ml.export, jobs.ml.contract, jobs.ml.preprocess, "
        "jobs.ml.imageset, jobs.demo.digits_model, jobs.retrain.training_data; "
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
    from jobs.demo.digits_model import digits_contract
    from jobs.ml import network

    contract = digits_contract()
    preds = network.predict(champion.model, digits.x_test[:50], contract, batch_size=16)
    assert preds.probabilities.shape == (50, 10) and preds.probabilities.dtype == np.float32
    assert preds.embeddings.shape == (50, 32) and preds.embeddings.dtype == np.float32
    np.testing.assert_allclose(preds.probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(preds.confidence, preds.probabilities.max(axis=1))
    from_file = network.predict(champion.path, digits.x_test[:50], contract)
    np.testing.assert_allclose(from_file.probabilities, preds.probabilities, atol=1e-6)
    np.testing.assert_allclose(from_file.embeddings, preds.embeddings, atol=1e-5)
    empty = network.predict(champion.model, digits.x_test[:0], contract)
    assert empty.probabilities.shape == (0, 10) and empty.embeddings.shape == (0, 32)
    # uint8 pixels of another size are resized by the one preprocessing, not refused
    big = np.repeat(np.repeat((digits.x_test[:4] * 255).round().astype(np.uint8), 2, axis=1), 2, axis=2)
    assert network.predict(champion.model, big, contract).probabilities.shape == (4, 10)


@pytest.mark.tf
def test_contract_resolved_from_the_file_matches_the_demo_contract(champion: Any) -> None:
    from jobs.demo.digits import CLASS_LABELS
    from jobs.demo.digits_model import DIGITS_CONTRACT, digits_contract
    from jobs.ml.network import contract_for_file

    assert contract_for_file(champion.path, DIGITS_CONTRACT, CLASS_LABELS) == digits_contract()
    # with nothing configured, the file says 32x32x1 softmax and the penultimate layer is the embedding
    inferred = contract_for_file(champion.path, None, CLASS_LABELS)
    assert inferred.input_shape == (32, 32, 1) and inferred.output == "softmax"
    assert inferred.embedding_layer == "head_dropout" and inferred.head_starts_at == "probabilities"


@pytest.mark.tf
def test_split_cuts_at_the_contract_head(champion: Any) -> None:
    from jobs.demo.digits_model import digits_contract
    from jobs.ml import network

    parts = network.split(champion.model, digits_contract())
    assert {"embedding", "head_dropout", "probabilities"} <= parts.head_layers
    assert not any(name.startswith("backbone_") for name in parts.head_layers)
    assert tuple(parts.extractor.output.shape[1:]) == (256,)
    x = np.random.default_rng(0).random((3, 32, 32, 1)).astype(np.float32)
    np.testing.assert_allclose(
        np.asarray(parts.head(parts.extractor(x))), np.asarray(champion.model(x)), rtol=1e-5, atol=1e-6
    )


@pytest.mark.tf
def test_training_is_deterministic_for_a_seed(digits: DigitsData) -> None:
    from jobs.demo.digits_model import build_model, digits_contract, fit_shifted
    from jobs.ml import network

    def weights(seed: int) -> list[np.ndarray]:
        network.seed_everything(seed)
        model = build_model(width=4)
        network.compile_model(model, digits_contract(), 5e-3)
        fit_shifted(model, digits.x_train[:96], digits.y_train[:96], epochs=1, batch_size=32, seed=seed)
        return [np.array(w) for w in model.get_weights()]

    a, b = weights(1), weights(1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    fresh = build_model(width=4).get_weights()  # a third seed-less init differs: training did something
    assert not all(np.array_equal(x, z) for x, z in zip(a, fresh, strict=True))


@pytest.mark.tf
def test_bad_inputs(tmp_path: Path, champion: Any) -> None:
    from jobs.demo.digits_model import digits_contract
    from jobs.ml import network

    with pytest.raises(TrainingError, match="does not exist"):
        network.load_model(tmp_path / "missing.keras")
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(TrainingError, match="cannot load"):
        network.load_model(tmp_path / "junk.keras")
    with pytest.raises(ValidationError, match="shape"):
        network.predict(champion.model, np.zeros((2, 28)), digits_contract())
    with pytest.raises(ValidationError, match=r"\.keras"):
        network.save_model(champion.model, tmp_path / "model.h5")
