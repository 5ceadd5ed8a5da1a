"""The photos demo: "acceptable / unacceptable photo" patches, the team's MobileNet, the scenario.

No downloads: the patches are cut from the photos that ship inside scikit-learn
(:func:`sklearn.datasets.load_sample_images`: china, flower) and scikit-image (the bundled
astronaut, coffee, chelsea, rocket and the left stereo_motorcycle view; images that
``skimage.data`` would fetch with pooch are never asked for). Each source photo is cut into
2x2 quadrants; per photo, one quadrant feeds ``test``, one the production ``pool`` and two
``train``, so the splits never share a pixel. A patch is a random square crop (side
``size .. 2 size`` pixels, so never upsampled), flipped left-right half of the time, resized
bilinearly to ``size``; crops without texture (sky, a wall) or badly exposed are drawn again.

Half of each split is *acceptable* (clean, or only mildly varied) and half *unacceptable*:
blurred, dark, over-exposed or noisy well above a threshold (:mod:`jobs.demo.photo_camera`).

The team's classifier (:func:`build_photo_classifier`) is MobileNetV3Small (no pretrained
weights) with a binary head; :data:`PHOTO_CONTRACT` documents its contract. TensorFlow is
imported inside functions only.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from drift.errors import TrainingError, ValidationError
from jobs.demo.photo_camera import (
    CAMERA_DRIFTS,
    DEGRADATIONS,
    PHOTO_FEATURE_COLUMNS,
    UInt8Array,
    apply_camera_drift,
    check_photos,
    degrade,
    luma,
    mild_variation,
    photo_feature_matrix,
    to_uint8,
)
from jobs.demo.photo_camera import photo_features as photo_features  # part of this module's API
from jobs.ml.contract import Contract
from jobs.ml.image_features import feature_matrix

if TYPE_CHECKING:
    import keras

    from jobs.demo.simulator import Scenario

CLASS_LABELS: tuple[str, ...] = ("acceptable", "unacceptable")
PHOTO_SIZE = 96
EMBEDDING_DIM = 64
EMBEDDING_LAYER = "embedding"
OUTPUT_LAYER = "unacceptable_score"
BACKBONE_NAME = "backbone_mobilenet_v3_small"
PHOTO_CONTRACT: dict[str, Any] = {
    "height": PHOTO_SIZE,
    "width": PHOTO_SIZE,
    "channels": 3,
    "color_mode": "rgb",
    "resize": "bilinear",
    "scale": 1.0,  # input = pixel_uint8 * scale + offset: float32 0..255, the model rescales itself
    "offset": 0.0,
    "output": "sigmoid",  # one value p = P(class_labels[1]) = P("unacceptable")
    "embedding_layer": EMBEDDING_LAYER,
    "head_starts_at": EMBEDDING_LAYER,  # head-only retraining trains embedding, dropout, output
    "class_labels": list(CLASS_LABELS),
}
SKIMAGE_SOURCES = ("astronaut", "coffee", "chelsea", "rocket", "stereo_motorcycle")
SKLEARN_SOURCES = ("china.jpg", "flower.jpg")
MIN_SHARPNESS = 2e-3  # Laplacian variance of luma in [0, 1] below which a crop has "no texture"
EXPOSURE_RANGE = (0.15, 0.85)  # mean luma a source crop must have
_SPLITS = ("train", "test", "pool")


@dataclass(frozen=True, kw_only=True)
class PhotoData:
    """The three deterministic splits, uint8 ``(N, size, size, 3)``; ``y_*`` index ``labels``.

    ``kind_*`` name what made each patch unacceptable (a :data:`DEGRADATIONS` key) or ``"clean"``.
    """

    x_train: UInt8Array
    y_train: np.ndarray
    x_test: UInt8Array
    y_test: np.ndarray
    x_pool: UInt8Array
    y_pool: np.ndarray
    kind_train: tuple[str, ...]
    kind_test: tuple[str, ...]
    kind_pool: tuple[str, ...]
    sources: tuple[str, ...]
    size: int = PHOTO_SIZE
    seed: int = 0
    labels: tuple[str, ...] = CLASS_LABELS

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "size": self.size,
            "labels": list(self.labels),
            "sources": list(self.sources),
            "sizes": {"train": len(self.y_train), "test": len(self.y_test), "pool": len(self.y_pool)},
        }


def load_source_photos() -> dict[str, UInt8Array]:
    """The bundled RGB photos by name; a scikit-image photo that is not bundled is skipped."""
    from skimage import data as skdata
    from sklearn.datasets import load_sample_images

    photos: dict[str, UInt8Array] = {}
    for name in SKIMAGE_SOURCES:
        try:
            img = getattr(skdata, name)()
        except (ModuleNotFoundError, OSError, ValueError):  # would need pooch / a download
            continue
        photos[name] = np.asarray(img[0] if isinstance(img, tuple) else img, dtype=np.uint8)[..., :3]
    bunch = load_sample_images()
    for filename, img in zip(bunch.filenames, bunch.images, strict=True):
        if Path(filename).name in SKLEARN_SOURCES:
            photos[Path(filename).stem] = np.asarray(img, dtype=np.uint8)
    return photos


@dataclass(frozen=True, kw_only=True)
class Region:
    """A rectangle ``[top, bottom) x [left, right)`` of the source photo ``source``."""

    source: str
    top: int
    left: int
    bottom: int
    right: int

    def overlaps(self, other: Region) -> bool:
        return (
            self.source == other.source
            and self.top < other.bottom
            and other.top < self.bottom
            and self.left < other.right
            and other.left < self.right
        )


def split_regions(photos: dict[str, UInt8Array], seed: int) -> dict[str, list[Region]]:
    """Each photo's 2x2 quadrants: one to test, one to the pool, two to train (rotated per photo)."""
    out: dict[str, list[Region]] = {split: [] for split in _SPLITS}
    for i, (name, img) in enumerate(photos.items()):
        h, w = img.shape[:2]
        h2, w2 = h // 2, w // 2
        quads = [Region(source=name, top=t, left=lf, bottom=b, right=r)
                 for t, b in ((0, h2), (h2, h)) for lf, r in ((0, w2), (w2, w))]  # fmt: skip
        first = (i + seed) % 4
        out["test"].append(quads[first])
        out["pool"].append(quads[(first + 1) % 4])
        out["train"].extend([quads[(first + 2) % 4], quads[(first + 3) % 4]])
    return out


