"""Real architectures (keras.applications, weights=None) through the contract: head and full
retrain, the contract check, and the three TFLite variants verified with ai-edge-litert.

- MobileNetV3Small and MobileNetV2 (alpha 0.35) at 96x96x3, binary with one sigmoid unit;
- a 3-class grayscale plain CNN (not a MobileNet) at 48x48x1 with a logits output.

The images are synthetic and seeded: "unacceptable" photos are noisy and dark, acceptable
ones smooth gradients; the gray shapes are discs, squares and stripes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from drift.errors import ContractMismatchError
from jobs.ml.contract import ModelContract
from jobs.ml.imageset import ImageSet
from jobs.ml.preprocess import model_input

pytestmark = [pytest.mark.tf, pytest.mark.slow]
BINARY = ("acceptable", "unacceptable")
SHAPES = ("disc", "square", "stripes")


def photos(n: int, seed: int, size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """Smooth colour gradients (acceptable) and the same made dark and noisy (unacceptable)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    y = rng.integers(0, 2, n)
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        colour = rng.uniform(0.3, 1.0, 3)
        img = (0.35 + 0.5 * (xx * rng.uniform(0.2, 1) + yy * rng.uniform(0.2, 1)) / 2)[..., None] * colour
        if y[i]:
            img = img * rng.uniform(0.2, 0.5) + rng.normal(0, 0.25, img.shape)
        out[i] = np.clip(img * 255, 0, 255).astype(np.uint8)
    return out, y


