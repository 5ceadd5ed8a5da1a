"""Issue 5's trainer as a library: retrain a champion, teacher pseudo-labels, custom trainers, evaluation.

The registry, trigger policy and gate live elsewhere; they call these functions with paths and
arrays. Class labels here are class indices (see :func:`jobs.demo.digits.labels_to_indices`).

- :func:`retrain` starts from the champion's ``.keras`` file and trains on the champion's
  training set plus newly labelled production samples. ``mode="head"`` freezes the backbone and
  retrains the head (embedding + softmax); ``mode="full"`` fine-tunes everything at a low
  learning rate. New samples carry a weight (recent ones higher); confidently-wrong ones get a
  further boost and are always kept when the training set is capped. The champion's file is never
  written: the result goes to ``out_path`` via a temporary file and an atomic rename.
- :func:`train_teacher` / :func:`pseudo_label`: a larger CNN (trained on drift-augmented data)
  labels unlabelled samples it is confident about, to grow the training set.
- :func:`run_custom_trainer`: a team's own command receives a JSON spec and must write a
  loadable ``.keras`` file.
- :func:`evaluate`: accuracy and confidently-wrong rate.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from drift.errors import TrainingError, ValidationError
from jobs.ml import cnn

_VALID_MODES = ("head", "full")
DEFAULT_LEARNING_RATES = {"head": 1e-2, "full": 3e-4}


@dataclass(frozen=True, kw_only=True)
class NewSamples:
    """Newly labelled production samples.

    Args:
        images: ``(N, 32, 32)`` images in [0, 1].
        labels: ``(N,)`` class indices.
        weights: ``(N,)`` positive sample weights (e.g. higher for recent rows); ``None`` gives
            each sample ``retrain``'s ``new_sample_weight``.
        confidently_wrong: ``(N,)`` bool mask of samples the champion got wrong with high confidence.
    """

    images: np.ndarray
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _probabilities(model: Any, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Softmax output of any single-input classifier (the teacher need not have an embedding)."""
    x = cnn.as_model_input(images)
    parts = [np.asarray(model(x[i : i + batch_size], training=False)) for i in range(0, len(x), batch_size)]
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, cnn.NUM_CLASSES), np.float32)


def evaluate(model: Any, x: np.ndarray, y: np.ndarray, confidence_threshold: float = 0.9) -> EvalMetrics:
    """Accuracy and the share of samples predicted wrongly with confidence >= the threshold."""
    if not 0.0 < confidence_threshold <= 1.0:
        raise ValidationError(f"confidence_threshold must be in (0, 1], got {confidence_threshold}")
    if isinstance(model, str | Path):
        model = cnn.load_model(Path(model))
    y = np.asarray(y)
    if len(y) == 0:
        raise ValidationError("cannot evaluate on zero samples")
    probs = _probabilities(model, x)
    pred, conf = probs.argmax(axis=1), probs.max(axis=1)
    wrong_confident = (pred != y) & (conf >= confidence_threshold)
    return EvalMetrics(
        n=len(y),
        accuracy=float((pred == y).mean()),
        confidently_wrong=int(wrong_confident.sum()),
        confidently_wrong_rate=float(wrong_confident.mean()),
        mean_confidence=float(conf.mean()),
        confidence_threshold=confidence_threshold,
    )


