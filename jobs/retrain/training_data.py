"""The champion's own training set and original test set, wherever and however a team keeps it.

``retrain.training_data`` is a local path or an fsspec URI (``s3://``, ``gs://``, ``https://``,
``file://``) of one of:

- an ``.npz`` with ``x_train, y_train, x_test, y_test`` (images in memory: the demo's size);
- a CSV or Parquet manifest with columns ``uri, label`` and optionally ``split`` (``train`` or
  ``test``; ``val``/``validation`` count as train); relative URIs are relative to the manifest;
- a folder in Keras' class-subfolder convention, ``<label>/<image>``, optionally under
  ``train/`` and ``test/``.

Without splits, a stable hash of each image's URI puts ``retrain.test_share`` of them in the
test set, so the original test set never changes between retrains. Images are listed here, not
read: they are decoded batch by batch when training needs them (:mod:`jobs.ml.imageset`), and
only from inside the training data's own location. A manifest row or folder whose label is not
one of ``class_labels`` is left out and counted by reason (``skipped``).
"""

from __future__ import annotations

import hashlib
import io
import posixpath
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from drift.errors import TrainingError
from jobs.ml.imageset import ImageSet

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_TRAIN_SPLITS = {"train", "val", "validation", ""}


@dataclass(frozen=True, kw_only=True)
class TrainingData:
    """The base training set and the original test set, listed (see the module docstring)."""

    source: str
    kind: str  # npz | manifest | folder
    train: ImageSet
    test: ImageSet
    skipped: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "n_train": len(self.train),
            "n_test": len(self.test),
            "skipped": self.skipped,
        }


def _filesystem(location: str, storage_options: Mapping[str, Mapping[str, Any]] | None) -> tuple[Any, str]:
    import fsspec

    protocol = location.split("://", 1)[0] if "://" in location else "file"
    options = dict((storage_options or {}).get(protocol, {}))
    fs, path = fsspec.core.url_to_fs(location, **options)
    return fs, path


def exists(location: str, storage_options: Mapping[str, Mapping[str, Any]] | None = None) -> bool:
    """Whether the training data is there (a missing one is named by ``retrain --dry-run``)."""
    try:
        fs, path = _filesystem(location, storage_options)
        return bool(fs.exists(path))
    except Exception:  # an unreachable bucket is as missing as a missing file
        return False


