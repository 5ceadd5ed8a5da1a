"""The model contract: what a model takes in, what it gives out, and where its parts are.

A team's model is described once, in its config (``models[].contract``) and then in every
export's ``manifest.json``; every place that feeds the model pixels (retraining, the gate, the
teacher, the int8 representative set, thumbnails) goes through :mod:`jobs.ml.preprocess` with
this contract, so they all see the same input::

    contract:
      height: 224            # input height, width and channels (1: grayscale, 3: RGB)
      width: 224
      channels: 3
      color_mode: rgb        # grayscale | rgb (default: from channels)
      resize: bilinear       # nearest | bilinear | bicubic | lanczos | box
      scale: 0.00784313725   # input = pixel_uint8 * scale + offset ...
      offset: -1.0
      mean: null             # ... then (input - mean) / std per channel, when given
      std: null
      output: sigmoid        # softmax | logits | sigmoid (one unit: P(class_labels[1]))
      embedding_layer: null  # the layer whose output is logged as the embedding (default: penultimate)
      head_starts_at: null   # first layer head-only training trains (default: the one after the embedding)

Every key is optional: what is left out is read from the ``.keras`` file (input shape, output
size) or takes the default above. What is given is checked against the file:
:func:`resolve_contract` raises :class:`~drift.errors.ContractMismatchError` naming the key, the
file and both values. The resolved :class:`Contract` is a plain frozen dataclass (no Keras).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drift.errors import ContractMismatchError, ValidationError

ColorMode = Literal["grayscale", "rgb"]
ResizeMethod = Literal["nearest", "bilinear", "bicubic", "lanczos", "box"]
OutputKind = Literal["softmax", "logits", "sigmoid"]
_CHANNELS_OF: dict[str, int] = {"grayscale": 1, "rgb": 3}


class ModelContract(BaseModel):
    """The configured contract; unset keys are read from the model file (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    height: int | None = Field(None, ge=1, le=8192)
    width: int | None = Field(None, ge=1, le=8192)
    channels: Literal[1, 3] | None = None
    color_mode: ColorMode | None = None
    resize: ResizeMethod = "bilinear"
    scale: float = Field(1.0 / 255.0, gt=0)
    offset: float = 0.0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    output: OutputKind | None = None
    embedding_layer: str | None = Field(None, min_length=1)
    head_starts_at: str | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> ModelContract:
        if self.color_mode is not None and self.channels is not None and _CHANNELS_OF[self.color_mode] != self.channels:
            n = _CHANNELS_OF[self.color_mode]
            raise ValueError(f"color_mode {self.color_mode} has {n} channels, not {self.channels}")
        if (self.mean is None) != (self.std is None):
            raise ValueError("give both mean and std (per channel), or neither")
        if self.std is not None and any(s <= 0 for s in self.std):
            raise ValueError("std values must be > 0")
        channels = self.channels or (_CHANNELS_OF[self.color_mode] if self.color_mode else None)
        if self.mean is not None and channels is not None and len(self.mean) not in (1, channels):
            raise ValueError(f"mean/std need 1 or {channels} values (one per channel), got {len(self.mean)}")
        return self


@dataclass(frozen=True, kw_only=True)
class Contract:
    """A contract with every value known: the configured one checked against the model file."""

    height: int
    width: int
    channels: int
    color_mode: ColorMode
    resize: ResizeMethod
    scale: float
    offset: float
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    output: OutputKind
    class_labels: tuple[str, ...]
    embedding_layer: str
    embedding_dim: int
    head_starts_at: str
    task: Literal["classification", "segmentation"] = "classification"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)

    @property
    def n_classes(self) -> int:
        return len(self.class_labels)

    @property
    def output_units(self) -> int:
        """Units of the model's last layer: 1 for a sigmoid, else one per class."""
        return 1 if self.output == "sigmoid" else self.n_classes

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["class_labels"] = list(self.class_labels)
        for key in ("mean", "std"):
            data[key] = list(data[key]) if data[key] is not None else None
        data["formula"] = "input = pixel_uint8 * scale + offset" + (
            ", then (input - mean) / std per channel" if self.mean is not None else ""
        )
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Contract:
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["class_labels"] = tuple(fields["class_labels"])
        for key in ("mean", "std"):
            if fields.get(key) is not None:
                fields[key] = tuple(fields[key])
        return cls(**fields)


