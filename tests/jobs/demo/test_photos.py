"""The photos demo: patches, degradations, camera drift, features, the team's MobileNet, the scenario."""

from __future__ import annotations

import csv
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drift.errors import UnknownMethodError, ValidationError
from jobs.demo.photo_camera import (
    CAMERA_DRIFTS,
    DEGRADATIONS,
    degrade,
    jpeg_quality,
    jpeg_round_trip,
    mild_variation,
)
from jobs.demo.photos import (
    CLASS_LABELS,
    PHOTO_CONTRACT,
    PHOTO_FEATURE_COLUMNS,
    PhotoData,
    apply_camera_drift,
    load_photo_data,
    load_source_photos,
    photo_features,
    split_regions,
    write_class_folders,
)

SMALL = {"n_train": 40, "n_test": 20, "n_pool": 20}
START = datetime(2026, 1, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def small() -> PhotoData:
    return load_photo_data(size=64, seed=3, **SMALL)


@pytest.fixture(scope="module")
def clean(small: PhotoData) -> np.ndarray:
    """Acceptable (clean or mildly varied) test patches."""
    return small.x_test[small.y_test == 0]


def test_deterministic_for_a_seed(small: PhotoData) -> None:
    again = load_photo_data(size=64, seed=3, **SMALL)
    for name in ("x_train", "y_train", "x_test", "y_test", "x_pool", "y_pool"):
        np.testing.assert_array_equal(getattr(small, name), getattr(again, name))
    other = load_photo_data(size=64, seed=4, **SMALL)
    assert not np.array_equal(small.x_train, other.x_train)


def test_shapes_labels_and_balance(small: PhotoData) -> None:
    assert small.x_train.shape == (40, 64, 64, 3) and small.x_train.dtype == np.uint8
    assert small.x_pool.shape == (20, 64, 64, 3)
    assert small.labels == CLASS_LABELS == ("acceptable", "unacceptable")
    for y, kinds in ((small.y_train, small.kind_train), (small.y_test, small.kind_test)):
        assert y.sum() == len(y) // 2  # exactly half unacceptable
        assert {k for k, label in zip(kinds, y, strict=True) if label == 0} == {"clean"}
        assert {k for k, label in zip(kinds, y, strict=True) if label == 1} <= set(DEGRADATIONS)
    assert set(small.kind_train) - {"clean"} == set(DEGRADATIONS)
    assert set(small.sources) >= {"astronaut", "coffee", "chelsea", "rocket", "china", "flower"}
    assert small.to_dict()["sizes"] == {"train": 40, "test": 20, "pool": 20}


def test_train_test_pool_regions_are_disjoint() -> None:
    photos = load_source_photos()
    regions = split_regions(photos, seed=3)
    for a, b in combinations(("train", "test", "pool"), 2):
        assert not any(ra.overlaps(rb) for ra in regions[a] for rb in regions[b]), (a, b)
    for name, img in photos.items():  # the quadrants of each photo cover it exactly
        area = sum((r.bottom - r.top) * (r.right - r.left) for rs in regions.values() for r in rs if r.source == name)
        assert area == img.shape[0] * img.shape[1]
    assert len(regions["train"]) == 2 * len(photos) == 2 * len(regions["test"]) == 2 * len(regions["pool"])


def test_degradations_move_the_features_the_right_way(clean: np.ndarray) -> None:
    base = photo_features(clean)
    for strength in (0.0, 1.0):  # even the weakest degradation is clearly away from clean
        blurred = photo_features(degrade(clean, "blurred", strength, seed=1))
        dark = photo_features(degrade(clean, "dark", strength, seed=1))
        bright = photo_features(degrade(clean, "overexposed", strength, seed=1))
        noisy = photo_features(degrade(clean, "noisy", strength, seed=1))
        assert (blurred.sharpness < 0.3 * base.sharpness).all()
        assert (dark.brightness < 0.4 * base.brightness).all()
        assert (bright.brightness > base.brightness + 0.15).all()
        assert (bright.bright_share >= base.bright_share).all() and bright.bright_share.mean() > 0.1
        assert (noisy.noise > base.noise + 0.025).all() and (noisy.noise > 3 * base.noise).all()
    mild = photo_features(mild_variation(clean, seed=2))
    np.testing.assert_allclose(mild.brightness, base.brightness, rtol=0.3)
    assert (mild.sharpness > 0.3 * base.sharpness).all()


def test_features_are_what_they_say() -> None:
    grey = np.full((1, 16, 16, 3), 128, dtype=np.uint8)
    warm = grey.copy()
    warm[..., 0], warm[..., 2] = 200, 64
    f = photo_features(np.concatenate([grey, warm]))
    assert list(f.columns) == list(PHOTO_FEATURE_COLUMNS)
    assert f.brightness[0] == pytest.approx(128 / 255)
    assert f.contrast[0] == pytest.approx(0.0) and f.sharpness[0] == pytest.approx(0.0)
    assert f.noise[0] == pytest.approx(0.0) and f.saturation[0] == pytest.approx(0.0)
    assert f.rg_ratio[1] == pytest.approx(200 / 128) and f.bg_ratio[1] == pytest.approx(64 / 128)
    assert f.saturation[1] == pytest.approx((200 - 64) / 200)


def test_jpeg_drift_is_a_real_jpeg_round_trip_with_blocking(clean: np.ndarray) -> None:
    import io

    from PIL import Image

    out = apply_camera_drift(clean, "jpeg", 1.0, seed=0)
    buf = io.BytesIO()
    Image.fromarray(clean[0]).save(buf, format="JPEG", quality=jpeg_quality(1.0), subsampling=2)
    np.testing.assert_array_equal(out[0], np.asarray(Image.open(buf).convert("RGB")))
    np.testing.assert_array_equal(out, jpeg_round_trip(clean, jpeg_quality(1.0)))
    assert jpeg_quality(1.0) < jpeg_quality(0.5) < jpeg_quality(0.0) <= 60
    before, after = photo_features(clean).blockiness, photo_features(out).blockiness
    assert (after > 1.5 * before).all() and after.median() > 2.0 > before.median()


def test_colour_cast_and_low_light_change_what_they_should(clean: np.ndarray) -> None:
    base = photo_features(clean)
    cast = photo_features(apply_camera_drift(clean, "colour_cast", 1.0, seed=0))
    assert (cast.bg_ratio < base.bg_ratio * 0.8).all()  # bluish channels lose (red may clip at 255)
    assert (cast.rg_ratio / base.rg_ratio).median() > 1.05
    dim = apply_camera_drift(clean, "low_light", 1.0, seed=0)
    low = photo_features(dim)
    assert (low.brightness < 0.5 * base.brightness).all()
    flat = apply_camera_drift(np.full((4, 32, 32, 3), 90, np.uint8), "low_light", 1.0, seed=0)
    assert flat.std() > 3.0  # sensor noise on a flat grey card
    np.testing.assert_array_equal(apply_camera_drift(clean, "low_light", 1.0, seed=0), dim)
    for kind in CAMERA_DRIFTS:
        np.testing.assert_array_equal(apply_camera_drift(clean, kind, 0.0, seed=0), clean)
    with pytest.raises(UnknownMethodError, match="allowed: colour_cast, jpeg, low_light"):
        apply_camera_drift(clean, "fisheye", 0.5, seed=0)
    with pytest.raises(ValidationError, match="strength"):
        apply_camera_drift(clean, "jpeg", 1.5, seed=0)
    with pytest.raises(ValidationError, match="RGB"):
        apply_camera_drift(clean[..., 0], "jpeg", 0.5, seed=0)


def test_class_folders_and_manifest(small: PhotoData, tmp_path: Path) -> None:
    from PIL import Image

    manifest = write_class_folders(small, tmp_path / "photos")
    with manifest.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(small.y_train) + len(small.y_test)
    assert {(r["split"], r["label"]) for r in rows} == {(s, c) for s in ("train", "test") for c in CLASS_LABELS}
    for r in rows[:: max(1, len(rows) // 7)]:
        path = Path(r["uri"])
        assert path.parent.name == r["label"] and path.parent.parent.name == r["split"]
        i = int(path.stem.split("_")[1])
        x, y = (small.x_train, small.y_train) if r["split"] == "train" else (small.x_test, small.y_test)
        assert CLASS_LABELS[y[i]] == r["label"]
        np.testing.assert_array_equal(np.asarray(Image.open(path)), x[i])
    n_train_unacceptable = len(list((tmp_path / "photos" / "train" / "unacceptable").glob("*.png")))
    assert n_train_unacceptable == int(small.y_train.sum())


# ---------------------------------------------------------------------------------------------
# TensorFlow: the classifier, a short training run, the simulator scenario


@pytest.mark.tf
def test_classifier_matches_its_contract() -> None:
    pytest.importorskip("tensorflow", reason="needs the ml extra (tensorflow)")
    from jobs.demo.photos import build_photo_classifier, photo_contract
    from jobs.ml.contract import ModelContract, resolve_contract

    model = build_photo_classifier(96, seed=0)
    assert model.input_shape == (None, 96, 96, 3) and model.output_shape == (None, 1)
    assert model.get_layer(PHOTO_CONTRACT["embedding_layer"]).output.shape[-1] == 64
    assert model.layers[-1].activation.__name__ == "sigmoid"
    configured = ModelContract(**{k: v for k, v in PHOTO_CONTRACT.items() if k != "class_labels"})
    resolved = resolve_contract(model, configured, tuple(PHOTO_CONTRACT["class_labels"]), source="built")
    assert resolved == photo_contract(96)
    assert (PHOTO_CONTRACT["scale"], PHOTO_CONTRACT["offset"], PHOTO_CONTRACT["color_mode"]) == (1.0, 0.0, "rgb")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[PhotoData, Any, dict[str, Any], Path]:
    """A short training run (64 px, 600 patches, 3 epochs) saved as ``photos.keras``."""
    pytest.importorskip("tensorflow", reason="needs the ml extra (tensorflow)")
    from jobs.demo.photos import train_photo_classifier

    data = load_photo_data(size=64, seed=0, n_train=600, n_test=200, n_pool=300)
    path = tmp_path_factory.mktemp("photos_model") / "photos.keras"
    model, metrics = train_photo_classifier(data, epochs=3, seed=0, out_path=path, batch_size=16, learning_rate=1e-3)
    return data, model, metrics, path


@pytest.mark.tf
@pytest.mark.slow
def test_short_training_beats_chance(trained: tuple[PhotoData, Any, dict[str, Any], Path]) -> None:
    from jobs.demo.photos import predict_photos

    data, model, metrics, path = trained
    assert metrics["test_accuracy"] >= 0.65  # chance is 0.5 (balanced); 200 test patches
    assert metrics["epochs"] == 3 and len(metrics["history"]["loss"]) == 3
    assert metrics["history"]["loss"][-1] < metrics["history"]["loss"][0]
    probs, emb = predict_photos(path, data.x_test[:8])
    assert probs.shape == (8, 2) and emb.shape == (8, 64) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    again, _ = predict_photos(model, data.x_test[:8])
    np.testing.assert_allclose(again, probs, atol=1e-5)


@pytest.mark.tf
@pytest.mark.slow
def test_photos_scenario_simulates_weeks_and_drift_lowers_accuracy(
    trained: tuple[PhotoData, Any, dict[str, Any], Path], tmp_path: Path
) -> None:
    from jobs.demo.photos import photos_scenario
    from jobs.demo.simulator import ProductionSimulator, read_images

    data, _, _, path = trained
    sim = ProductionSimulator(
        tmp_path / "sim", scenario=photos_scenario(data), seed=3, rows_per_week=150, drift_from_week=2,
        drift_kinds=("low_light",), drift_share=1.0, drift_strength=(1.0, 1.0),
    )  # fmt: skip
    assert sim.model_name == "photos"
    clean_week, drift_week = (sim.simulate_week(w, path, 1, START + timedelta(weeks=w - 1)) for w in (1, 2))
    with sqlite3.connect(sim.db_path) as conn:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(prediction_log)").fetchall()]
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM prediction_log ORDER BY id").fetchall()
        kinds = {r[0] for r in conn.execute("SELECT drift_kind FROM simulator_truth WHERE week = 2")}
    assert columns[5 : 5 + len(PHOTO_FEATURE_COLUMNS)] == list(PHOTO_FEATURE_COLUMNS)
    assert len(rows) == 300 and kinds == {"low_light"}
    for r in rows[::29]:
        probs = json.loads(r["probabilities"])
        assert len(probs) == 2 and sum(probs) == pytest.approx(1.0, abs=1e-5)
        assert len(json.loads(r["embedding"])) == 64
        assert r["predicted_label"] == CLASS_LABELS[int(np.argmax(probs))]
        assert r["confidence"] == pytest.approx(max(probs), abs=1e-5)
    image = read_images([rows[0]["input_uri"]], mode="RGB")
    assert image.shape == (1, 64, 64, 3)
    assert rows[0]["brightness"] == pytest.approx(float(photo_features(np.round(image * 255)).brightness[0]))
    assert not clean_week.drifted and drift_week.drifted_rows == 150
    assert drift_week.accuracy <= clean_week.accuracy - 0.1
    with pytest.raises(ValidationError, match="another scenario"):
        ProductionSimulator(tmp_path / "sim")  # the digits table cannot share the photos database
