"""Input images, read only from a model's configured image roots.

A logged ``input_uri`` is data from production: it is resolved (symlinks too) and used only
when it lies inside one of ``image_roots``; anything else is refused, so a hostile log row
cannot make driftkeeper read, embed or train on an arbitrary file.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def within_roots(uri: str | None, roots: Sequence[Path]) -> Path | None:
    """The file ``uri`` names, if it is a local path inside one of ``roots``."""
    if not uri or not roots:
        return None
    raw = uri.removeprefix("file://")
    if "://" in raw:
        return None
    try:
        path = Path(raw).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    for root in roots:
        try:
            path.relative_to(Path(root).resolve())
        except ValueError:
            continue
        return path if path.is_file() else None
    return None


def read_grayscale(paths: Sequence[Path], size: int = 32) -> np.ndarray:
    """Images as ``(N, size, size)`` float32 in [0, 1]."""
    from PIL import Image

    out = []
    for path in paths:
        with Image.open(path) as img:
            gray = img.convert("L")
            if gray.size != (size, size):
                gray = gray.resize((size, size))
            out.append(np.asarray(gray, dtype=np.float32) / 255.0)
    return np.stack(out) if out else np.zeros((0, size, size), np.float32)


def thumbnail_data_uri(uri: str | None, roots: Sequence[Path], size: int = 64) -> str | None:
    """A small PNG of the image as a ``data:`` URI for reports, or None when not allowed/readable."""
    path = within_roots(uri, roots)
    if path is None:
        return None
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.thumbnail((size, size))
            scaled = img.convert("L").resize((size, size), Image.Resampling.NEAREST)
            buffer = io.BytesIO()
            scaled.save(buffer, format="PNG", optimize=True)
    except OSError:
        return None
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def read_mask(uri: str | None, roots: Sequence[Path], n_classes: int) -> tuple[np.ndarray | None, str]:
    """A class-index mask (a single-channel image, e.g. a PNG of mode L or P) as an ``(H, W)``
    int64 array, and ``""``; or None and why not. Read only from inside ``roots``."""
    path = within_roots(uri, roots)
    if path is None:
        return None, "missing or outside image_roots"
    from PIL import Image

    try:
        with Image.open(path) as img:
            if img.mode not in ("L", "P", "I", "I;16"):
                return None, "not a single-channel class-index image"
            mask = np.asarray(img).astype(np.int64)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None, "not a readable image"
    if mask.ndim != 2 or mask.size == 0:
        return None, "not a single-channel class-index image"
    if mask.min() < 0 or mask.max() >= n_classes:
        return None, f"holds class indices outside 0..{n_classes - 1}"
    return mask, ""
