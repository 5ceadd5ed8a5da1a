"""Benchmark: label-free accuracy estimates under the shifts of "Failing Loudly".

Protocol (Rabanser, Günnemann and Lipton, NeurIPS 2019, adversarial shifts left out) on
scikit-learn's 8x8 digits, upsampled ``UPSAMPLE`` times by small jitter (sub-pixel translation,
a few degrees of rotation). The originals are split 50/25/25 into training, labelled reference
(the calibration set) and target pool. A one-hidden-layer MLP is the model; its hidden layer
is the embedding. Each target window is the pool after one shift:

* no shift;
* Gaussian noise on every pixel, standard deviation 1, 10 or 100 on the 0..255 scale (small,
  medium, large), clipped to the pixel range;
* image transforms (random rotation up to 40°, translation up to 20%, zoom up to 20%: the
  paper's "medium") on 10, 50 or 100% of the images;
* knock-out: 10, 50 or 100% of the images of one class removed.

Methods (all fitted on the labelled reference only, see :mod:`drift.estimate` and
:mod:`drift.estimators`):

* ``calibrated``: mean isotonic-calibrated confidence (driftkeeper's estimate so far);
* ``calibrated_class``: the same with one calibrator per predicted class;
* ``atc``, ``atc_ne``, ``atc_class``: ATC on the max confidence, on the negative entropy, and
  with one threshold per predicted class;
* ``doc``: difference of confidences;
* ``iw``: importance weighting of the reference's correctness by a domain classifier on the
  embeddings;
* ``iw+calibrated``, ``iw+atc``: the calibrator / ATC threshold fitted on the weighted reference;
* ``atc+iw``: the mean of ``atc`` and ``iw``;
* ``...+coverage``: window rows past the reference's 99th-percentile Mahalanobis distance in
  embedding space, beyond the reference's own 1%, count as unknown (accuracy 1/2, interval
  widened: :func:`drift.estimators.coverage_adjusted`).

The table is the mean absolute error (realized minus estimated accuracy, in accuracy points)
per shift group over ``--seeds`` seeds, then the mean over the nine shifted groups. The last
rows give each group's realized accuracy, the share of windows the embedding-coverage rule
marked unreliable, and how often the default's 95% interval (``calibrated_class+coverage``)
held the realized accuracy.

Usage::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/bench_estimate.py [--seeds 5]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from drift.calibration import ConfidenceCalibrator
from drift.estimate import ClassCalibrator, estimate_accuracy
from drift.estimators import (
    ATCEstimator,
    DoCEstimator,
    coverage_adjusted,
    domain_weights,
    embedding_coverage,
    importance_weighted_accuracy,
)
from drift.outliers import EmbeddingOutlierDetector

UPSAMPLE = 4
KNOCKED_OUT = 3  # the class removed by the knock-out shifts
GROUPS = (
    "no shift",
    "noise small",
    "noise medium",
    "noise large",
    "transform 10%",
    "transform 50%",
    "transform 100%",
    "knock-out 10%",
    "knock-out 50%",
    "knock-out 100%",
)
METHODS = (
    "calibrated",
    "calibrated_class",
    "atc",
    "atc_ne",
    "atc_class",
    "doc",
    "iw",
    "iw+calibrated",
    "iw+atc",
    "atc+iw",
    "calibrated+coverage",
    "calibrated_class+coverage",
    "atc+coverage",
)

Array = NDArray[np.float64]


def transform(image: Array, rng: np.random.Generator, rotation: float, shift: float, zoom: float) -> Array:
    """A random rotation (degrees), translation (share of the side) and zoom of an 8x8 image."""
    angle = np.deg2rad(rng.uniform(-rotation, rotation))
    scale = 1.0 + rng.uniform(-zoom, zoom)
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    matrix = np.array([[cos, -sin], [sin, cos]])
    centre = np.array([3.5, 3.5])
    offset = centre - matrix @ centre + rng.uniform(-shift, shift, 2) * 8
    return ndimage.affine_transform(image, matrix, offset=offset, order=1, mode="constant", cval=0.0)


def images(x: Array, rng: np.random.Generator, share: float, **kwargs: float) -> Array:
    out = x.copy()
    chosen = np.flatnonzero(rng.random(len(x)) < share)
    for i in chosen:
        out[i] = transform(x[i].reshape(8, 8), rng, **kwargs).ravel()
    return out


def upsample(x: Array, y: NDArray[np.int_], rng: np.random.Generator) -> tuple[Array, NDArray[np.int_]]:
    jitter = [images(x, rng, 1.0, rotation=5.0, shift=0.06, zoom=0.05) for _ in range(UPSAMPLE - 1)]
    return np.vstack([x, *jitter]), np.tile(y, UPSAMPLE)


@dataclass(frozen=True)
class Model:
    predict_proba: Callable[[Array], Array]
    embed: Callable[[Array], Array]


def train(x: Array, y: NDArray[np.int_], seed: int) -> Model:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    mlp = MLPClassifier(hidden_layer_sizes=(32,), alpha=1e-3, max_iter=300, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 300 epochs are plenty for the benchmark's purpose
        mlp.fit(x, y)

    def embed(v: Array) -> Array:
        return np.maximum(v @ mlp.coefs_[0] + mlp.intercepts_[0], 0.0)

    return Model(predict_proba=mlp.predict_proba, embed=embed)


def shifted(group: str, x: Array, y: NDArray[np.int_], rng: np.random.Generator) -> tuple[Array, NDArray[np.int_]]:
    if group == "no shift":
        return x, y
    kind, level = group.split(" ")
    if kind == "noise":
        std = {"small": 1.0, "medium": 10.0, "large": 100.0}[level] / 255.0
        return np.clip(x + rng.normal(0.0, std, x.shape), 0.0, 1.0), y
    share = float(level.rstrip("%")) / 100
    if kind == "transform":
        return images(x, rng, share, rotation=40.0, shift=0.2, zoom=0.2), y
    keep = (y != KNOCKED_OUT) | (rng.random(len(y)) >= share)
    return x[keep], y[keep]


@dataclass(frozen=True)
class Outcome:
    errors: dict[str, float]
    realized: float
    unreliable: bool
    default_covered: bool


def evaluate(
    model: Model, ref_x: Array, ref_y: NDArray[np.int_], win_x: Array, win_y: NDArray[np.int_], seed: int
) -> Outcome:
    ref_p, win_p = model.predict_proba(ref_x), model.predict_proba(win_x)
    ref_pred, win_pred = ref_p.argmax(1), win_p.argmax(1)
    ref_conf, win_conf = ref_p.max(1), win_p.max(1)
    ref_ne = np.sum(ref_p * np.log(np.clip(ref_p, 1e-12, 1)), axis=1)
    win_ne = np.sum(win_p * np.log(np.clip(win_p, 1e-12, 1)), axis=1)
    correct = ref_pred == ref_y
    realized = float((win_pred == win_y).mean())
    ref_emb, win_emb = model.embed(ref_x), model.embed(win_x)
    weights = domain_weights(ref_emb, win_emb, seed=seed)
    atc = ATCEstimator().fit(ref_conf, correct)
    atc_estimate = atc.estimate(win_conf)
    iw = importance_weighted_accuracy(correct, weights).estimate
    calibrator = ConfidenceCalibrator().fit(ref_conf, correct)
    class_calibrator = ClassCalibrator().fit(ref_conf, correct, ref_pred)
    calibrated = estimate_accuracy(calibrator, win_conf)
    calibrated_class = estimate_accuracy(class_calibrator, win_conf, win_pred)
    detector = EmbeddingOutlierDetector(kind="mahalanobis").fit(ref_emb)
    far = detector.score(win_emb) > detector.threshold_
    n_far = int(far.sum())
    default = coverage_adjusted(
        calibrated_class, n_far=n_far, sum_p_far=float(class_calibrator.predict(win_conf[far], win_pred[far]).sum())
    )
    estimates = {
        "calibrated": calibrated.estimate,
        "calibrated_class": calibrated_class.estimate,
        "atc": atc_estimate.estimate,
        "atc_ne": ATCEstimator().fit(ref_ne, correct).estimate(win_ne).estimate,
        "atc_class": ATCEstimator(per_class=True)
        .fit(ref_conf, correct, ref_pred)
        .estimate(win_conf, win_pred)
        .estimate,
        "doc": DoCEstimator().fit(ref_conf, correct).estimate(win_conf).estimate,
        "iw": iw,
        "iw+calibrated": estimate_accuracy(
            ConfidenceCalibrator().fit(ref_conf, correct, weights.weights), win_conf
        ).estimate,
        "iw+atc": ATCEstimator().fit(ref_conf, correct, sample_weight=weights.weights).estimate(win_conf).estimate,
        "atc+iw": (atc_estimate.estimate + iw) / 2,
        "calibrated+coverage": coverage_adjusted(
            calibrated, n_far=n_far, sum_p_far=float(calibrator.predict(win_conf[far]).sum())
        ).estimate,
        "calibrated_class+coverage": default.estimate,
        "atc+coverage": coverage_adjusted(
            atc_estimate, n_far=n_far, sum_p_far=float(atc.threshold_.above(win_conf[far]).sum())
        ).estimate,
    }
    return Outcome(
        errors={k: abs(v - realized) for k, v in estimates.items()},
        realized=realized,
        unreliable=embedding_coverage(n_far, len(win_x)).unreliable,
        default_covered=default.ci_low <= realized <= default.ci_high,
    )


def run(seeds: int) -> dict[str, list[Outcome]]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x_all, y_all = digits.data / 16.0, digits.target
    outcomes: dict[str, list[Outcome]] = {g: [] for g in GROUPS}
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(y_all))
        parts = np.split(order, [len(order) // 2, 3 * len(order) // 4])
        (tr_x, tr_y), (ref_x, ref_y), (pool_x, pool_y) = (upsample(x_all[p], y_all[p], rng) for p in parts)
        model = train(tr_x, tr_y, seed)
        for group in GROUPS:
            win_x, win_y = shifted(group, pool_x, pool_y, np.random.default_rng([seed, GROUPS.index(group)]))
            outcomes[group].append(evaluate(model, ref_x, ref_y, win_x, win_y, seed))
    return outcomes


def table(outcomes: dict[str, list[Outcome]]) -> str:
    shifted_groups = GROUPS[1:]
    width = max(len(g) for g in GROUPS) + 2
    lines = [f"{'method':<26}" + "".join(f"{g:>{width}}" for g in GROUPS) + f"{'under shift':>{width}}"]

    def mae(group: str, method: str) -> float:
        return float(np.mean([o.errors[method] for o in outcomes[group]]))

    for method in METHODS:
        cells = [mae(g, method) for g in GROUPS]
        under = float(np.mean([mae(g, method) for g in shifted_groups]))
        lines.append(f"{method:<26}" + "".join(f"{100 * c:>{width}.2f}" for c in cells) + f"{100 * under:>{width}.2f}")
    extra = {
        "realized acc": [float(np.mean([o.realized for o in outcomes[g]])) for g in GROUPS],
        "unreliable": [float(np.mean([o.unreliable for o in outcomes[g]])) for g in GROUPS],
        "default ci covers": [float(np.mean([o.default_covered for o in outcomes[g]])) for g in GROUPS],
    }
    lines.append("")
    for name, values in extra.items():
        lines.append(f"{name:<26}" + "".join(f"{100 * v:>{width}.1f}" for v in values))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    started = time.perf_counter()
    outcomes = run(args.seeds)
    print("mean absolute error of the estimated accuracy, in accuracy points (realized minus estimated)")
    print(table(outcomes))
    print(f"\n{args.seeds} seeds, {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
