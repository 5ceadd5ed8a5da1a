"""One preprocessing for every place that feeds a model pixels, per its :class:`~jobs.ml.contract.Contract`.

Decoding (PIL), colour conversion, resizing and normalisation happen here and nowhere else:
retraining, the gate, the teacher, the int8 representative set and report thumbnails all call
these functions, so a model never sees two versions of the same image. No TensorFlow here.

The steps, for an encoded image (PNG, JPEG, ...) or an in-memory array:

1. convert to the contract's colour mode (``L`` or ``RGB``);
2. resize to ``width x height`` with the contract's method (only when the size differs);
3. scale to unit floats ``pixel / 255`` (in-memory float arrays are taken as unit floats already);
4. normalise: ``input = unit * 255 * scale + offset``, then ``(input - mean) / std`` when given.

>>> from jobs.ml.contract import Contract, ModelContract
>>> c = Contract(height=2, width=2, channels=1, color_mode="grayscale", resize="nearest", scale=1 / 127.5,
...              offset=-1.0, mean=None, std=None, output="softmax", class_labels=("a", "b"),
...              embedding_layer="e", embedding_dim=2, head_starts_at="h")
>>> normalise(np.array([[[[0.0], [1.0]], [[0.5], [1.0]]]], np.float32), c).ravel().tolist()
[-1.0, 1.0, 0.0, 1.0]
"""

from __future__ import annotations

import io

import numpy as np

from drift.errors import ValidationError
from jobs.ml.contract import Contract, ModelContract

_PIL_MODE = {"grayscale": "L", "rgb": "RGB"}


def _resample(method: str) -> int:
    from PIL import Image

    return {
        "nearest": Image.Resampling.NEAREST,
        "bilinear": Image.Resampling.BILINEAR,
        "bicubic": Image.Resampling.BICUBIC,
        "lanczos": Image.Resampling.LANCZOS,
        "box": Image.Resampling.BOX,
    }[method]


def decode_pixels(data: bytes, contract: Contract) -> np.ndarray:
    """An encoded image as uint8 ``(height, width, channels)`` per the contract (steps 1-2).

    Raises ValidationError for bytes PIL cannot decode.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            converted = img.convert(_PIL_MODE[contract.color_mode])
            if converted.size != (contract.width, contract.height):
                converted = converted.resize((contract.width, contract.height), _resample(contract.resize))
            pixels = np.asarray(converted, dtype=np.uint8)
    except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ValidationError(f"not a decodable image: {type(exc).__name__}") from exc
    return pixels.reshape(contract.height, contract.width, contract.channels)


def unit_images(images: np.ndarray, contract: Contract) -> np.ndarray:
    """In-memory images as unit floats ``(N, height, width, channels)`` (steps 1-3).

    ``images``: uint8 pixels or floats in [0, 1], shaped ``(N, H, W)`` or ``(N, H, W, C)``.
    Images of another size or colour mode are converted with PIL like decoded files.
    """
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValidationError(f"expected images (N, H, W[, 1 or 3]), got shape {np.shape(images)}")
    unit = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32, copy=False)
    if unit.shape[1:] == contract.input_shape:
        return unit
    return np.stack([_convert_one(img, contract) for img in unit]) if len(unit) else _empty(contract)


def _convert_one(unit: np.ndarray, contract: Contract) -> np.ndarray:
    from PIL import Image

    pixels = np.clip(np.rint(unit * 255.0), 0, 255).astype(np.uint8)
    img = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    converted = img.convert(_PIL_MODE[contract.color_mode])
    if converted.size != (contract.width, contract.height):
        converted = converted.resize((contract.width, contract.height), _resample(contract.resize))
    out = np.asarray(converted, dtype=np.float32) / 255.0
    return out.reshape(contract.input_shape)


def _empty(contract: Contract) -> np.ndarray:
    return np.zeros((0, *contract.input_shape), np.float32)


def normalise(unit: np.ndarray, contract: Contract) -> np.ndarray:
    """Unit-float images ``(N, H, W, C)`` as the model's float32 input (step 4)."""
    x = np.asarray(unit, dtype=np.float32)
    gain = 255.0 * contract.scale
    out: np.ndarray = (
        x if gain == 1.0 and contract.offset == 0.0 else x * np.float32(gain) + np.float32(contract.offset)
    )
    if contract.mean is not None and contract.std is not None:
        out = (out - np.asarray(contract.mean, np.float32)) / np.asarray(contract.std, np.float32)
    return np.asarray(out, dtype=np.float32)


def model_input(images: np.ndarray, contract: Contract) -> np.ndarray:
    """In-memory images (uint8 or unit floats, any size) as the model's float32 input."""
    return normalise(unit_images(images, contract), contract)


def decode_input(data: bytes, contract: Contract) -> np.ndarray:
    """One encoded image as the model's float32 input ``(height, width, channels)``."""
    return normalise(decode_pixels(data, contract)[None].astype(np.float32) / 255.0, contract)[0]


def shift_images(images: np.ndarray, dy: np.ndarray, dx: np.ndarray, max_shift: int) -> np.ndarray:
    """Each image ``(N, H, W, C)`` moved by ``(dy - max_shift, dx - max_shift)`` pixels, zero fill.

    ``dy, dx`` are drawn in ``[0, 2 * max_shift]`` by the caller (seeded), so a batch can be
    shifted exactly as its whole epoch was drawn.
    """
    if max_shift <= 0:
        return images
    n, h, w = images.shape[:3]
    pad = ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0))
    padded = np.pad(images, pad)
    out = np.empty_like(images)
    for i in range(n):
        out[i] = padded[i, dy[i] : dy[i] + h, dx[i] : dx[i] + w]
    return out


def thumbnail_png(data: bytes, contract: Contract | ModelContract | None, size: int = 64) -> bytes:
    """A ``size x size`` PNG of the image as the model sees it: its colour mode and input size.

    ``contract`` may be a resolved one or the configured (possibly partial) one; without a colour
    mode, grayscale images stay gray and others are shown in RGB. Raises ValidationError for bytes
    PIL cannot decode.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as opened:
            color = contract.color_mode if contract is not None else None
            mode = _PIL_MODE[color] if color else ("L" if opened.mode in ("L", "1", "I;16") else "RGB")
            img = opened.convert(mode)
            height = contract.height if contract is not None else None
            width = contract.width if contract is not None else None
            if height and width and img.size != (width, height):
                img = img.resize((width, height), _resample(contract.resize if contract is not None else "bilinear"))
            scaled = img.resize((size, size), _resample("nearest"))
            buffer = io.BytesIO()
            scaled.save(buffer, format="PNG", optimize=True)
    except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ValidationError(f"not a decodable image: {type(exc).__name__}") from exc
    return buffer.getvalue()