def shapes(n: int, seed: int, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    y = rng.integers(0, 3, n)
    out = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        cy, cx, r = rng.integers(14, 34), rng.integers(14, 34), rng.integers(7, 12)
        if y[i] == 0:
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
        elif y[i] == 1:
            mask = (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
        else:
            mask = ((xx // 4) % 2 == 0) & (abs(yy - cy) <= r)
        out[i] = np.clip(mask * rng.uniform(150, 255) + rng.normal(20, 8, (size, size)), 0, 255).astype(np.uint8)
    return out, y


def _keras() -> Any:
    from jobs.ml.network import keras_module

    return keras_module()


def mobilenet_v3(size: int = 96) -> Any:
    keras = _keras()
    base = keras.applications.MobileNetV3Small(
        input_shape=(size, size, 3), include_top=False, weights=None, pooling="avg", include_preprocessing=True
    )
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Dense(32, activation="relu", name="embedding")(base(inputs))
    out = keras.layers.Dense(1, activation="sigmoid", name="unacceptable_score")(x)
    return keras.Model(inputs, out, name="photo_v3")


def mobilenet_v2(size: int = 96) -> Any:
    keras = _keras()
    base = keras.applications.MobileNetV2(
        input_shape=(size, size, 3), alpha=0.35, include_top=False, weights=None, pooling="avg"
    )
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Dropout(0.1, name="drop")(base(inputs))  # the penultimate layer: the default embedding
    out = keras.layers.Dense(1, activation="sigmoid", name="score")(x)
    return keras.Model(inputs, out, name="photo_v2")


def gray_cnn(size: int = 48) -> Any:
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input((size, size, 1), name="image")
    x = inputs
    for i, filters in enumerate((16, 32)):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(24, activation="relu", name="features")(x)
    out = layers.Dense(3, name="logits")(x)  # no softmax: the contract says logits
    return keras.Model(inputs, out, name="shapes_cnn")


CASES = {
    "mobilenet_v3_small": (
        mobilenet_v3,
        photos,
        BINARY,
        ModelContract(scale=1.0, offset=0.0, embedding_layer="embedding"),
    ),
    "mobilenet_v2_035": (mobilenet_v2, photos, BINARY, ModelContract(scale=1 / 127.5, offset=-1.0)),
    "gray_cnn_logits": (gray_cnn, shapes, SHAPES, ModelContract(output="logits", embedding_layer="features")),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def champion(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Each architecture trained briefly from scratch on its synthetic task and saved."""
    from jobs.ml import network

    build, data, labels, configured = CASES[request.param]
    folder = tmp_path_factory.mktemp(request.param)
    network.seed_everything(0)  # before the build: its initial weights must not depend on the tests run before
    model = build()
    for layer in _all_layers(model):  # keras.applications' BN momentum (0.999) needs far more steps than these
        if layer.__class__.__name__ == "BatchNormalization":
            layer.momentum = 0.8
    path = folder / "champion.keras"
    contract = network.resolve_contract(model, configured, labels, source=str(path))
    x, y = data(300, seed=1)
    network.seed_everything(0)
    network.compile_model(model, contract, 3e-3)
    model.fit(model_input(x, contract), network.targets(y, contract), epochs=4, batch_size=32, verbose=0)
    network.save_model(model, path)
    test_x, test_y = data(200, seed=2)
    return {"name": request.param, "path": path, "contract": contract, "data": data, "x": x, "y": y,
            "test_x": test_x, "test_y": test_y, "folder": folder}  # fmt: skip


def _all_layers(model: Any) -> list[Any]:
    found = []
    for layer in model.layers:
        found.append(layer)
        if hasattr(layer, "layers"):
            found.extend(_all_layers(layer))
    return found


def _weights(model: Any, names: frozenset[str], inside: bool) -> list[np.ndarray]:
    return [np.array(w) for layer in model.layers if (layer.name in names) == inside for w in layer.get_weights()]


def test_the_contract_is_read_from_the_file_and_checked(champion: dict[str, Any]) -> None:
    from jobs.ml.network import contract_for_file

    contract = champion["contract"]
    if champion["name"].startswith("mobilenet"):
        assert contract.input_shape == (96, 96, 3) and contract.color_mode == "rgb" and contract.output == "sigmoid"
        assert contract.output_units == 1 and contract.class_labels == BINARY
    else:
        assert contract.input_shape == (48, 48, 1) and contract.output == "logits" and contract.embedding_dim == 24
    with pytest.raises(ContractMismatchError, match=r"contract\.height: the config says 224, .*champion\.keras has"):
        contract_for_file(champion["path"], ModelContract(height=224), contract.class_labels)
    with pytest.raises(ContractMismatchError, match="class_labels"):
        contract_for_file(champion["path"], ModelContract(output="softmax"), ("a", "b", "c", "d"))


def test_head_retrain_trains_only_the_head_and_full_retrain_everything(
    champion: dict[str, Any], tmp_path: Path
) -> None:
    from jobs.ml import network
    from jobs.ml.train import evaluate, retrain

    contract = champion["contract"]
    new_x, new_y = champion["data"](60, seed=3)
    base = ImageSet.of_arrays(champion["x"], champion["y"])
    head = retrain(
        champion["path"], contract, base, (new_x, new_y), mode="head", epochs=2, out_path=tmp_path / "h.keras"
    )
    full = retrain(
        champion["path"], contract, base, (new_x, new_y), mode="full", epochs=1, out_path=tmp_path / "f.keras"
    )
    before = network.load_model(champion["path"])
    parts = network.split(before, contract)
    after_head, after_full = network.load_model(head.out_path), network.load_model(full.out_path)
    frozen, trained = parts.head_layers, True

    def changed(a: Any, b: Any, head_part: bool) -> list[bool]:
        pairs = zip(_weights(a, frozen, head_part), _weights(b, frozen, head_part), strict=True)
        return [not np.array_equal(x, y) for x, y in pairs]

    assert not any(changed(before, after_head, not trained))  # head mode: the frozen part is bit-identical
    assert any(changed(before, after_head, trained))
    assert any(changed(before, after_full, not trained))  # full mode: the backbone moved
    assert head.frozen_params > head.trainable_params and full.trainable_params > head.trainable_params
    assert head.n_train == full.n_train == len(champion["y"]) + 60
    accuracy = evaluate(after_full, champion["test_x"], champion["test_y"], contract).accuracy
    assert accuracy >= 0.6, accuracy  # better than chance on the synthetic task


def test_three_tflite_variants_verified_with_the_contract_in_the_manifest(
    champion: dict[str, Any], tmp_path: Path
) -> None:
    from jobs.ml.export import export_tflite

    contract = champion["contract"]
    report = export_tflite(
        champion["path"], tmp_path, model_input(champion["x"][:100], contract),
        model_input(champion["test_x"], contract), contract, {"model_name": champion["name"], "version": 1},
        size_budget_bytes=8_000_000, min_agreement_int8=0.9,
    )  # fmt: skip
    print(champion["name"], {v.name: (v.size_bytes, round(v.agreement, 4)) for v in report.variants})
    for name in ("float32", "dynamic"):
        assert report.variant(name).agreement >= 0.99, (name, report.variant(name).agreement)
    assert report.variant("int8").size_bytes < report.variant("float32").size_bytes / 2
    assert report.passed, report.reasons
    manifest = json.loads(report.manifest_path.read_text())
    assert manifest["contract"]["class_labels"] == list(contract.class_labels)
    assert manifest["input"]["shape"] == [1, *contract.input_shape]
    assert manifest["outputs"]["probabilities"]["kind"] == contract.output
    assert manifest["outputs"]["probabilities"]["shape"] == [1, contract.output_units]
    assert report.labels_path.read_text().splitlines() == list(contract.class_labels)
