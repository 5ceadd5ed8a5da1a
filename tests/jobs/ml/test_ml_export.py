"""TFLite export: parity with Keras through ai-edge-litert, sizes, manifest and labels."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drift.errors import ValidationError
from jobs.demo.digits import CLASS_LABELS, DigitsData
from jobs.demo.digits_model import digits_contract
from jobs.ml.preprocess import model_input

C = digits_contract()

FIELDS = {
    "model_name": "digits",
    "version": 2,
    "parent_version": 1,
    "training_data_window": {"start": "2026-01-05T00:00:00+00:00", "end": "2026-02-02T00:00:00+00:00"},
    "drift_run_id": "run-42",
}


@pytest.fixture(scope="module")
def exported(champion: Any, digits: DigitsData, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from jobs.ml.export import export_tflite

    out = tmp_path_factory.mktemp("export")
    return export_tflite(
        champion.path, out, model_input(digits.x_train, C), model_input(digits.x_test, C), C, FIELDS,
        size_budget_bytes=2_000_000,
    )  # fmt: skip


@pytest.mark.tf
def test_export_passes_and_float_variants_agree_with_keras(exported: Any) -> None:
    assert exported.passed, exported.reasons
    for name in ("float32", "dynamic"):
        v = exported.variant(name)
        assert v.agreement >= 0.99, name
        assert v.passed and v.reasons == ()
    assert exported.variant("float32").max_abs_prob_diff < 1e-4
    assert exported.variant("int8").agreement >= 0.97
    assert {p.name for p in exported.out_dir.iterdir()} >= {
        "model.tflite",
        "model_dynamic.tflite",
        "model_int8.tflite",
        "labels.txt",
        "manifest.json",
        "saved_model",
    }


@pytest.mark.tf
def test_int8_is_much_smaller(exported: Any) -> None:
    f32, i8 = exported.variant("float32").size_bytes, exported.variant("int8").size_bytes
    assert f32 / i8 >= 2.5
    assert exported.variant("dynamic").size_bytes < f32 / 2.5


@pytest.mark.tf
def test_manifest_and_labels(exported: Any) -> None:
    manifest = json.loads(exported.manifest_path.read_text())
    for key, value in FIELDS.items():
        assert manifest[key] == value
    assert manifest["labels"] == list(CLASS_LABELS)
    assert exported.labels_path.read_text().splitlines() == list(CLASS_LABELS)
    assert manifest["input"]["shape"] == [1, 32, 32, 1]
    assert manifest["input"]["normalisation"]["scale"] == pytest.approx(1 / 255)
    assert manifest["input"]["color_mode"] == "grayscale" and manifest["outputs"]["probabilities"]["kind"] == "softmax"
    assert manifest["contract"]["embedding_layer"] == "embedding" and manifest["contract"]["class_labels"] == list(
        CLASS_LABELS
    )
    assert manifest["outputs"]["embedding"]["shape"] == [1, 32]
    assert set(manifest["files"]) == {"model.tflite", "model_dynamic.tflite", "model_int8.tflite"}
    for name, entry in manifest["files"].items():
        data = (exported.out_dir / name).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["bytes"] == len(data)
    labels_sha = hashlib.sha256(exported.labels_path.read_bytes()).hexdigest()
    assert manifest["labels_file"]["sha256"] == labels_sha
    assert manifest["all_checks_passed"] is True
    assert manifest["recommended_file"] in {"model_dynamic.tflite", "model_int8.tflite"}


@pytest.mark.tf
def test_tflite_classifier_matches_keras(exported: Any, champion: Any, digits: DigitsData) -> None:
    from jobs.ml import network
    from jobs.ml.export import TFLiteClassifier

    keras_preds = network.predict(champion.model, digits.x_test[:40], C)
    lite = TFLiteClassifier(exported.out_dir / "model.tflite", C).predict(
        model_input(digits.x_test[:40], C), batch_size=16
    )
    np.testing.assert_allclose(lite.probabilities, keras_preds.probabilities, atol=1e-4)
    np.testing.assert_allclose(lite.embeddings, keras_preds.embeddings, atol=1e-3)


def test_variant_checks_name_their_reasons() -> None:
    from jobs.ml.export import check_variant

    assert check_variant(0.995, 0.99, 1000, 1000) == ()
    assert check_variant(0.98, 0.99, 1001, 1000) == (
        "argmax agreement 0.9800 with Keras is below 0.99",
        "size 1001 bytes exceeds the budget of 1000 bytes",
    )


@pytest.mark.tf
def test_export_fails_when_a_check_fails(champion: Any, digits: DigitsData, tmp_path: Path) -> None:
    from jobs.ml.export import export_tflite

    budget = 150_000  # float32 (~300 kB) is over, the quantised files (~100 kB) are under
    report = export_tflite(
        champion.path, tmp_path, model_input(digits.x_train[:20], C), model_input(digits.x_test[:50], C), C, FIELDS,
        budget,
    )  # fmt: skip
    assert not report.passed
    assert [v.passed for v in report.variants] == [False, True, True]
    assert report.reasons == (
        f"float32: size {report.variant('float32').size_bytes} bytes exceeds the budget of {budget} bytes",
    )
    manifest = json.loads(report.manifest_path.read_text())
    assert manifest["all_checks_passed"] is False and manifest["files"]["model.tflite"]["verified"] is False


def test_export_validates_arguments(tmp_path: Path) -> None:
    from jobs.ml.export import export_tflite

    x = np.zeros((2, 32, 32, 1), np.float32)
    with pytest.raises(ValidationError, match="lacks version"):
        export_tflite(tmp_path / "m.keras", tmp_path, x, x, C, {"model_name": "d"}, 10)
    with pytest.raises(ValidationError, match="the contract says"):
        export_tflite(tmp_path / "m.keras", tmp_path, x[..., 0], x, C, FIELDS, 10)
