"""Benchmark: evidently's DataDriftPreset vs the profile-based fast path.

Data: 20 numeric + 5 categorical features, 10 class probabilities and a 32-float embedding,
reference and current window of the same size, a moderate shift on some columns.
Both paths use evidently's default methods per column (``method_rule="evidently"``, no
correction) so that per-column verdicts can be compared; the embedding is tested with
drift's MMD on both (evidently's embedding drift is not used).

* evidently: ``drift.compare(..., engine="evidently")`` (Report + DataDriftPreset on rows).
* fast: ``reference_profile.profile(window)`` + ``compare_profiles`` (the reference
  profile is built once, outside the timing, as the service stores it).
* weekly: seven daily window profiles, stored as JSON, loaded, merged and compared.

Peak memory, what the check adds on top of the loaded data: for the fast path the
``tracemalloc`` peak of a second, untimed run (exact for numpy and Python allocations);
for evidently the process's peak RSS during the step minus its RSS before it (Linux
``/proc/self/clear_refs``; a lower bound, as memory freed earlier may be reused).

Usage::

    .venv/bin/python bench/bench_drift.py [--sizes 10000,100000,1000000]
        [--skip-evidently-above N] [--agreement] [--seeds 5]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd

from drift import (
    DriftPolicy,
    DriftResult,
    DriftSpec,
    ReferenceProfile,
    WindowProfile,
    compare,
    compare_profiles,
)

NUMERIC = [f"num_{i}" for i in range(20)]
CATEGORICAL = [f"cat_{i}" for i in range(5)]
PROBS = [f"prob_{i}" for i in range(10)]
EMB = [f"emb_{i}" for i in range(32)]


def make_frame(n: int, shift: float, seed: int) -> pd.DataFrame:
    """Seeded rows; ``shift`` moves num_0..4, cat_0, the class-0 logit and the embedding."""
    rng = np.random.default_rng(seed)
    cols = feature_columns(rng, n, shift)
    logits = rng.normal(0.0, 1.5, (n, len(PROBS)))
    logits[:, 0] += 2 * shift
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    cols.update({name: probs[:, i] for i, name in enumerate(PROBS)})
    emb = rng.normal(shift / 4, 1.0, (n, len(EMB)))
    cols.update({name: emb[:, i] for i, name in enumerate(EMB)})
    return pd.DataFrame(cols)


def make_features(n: int, shift: float, seed: int) -> pd.DataFrame:
    """The 20 numeric and 5 categorical feature columns of :func:`make_frame` alone."""
    return pd.DataFrame(feature_columns(np.random.default_rng(seed), n, shift))


def feature_columns(rng: np.random.Generator, n: int, shift: float) -> dict[str, Any]:
    """NUMERIC and CATEGORICAL columns drawn from ``rng``; ``shift`` moves num_0..4 and cat_0."""
    cols: dict[str, Any] = {}
    for i, name in enumerate(NUMERIC):
        s = shift if i < 5 else 0.0
        kind = i % 4
        if kind == 0:
            cols[name] = rng.normal(s, 1.0, n)
        elif kind == 1:
            cols[name] = rng.lognormal(s, 0.5, n)
        elif kind == 2:
            cols[name] = rng.uniform(0.0, 1.0 + s, n)
        else:
            cols[name] = rng.gamma(2.0 + s, 1.0, n)
    for i, name in enumerate(CATEGORICAL):
        k = 3 + i
        p = np.linspace(1.0, 2.0, k)
        if i == 0:
            p[0] *= 1.0 + 2 * shift
        cols[name] = rng.choice([f"v{j}" for j in range(k)], n, p=p / p.sum())
    return cols


def spec_for(
    frame: pd.DataFrame, outputs: Sequence[str] = tuple(PROBS), embedding: Sequence[str] | None = tuple(EMB)
) -> DriftSpec:
    """evidently's default methods per column, no correction, evidently's dataset rule."""
    return DriftSpec.infer(
        frame,
        outputs=outputs,
        embedding=embedding,
        method_rule="evidently",
        correction="none",
        policy=DriftPolicy.evidently(),
    )


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def measure(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, seconds, extra peak RSS in MB)."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset the peak-RSS high-water mark
    except OSError:
        pass
    before = _rss_kb("VmRSS:")
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    peak = _rss_kb("VmHWM:")
    return result, seconds, max(peak - before, 0) / 1024


def traced_peak_mb(fn: Callable[[], Any]) -> float:
    gc.collect()
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def agreement(ours: DriftResult, theirs: DriftResult) -> tuple[int, int, int]:
    """(same verdict, same method, columns) over per-column tests (the embedding excluded)."""
    pairs = [(a, b) for a, b in zip(ours.columns, theirs.columns, strict=True) if a.kind != "embedding"]
    return (
        sum(a.drifted == b.drifted for a, b in pairs),
        sum(a.method == b.method for a, b in pairs),
        len(pairs),
    )


def timing_row(n: int, run_evidently: bool) -> str:
    ref, cur = make_frame(n, 0.0, seed=1), make_frame(n, 0.05, seed=2)
    spec = spec_for(ref)
    ref_profile, t_reference, _ = measure(lambda: ReferenceProfile.from_frame(ref, spec))
    # best of three (the machine is shared; evidently, far slower, runs once)
    t_profile = t_compare = np.inf
    for _ in range(3):
        window, t, _ = measure(lambda: ref_profile.profile(cur))
        t_profile = min(t_profile, t)
        fast, t, _ = measure(lambda: compare_profiles(ref_profile, window))  # noqa: B023
        t_compare = min(t_compare, t)
    t_fast = t_profile + t_compare
    m_fast = traced_peak_mb(lambda: compare_profiles(ref_profile, ref_profile.profile(cur)))
    fast_cell = f"{t_fast:.2f} ({t_profile:.2f} + {t_compare:.2f}) | {t_reference:.1f}"
    if not run_evidently:
        return f"| {n:,} | skipped | {fast_cell} | - | - | {m_fast:,.0f} | - | - |"
    slow, t_ev, m_ev = measure(lambda: compare(ref, cur, spec, engine="evidently"))
    same, same_method, total = agreement(fast, slow)
    return (
        f"| {n:,} | {t_ev:.1f} | {fast_cell} | {t_ev / t_fast:.0f}x | {m_ev:,.0f} | {m_fast:,.0f} "
        f"| {same}/{total} | {same_method}/{total} |"
    )


def timing_table(sizes: list[int], skip_evidently_above: int) -> None:
    print(
        "| rows | evidently s | fast s (profile + compare) | reference profile s (once) | ratio "
        "| evidently peak MB | fast peak MB "
        "| same verdict | same method |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        print(timing_row(n, n <= skip_evidently_above), flush=True)
        gc.collect()


def weekly_check(rows_per_day: int) -> None:
    ref = make_frame(7 * rows_per_day, 0.0, seed=1)
    spec = spec_for(ref).with_(method_rule="stat_test", correction="bh", policy=DriftPolicy())
    ref_profile = ReferenceProfile.from_frame(ref, spec)
    stored = [
        json.dumps(ref_profile.profile(make_frame(rows_per_day, 0.02 * d, seed=10 + d)).to_dict()) for d in range(7)
    ]
    days = [WindowProfile.from_dict(json.loads(s)) for s in stored]
    times = []
    for _ in range(5):
        start = time.perf_counter()
        result = compare_profiles(ref_profile, WindowProfile.merge_all(days))
        times.append(time.perf_counter() - start)
    size_kb = sum(len(s) for s in stored) / 7 / 1024
    print(
        f"\nweekly check from 7 stored daily profiles ({rows_per_day:,} rows/day, {size_kb:,.0f} KB each):"
        f" merge + compare median {np.median(times) * 1000:.0f} ms (min {min(times) * 1000:.0f} ms); "
        f"drifted={result.drifted}"
    )


def agreement_matrix(seeds: int) -> None:
    """no/small/medium/large shift x (numeric, categorical, probabilities) x small/large reference."""
    shifts = {"none": 0.0, "small": 0.03, "medium": 0.1, "large": 0.3}
    print("\n| reference rows | shift | fast same verdict | profile same verdict | same method |")
    print("|---:|---|---:|---:|---:|")
    totals = np.zeros(4, dtype=int)
    for ref_n in (800, 5000):
        for label, shift in shifts.items():
            acc = np.zeros(4, dtype=int)
            for seed in range(seeds):
                ref = make_frame(ref_n, 0.0, seed=100 + seed)
                cur = make_frame(2000, shift, seed=200 + seed)
                spec = spec_for(ref).with_(embedding=None)
                ev = compare(ref, cur, spec, engine="evidently")
                fast = compare(ref, cur, spec, engine="fast")
                prof = compare(ref, cur, spec, engine="profile")
                f_same, f_method, total = agreement(fast, ev)
                p_same, p_method, _ = agreement(prof, ev)
                acc += [f_same, p_same, min(f_method, p_method), total]
            totals += acc
            print(f"| {ref_n:,} | {label} | {acc[0]}/{acc[3]} | {acc[1]}/{acc[3]} | {acc[2]}/{acc[3]} |")
            sys.stdout.flush()
    rates = totals[:3] / totals[3]
    print(f"| all | all | {rates[0]:.2%} | {rates[1]:.2%} | {rates[2]:.2%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument(
        "--skip-evidently-above",
        type=int,
        default=10**9,
        help="rows above which evidently is not run (e.g. 100000 to skip 1M)",
    )
    parser.add_argument("--agreement", action="store_true", help="run the verdict-agreement matrix")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per agreement-matrix cell")
    parser.add_argument("--rows-per-day", type=int, default=100_000)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    timing_table(sizes, args.skip_evidently_above)
    weekly_check(args.rows_per_day)
    if args.agreement:
        agreement_matrix(args.seeds)


if __name__ == "__main__":
    main()
