"""Retrain any team's classifier from its champion: head-only or full, streamed, weighted.

The registry, trigger policy and gate live elsewhere; they call these functions with paths,
an :class:`~jobs.ml.imageset.ImageSet` per source and the model's
:class:`~jobs.ml.contract.Contract`. Labels here are class indices into ``contract.class_labels``.

- :func:`retrain` starts from the champion's ``.keras`` file and trains on the champion's
  training set plus newly labelled production samples. ``mode="head"`` freezes everything
  before ``contract.head_starts_at``: the frozen part's features are computed once, streamed
  batch by batch (plus ``head_shift_copies`` shifted copies when ``shift_pixels`` > 0), and
  only the head trains on them. ``mode="full"`` fine-tunes everything at a low learning rate,
  streaming the images each epoch. New samples carry a weight (recent ones higher);
  confidently-wrong ones get a further boost and are always kept when the training set is
  capped. An image that cannot be read is left out and counted by reason
  (``RetrainResult.skipped``). The champion's file is never written: the result goes to
  ``out_path`` via a temporary file and an atomic rename.
- :func:`run_custom_trainer` (:mod:`jobs.ml.custom_trainer`): a team's own command.
- :func:`evaluate`: accuracy and confidently-wrong rate.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drift.errors import TrainingError, ValidationError
from jobs.ml import network
from jobs.ml.contract import Contract
from jobs.ml.imageset import ImageSet
from jobs.ml.preprocess import normalise, shift_images

_VALID_MODES = ("head", "full")
DEFAULT_LEARNING_RATES = {"head": 1e-2, "full": 3e-4}


@dataclass(frozen=True, kw_only=True)
class NewSamples:
    """Newly labelled production samples.

    Args:
        images: an ImageSet (URIs or arrays) or in-memory images (uint8 or unit floats).
        labels: ``(N,)`` class indices.
        weights: ``(N,)`` positive sample weights (e.g. higher for recent rows); ``None`` gives
            each sample ``retrain``'s ``new_sample_weight``.
        confidently_wrong: ``(N,)`` bool mask of samples the champion got wrong with high confidence.
    """

    images: Any
    labels: np.ndarray
    weights: np.ndarray | None = None
    confidently_wrong: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.images)
        for name in ("labels", "weights", "confidently_wrong"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValidationError(f"NewSamples.{name} has {len(value)} entries for {n} images")
        if self.weights is not None and np.any(np.asarray(self.weights) <= 0):
            raise ValidationError("NewSamples.weights must be > 0")

    @classmethod
    def coerce(cls, value: NewSamples | tuple[Any, ...]) -> NewSamples:
        """Accept a ``NewSamples`` or a tuple ``(images, labels[, weights[, confidently_wrong]])``."""
        if isinstance(value, NewSamples):
            return value
        if not 2 <= len(value) <= 4:
            raise ValidationError("new_samples must be (images, labels[, weights[, confidently_wrong]])")
        return cls(**dict(zip(("images", "labels", "weights", "confidently_wrong"), value, strict=False)))

    def as_set(self) -> ImageSet:
        if isinstance(self.images, ImageSet):
            return ImageSet(
                entries=self.images.entries,
                arrays=self.images.arrays,
                labels=np.asarray(self.labels, np.int64),
                roots=self.images.roots,
                storage_options=self.images.storage_options,
            )
        return ImageSet.of_arrays(np.asarray(self.images), np.asarray(self.labels, np.int64))


def as_image_set(value: ImageSet | tuple[np.ndarray, np.ndarray]) -> ImageSet:
    """An ImageSet, or ``(images, labels)`` arrays as one."""
    if isinstance(value, ImageSet):
        return value
    images, labels = value
    return ImageSet.of_arrays(np.asarray(images), np.asarray(labels, np.int64))


@dataclass(frozen=True, kw_only=True)
class RetrainResult:
    mode: str
    champion_path: Path
    out_path: Path
    epochs: int
    learning_rate: float
    seed: int
    n_base: int
    n_new: int
    n_confidently_wrong: int
    n_train: int
    trainable_params: int
    frozen_params: int
    train_seconds: float
    final_loss: float
    final_accuracy: float
    skipped: dict[str, int] = field(default_factory=dict)  # images left out, by reason

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "champion_path": str(self.champion_path),
            "out_path": str(self.out_path),
            "train_seconds": round(self.train_seconds, 3),
        }


@dataclass(frozen=True, kw_only=True)
class EvalMetrics:
    n: int
    accuracy: float
    confidently_wrong: int
    confidently_wrong_rate: float
    mean_confidence: float
    confidence_threshold: float
    skipped: int = 0  # images that could not be read

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(
    model: Any, images: ImageSet | np.ndarray, y: np.ndarray, contract: Contract, confidence_threshold: float = 0.9
) -> EvalMetrics:
    """Accuracy and the share of samples predicted wrongly with confidence >= the threshold."""
    if not 0.0 < confidence_threshold <= 1.0:
        raise ValidationError(f"confidence_threshold must be in (0, 1], got {confidence_threshold}")
    y = np.asarray(y)
    if len(y) == 0:
        raise ValidationError("cannot evaluate on zero samples")
    probs, ok = network.probabilities_of(model, images, contract)
    pred, conf, y_ok = probs.argmax(axis=1)[ok], probs.max(axis=1)[ok], y[ok]
    if len(y_ok) == 0:
        raise TrainingError("none of the evaluation images could be read")
    wrong_confident = (pred != y_ok) & (conf >= confidence_threshold)
    return EvalMetrics(
        n=len(y_ok),
        accuracy=float((pred == y_ok).mean()),
        confidently_wrong=int(wrong_confident.sum()),
        confidently_wrong_rate=float(wrong_confident.mean()),
        mean_confidence=float(conf.mean()),
        confidence_threshold=confidence_threshold,
        skipped=int((~ok).sum()),
    )


def training_set(
    base: ImageSet,
    new: NewSamples,
    *,
    new_sample_weight: float = 3.0,
    confidently_wrong_boost: float = 2.0,
    max_train_samples: int | None = None,
    seed: int = 0,
) -> tuple[ImageSet, int]:
    """The weighted training set (base first, then new) and how many base samples it holds.

    Base samples weigh 1, new samples their own weight (or ``new_sample_weight``), and
    confidently-wrong ones that times ``confidently_wrong_boost``. With ``max_train_samples``
    the set is capped: confidently-wrong samples are always kept (even beyond the cap), then the
    heaviest new samples, then a seeded random choice of base samples fills what room is left.
    """
    if base.labels is None:
        raise ValidationError("the base training set has no labels")
    rng = np.random.default_rng(seed)
    n_new = len(new.images)
    cw = np.zeros(n_new, bool) if new.confidently_wrong is None else np.asarray(new.confidently_wrong, bool)
    w_new = np.full(n_new, new_sample_weight) if new.weights is None else np.asarray(new.weights, float)
    w_new = np.where(cw, w_new * confidently_wrong_boost, w_new)
    keep_new = np.arange(n_new)
    keep_base = np.arange(len(base))
    if max_train_samples is not None and n_new + len(base) > max_train_samples:
        # Confidently-wrong first, then the heaviest (most recent) new samples, then base samples.
        priority = np.lexsort((-w_new, ~cw))
        keep_new = np.sort(priority[: max(int(cw.sum()), min(n_new, max_train_samples))])
        room = max(0, max_train_samples - len(keep_new))
        keep_base = np.sort(rng.choice(len(base), size=min(room, len(base)), replace=False))
    parts = [
        base.take(keep_base).with_weights(np.ones(len(keep_base), np.float32)),
        new.as_set().take(keep_new).with_weights(w_new[keep_new].astype(np.float32)),
    ]
    return ImageSet.concat(parts), len(keep_base)


def _shifted(x: np.ndarray, dy: np.ndarray, dx: np.ndarray, shift: int, contract: Contract) -> np.ndarray:
    """Shift model inputs, filling with the model's black (normalised zero pixels)."""
    black = normalise(np.zeros((1, 1, 1, contract.channels), np.float32), contract)
    return shift_images(x - black, dy, dx, shift) + black


