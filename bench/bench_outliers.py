"""Benchmark: confident-outlier search over N logged embeddings against a reference.

Fits :class:`drift.outliers.EmbeddingOutlierDetector` on a reference (default 50k x 32) and
scores N logged embeddings (default 1,000,000), for ``mahalanobis`` and ``knn``, under each
BLAS thread setting asked for. Prints one table row per (kind, threads): fit time, score time,
rows/s, the time for all N rows, and the peak memory traced during fit and during scoring
(numpy buffers, via tracemalloc; the logged array itself is allocated before and not counted).

Exact kNN costs O(N * n_ref * d); ``--knn-rows`` scores only that many rows and extrapolates
linearly to N (the row says so). ``--max-reference`` adds a knn row fitted on a subsample.

    OPENBLAS_NUM_THREADS=1 python bench/bench_outliers.py --knn-rows 100000
    python bench/bench_outliers.py --n 200000 --threads 1,default
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drift.outliers import EmbeddingOutlierDetector, OutlierKind, summarize_outliers

T = TypeVar("T")
MIB = 1024 * 1024


@contextlib.contextmanager
def blas_threads(setting: str) -> Iterator[str]:
    """``"1"``, ``"2"``, ... limits BLAS threads via threadpoolctl; ``"default"`` leaves them."""
    from threadpoolctl import threadpool_info, threadpool_limits

    if setting == "default":
        n = max((p.get("num_threads", 1) for p in threadpool_info() if p.get("user_api") == "blas"), default=1)
        yield f"default ({n})"
        return
    with threadpool_limits(limits=int(setting), user_api="blas"):
        yield setting


def measured(fn: Callable[[], T]) -> tuple[T, float, float]:
    """Result, wall seconds and traced peak MiB of ``fn()``."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    t0 = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, elapsed, peak / MIB


def make_data(n: int, n_ref: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(dim, dim)).astype(np.float32) / np.sqrt(dim)
    reference = rng.standard_normal((n_ref, dim), dtype=np.float32) @ mix
    logged = np.empty((n, dim), dtype=np.float32)
    step = 100_000
    for start in range(0, n, step):
        stop = min(n, start + step)
        logged[start:stop] = rng.standard_normal((stop - start, dim), dtype=np.float32) @ mix
    far = rng.choice(n, size=max(1, n // 1000), replace=False)  # 0.1% far away
    logged[far] += 6.0
    confidence = rng.uniform(0.5, 1.0, n)
    return reference, logged, confidence


def run_one(
    kind: OutlierKind,
    reference: np.ndarray,
    logged: np.ndarray,
    confidence: np.ndarray,
    *,
    rows: int,
    k: int,
    chunk_size: int,
    max_reference: int | None,
) -> dict[str, Any]:
    det = EmbeddingOutlierDetector(kind=kind, k=k, chunk_size=chunk_size, max_reference=max_reference)
    _, fit_s, fit_peak = measured(lambda: det.fit(reference))
    x = logged[:rows]
    scores, score_s, score_peak = measured(lambda: det.score(x))
    summary = summarize_outliers(scores, confidence[:rows], det.threshold_, min_confidence=0.9, top_k=10)
    return {
        "n_ref": det.n_reference_,
        "fit_s": fit_s,
        "fit_peak": fit_peak,
        "rows": rows,
        "score_s": score_s,
        "score_peak": score_peak,
        "rate": summary.rate,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="logged embeddings (default 1,000,000)")
    parser.add_argument("--n-ref", type=int, default=50_000, help="reference embeddings (default 50,000)")
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--chunk-size", type=int, default=256)
    parser.add_argument("--knn-rows", type=int, default=None, help="score only this many rows with knn, extrapolate")
    parser.add_argument("--max-reference", type=int, default=None, help="also run knn on a reference subsample")
    parser.add_argument("--threads", default="1", help="comma-separated BLAS thread settings: 1,2,default")
    parser.add_argument("--kinds", default="mahalanobis,knn")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    reference, logged, confidence = make_data(args.n, args.n_ref, args.dim, args.seed)
    for kind in ("mahalanobis", "knn"):  # warm-up: imports (sklearn) and BLAS start-up are not timed
        EmbeddingOutlierDetector(kind=kind).fit(reference[:200]).score(logged[:10])
    knn_rows = min(args.n, args.knn_rows or args.n)
    print(
        f"# confident-outlier search: N={args.n:,} logged x d={args.dim} vs reference {args.n_ref:,}; "
        f"k={args.k}, chunk_size={args.chunk_size}"
    )
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
        f"numpy {np.__version__}, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}"
    )
    print(
        "| kind | BLAS threads | ref rows | fit s | fit peak MiB | rows scored | score s | rows/s "
        "| time for N | score peak MiB | confident-outlier rate |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    plans: list[tuple[OutlierKind, int | None]] = []
    for kind in args.kinds.split(","):
        if kind not in ("mahalanobis", "knn"):
            parser.error(f"unknown kind {kind!r}; allowed: mahalanobis, knn")
        plans.append(("knn", None) if kind == "knn" else ("mahalanobis", None))
        if kind == "knn" and args.max_reference:
            plans.append(("knn", args.max_reference))
    for setting in args.threads.split(","):
        with blas_threads(setting) as label:
            for kind, max_ref in plans:
                rows = knn_rows if kind == "knn" else args.n
                r = run_one(
                    kind,
                    reference,
                    logged,
                    confidence,
                    rows=rows,
                    k=args.k,
                    chunk_size=args.chunk_size,
                    max_reference=max_ref,
                )
                rate = r["rows"] / r["score_s"]
                total = args.n / rate
                total_txt = f"{total:,.1f} s" + ("" if rows == args.n else " (extrapolated)")
                name = kind if max_ref is None else f"knn (subsample {max_ref:,})"
                cells = [
                    name,
                    label,
                    f"{r['n_ref']:,}",
                    f"{r['fit_s']:.2f}",
                    f"{r['fit_peak']:.0f}",
                    f"{rows:,}",
                    f"{r['score_s']:.2f}",
                    f"{rate:,.0f}",
                    total_txt,
                    f"{r['score_peak']:.0f}",
                    f"{r['rate']:.4f}",
                ]
                print("| " + " | ".join(cells) + " |", flush=True)
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"# process max RSS {maxrss:,.0f} MiB (includes the {logged.nbytes / MIB:,.0f} MiB logged array)")


if __name__ == "__main__":
    main()