def _layer_names(model: Any) -> list[str]:
    return [layer.name for layer in model.layers]


def _default_embedding_layer(model: Any) -> str:
    """The penultimate layer: the one feeding the output layer."""
    names = _layer_names(model)
    if len(names) < 3:
        raise ValidationError(f"model {model.name!r} has too few layers to find an embedding layer")
    return names[-2]


def resolve_contract(
    model: Any,
    configured: ModelContract | None,
    class_labels: tuple[str, ...],
    *,
    source: str,
    task: Literal["classification", "segmentation"] = "classification",
) -> Contract:
    """Check ``configured`` against the Keras ``model`` (loaded from ``source``) and fill the gaps.

    Raises ContractMismatchError naming the key, the file and both values when the config and
    the file disagree (input shape, output size, unknown layer names).
    """
    given = configured or ModelContract()
    shape = tuple(model.input_shape[1:])
    if len(shape) != 3 or any(d is None for d in shape):
        raise ContractMismatchError("contract.input", source, "(height, width, channels)", shape)
    height, width, channels = (int(d) for d in shape)
    for key, value, actual in (("height", given.height, height), ("width", given.width, width)):
        if value is not None and value != actual:
            raise ContractMismatchError(f"contract.{key}", source, value, actual, shape=shape)
    color = given.color_mode or ("grayscale" if channels == 1 else "rgb")
    expected_channels = given.channels or _CHANNELS_OF[color]
    if expected_channels != channels:
        raise ContractMismatchError("contract.channels", source, expected_channels, channels, shape=shape)
    if given.mean is not None and len(given.mean) not in (1, channels):
        raise ContractMismatchError("contract.mean", source, f"{len(given.mean)} values", f"{channels} channels")
    out_shape = tuple(model.output_shape[1:])
    units = int(out_shape[-1]) if out_shape and out_shape[-1] is not None else -1
    output: OutputKind = given.output or ("sigmoid" if units == 1 else "softmax")
    if task == "segmentation" and output == "sigmoid":
        raise ContractMismatchError("contract.output", source, "softmax or logits per pixel", output)
    expected_units = 1 if output == "sigmoid" else len(class_labels)
    if output == "sigmoid" and len(class_labels) != 2:
        raise ContractMismatchError("class_labels", source, "2 labels for a sigmoid output", len(class_labels))
    if units != expected_units:
        raise ContractMismatchError(
            "class_labels" if output != "sigmoid" else "contract.output",
            source,
            f"{expected_units} output units ({output}, {len(class_labels)} class_labels)",
            f"output shape {out_shape}",
        )
    names = _layer_names(model)
    embedding = given.embedding_layer or _default_embedding_layer(model)
    if embedding not in names:
        raise ContractMismatchError("contract.embedding_layer", source, embedding, f"layers {_sample(names)}")
    after = names.index(embedding) + 1
    head = given.head_starts_at or (names[after] if after < len(names) else embedding)
    if head not in names:
        raise ContractMismatchError("contract.head_starts_at", source, head, f"layers {_sample(names)}")
    if names.index(head) == 0:
        raise ContractMismatchError("contract.head_starts_at", source, head, "the input layer cannot start the head")
    emb_shape = model.get_layer(embedding).output.shape
    return Contract(
        height=height,
        width=width,
        channels=channels,
        color_mode=color,
        resize=given.resize,
        scale=given.scale,
        offset=given.offset,
        mean=given.mean,
        std=given.std,
        output=output,
        class_labels=tuple(class_labels),
        embedding_layer=embedding,
        embedding_dim=int(emb_shape[-1]),
        head_starts_at=head,
        task=task,
    )


def _sample(names: list[str], at_most: int = 12) -> str:
    shown = names if len(names) <= at_most else [*names[:6], "...", *names[-5:]]
    return "[" + ", ".join(shown) + "]"
