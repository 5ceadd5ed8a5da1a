"""Benchmark: ``drift.compare(reference, current)`` (DataFrame API, default engine and spec)
against evidently's DataDriftPreset on the same frames.

Data: the 20 numeric (float) and 5 categorical feature columns of :mod:`bench_drift`
(``make_features``), ``--rows`` reference rows and as many current rows with a small shift.

* drift.compare: ``compare(ref, cur)``: the "fast" engine, a spec inferred from the
  reference, ``method_rule="stat_test"`` (exact KS on the numeric columns, two-sample
  chi-square on the categorical ones). Best of ``--repeats`` runs.
* evidently: ``compare(ref, cur, spec, engine="evidently")`` with ``bench_drift.spec_for``'s
  settings (``method_rule="evidently"``: evidently's own default method per column, so
  ``Report([DataDriftPreset()])`` runs with nothing passed per column). One run.
* peak MB: what ``drift.compare`` allocates above the loaded frames, measured in a fresh
  subprocess that first loads the frames: the ``tracemalloc`` peak (numpy and Python
  allocations) and, beside it, the rise of the peak RSS (``VmHWM`` after a reset with
  ``/proc/self/clear_refs``) over the RSS before the call.

Usage::

    .venv/bin/python bench/bench_compare.py [--rows 1000000] [--repeats 3] [--skip-evidently]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pandas as pd
from bench_drift import make_features, measure, spec_for, traced_peak_mb

from drift import DriftResult, compare

SHIFT = 0.05


def frames(rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    return make_features(rows, 0.0, seed=1), make_features(rows, SHIFT, seed=2)


def memory_child(rows: int) -> dict[str, float]:
    """Run in a fresh process: the peak memory of drift.compare above the loaded frames."""
    ref, cur = frames(rows)
    _, _, rss_mb = measure(lambda: compare(ref, cur))
    traced_mb = traced_peak_mb(lambda: compare(ref, cur))
    return {"traced_mb": traced_mb, "rss_mb": rss_mb}


def peak_memory(rows: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--rows", str(rows), "--memory-child"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def time_compare(ref: pd.DataFrame, cur: pd.DataFrame, repeats: int) -> tuple[DriftResult, float]:
    best = float("inf")
    result: DriftResult | None = None
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        result = compare(ref, cur)
        best = min(best, time.perf_counter() - start)
    assert result is not None
    return result, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="reference rows (and as many current rows)")
    parser.add_argument("--repeats", type=int, default=3, help="drift.compare runs (the best is reported)")
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        print(json.dumps(memory_child(args.rows)))
        return
    memory = peak_memory(args.rows)
    ref, cur = frames(args.rows)
    ours, t_ours = time_compare(ref, cur, args.repeats)
    methods = ", ".join(
        f"{m} x{sum(c.method == m for c in ours.columns)}" for m in sorted({c.method for c in ours.columns})
    )
    ev_cell = ratio_cell = ev_mem_cell = "skipped"
    if not args.skip_evidently:
        theirs, t_ev, m_ev = measure(
            lambda: compare(ref, cur, spec_for(ref, outputs=(), embedding=None), engine="evidently")
        )
        ev_cell, ratio_cell, ev_mem_cell = f"{t_ev:.1f}", f"{t_ev / t_ours:.0f}x", f"{m_ev:,.0f}"
        methods += f"; evidently used: {', '.join(sorted({c.method for c in theirs.columns}))}"
    dtypes = ", ".join(f"{n} {t}" for t, n in ref.dtypes.astype(str).value_counts().items())
    print(f"frames: {dtypes}; {ref.shape[0]:,} reference + {cur.shape[0]:,} current rows")
    print(f"drift.compare methods: {methods}; drifted columns: {', '.join(ours.drifted_columns) or 'none'}")
    print()
    print(
        "| rows | drift.compare s | evidently s | speed-up "
        "| drift.compare peak MB (tracemalloc / RSS) | evidently peak RSS MB |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {args.rows:,} | {t_ours:.2f} | {ev_cell} | {ratio_cell} "
        f"| {memory['traced_mb']:,.0f} / {memory['rss_mb']:,.0f} | {ev_mem_cell} |"
    )


if __name__ == "__main__":
    main()