def _features(
    extractor: Any, data: ImageSet, contract: Contract, offsets: np.ndarray | None, shift: int, batch_size: int = 512
) -> tuple[np.ndarray, np.ndarray, Counter[str]]:
    """The frozen part's features for every loadable image (shifted by ``offsets``), and which loaded."""
    parts, oks, reasons = [], [], Counter[str]()
    for batch in data.batches(contract, network.inference_batch(contract, batch_size)):
        x = batch.x
        if offsets is not None:
            x = _shifted(x, offsets[0][batch.positions], offsets[1][batch.positions], shift, contract)
        parts.append(np.asarray(extractor(x, training=False), dtype=np.float32)[batch.ok])
        oks.append(batch.ok)
        reasons.update(r for r in batch.reasons if r)
    ok = np.concatenate(oks) if oks else np.zeros(0, bool)
    return (np.concatenate(parts) if parts else np.zeros((0,), np.float32)), ok, reasons


def _fit_head(
    model: Any, contract: Contract, data: ImageSet, lr: float, epochs: int, batch_size: int, seed: int, shift: int,
    copies: int,
) -> tuple[dict[str, list[float]], int, Counter[str]]:  # fmt: skip
    parts = network.split(model, contract)
    network.set_trainable(model, parts)
    rng = np.random.default_rng(seed)
    assert data.labels is not None and data.weights is not None
    feats, ys, ws, skipped = [], [], [], Counter[str]()
    for copy in range(1 + (copies if shift > 0 else 0)):
        offsets = None if copy == 0 else rng.integers(0, 2 * shift + 1, size=(2, len(data)))
        f, ok, reasons = _features(parts.extractor, data, contract, offsets, shift)
        feats.append(f)
        ys.append(data.labels[ok])
        ws.append(data.weights[ok])
        if copy == 0:
            skipped = reasons
    y = np.concatenate(ys)
    if len(y) == 0:
        raise TrainingError(f"none of the {len(data)} training images could be read: {dict(skipped)}")
    network.compile_model(parts.head, contract, lr)
    try:
        hist = parts.head.fit(
            np.concatenate(feats), network.targets(y, contract), sample_weight=np.concatenate(ws),
            epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0,
        )  # fmt: skip
    except Exception as exc:
        raise TrainingError(f"training failed: {exc}") from exc
    return {k: [float(v) for v in values] for k, values in hist.history.items()}, len(ys[0]), skipped


