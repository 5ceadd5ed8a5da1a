"""Retraining (head / full), training-set assembly, teacher pseudo-labels, custom trainer, evaluation."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drift.errors import TrainingError, ValidationError
from jobs.demo.digits import DigitsData
from jobs.demo.digits_model import digits_contract
from jobs.ml.imageset import ImageSet
from jobs.ml.train import NewSamples, evaluate, training_set

C = digits_contract()


class _FixedModel:
    """A stand-in classifier returning fixed probabilities (no TensorFlow)."""

    def __init__(self, probs: np.ndarray) -> None:
        self.probs = probs

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        return self.probs[: len(x)]


def _backbone(model: Any) -> list[np.ndarray]:
    return [np.array(w) for layer in model.layers if layer.name.startswith("backbone_") for w in layer.get_weights()]


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_evaluate_exact() -> None:
    probs = np.zeros((4, 10), np.float32)
    probs[0, 1] = probs[1, 2] = 1.0  # confident: right (1), wrong (2 vs 3)
    probs[2, 4], probs[2, 5] = 0.6, 0.4  # unsure, right
    probs[3, 7] = 0.95  # confident, wrong
    probs[3, 0] = 0.05
    m = evaluate(_FixedModel(probs), np.zeros((4, 32, 32)), np.array([1, 3, 4, 6]), C, confidence_threshold=0.9)
    assert (m.n, m.accuracy, m.confidently_wrong, m.confidently_wrong_rate) == (4, 0.5, 2, 0.5)
    assert m.mean_confidence == pytest.approx((1 + 1 + 0.6 + 0.95) / 4)
    with pytest.raises(ValidationError, match="confidence_threshold"):
        evaluate(_FixedModel(probs), np.zeros((4, 32, 32)), np.zeros(4), C, confidence_threshold=0)


def test_training_set_weights_and_cap_keep_confidently_wrong() -> None:
    base_x, base_y = np.zeros((50, 32, 32)), np.zeros(50, int)
    cw = np.zeros(20, bool)
    cw[[3, 17]] = True
    new = NewSamples(
        images=np.ones((20, 32, 32)),
        labels=np.arange(20) % 10,
        weights=np.linspace(1.0, 2.0, 20),
        confidently_wrong=cw,
    )
    base = ImageSet.of_arrays(base_x, base_y)
    data, n_base = training_set(base, new, confidently_wrong_boost=2.0)
    x, w = data.load(np.arange(len(data)), C).x, data.weights
    assert x.shape == (70, 32, 32, 1) and n_base == 50 and w is not None
    assert x[:50].max() == 0.0 and x[50:].min() == 1.0  # base rows first, then the new ones
    np.testing.assert_allclose(w[:50], 1.0)
    np.testing.assert_allclose(w[50 + 3], 2 * np.linspace(1.0, 2.0, 20)[3])
    # Capped at 5: both confidently-wrong samples plus the 3 heaviest other new ones, no base.
    data, n_base = training_set(base, new, max_train_samples=5)
    w = data.weights
    assert len(data) == 5 and n_base == 0
    assert new.weights is not None and w is not None
    for i in (3, 17):
        assert np.isclose(w, 2 * new.weights[i]).sum() == 1
    # Capped at 30: all 20 new, 10 base.
    data, n_base = training_set(base, new, max_train_samples=30)
    assert len(data) == 30 and n_base == 10


def test_new_samples_validation() -> None:
    with pytest.raises(ValidationError, match="labels has 2 entries for 3 images"):
        NewSamples(images=np.zeros((3, 32, 32)), labels=np.zeros(2))
    with pytest.raises(ValidationError, match="> 0"):
        NewSamples(images=np.zeros((1, 32, 32)), labels=np.zeros(1), weights=np.zeros(1))
    s = NewSamples.coerce((np.zeros((2, 32, 32)), np.zeros(2)))
    assert s.weights is None and s.confidently_wrong is None


@pytest.mark.tf
def test_head_retrain_improves_drifted_slice_and_keeps_backbone(
    champion: Any, digits: DigitsData, drifted: Any, tmp_path: Path
) -> None:
    from jobs.ml import network
    from jobs.ml.train import retrain

    before = _sha(champion.path)
    preds = network.predict(champion.model, drifted.new_x, C)
    cw = (preds.predicted != drifted.new_y) & (preds.confidence >= 0.9)
    result = retrain(
        champion.path,
        C,
        (digits.x_train, digits.y_train),
        (drifted.new_x, drifted.new_y, None, cw),
        mode="head",
        epochs=10,
        seed=0,
        out_path=tmp_path / "head.keras",
        shift_pixels=2,
    )
    assert _sha(champion.path) == before  # the champion's file is untouched
    assert result.n_new == len(drifted.new_y) and result.n_confidently_wrong == int(cw.sum())
    assert result.n_base == len(digits.y_train) and result.frozen_params > result.trainable_params
    challenger = network.load_model(result.out_path)
    for a, b in zip(_backbone(champion.model), _backbone(challenger), strict=True):
        np.testing.assert_array_equal(a, b)
    old_head = champion.model.get_layer("probabilities").get_weights()[0]
    assert not np.array_equal(old_head, challenger.get_layer("probabilities").get_weights()[0])
    champ_held = evaluate(champion.model, drifted.held_x, drifted.held_y, C)
    new_held = evaluate(challenger, drifted.held_x, drifted.held_y, C)
    assert new_held.accuracy >= champ_held.accuracy + 0.1
    assert evaluate(challenger, digits.x_test, digits.y_test, C).accuracy >= 0.88
    assert result.to_dict()["mode"] == "head"


@pytest.mark.tf
def test_full_retrain_changes_backbone(champion: Any, digits: DigitsData, drifted: Any, tmp_path: Path) -> None:
    from jobs.ml import network
    from jobs.ml.train import retrain

    result = retrain(
        champion.path,
        C,
        (digits.x_train, digits.y_train),
        NewSamples(images=drifted.new_x, labels=drifted.new_y),
        mode="full",
        epochs=1,
        seed=0,
        out_path=tmp_path / "full.keras",
        max_train_samples=400,
        shift_pixels=2,
    )
    assert result.n_train == 400 and result.learning_rate == pytest.approx(3e-4)
    challenger = network.load_model(result.out_path)
    changed = [not np.array_equal(a, b) for a, b in zip(_backbone(champion.model), _backbone(challenger), strict=True)]
    assert any(changed)


@pytest.mark.tf
def test_retrain_rejects_bad_arguments(champion: Any, digits: DigitsData, tmp_path: Path) -> None:
    from jobs.ml.train import retrain

    new = (digits.x_val[:4], digits.y_val[:4])
    base = (digits.x_train, digits.y_train)
    with pytest.raises(ValidationError, match="allowed: head, full"):
        retrain(champion.path, C, base, new, mode="partial", out_path=tmp_path / "x.keras")
    with pytest.raises(ValidationError, match="champion stays untouched"):
        retrain(champion.path, C, base, new, out_path=champion.path)
    with pytest.raises(TrainingError, match="does not exist"):
        retrain(tmp_path / "nope.keras", C, base, new, out_path=tmp_path / "x.keras")
    assert not (tmp_path / "x.keras").exists()


@pytest.mark.tf
def test_teacher_trains_and_pseudo_labels(champion: Any, digits: DigitsData, tmp_path: Path) -> None:
    from jobs.demo.digits_model import build_teacher, train_teacher
    from jobs.ml import network
    from jobs.ml.teacher import pseudo_label

    assert build_teacher().count_params() > champion.model.count_params()
    tiny = DigitsData(
        x_train=digits.x_train[:64], y_train=digits.y_train[:64],
        x_val=digits.x_val[:16], y_val=digits.y_val[:16],
        x_test=digits.x_test[:16], y_test=digits.y_test[:16],
        x_production=digits.x_production[:16], y_production=digits.y_production[:16],
    )  # fmt: skip
    teacher = train_teacher(tiny, epochs=1, drift_kinds=("blur",), width=8, out_path=tmp_path / "t.keras")
    assert teacher.path is not None and network.load_model(teacher.path).count_params() > 0

    # Any Keras classifier can teach: the champion pseudo-labels clean digits it is sure of.
    labelled = pseudo_label(champion.path, digits.x_test, C, min_confidence=0.95)
    assert 0 < len(labelled.labels) <= len(digits.y_test)
    assert np.all(labelled.confidence >= 0.95)
    np.testing.assert_array_equal(
        labelled.images.load(np.arange(len(labelled.labels)), C).x[..., 0], digits.x_test[labelled.indices]
    )
    assert (labelled.labels == digits.y_test[labelled.indices]).mean() >= 0.97


def test_custom_trainer_failure_raises_with_stderr(tmp_path: Path) -> None:
    from jobs.ml.custom_trainer import run_custom_trainer

    cmd = [sys.executable, "-c", "import sys; sys.stderr.write('boom: no GPU here\\n'); sys.exit(3)"]
    with pytest.raises(TrainingError, match=r"exited with status 3(.|\n)*boom: no GPU here"):
        run_custom_trainer(cmd, {"epochs": 1}, tmp_path, C)
    assert (tmp_path / "trainer_spec.json").read_text().count('"epochs": 1') == 1
    quiet = [sys.executable, "-c", "import sys; print('done', file=sys.stderr)"]
    with pytest.raises(TrainingError, match=r"wrote no model(.|\n)*done"):
        run_custom_trainer(quiet, {}, tmp_path, C)
    with pytest.raises(TrainingError, match="cannot be started"):
        run_custom_trainer([str(tmp_path / "no-such-trainer")], {}, tmp_path, C)
    slow = [sys.executable, "-c", "import time; time.sleep(5)"]
    with pytest.raises(TrainingError, match="timed out"):
        run_custom_trainer(slow, {}, tmp_path, C, timeout_s=0.5)


@pytest.mark.tf
def test_custom_trainer_success_returns_the_model(champion: Any, tmp_path: Path) -> None:
    from jobs.ml.custom_trainer import run_custom_trainer

    script = tmp_path / "trainer.py"
    script.write_text(
        "import json, shutil, sys\n"
        "spec = json.load(open(sys.argv[1]))\n"
        "shutil.copy(spec['champion_path'], spec['output_path'])\n"
    )
    out = run_custom_trainer([sys.executable, str(script)], {"champion_path": champion.path}, tmp_path / "w", C)
    assert out == tmp_path / "w" / "model.keras" and out.is_file()
