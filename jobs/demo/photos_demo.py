"""The photos scenario of the demo: the product's own case, end to end on the embedded default.

An "acceptable / unacceptable" photo classifier (MobileNetV3Small at 96x96x3, one sigmoid unit)
is trained the way a team would train it elsewhere, and comes in whole: its ``.keras`` file is
registered with ``register_trained_model`` (the contract checked against the file), its
training data written as class folders (``train/<label>/*.png``, ``test/<label>/*.png``) that
retraining streams from disk. Production then meets a new phone camera (colour cast, JPEG
artefacts, low light) and the loop runs as in the digits scenario: ingest, check, retrain
(head only: the frozen backbone's features once, the head trained on them), gate, TFLite
export verified, promote.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from jobs.config import Settings

PHOTOS_MODEL = "photos"


def photos_settings(var_dir: Path, *, min_new_labels: int | None = None) -> Settings:
    """The example config with the photos model instead of the digits one, every path under ``var_dir``."""
    from jobs.demo.photo_camera import PHOTO_FEATURE_COLUMNS
    from jobs.demo.photos import PHOTO_CONTRACT

    text = resources.files("jobs").joinpath("example_config.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text.replace("var/", f"{var_dir.as_posix().rstrip('/')}/"))
    model: dict[str, Any] = dict(data["models"][0])
    models_dir = Path(data["paths"]["models_dir"])
    model |= {
        "name": PHOTOS_MODEL,
        "class_labels": ["acceptable", "unacceptable"],
        "features": [{"name": c, "type": "numeric"} for c in PHOTO_FEATURE_COLUMNS]
        + [{"name": "device_tier", "type": "categorical"}, {"name": "camera", "type": "categorical"}],
        "embedding": {"column": "embedding", "size": 64},
        "contract": {k: v for k, v in PHOTO_CONTRACT.items() if k != "class_labels"},
        "drift": {**model["drift"], "columns": {"brightness": {"method": "ks"}}},
    }
    model["retrain"] = {
        **model["retrain"],
        "mode": "head",
        "epochs": 8,
        "shift_pixels": 0,
        "training_data": str(models_dir / PHOTOS_MODEL / "training"),
        **({"min_new_labels": min_new_labels} if min_new_labels is not None else {}),
    }
    data["models"] = [model]
    data["schedule"] |= {"check_cron": "0 0 * * mon", "report_cron": "0 6 * * mon"}
    return Settings(**data)


def setup_photos(settings: Settings, options: Any, *, echo: Any) -> tuple[Any, dict[str, Any]]:
    """Train the team's baseline, register it whole, write its training data; the simulator and the metrics.

    ``options``: the demo's :class:`~jobs.demo.run.DemoOptions`.
    """
    from jobs.demo.photos import load_photo_data, photos_scenario, train_photo_classifier, write_class_folders
    from jobs.demo.simulator import ProductionSimulator
    from jobs.retrain.onboard import register_trained_model
    from storage.engine import make_engine, make_session_factory

    model = settings.models[0]
    var_dir, epochs, seed = options.var_dir, options.epochs, options.seed
    echo("cutting acceptable / unacceptable photo patches from the bundled sample images...")
    data = load_photo_data(seed=seed)
    assert model.retrain.training_data is not None
    write_class_folders(data, Path(model.retrain.training_data))
    echo(f"training the team's MobileNetV3Small on {len(data.y_train):,} patches ({epochs} epochs)...")
    trained_elsewhere = var_dir / "team" / "photos_v1.keras"
    _, metrics = train_photo_classifier(data, epochs=epochs, seed=seed, out_path=trained_elsewhere)
    engine = make_engine(settings.database.url.get_secret_value())
    try:
        onboarded = register_trained_model(make_session_factory(engine), settings, model.name, trained_elsewhere)
    finally:
        engine.dispose()
    if onboarded.missing:
        raise RuntimeError(f"the photos model could not be registered: {onboarded.missing}")
    baseline = {
        "test_accuracy": metrics["test_accuracy"],
        "train_seconds": round(metrics["train_seconds"], 1),
    }
    echo(f"  version 1 registered from {trained_elsewhere}: test accuracy {metrics['test_accuracy']:.1%}")
    simulator = ProductionSimulator(
        var_dir / "demo",
        scenario=photos_scenario(data),
        seed=seed,
        rows_per_week=options.rows_per_week,
        drift_from_week=options.drift_from_week,
        drift_strength=options.drift_strength or (0.8, 1.0),  # a new camera at its worst
    )
    return simulator, baseline | {"model_path": onboarded.artifact_path}