def _epoch_batches(
    data: ImageSet, contract: Contract, order: np.ndarray, offsets: np.ndarray | None, shift: int, batch_size: int,
    skipped: Counter[str],
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:  # fmt: skip
    assert data.labels is not None and data.weights is not None
    for start in range(0, len(order), batch_size):
        at = order[start : start + batch_size]
        batch = data.load(at, contract)
        x = batch.x
        if offsets is not None:
            x = _shifted(x, offsets[0][start : start + len(at)], offsets[1][start : start + len(at)], shift, contract)
        skipped.update(r for r in batch.reasons if r)
        yield x, network.targets(data.labels[at], contract), data.weights[at] * batch.ok


def _fit_full(
    model: Any, contract: Contract, data: ImageSet, lr: float, epochs: int, batch_size: int, seed: int, shift: int
) -> tuple[dict[str, list[float]], int, Counter[str]]:
    import tensorflow as tf

    network.set_trainable(model, None)
    network.compile_model(model, contract, lr)
    rng = np.random.default_rng(seed)
    history: dict[str, list[float]] = {}
    y_shape = (None, 1) if contract.output == "sigmoid" else (None,)
    signature = (
        tf.TensorSpec((None, *contract.input_shape), tf.float32),
        tf.TensorSpec(y_shape, tf.float32 if contract.output == "sigmoid" else tf.int64),
        tf.TensorSpec((None,), tf.float32),
    )
    skipped: Counter[str] = Counter()
    for epoch in range(epochs):
        order = rng.permutation(len(data))
        offsets = rng.integers(0, 2 * shift + 1, size=(2, len(data))) if shift > 0 else None
        seen: Counter[str] = Counter()

        def gen(order: np.ndarray = order, offsets: Any = offsets, seen: Counter[str] = seen) -> Any:
            return _epoch_batches(data, contract, order, offsets, shift, batch_size, seen)

        n_batches = -(-len(data) // batch_size)
        dataset = (
            tf.data.Dataset.from_generator(gen, output_signature=signature)
            .apply(tf.data.experimental.assert_cardinality(n_batches))
            .prefetch(2)
        )
        try:
            hist = model.fit(dataset, epochs=1, verbose=0, shuffle=False)
        except Exception as exc:
            raise TrainingError(f"training failed: {exc}") from exc
        for key, values in hist.history.items():
            history.setdefault(key, []).append(float(values[-1]))
        if epoch == 0:
            skipped = seen
    n_ok = len(data) - sum(skipped.values())
    if n_ok <= 0:
        raise TrainingError(f"none of the {len(data)} training images could be read: {dict(skipped)}")
    return history, n_ok, skipped


def retrain(
    champion_path: Path,
    contract: Contract,
    base_train: ImageSet | tuple[np.ndarray, np.ndarray],
    new_samples: NewSamples | tuple[Any, ...],
    *,
    mode: str = "head",
    epochs: int = 5,
    learning_rate: float | None = None,
    seed: int = 0,
    out_path: Path,
    batch_size: int = 32,
    new_sample_weight: float = 3.0,
    confidently_wrong_boost: float = 2.0,
    max_train_samples: int | None = None,
    shift_pixels: int = 0,
    head_shift_copies: int = 1,
) -> RetrainResult:
    """Retrain a challenger from the champion's ``.keras`` file and save it to ``out_path``.

    ``learning_rate`` defaults to 1e-2 for ``head`` and 3e-4 for ``full``. Raises
    ValidationError for bad arguments and TrainingError when training fails; the champion's
    file is never modified.
    """
    if mode not in _VALID_MODES:
        raise ValidationError(f"unknown retrain mode {mode!r}; allowed: {', '.join(_VALID_MODES)}")
    champion_path, out_path = Path(champion_path), Path(out_path)
    if out_path.suffix != ".keras":
        raise ValidationError(f"out_path must end in .keras, got {out_path.name}")
    if out_path.resolve() == champion_path.resolve():
        raise ValidationError("out_path must differ from champion_path (the champion stays untouched)")
    if new_sample_weight <= 0 or confidently_wrong_boost <= 0:
        raise ValidationError("new_sample_weight and confidently_wrong_boost must be > 0")
    if epochs < 1:
        raise ValidationError(f"epochs must be >= 1, got {epochs}")
    new = NewSamples.coerce(new_samples)
    lr = DEFAULT_LEARNING_RATES[mode] if learning_rate is None else learning_rate
    data, n_base = training_set(
        as_image_set(base_train),
        new,
        new_sample_weight=new_sample_weight,
        confidently_wrong_boost=confidently_wrong_boost,
        max_train_samples=max_train_samples,
        seed=seed,
    )
    network.seed_everything(seed)
    model = network.load_model(champion_path)
    started = time.perf_counter()
    if mode == "head":
        history, n_train, skipped = _fit_head(
            model, contract, data, lr, epochs, batch_size, seed, shift_pixels, head_shift_copies
        )
    else:
        history, n_train, skipped = _fit_full(model, contract, data, lr, epochs, batch_size, seed, shift_pixels)
    seconds = time.perf_counter() - started
    trainable, frozen = network.trainable_counts(model)
    network.set_trainable(model, None)  # the saved challenger loads fully trainable
    network.atomic_save(model, out_path)
    n_cw = 0 if new.confidently_wrong is None else int(np.asarray(new.confidently_wrong, bool).sum())
    return RetrainResult(
        mode=mode,
        champion_path=champion_path,
        out_path=out_path,
        epochs=epochs,
        learning_rate=lr,
        seed=seed,
        n_base=n_base,
        n_new=len(new.images),
        n_confidently_wrong=n_cw,
        n_train=n_train,
        trainable_params=trainable,
        frozen_params=frozen,
        train_seconds=seconds,
        final_loss=history["loss"][-1],
        final_accuracy=history.get("accuracy", [float("nan")])[-1],
        skipped=dict(skipped),
    )
