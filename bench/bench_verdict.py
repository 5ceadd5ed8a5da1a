"""Benchmark: false-alarm and detection rates of dataset verdicts, per sample size and shift.

Verdicts compared on the same seeded samples (reference and current of n rows each):

* default: drift's default spec (p-value tests, Benjamini-Hochberg over all columns,
  effect floor 0.02, drifted when any output / feature / the embedding survives).
* evidently share: evidently's defaults (methods by reference size, no correction,
  drifted when >= 50% of the columns drifted).
* any column: evidently's methods, drifted when any column drifted.
* failing loudly: KS on every class probability, Bonferroni, drifted when any survives
  (Rabanser, Günnemann and Lipton 2019, their best single-model detector).

Data: the 10 class probabilities of a softmax over Gaussian logits; the shift raises the
class-0 logit by ``shift`` (a prior / label shift seen through the outputs). With
``--full`` a second table repeats the no-drift case on a whole dataset (20 numeric and 5
categorical features plus the 10 probabilities).

Usage::

    .venv/bin/python bench/bench_verdict.py [--sizes 10,30,100,300,1000,3000,10000]
        [--shifts 0,0.1,0.3,1] [--reps 200] [--false-alarm-reps 1000] [--full]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd

from drift import ColumnSpec, DriftPolicy, DriftSpec
from drift.binned import ColumnData
from drift.comparison import TestedColumn, assemble
from drift.methods import DriftMethod, Score, default_method

N_CLASSES = 10
PROBS = [f"prob_{i}" for i in range(N_CLASSES)]


def probabilities(n: int, rng: np.random.Generator, shift: float) -> pd.DataFrame:
    logits = rng.normal(0.0, 1.5, (n, N_CLASSES))
    logits[:, 0] += shift
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return pd.DataFrame({name: p[:, i] for i, name in enumerate(PROBS)})


def full_frame(n: int, rng: np.random.Generator, shift: float) -> pd.DataFrame:
    cols: dict[str, object] = {}
    for i in range(20):
        cols[f"num_{i}"] = rng.normal(0, 1, n) if i % 2 else rng.lognormal(0, 0.5, n)
    for i in range(5):
        k = 2 + i
        p = np.linspace(1.0, 2.0, k)
        cols[f"cat_{i}"] = rng.choice([f"v{j}" for j in range(k)], n, p=p / p.sum())
    return pd.DataFrame(cols).join(probabilities(n, rng, shift))


def specs(frame: pd.DataFrame) -> dict[str, DriftSpec]:
    base = DriftSpec.infer(frame, outputs=PROBS)
    ks_outputs = tuple(ColumnSpec(name=p, type="numeric", role="output", method="ks") for p in PROBS)
    return {
        "default": base,
        "evidently share": base.with_(method_rule="evidently", correction="none", policy=DriftPolicy.evidently()),
        "any column": base.with_(method_rule="evidently", correction="none", policy=DriftPolicy.any_column()),
        "failing loudly": DriftSpec(columns=ks_outputs, correction="bonferroni", policy=DriftPolicy.any_column()),
    }


def verdicts(ref: pd.DataFrame, cur: pd.DataFrame, by_name: dict[str, DriftSpec]) -> dict[str, bool]:
    """``compare(ref, cur, spec).drifted`` for every spec, scoring each (column, method) once
    (the same building blocks as the "fast" engine)."""
    data: dict[str, ColumnData] = {}
    scores: dict[tuple[str, str], Score] = {}
    out = {}
    for name, spec in by_name.items():
        tested = []
        for col in spec.columns:
            if col.name not in data:
                data[col.name] = ColumnData.from_series(col.name, col.type, ref[col.name], cur[col.name])
            key = col.method or default_method(data[col.name], spec.method_rule)
            method = DriftMethod.get(key)
            if (col.name, key) not in scores:
                scores[col.name, key] = method().score(data[col.name])
            threshold = col.threshold if col.threshold is not None else method.default_threshold
            tested.append(TestedColumn(spec=col, method=key, score=scores[col.name, key], threshold=threshold))
        result = assemble(spec, tested, None, engine="fast", n_reference=len(ref), n_current=len(cur))
        out[name] = result.drifted
    return out


def rates(
    make: Callable[[int, np.random.Generator, float], pd.DataFrame], n: int, shift: float, reps: int, seed: int
) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    hits: dict[str, int] = {}
    by_name: dict[str, DriftSpec] | None = None
    for _ in range(reps):
        ref, cur = make(n, rng, 0.0), make(n, rng, shift)
        by_name = by_name or specs(ref)
        for name, drifted in verdicts(ref, cur, by_name).items():
            hits[name] = hits.get(name, 0) + drifted
    return {name: h / reps for name, h in hits.items()}


def table(
    make: Callable[[int, np.random.Generator, float], pd.DataFrame],
    sizes: list[int],
    shifts: list[float],
    reps: int,
    false_alarm_reps: int,
) -> None:
    names = list(specs(make(20, np.random.default_rng(0), 0.0)))
    print("| rows | shift | " + " | ".join(names) + " |")
    print("|---:|---:|" + "---:|" * len(names))
    for n in sizes:
        for shift in shifts:
            start = time.perf_counter()
            r = rates(make, n, shift, false_alarm_reps if shift == 0 else reps, seed=1000 * n + int(100 * shift))
            label = "0 (false alarms)" if shift == 0 else f"{shift:g}"
            cells = " | ".join(f"{r[name]:.1%}" for name in names)
            print(f"| {n:,} | {label} | {cells} |  <!-- {time.perf_counter() - start:.0f}s -->", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,30,100,300,1000,3000,10000")
    parser.add_argument("--shifts", default="0,0.1,0.3,1")
    parser.add_argument("--reps", type=int, default=200, help="samples per shifted cell")
    parser.add_argument("--false-alarm-reps", type=int, default=1000, help="samples per no-drift cell")
    parser.add_argument("--full", action="store_true", help="also no-drift rates on a whole dataset")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    shifts = [float(s) for s in args.shifts.split(",")]
    fa = args.false_alarm_reps
    print(
        f"10 class probabilities, {fa} seeded samples per no-drift cell (Monte-Carlo s.e. at 5%: "
        f"{np.sqrt(0.05 * 0.95 / fa):.1%}), {args.reps} per shifted cell\n"
    )
    table(probabilities, sizes, shifts, args.reps, fa)
    if args.full:
        print("\n20 numeric + 5 categorical features + 10 class probabilities, no drift\n")
        table(full_frame, sizes, [0.0], args.reps, args.reps)


if __name__ == "__main__":
    main()