def crop_patches(regions: Sequence[UInt8Array], n: int, size: int, rng: np.random.Generator) -> UInt8Array:
    """``n`` textured, well-exposed random square crops (scale jitter, flips) resized to ``size``."""
    from PIL import Image

    areas = np.array([r.shape[0] * r.shape[1] for r in regions], dtype=np.float64)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    done, tries = 0, 0
    while done < n:
        tries += 1
        if tries > 50 * n + 100:
            raise ValidationError(f"cannot cut {n} textured {size}px patches from these regions")
        region = regions[int(rng.choice(len(regions), p=areas / areas.sum()))]
        limit = min(region.shape[0], region.shape[1], 2 * size)
        side = int(rng.integers(min(size, limit), limit + 1))
        top = int(rng.integers(region.shape[0] - side + 1))
        left = int(rng.integers(region.shape[1] - side + 1))
        crop = region[top : top + side, left : left + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        patch = np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((size, size), Image.Resampling.BILINEAR))
        grey = luma(patch)
        if not EXPOSURE_RANGE[0] <= grey.mean() <= EXPOSURE_RANGE[1]:
            continue
        if feature_matrix(grey[None])[0, 2] < MIN_SHARPNESS:
            continue
        out[done] = patch
        done += 1
    return out


def _labelled_split(
    regions: Sequence[UInt8Array], n: int, size: int, rng: np.random.Generator
) -> tuple[UInt8Array, np.ndarray, tuple[str, ...]]:
    clean = crop_patches(regions, n, size, rng)
    y = rng.permutation(np.arange(n) % 2).astype(np.int64)
    kinds = list(DEGRADATIONS)
    which = rng.integers(len(kinds), size=n)
    strengths = rng.random(n)
    seeds = rng.integers(2**31, size=n)
    x = np.empty_like(clean)
    good = y == 0
    x[good] = mild_variation(clean[good], seed=int(rng.integers(2**31)))
    for i in np.flatnonzero(~good):
        x[i] = degrade(clean[i : i + 1], kinds[which[i]], float(strengths[i]), int(seeds[i]))[0]
    names = tuple("clean" if y[i] == 0 else kinds[which[i]] for i in range(n))
    return x, y, names