def _is_test(uri: str, share: float) -> bool:
    return int(hashlib.sha1(uri.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < share


def _join(base: str, relative: str) -> str:
    if "://" in relative or relative.startswith("/"):
        return relative
    if "://" in base:
        protocol, rest = base.split("://", 1)
        return f"{protocol}://{posixpath.normpath(posixpath.join(rest, relative))}"
    return posixpath.normpath(posixpath.join(base, relative))


def _dirname(location: str) -> str:
    if "://" in location:
        protocol, rest = location.split("://", 1)
        return f"{protocol}://{posixpath.dirname(rest.rstrip('/'))}"
    return posixpath.dirname(location.rstrip("/")) or "."


def load_training_data(
    location: str | None,
    class_labels: tuple[str, ...],
    *,
    test_share: float = 0.1,
    storage_options: Mapping[str, Mapping[str, Any]] | None = None,
) -> TrainingData:
    """List (npz: load) the training data at ``location``; TrainingError when it cannot be read."""
    if location is None:
        raise TrainingError(
            "retrain.training_data is not configured (an .npz, a folder of class subfolders or a uri,label manifest)"
        )
    location = str(location)
    lower = location.lower().split("?", 1)[0]
    try:
        if lower.endswith(".npz"):
            return _npz(location, storage_options)
        if lower.endswith((".csv", ".parquet", ".pq")):
            return _manifest(location, class_labels, test_share, storage_options)
        return _folder(location, class_labels, test_share, storage_options)
    except TrainingError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise TrainingError(f"{location}: cannot read the training data: {type(exc).__name__}: {exc}") from exc


def _npz(location: str, storage_options: Mapping[str, Mapping[str, Any]] | None) -> TrainingData:
    fs, path = _filesystem(location, storage_options)
    with fs.open(path, "rb") as fh, np.load(io.BytesIO(fh.read())) as data:
        arrays = {k: data[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    return TrainingData(
        source=location,
        kind="npz",
        train=ImageSet.of_arrays(arrays["x_train"], arrays["y_train"]),
        test=ImageSet.of_arrays(arrays["x_test"], arrays["y_test"]),
    )


def _labelled_sets(
    uris: list[str],
    labels: list[str],
    splits: list[str | None],
    class_labels: tuple[str, ...],
    test_share: float,
    root: str,
    storage_options: Mapping[str, Mapping[str, Any]] | None,
) -> tuple[ImageSet, ImageSet, dict[str, int]]:
    index = {label: i for i, label in enumerate(class_labels)}
    skipped: Counter[str] = Counter()
    sets: dict[bool, tuple[list[str], list[int]]] = {False: ([], []), True: ([], [])}
    for uri, label, split in zip(uris, labels, splits, strict=True):
        if label not in index:
            skipped[f"label {label!r} is not one of class_labels"] += 1
            continue
        if split is not None and split not in _TRAIN_SPLITS and split != "test":
            skipped[f"split {split!r} is not train or test"] += 1
            continue
        is_test = split == "test" if split is not None else _is_test(uri, test_share)
        sets[is_test][0].append(uri)
        sets[is_test][1].append(index[label])
    roots = (root,)

    def as_set(is_test: bool) -> ImageSet:
        uris_, ys = sets[is_test]
        return ImageSet.of_uris(uris_, np.array(ys, np.int64), roots=roots, storage_options=storage_options)

    return as_set(False), as_set(True), dict(skipped)


def _manifest(
    location: str,
    class_labels: tuple[str, ...],
    test_share: float,
    storage_options: Mapping[str, Mapping[str, Any]] | None,
) -> TrainingData:
    fs, path = _filesystem(location, storage_options)
    with fs.open(path, "rb") as fh:
        raw = fh.read()
    is_csv = location.lower().endswith(".csv")
    frame = (
        pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False) if is_csv else pd.read_parquet(io.BytesIO(raw))
    )
    missing = [c for c in ("uri", "label") if c not in frame.columns]
    if missing:
        raise TrainingError(
            f"{location}: the manifest lacks column(s) {', '.join(missing)};"
            f" it has {', '.join(map(str, frame.columns))}"
        )
    base = _dirname(location)
    uris = [_join(base, str(u)) for u in frame["uri"]]
    splits: list[str | None] = (
        [str(s).strip().lower() for s in frame["split"]] if "split" in frame.columns else [None] * len(frame)
    )
    train, test, skipped = _labelled_sets(
        uris, [str(v) for v in frame["label"]], splits, class_labels, test_share, base, storage_options
    )
    return TrainingData(source=location, kind="manifest", train=train, test=test, skipped=skipped)


def _folder(
    location: str,
    class_labels: tuple[str, ...],
    test_share: float,
    storage_options: Mapping[str, Mapping[str, Any]] | None,
) -> TrainingData:
    fs, path = _filesystem(location, storage_options)
    if not fs.isdir(path):
        raise TrainingError(f"{location} is not an .npz, a .csv/.parquet manifest or a folder")
    root = path.rstrip("/")
    protocol = location.split("://", 1)[0] + "://" if "://" in location else ""
    uris, labels, splits = [], [], []
    for found in sorted(fs.find(root)):
        if not found.lower().endswith(IMAGE_SUFFIXES):
            continue
        parts = posixpath.relpath(found, root).split("/")
        split: str | None = None
        if len(parts) == 3 and parts[0] in ("train", "test"):
            split, parts = parts[0], parts[1:]
        if len(parts) != 2:
            continue  # not <label>/<file>
        uris.append(f"{protocol}{found}" if protocol else found)
        labels.append(parts[0])
        splits.append(split)
    if not uris:
        raise TrainingError(f"{location}: no images in class subfolders (<label>/<image>) found")
    has_splits = any(s is not None for s in splits)
    splits = [s if s is not None else ("train" if has_splits else None) for s in splits]
    train, test, skipped = _labelled_sets(
        uris, labels, splits, class_labels, test_share, f"{protocol}{root}" if protocol else root, storage_options
    )
    return TrainingData(source=location, kind="folder", train=train, test=test, skipped=skipped)
