"""Training data where teams keep it: .npz, class folders, uri,label[,split] manifests, on disk and on S3.

The S3 cases run against a real moto server on 127.0.0.1 (tests/s3server.py).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from drift.errors import TrainingError
from jobs.ml.contract import Contract
from jobs.retrain.training_data import exists, load_training_data

pytest_plugins = ["tests.s3server"]
LABELS = ("acceptable", "unacceptable")
CONTRACT = Contract(
    height=8, width=8, channels=3, color_mode="rgb", resize="nearest", scale=1 / 255, offset=0.0, mean=None,
    std=None, output="sigmoid", class_labels=LABELS, embedding_layer="e", embedding_dim=4, head_starts_at="h",
)  # fmt: skip


def _png(value: int, size: int = 16) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _pixel(data, position: int) -> float:
    batch = data.load(np.array([position]), CONTRACT)
    assert batch.ok.all(), batch.reasons
    return float(batch.x[0, 0, 0, 0])


def test_class_folders_with_splits_are_listed_not_read(tmp_path: Path) -> None:
    for split, n in (("train", 3), ("test", 2)):
        for label, value in (("acceptable", 200), ("unacceptable", 40)):
            for i in range(n):
                _write(tmp_path / split / label / f"{i}.png", _png(value))
    _write(tmp_path / "train" / "blurry" / "x.png", _png(1))  # not a class: left out, counted
    (tmp_path / "train" / "README.txt").write_text("not an image")
    data = load_training_data(str(tmp_path), LABELS)
    assert (data.kind, len(data.train), len(data.test)) == ("folder", 6, 4)
    assert data.skipped == {"label 'blurry' is not one of class_labels": 1}
    assert sorted(data.train.labels.tolist()) == [0, 0, 0, 1, 1, 1]
    first_bad = int(np.flatnonzero(data.test.labels == 1)[0])
    assert _pixel(data.test, first_bad) == pytest.approx(40 / 255)  # resized 16 -> 8, decoded on demand


def test_folders_without_splits_hold_out_a_stable_hashed_share(tmp_path: Path) -> None:
    for i in range(200):
        _write(tmp_path / LABELS[i % 2] / f"{i}.png", _png(i % 256))
    a = load_training_data(str(tmp_path), LABELS, test_share=0.2)
    b = load_training_data(str(tmp_path), LABELS, test_share=0.2)
    assert 25 <= len(a.test) <= 55 and len(a.train) + len(a.test) == 200
    assert list(a.test.entries) == list(b.test.entries)  # the original test set never changes


def test_csv_and_parquet_manifests_resolve_relative_uris(tmp_path: Path) -> None:
    rows = []
    for i in range(6):
        _write(tmp_path / "img" / f"{i}.png", _png(10 * i))
        rows.append({"uri": f"img/{i}.png", "label": LABELS[i % 2], "split": "test" if i >= 4 else "train"})
    rows.append({"uri": "img/0.png", "label": "cat", "split": "train"})
    frame = pd.DataFrame(rows)
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    frame.to_parquet(tmp_path / "manifest.parquet")
    for name in ("manifest.csv", "manifest.parquet"):
        data = load_training_data(str(tmp_path / name), LABELS)
        assert (data.kind, len(data.train), len(data.test)) == ("manifest", 4, 2)
        assert data.skipped == {"label 'cat' is not one of class_labels": 1}
        assert _pixel(data.train, 3) == pytest.approx(30 / 255)
    with pytest.raises(TrainingError, match="lacks column"):
        pd.DataFrame({"path": ["a"], "label": ["x"]}).to_csv(tmp_path / "bad.csv", index=False)
        load_training_data(str(tmp_path / "bad.csv"), LABELS)


def test_unreadable_images_are_counted_never_fatal(tmp_path: Path) -> None:
    _write(tmp_path / "train" / "acceptable" / "ok.png", _png(100))
    _write(tmp_path / "train" / "acceptable" / "broken.png", b"\x89PNG not really")
    _write(tmp_path / "test" / "unacceptable" / "t.png", _png(5))
    data = load_training_data(str(tmp_path), LABELS)
    batch = data.train.load(np.arange(len(data.train)), CONTRACT)
    assert sorted(batch.reasons) == ["", "not a decodable image"]
    (tmp_path / "train" / "acceptable" / "ok.png").unlink()
    assert "missing" in data.train.load(np.arange(len(data.train)), CONTRACT).reasons


def test_npz_and_missing_locations(tmp_path: Path) -> None:
    x = np.random.default_rng(0).random((5, 8, 8, 3)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=np.zeros(5), x_test=x[:2], y_test=np.ones(2))
    data = load_training_data(str(tmp_path / "d.npz"), LABELS)
    assert (data.kind, len(data.train), len(data.test)) == ("npz", 5, 2)
    np.testing.assert_array_equal(data.train.load(np.arange(5), CONTRACT).x, x)
    assert not exists(str(tmp_path / "nope.npz")) and exists(str(tmp_path / "d.npz"))
    with pytest.raises(TrainingError, match="not configured"):
        load_training_data(None, LABELS)
    with pytest.raises(TrainingError, match="no images in class subfolders"):
        (tmp_path / "empty").mkdir()
        load_training_data(str(tmp_path / "empty"), LABELS)


def test_a_manifest_and_its_images_on_s3(s3_bucket) -> None:
    for i in range(4):
        s3_bucket.put(f"photos/{LABELS[i % 2]}/{i}.png", _png(50 + i))
    s3_bucket.put("photos/acceptable/broken.png", b"junk")
    manifest = pd.DataFrame(
        {"uri": [f"{LABELS[i % 2]}/{i}.png" for i in range(4)] + ["acceptable/broken.png", "../../elsewhere/x.png"],
         "label": [LABELS[i % 2] for i in range(4)] + ["acceptable", "acceptable"],
         "split": ["train", "train", "test", "test", "train", "train"]}
    ).to_csv(index=False).encode()  # fmt: skip
    uri = s3_bucket.put("photos/manifest.csv", manifest)
    options = s3_bucket.server.storage_options()
    assert exists(uri, options) and not exists(uri + ".gone", options)
    data = load_training_data(uri, LABELS, storage_options=options)
    assert (len(data.train), len(data.test)) == (4, 2)
    batch = data.train.load(np.arange(4), CONTRACT)
    assert batch.reasons.count("") == 2 and "not a decodable image" in batch.reasons
    assert "outside image_roots" in batch.reasons  # ../../ leaves the manifest's folder: refused, not read
    folder = load_training_data(f"s3://{s3_bucket.name}/photos", LABELS, storage_options=options, test_share=0.5)
    assert folder.kind == "folder" and len(folder.train) + len(folder.test) == 5
