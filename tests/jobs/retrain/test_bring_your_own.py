"""A model that is not the demo's, end to end: register -> ingest -> check -> retrain -> gate ->
export -> promote -> rollback, on SQLite and PostgreSQL.

The team's model is the photos scenario's MobileNetV3Small (RGB, one sigmoid unit), here at
64x64 to stay quick; its training data are PNG class folders on disk, streamed by the retrain.
Production meets a new camera in week 2 (low light and colour cast at full strength).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("tensorflow")

from pydantic import SecretStr
from sqlalchemy import select

from jobs.check.job import check
from jobs.check.reference import reference_from_window
from jobs.config import DatabaseSettings, Settings
from jobs.ingest.run import ingest
from jobs.retrain import registry
from jobs.retrain.job import retrain
from jobs.retrain.onboard import register_trained_model
from storage import repository
from storage.models import RetrainRun

pytestmark = [pytest.mark.tf, pytest.mark.slow]
SIZE = 64
START = datetime(2026, 9, 7, tzinfo=UTC)
WEEK = timedelta(days=7)


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The team's photo data and its model, trained elsewhere (once for both backends)."""
    from jobs.demo.photos import load_photo_data, train_photo_classifier, write_class_folders

    folder = tmp_path_factory.mktemp("team")
    data = load_photo_data(size=SIZE, seed=0, n_train=800, n_test=200, n_pool=600)
    write_class_folders(data, folder / "training")
    _, metrics = train_photo_classifier(data, epochs=3, seed=0, out_path=folder / "photos.keras")
    return {"data": data, "artifact": folder / "photos.keras", "training": folder / "training", "metrics": metrics}


def _settings(database_url: str, var: Path, training: Path) -> Settings:
    from jobs.demo.photos_demo import photos_settings

    settings = photos_settings(var, min_new_labels=20)
    model = settings.models[0]
    contract = model.contract.model_copy(update={"height": SIZE, "width": SIZE}) if model.contract else None
    policy = model.retrain.model_copy(
        update={"training_data": str(training), "epochs": 10, "recent_days": 21, "min_holdout": 20,
                "max_test_accuracy_drop": 0.1, "min_drifted_labels": 20,
                "min_int8_agreement": 0.8}
    )  # fmt: skip
    model = model.model_copy(update={"contract": contract, "retrain": policy})
    return settings.model_copy(update={"models": (model,), "database": DatabaseSettings(url=SecretStr(database_url))})


def test_a_teams_photo_model_goes_round_the_whole_loop(database, tmp_path, team):
    from jobs.demo.photos import photos_scenario
    from jobs.demo.simulator import ProductionSimulator

    settings = _settings(database.url, tmp_path / "var", team["training"])
    model = settings.models[0]
    onboarded = register_trained_model(database.session_factory, settings, model.name, team["artifact"])
    assert onboarded.registered and onboarded.contract is not None and onboarded.contract["output"] == "sigmoid"

    sim = ProductionSimulator(
        tmp_path / "var" / "demo", scenario=photos_scenario(team["data"]), rows_per_week=400, drift_from_week=2,
        drift_share=0.9, drift_strength=(0.9, 1.0), drift_kinds=("low_light", "colour_cast"), label_share=0.8,
        label_delay_days=(0, 2),
    )  # fmt: skip
    champion_path = Path(onboarded.artifact_path or "")
    week1 = sim.simulate_week(1, champion_path, 1, START)
    week2 = sim.simulate_week(2, champion_path, 1, START + WEEK)
    assert week2.accuracy < week1.accuracy - 0.1, (week1.accuracy, week2.accuracy)  # the new camera hurts
    sim.release_labels(START + 3 * WEEK)
    ingest(database.session_factory, settings)
    reference_from_window(database.session_factory, model, 1, START, START + WEEK)
    (checked,) = check(database.session_factory, settings, model.name, end=START + 2 * WEEK, now=START + 3 * WEEK)
    assert checked.drifted and checked.retrain_worthy, checked.to_dict()

    outcome = retrain(database.session_factory, settings, model.name, now=START + 3 * WEEK)
    assert outcome.decision == "promoted", (outcome.reasons, outcome.metrics)
    assert outcome.metrics["recent_accuracy"] > outcome.metrics["champion_recent_accuracy"]
    manifest = json.loads((Path(outcome.export["out_dir"]) / "manifest.json").read_text())
    assert manifest["contract"]["height"] == SIZE and manifest["outputs"]["probabilities"]["kind"] == "sigmoid"
    assert manifest["parent_version"] == 1 and manifest["all_checks_passed"] is True
    # a 64x64 MobileNetV3Small after 3 epochs: many sigmoid outputs near 0.5, which int8 flips
    # (hard-swish quantises poorly); measured 0.855-0.96 here, hence the test's 0.8 gate
    assert manifest["files"]["model_int8.tflite"]["agreement"] >= 0.8
    with database.session_factory() as s:
        run = s.scalars(select(RetrainRun)).one()
        assert run.metrics["n_train_new"] > 0
        assert run.export["agreement"]["model.tflite"] >= 0.99
    with database.session_factory.begin() as s:
        row = repository.get_model(s, model.name)
        assert registry.champion(s, row).version == 2
        restored, removed = registry.rollback(s, row)
        assert (restored.version, removed.version) == (1, 2)
    with database.session_factory() as s:
        assert registry.champion(s, repository.get_model(s, model.name)).version == 1
