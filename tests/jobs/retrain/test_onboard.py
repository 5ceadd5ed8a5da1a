"""A model trained elsewhere comes in whole: ``models register --artifact``, on SQLite and PostgreSQL.

The model is a small 3-class grayscale CNN with a logits output (not the demo's network);
its training data is a folder of class subfolders written by the test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("tensorflow")

from jobs.config import Settings
from jobs.retrain.onboard import register_trained_model
from storage import repository

pytestmark = [pytest.mark.tf, pytest.mark.slow]
LABELS = ("disc", "square", "stripes")


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from jobs.ml import network

    keras = network.keras_module()
    inputs = keras.Input((24, 24, 1), name="image")
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(12, activation="relu", name="features")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))
    return network.save_model(model, tmp_path_factory.mktemp("team") / "shapes.keras")


def _images(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("test", 4)):
        for label in LABELS:
            for i in range(n):
                folder = root / split / label
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 255, (30, 30), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


def _settings(database_url: str, tmp_path: Path, **model: Any) -> Settings:
    return Settings(
        database={"url": database_url},
        paths={"var_dir": tmp_path, "models_dir": tmp_path / "models", "reports_dir": tmp_path / "reports"},
        models=[{"name": "shapes", "class_labels": list(LABELS), "image_roots": [str(tmp_path / "img")], **model}],
    )


def test_a_dry_run_says_what_is_missing_and_changes_nothing(database, tmp_path, artifact):
    settings = _settings(database.url, tmp_path, contract={"output": "logits", "height": 32})
    report = register_trained_model(database.session_factory, settings, "shapes", artifact, dry_run=True)
    missing = report.missing
    assert len(missing) == 2, missing
    assert missing[0].startswith("contract: contract.height: the config says 32") and str(artifact) in missing[0]
    assert "has 24 (input shape (24, 24, 1))" in missing[0]
    assert missing[1] == "training data: retrain.training_data is not configured"
    with database.session_factory() as s:
        assert repository.list_models(s) == []
    assert not (tmp_path / "models").exists()


def test_register_checks_copies_exports_and_makes_it_the_parent(database, tmp_path, artifact):
    data = _images(tmp_path / "training")
    settings = _settings(
        database.url, tmp_path, contract={"output": "logits", "embedding_layer": "features"},
        retrain={"training_data": str(data)},
    )  # fmt: skip
    ready = register_trained_model(database.session_factory, settings, "shapes", artifact, version=3, dry_run=True)
    assert ready.missing == () and not ready.registered
    assert [c.name for c in ready.checks] == ["model file", "contract", "training data", "image_roots"]
    assert "folder: 18 training and 12 test images" in ready.checks[2].detail
    report = register_trained_model(
        database.session_factory, settings, "shapes", artifact, version=3, export_dir=tmp_path / "export"
    )
    assert report.registered and Path(report.artifact_path or "").is_file()
    assert Path(report.artifact_path or "") == tmp_path / "models" / "shapes" / "v3" / "model.keras"
    manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())
    assert manifest["contract"]["output"] == "logits" and manifest["contract"]["class_labels"] == list(LABELS)
    assert set(manifest["files"]) == {"model.tflite", "model_dynamic.tflite", "model_int8.tflite"}
    with database.session_factory() as s:
        version = repository.get_version(s, repository.get_model(s, "shapes"), 3)
        assert version.status == "champion" and version.export_dir == str(tmp_path / "export")
        assert version.lineage["contract"]["embedding_layer"] == "features"
    again = register_trained_model(database.session_factory, settings, "shapes", artifact, version=3)
    assert again.missing == ("version: shapes already has a version 3",)


def test_the_command_line_exits_1_with_the_missing_list(database, tmp_path, artifact, monkeypatch):
    from typer.testing import CliRunner

    from jobs.cli import app

    config = tmp_path / "driftkeeper.yaml"
    settings = _settings(database.url, tmp_path)
    config.write_text(json.dumps(settings.model_dump(mode="json") | {"database": {"url": database.url}}))
    args = ["-c", str(config), "models", "register", "-m", "shapes", "--artifact", str(artifact), "--dry-run"]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 1, result.output
    body = json.loads(result.stdout)
    assert body["ready"] is False and body["missing"] == ["training data: retrain.training_data is not configured"]
    assert body["contract"]["output"] == "softmax"  # read from the file: 3 units, no contract configured
