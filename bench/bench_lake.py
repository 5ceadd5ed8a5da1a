"""Daily states of a Parquet lake: local Python (pyarrow, one process) against Spark local[2].

    .venv/bin/python bench/bench_lake.py --rows 1000000,10000000

The lake: 20 numeric features, 10 class probabilities (a list column), a 32-float embedding
(a list column), 10 daily partitions of 2 files each. The reference is 20,000 rows of the same
distribution. Each engine runs in its own process, so the peak RSS it reports is its own: the
driver's (the Python process) and, for Spark, the driver JVM's (which in local mode also runs
the executors' tasks; the Python workers are separate processes, not counted).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

START = datetime(2026, 11, 2, tzinfo=UTC)
DAYS = 10
CLASSES = [f"c{i}" for i in range(10)]
FEATURES = [f"f{i}" for i in range(20)]
EMBEDDING = 32


def model_settings() -> Any:
    from jobs.config import ModelSettings

    return ModelSettings(
        name="bench",
        class_labels=CLASSES,
        features=[{"name": f} for f in FEATURES],
        embedding={"column": "embedding", "size": EMBEDDING},
    )


def make_rows(n: int, seed: int, start: datetime, days: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, len(CLASSES))) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    probs = probs.round(6)
    offsets = np.sort(rng.integers(0, days * 86_400_000_000, size=n))
    ts = np.datetime64(start.replace(tzinfo=None), "us") + offsets.astype("timedelta64[us]")
    return {
        "prediction_id": np.array([f"p{seed}-{i}" for i in range(n)], dtype=object),
        "timestamp": ts,
        "model_version": np.ones(n, dtype=np.int64),
        "features": rng.normal(size=(n, len(FEATURES))),
        "probabilities": probs,
        "embedding": rng.normal(size=(n, EMBEDDING)).astype(np.float32),
    }


def write_lake(root: Path, n: int) -> None:
    per_day = n // DAYS
    for d in range(DAYS):
        day = START + timedelta(days=d)
        rows = make_rows(per_day, seed=100 + d, start=day, days=1)
        folder = root / f"day={day:%Y-%m-%d}"
        folder.mkdir(parents=True)
        for part, pick in enumerate(np.array_split(np.arange(per_day), 2)):
            columns: dict[str, Any] = {
                "prediction_id": pa.array(rows["prediction_id"][pick], pa.string()),
                "timestamp": pa.array(rows["timestamp"][pick]).cast(pa.timestamp("us", tz="UTC")),
                "model_version": pa.array(rows["model_version"][pick]),
            }
            for j, f in enumerate(FEATURES):
                columns[f] = pa.array(rows["features"][pick, j])
            for key, width in (("probabilities", len(CLASSES)), ("embedding", EMBEDDING)):
                flat = pa.array(rows[key][pick].astype(np.float64).ravel())
                columns[key] = pa.ListArray.from_arrays(
                    pa.array(np.arange(0, len(pick) * width + 1, width, dtype=np.int32)), flat
                )
            pq.write_table(pa.table(columns), folder / f"part-{part}.parquet")


def reference() -> Any:
    import pandas as pd

    from jobs.check.frames import drift_spec, model_frame

    model = model_settings()
    rows = make_rows(20_000, seed=1, start=START - timedelta(days=7), days=7)
    frame = model_frame(
        model,
        probabilities=rows["probabilities"].astype(np.float32),
        numeric=rows["features"],
        categorical=pd.DataFrame(),
        embedding=rows["embedding"],
    )
    from drift import ReferenceProfile

    return ReferenceProfile.from_frame(frame, drift_spec(model), sample_size=2000)


def peak_rss_mb() -> float:
    """This process's own peak resident memory (VmHWM): ``ru_maxrss`` would also carry the
    parent's size at the fork (here the parent that wrote the lake)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_engine(engine: str, lake: Path) -> dict[str, Any]:
    """One engine's daily states of the whole lake (run in a child process)."""
    from jobs.check.windows import DAY, FindingsInputs
    from jobs.config import LakeSource, SparkSettings

    model = model_settings()
    ref = reference()
    inputs = FindingsInputs(detector=None, calibration=None, min_confidence=0.9)
    segments = [(START + i * DAY, START + (i + 1) * DAY) for i in range(DAYS)]
    source = LakeSource(kind="lake", path=str(lake), compute=engine)  # type: ignore[arg-type]
    jvm_peak = None
    t0 = time.perf_counter()
    if engine == "local":
        from jobs.lake.local import LocalLake

        states = LocalLake(model, source, {1}, 0.01).states(1, segments, ref, inputs)
    else:
        from jobs.lake.spark import SparkLake

        spark = SparkSettings(master="local[2]", conf={"spark.ui.enabled": "false", "spark.driver.memory": "1g"})
        lake_engine = SparkLake(model, source, {1}, 0.01, spark)
        session = lake_engine.session
        t0 = time.perf_counter()  # the session's start-up is reported apart
        states = lake_engine.states(1, segments, ref, inputs)
        pid = session.sparkContext._jvm.java.lang.ProcessHandle.current().pid()  # type: ignore[union-attr]
        status = Path(f"/proc/{pid}/status").read_text()
        jvm_peak = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) / 1024
    seconds = time.perf_counter() - t0
    rows = sum(s.n_rows for s in states.values())
    driver = peak_rss_mb()
    return {"engine": engine, "rows": rows, "seconds": seconds, "driver_mb": driver, "jvm_mb": jvm_peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000", help="comma-separated row counts")
    parser.add_argument("--engines", default="local,spark")
    parser.add_argument("--child", nargs=2, metavar=("ENGINE", "LAKE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_engine(args.child[0], Path(args.child[1]))))
        return
    results = []
    for n in [int(x) for x in args.rows.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            lake = Path(tmp) / "lake"
            t0 = time.perf_counter()
            write_lake(lake, n)
            size = sum(f.stat().st_size for f in lake.rglob("*.parquet"))
            print(
                f"wrote {n:,} rows ({size / 1e6:.0f} MB of Parquet) in {time.perf_counter() - t0:.0f}s", file=sys.stderr
            )
            for engine in args.engines.split(","):
                env = os.environ | {"OPENBLAS_NUM_THREADS": "1"}
                out = subprocess.run(
                    [sys.executable, __file__, "--child", engine, str(lake)],
                    check=True,
                    capture_output=True,
                    text=True,
                    env=env,
                )
                results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{'rows':>12} {'engine':>8} {'seconds':>9} {'rows/s':>11} {'driver MB':>10} {'JVM MB':>8}")
    for r in results:
        jvm = f"{r['jvm_mb']:.0f}" if r["jvm_mb"] else "-"
        rate = r["rows"] / r["seconds"]
        print(f"{r['rows']:>12,} {r['engine']:>8} {r['seconds']:>9.1f} {rate:>11,.0f} {r['driver_mb']:>10.0f} {jvm:>8}")


if __name__ == "__main__":
    main()