def load_photo_data(
    size: int = PHOTO_SIZE, seed: int = 0, n_train: int = 2400, n_test: int = 600, n_pool: int = 1200
) -> PhotoData:
    """Cut, label and degrade the three splits, deterministically for ``seed`` (see the module doc)."""
    if size < 32:
        raise ValidationError(f"size must be >= 32 pixels, got {size}")
    if min(n_train, n_test, n_pool) < 2:
        raise ValidationError(f"each split needs >= 2 patches, got {n_train}, {n_test}, {n_pool}")
    photos = load_source_photos()
    regions = {
        split: [photos[r.source][r.top : r.bottom, r.left : r.right] for r in rs]
        for split, rs in split_regions(photos, seed).items()
    }
    rng = np.random.default_rng([seed, size])
    sizes = (n_train, n_test, n_pool)
    parts = {split: _labelled_split(regions[split], n, size, rng) for split, n in zip(_SPLITS, sizes, strict=True)}
    return PhotoData(
        x_train=parts["train"][0], y_train=parts["train"][1], kind_train=parts["train"][2],
        x_test=parts["test"][0], y_test=parts["test"][1], kind_test=parts["test"][2],
        x_pool=parts["pool"][0], y_pool=parts["pool"][1], kind_pool=parts["pool"][2],
        sources=tuple(photos), size=size, seed=seed,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# The team's classifier


def _keras() -> Any:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    return keras


def build_photo_classifier(size: int = PHOTO_SIZE, seed: int = 0, *, dropout: float = 0.2) -> keras.Model:
    """MobileNetV3Small (random init) + ``embedding`` Dense 64 ReLU + dropout + sigmoid ``unacceptable_score``.

    Input ``image`` float32 ``(N, size, size, 3)`` RGB in 0..255 (the backbone rescales itself);
    output ``(N, 1)``, the probability of ``"unacceptable"``. The backbone is one nested layer
    named ``backbone_mobilenet_v3_small``; its BatchNorm momentum is lowered from 0.999 to 0.9
    so the moving statistics settle within a short training run.
    """
    keras = _keras()
    keras.utils.set_random_seed(seed)
    backbone = keras.applications.MobileNetV3Small(
        input_shape=(size, size, 3), include_top=False, weights=None, pooling="avg", include_preprocessing=True
    )
    backbone.name = BACKBONE_NAME
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    inputs = keras.Input(shape=(size, size, 3), name="image")
    x = backbone(inputs)
    emb = keras.layers.Dense(EMBEDDING_DIM, activation="relu", name=EMBEDDING_LAYER)(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(emb)
    out = keras.layers.Dense(1, activation="sigmoid", name=OUTPUT_LAYER)(x)
    return keras.Model(inputs, out, name="photo_classifier")


def _as_input(images: np.ndarray) -> np.ndarray:
    return check_photos(images).astype(np.float32)


def _scores(model: keras.Model, images: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    keras = _keras()
    both = keras.Model(model.input, [model.output, model.get_layer(EMBEDDING_LAYER).output])
    x = _as_input(images)
    scores, embs = [np.zeros((0,), np.float32)], [np.zeros((0, EMBEDDING_DIM), np.float32)]
    for start in range(0, len(x), batch_size):
        p, e = both(x[start : start + batch_size], training=False)
        scores.append(np.asarray(p, dtype=np.float32)[:, 0])
        embs.append(np.asarray(e, dtype=np.float32))
    return np.concatenate(scores), np.concatenate(embs)


def photo_contract(size: int = PHOTO_SIZE) -> Contract:
    """:data:`PHOTO_CONTRACT` (for a model of input ``size``) resolved, as resolving it against the file gives."""
    return Contract(
        height=size, width=size, channels=3, color_mode="rgb", resize="bilinear", scale=1.0, offset=0.0,
        mean=None, std=None, output="sigmoid", class_labels=CLASS_LABELS, embedding_layer=EMBEDDING_LAYER,
        embedding_dim=EMBEDDING_DIM, head_starts_at=PHOTO_CONTRACT["head_starts_at"],
    )  # fmt: skip


def predict_photos(model: keras.Model | Path | str, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities ``(N, 2)`` (``[1 - p, p]``, rows sum to 1) and embeddings ``(N, 64)``, float32.

    ``model`` is a Keras model or a ``.keras`` file; ``images`` uint8 RGB of the model's input size.
    """
    if isinstance(model, str | Path):
        from jobs.ml.network import load_model

        model = load_model(Path(model))
    p, emb = _scores(model, images)
    return np.stack([1.0 - p, p], axis=1).astype(np.float32), emb


def train_photo_classifier(
    data: PhotoData,
    *,
    epochs: int = 5,
    seed: int = 0,
    out_path: Path | None = None,
    batch_size: int = 32,
    learning_rate: float = 2e-3,
) -> tuple[keras.Model, dict[str, Any]]:
    """The team's own training: Adam + binary cross-entropy, a fresh seeded shuffle and flip per epoch.

    Returns the model and its metrics (seconds, train / test accuracy, per-epoch history); saves
    a ``.keras`` file when ``out_path`` is given.
    """
    if epochs < 1:
        raise ValidationError(f"epochs must be >= 1, got {epochs}")
    keras = _keras()
    model = build_photo_classifier(data.size, seed)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="binary_crossentropy", metrics=["accuracy"]
    )
    rng = np.random.default_rng(seed)
    x, y = _as_input(data.x_train), data.y_train.astype(np.float32)
    history: dict[str, list[float]] = {}
    started = time.perf_counter()
    try:
        for _ in range(epochs):
            order = rng.permutation(len(x))
            flip = rng.random(len(x)) < 0.5
            xe = np.where(flip[:, None, None, None], x[order][:, :, ::-1], x[order])
            hist = model.fit(xe, y[order], epochs=1, batch_size=batch_size, shuffle=False, verbose=0)
            for key, values in hist.history.items():
                history.setdefault(key, []).append(float(values[-1]))
    except Exception as exc:
        raise TrainingError(f"photo classifier training failed: {exc}") from exc
    seconds = time.perf_counter() - started
    if out_path is not None:
        from jobs.ml.network import save_model

        save_model(model, Path(out_path))
    metrics = {
        "epochs": epochs,
        "seed": seed,
        "train_seconds": seconds,
        "train_accuracy": photo_accuracy(model, data.x_train, data.y_train),
        "test_accuracy": photo_accuracy(model, data.x_test, data.y_test),
        "history": history,
        "path": str(out_path) if out_path is not None else None,
    }
    return model, metrics


def photo_accuracy(model: keras.Model, images: np.ndarray, labels: np.ndarray) -> float:
    """Share of photos whose predicted class (``p >= 0.5`` means unacceptable) matches ``labels``."""
    p, _ = _scores(model, images)
    return float(((p >= 0.5).astype(np.int64) == np.asarray(labels)).mean())


# ---------------------------------------------------------------------------------------------
# Files and the simulator scenario


def write_images(images: np.ndarray, folder: Path, names: Sequence[str]) -> list[Path]:
    """Write each RGB photo as ``folder/<name>.png``; return the paths."""
    from PIL import Image

    x = to_uint8(check_photos(images))
    if len(names) != len(x):
        raise ValidationError(f"need one name per image, got {len(names)} names for {len(x)} images")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.png" for name in names]
    for img, path in zip(x, paths, strict=True):
        Image.fromarray(img, mode="RGB").save(path, optimize=False)
    return paths


def write_class_folders(data: PhotoData, root: Path) -> Path:
    """``root/{train,test}/<label>/<split>_NNNNN.png`` (Keras' class folders) and ``root/manifest.csv``.

    The manifest has one ``uri,label,split`` row per image (absolute paths); returns its path.
    """
    root = Path(root)
    rows: list[tuple[str, str, str]] = []
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        for k, label in enumerate(data.labels):
            idx = np.flatnonzero(y == k)
            paths = write_images(x[idx], root / split / label, [f"{split}_{i:05d}" for i in idx])
            rows.extend((str(p.resolve()), label, split) for p in paths)
    manifest = root / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(("uri", "label", "split"))
        writer.writerows(sorted(rows))  # by uri
    return manifest


def vary_photos(images: np.ndarray, seed: int) -> UInt8Array:
    """The small variation of a production photo drawn from the pool: a flip and exposure ±5 %."""
    rng = np.random.default_rng(seed)
    x = check_photos(images)
    flip = rng.random(len(x)) < 0.5
    x = np.where(flip[:, None, None, None], x[:, :, ::-1], x)
    return to_uint8(x * rng.uniform(0.95, 1.05, size=(len(x), 1, 1, 1)))


PhotoPredict = Callable[[Path, np.ndarray], tuple[np.ndarray, np.ndarray]]


def photos_scenario(data: PhotoData, predict: PhotoPredict | None = None) -> Scenario:
    """The simulator's photos scenario: the production pool, camera drifts, photo features, RGB PNGs.

    ``predict`` defaults to the ``.keras`` / ``.tflite`` predictor of :func:`photo_contract` (``data.size``).
    """
    from jobs.demo.simulator import Scenario, contract_predict

    return Scenario(
        name="photos",
        class_labels=data.labels,
        pool_x=data.x_pool,
        pool_y=data.y_pool,
        vary=vary_photos,
        drift=apply_camera_drift,
        drift_kinds=tuple(CAMERA_DRIFTS),
        default_drift_kinds=("low_light", "colour_cast", "jpeg"),
        to_pixels=to_uint8,
        features=photo_feature_matrix,
        feature_columns=PHOTO_FEATURE_COLUMNS,
        image_mode="RGB",
        predict=predict or contract_predict(photo_contract(data.size)),
    )