def training_set(
    base_x: np.ndarray,
    base_y: np.ndarray,
    new: NewSamples,
    *,
    new_sample_weight: float = 3.0,
    confidently_wrong_boost: float = 2.0,
    max_train_samples: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The training arrays ``(x (N,32,32,1), y, weights)`` and how many base samples they hold.

    Base samples weigh 1, new samples their own weight (or ``new_sample_weight``), and
    confidently-wrong ones that times ``confidently_wrong_boost``. With ``max_train_samples``
    the set is capped: confidently-wrong samples are always kept (even beyond the cap), then the
    heaviest new samples, then a seeded random choice of base samples fills what room is left.
    """
    rng = np.random.default_rng(seed)
    n_new = len(new.images)
    cw = np.zeros(n_new, bool) if new.confidently_wrong is None else np.asarray(new.confidently_wrong, bool)
    w_new = np.full(n_new, new_sample_weight) if new.weights is None else np.asarray(new.weights, float)
    w_new = np.where(cw, w_new * confidently_wrong_boost, w_new)
    keep_new = np.arange(n_new)
    keep_base = np.arange(len(base_y))
    if max_train_samples is not None and n_new + len(base_y) > max_train_samples:
        # Confidently-wrong first, then the heaviest (most recent) new samples, then base samples.
        priority = np.lexsort((-w_new, ~cw))
        keep_new = np.sort(priority[: max(int(cw.sum()), min(n_new, max_train_samples))])
        room = max(0, max_train_samples - len(keep_new))
        keep_base = np.sort(rng.choice(len(base_y), size=min(room, len(base_y)), replace=False))
    x = np.concatenate([cnn.as_model_input(base_x[keep_base]), cnn.as_model_input(new.images[keep_new])])
    y = np.concatenate([np.asarray(base_y)[keep_base], np.asarray(new.labels)[keep_new]]).astype(np.int64)
    w = np.concatenate([np.ones(len(keep_base)), w_new[keep_new]]).astype(np.float32)
    return x, y, w, len(keep_base)


def retrain(
    champion_path: Path,
    base_train: tuple[np.ndarray, np.ndarray],
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
    head_shift_copies: int = 1,
) -> RetrainResult:
    """Retrain a challenger from the champion's ``.keras`` file and save it to ``out_path``.

    ``learning_rate`` defaults to 1e-2 for ``head`` and 3e-4 for ``full``. In ``head`` mode the
    backbone's features are computed once for the images and ``head_shift_copies`` randomly
    shifted copies (an epoch covers all of them); ``full`` mode shifts the images anew each epoch.
    Raises
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
    new = NewSamples.coerce(new_samples)
    lr = DEFAULT_LEARNING_RATES[mode] if learning_rate is None else learning_rate
    base_x, base_y = base_train
    x, y, w, n_base = training_set(
        np.asarray(base_x),
        np.asarray(base_y),
        new,
        new_sample_weight=new_sample_weight,
        confidently_wrong_boost=confidently_wrong_boost,
        max_train_samples=max_train_samples,
        seed=seed,
    )
    cnn.seed_everything(seed)
    model = cnn.load_model(champion_path)
    cnn.set_backbone_trainable(model, mode == "full")
    started = time.perf_counter()
    if mode == "head":
        # The backbone is frozen, so its features are computed once (for the images and
        # ``head_shift_copies`` shifted copies) and only the small head trains on them.
        rng = np.random.default_rng(seed)
        copies = [x] + [cnn.random_shift(x, 2, rng) for _ in range(head_shift_copies)]
        features = np.concatenate([cnn.backbone_features(model, c) for c in copies])
        head = cnn.head_model(model)
        cnn.compile_model(head, lr)
        history = cnn.fit_features(
            head, features, np.tile(y, len(copies)), epochs=epochs, batch_size=batch_size,
            sample_weight=np.tile(w, len(copies)), seed=seed,
        )  # fmt: skip
    else:
        cnn.compile_model(model, lr)
        history = cnn.fit(model, x, y, epochs=epochs, batch_size=batch_size, sample_weight=w, seed=seed)
    seconds = time.perf_counter() - started
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    total = sum(int(np.prod(v.shape)) for v in model.weights)
    cnn.set_backbone_trainable(model, True)  # the saved challenger loads fully trainable
    _atomic_save(model, out_path)
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
        n_train=len(y),
        trainable_params=trainable,
        frozen_params=total - trainable,
        train_seconds=seconds,
        final_loss=history["loss"][-1],
        final_accuracy=history.get("accuracy", [float("nan")])[-1],
    )


def _atomic_save(model: Any, out_path: Path) -> None:
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(suffix=".keras", dir=out_path.parent, prefix=f".{out_path.stem}.")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        cnn.save_model(model, tmp)
        tmp.replace(out_path)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise TrainingError(f"cannot save retrained model to {out_path}: {exc}") from exc


# ---------------------------------------------------------------------------------------------
# Teacher


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_custom_trainer(command: list[str], spec: dict[str, Any], workdir: Path, *, timeout_s: float = 3600.0) -> Path:
    """Run a team's own trainer: ``command + [spec_path]`` must write a loadable ``.keras`` file.

    The spec is written to ``workdir/trainer_spec.json``; if it has no ``output_path`` one is
    added (``workdir/model.keras``). The command runs in ``workdir``. Raises TrainingError, with
    the tail of the command's stderr, if it cannot start, times out, exits non-zero, or leaves no
    loadable model with 32x32x1 input and 10 outputs.
    """
    if not command:
        raise ValidationError("custom trainer command is empty")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    spec = dict(spec)
    spec.setdefault("output_path", str(workdir / "model.keras"))
    output = Path(spec["output_path"])
    if output.suffix != ".keras":
        raise ValidationError(f"custom trainer output_path must end in .keras, got {output.name}")
    spec_path = workdir / "trainer_spec.json"
    spec_path.write_text(json.dumps(spec, indent=2, default=str))
    name = command[0]
    try:
        proc = subprocess.run(
            [*command, str(spec_path)], cwd=workdir, capture_output=True, text=True, timeout=timeout_s
        )
    except FileNotFoundError as exc:
        raise TrainingError(f"custom trainer {name!r} cannot be started: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        raise TrainingError(
            f"custom trainer {name!r} timed out after {timeout_s:g} s; stderr tail:\n{_tail(stderr)}"
        ) from exc
    if proc.returncode != 0:
        raise TrainingError(
            f"custom trainer {name!r} exited with status {proc.returncode}; stderr tail:\n{_tail(proc.stderr)}"
        )
    if not output.is_file():
        raise TrainingError(
            f"custom trainer {name!r} exited 0 but wrote no model at {output}; stderr tail:\n{_tail(proc.stderr)}"
        )
    model = cnn.load_model(output)
    in_shape, out_shape = tuple(model.input_shape[1:]), tuple(model.output_shape[1:])
    if in_shape != cnn.INPUT_SHAPE or out_shape != (cnn.NUM_CLASSES,):
        raise TrainingError(
            f"custom trainer {name!r} produced a model with input {in_shape} and output {out_shape}; "
            f"expected {cnn.INPUT_SHAPE} and ({cnn.NUM_CLASSES},)"
        )
    return output
