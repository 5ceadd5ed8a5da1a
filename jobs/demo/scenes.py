"""Synthetic segmentation scenes for the demo and tests: textured backgrounds with shapes of
each class, and a drifted look (colour cast, low light, a busy checked texture) that hurts a
model trained on the clean ones. Seeded; no downloads."""

from __future__ import annotations

from typing import Literal

import numpy as np

from drift.errors import ValidationError


def _background(rng: np.random.Generator, size: int, drift: bool) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    level = rng.uniform(90, 160)
    tint = rng.uniform(-12, 12, size=3)
    theta = rng.uniform(0, np.pi)
    if drift:  # a busier, higher-frequency texture: woven checks
        freq = rng.uniform(10, 16)
        tex = 40 * np.sign(np.sin(2 * np.pi * freq * xx) * np.sin(2 * np.pi * freq * yy))
        noise = 18.0
    else:  # soft stripes
        freq = rng.uniform(1.5, 4)
        tex = 22 * np.sin(2 * np.pi * freq * (xx * np.cos(theta) + yy * np.sin(theta)) + rng.uniform(0, 6.3))
        noise = 7.0
    img = level + tint[None, None, :] + tex[..., None] + rng.normal(0, noise, (size, size, 1))
    return np.asarray(img, np.float32)


def _scene(rng: np.random.Generator, size: int, drift: bool) -> tuple[np.ndarray, np.ndarray]:
    img = _background(rng, size, drift)
    mask = np.zeros((size, size), np.uint8)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for _ in range(rng.integers(1, 3)):  # subjects: warm, shaded ellipses
        cy, cx = rng.uniform(0.15, 0.85, 2) * size
        ry, rx = rng.uniform(0.1, 0.25, 2) * size
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        colour = np.array([rng.uniform(175, 230), rng.uniform(95, 140), rng.uniform(40, 85)], np.float32)
        shade = 1.0 - 0.25 * (yy - cy) / (2 * ry)
        img[inside] = colour * shade[inside, None] + rng.normal(0, 6, (int(inside.sum()), 3))
        mask[inside] = 1
    for _ in range(rng.integers(1, 3)):  # defects: dark, bluish, noisy rectangles
        h, w = (rng.uniform(0.1, 0.25, 2) * size).astype(int) + 2
        y0, x0 = rng.integers(0, size - h), rng.integers(0, size - w)
        colour = np.array([rng.uniform(20, 50), rng.uniform(25, 55), rng.uniform(50, 80)], np.float32)
        img[y0 : y0 + h, x0 : x0 + w] = colour + rng.normal(0, 10, (h, w, 3))
        mask[y0 : y0 + h, x0 : x0 + w] = 2
    if drift:  # colour cast + low light (a gamma curve on the darkened image)
        cast = np.array([0.75, 0.95, 1.3], np.float32) * rng.uniform(0.9, 1.1, 3).astype(np.float32)
        img = 255.0 * (np.clip(img * cast, 0, 255) / 255.0) ** 1.6 * rng.uniform(0.55, 0.75)
    return np.clip(img, 0, 255).astype(np.uint8), mask


def synthetic_scenes(
    n: int, size: int = 96, seed: int = 0, *, drift: Literal["light"] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` seeded scenes: uint8 images ``(n, size, size, 3)`` and uint8 masks ``(n, size, size)``.

    Class 0 is a striped textured background, class 1 one or two warm shaded ellipses
    ("subject"), class 2 one or two dark bluish rectangles ("defect"). ``drift="light"`` gives
    a blue colour cast, low light (gamma 1.6, darkened) and a busy checked background texture.
    """
    if drift not in (None, "light"):
        raise ValidationError(f"unknown drift {drift!r}; allowed: None, 'light'")
    if n < 0 or size < 8:
        raise ValidationError(f"need n >= 0 and size >= 8, got n={n}, size={size}")
    rng = np.random.default_rng(seed)
    images = np.zeros((n, size, size, 3), np.uint8)
    masks = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        images[i], masks[i] = _scene(rng, size, drift is not None)
    return images, masks
