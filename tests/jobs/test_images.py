from __future__ import annotations

import base64
import os

import numpy as np
from PIL import Image

from jobs.images import thumbnail_data_uri, within_roots


def _png(path, value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((32, 32), value, dtype=np.uint8)).save(path)
    return path


def test_only_files_inside_the_roots_are_read(tmp_path):
    root = tmp_path / "images"
    inside = _png(root / "a.png")
    outside = _png(tmp_path / "secret" / "b.png")
    os.symlink(outside, root / "link.png")
    roots = [root]
    assert within_roots(str(inside), roots) == inside.resolve()
    assert within_roots(f"file://{inside}", roots) == inside.resolve()
    assert within_roots(str(outside), roots) is None
    assert within_roots(str(root / ".." / "secret" / "b.png"), roots) is None
    assert within_roots(str(root / "link.png"), roots) is None  # a symlink pointing out
    assert within_roots("https://example.com/a.png", roots) is None
    assert within_roots(str(inside), []) is None


def test_thumbnails_are_small_png_data_uris(tmp_path):
    path = _png(tmp_path / "a.png", value=200)
    uri = thumbnail_data_uri(str(path), [tmp_path], size=16)
    assert uri is not None and uri.startswith("data:image/png;base64,")
    decoded = base64.b64decode(uri.split(",", 1)[1])
    assert decoded[:8] == b"\x89PNG\r\n\x1a\n" and len(decoded) < 1000
    assert thumbnail_data_uri(str(path), [tmp_path / "elsewhere"]) is None
