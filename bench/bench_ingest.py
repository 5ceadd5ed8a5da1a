"""Ingestion throughput and peak memory, SQLite and PostgreSQL.

A 20-feature (17 numeric, 3 categorical), 10-class, 32-float-embedding prediction log is
written as Parquet files (one column per value) and ingested by the real job, each case in
a fresh subprocess so that peak RSS belongs to that case alone.

    .venv/bin/python bench/bench_ingest.py                 # 100k and 1M rows, both backends, median of 3
    .venv/bin/python bench/bench_ingest.py --rows 100000 --backends sqlite --repeat 5
    .venv/bin/python bench/bench_ingest.py --source sql    # from a table in a SQLite "production" database
    .venv/bin/python bench/bench_ingest.py --source jsonl  # JSON-lines drops (or csv)
    .venv/bin/python bench/bench_ingest.py --source all --rows 100000 --backends sqlite   # the four sources
    .venv/bin/python bench/bench_ingest.py --labels        # then late labels for half of the rows
    BENCH_BATCH=50000 .venv/bin/python bench/bench_ingest.py   # another ingest.batch_size (default 10,000)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

CLASSES = [str(i) for i in range(10)]
NUMERIC = [f"f{i}" for i in range(17)]
CATEGORICAL = ["device", "camera", "region"]
EMBEDDING = [f"e{i}" for i in range(32)]
PROBS = [f"p{i}" for i in range(10)]
PG_URL = os.environ.get("DRIFTKEEPER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def write_source(folder: Path, rows: int, file_rows: int = 250_000, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for part, start in enumerate(range(0, rows, file_rows)):
        n = min(file_rows, rows - start)
        logits = rng.normal(size=(n, 10)) * 2
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        frame = pd.DataFrame(rng.normal(size=(n, 17)), columns=NUMERIC)
        for name in CATEGORICAL:
            frame[name] = rng.choice(["a", "b", "c", "d"], size=n)
        frame[PROBS] = probs
        frame[EMBEDDING] = rng.normal(size=(n, 32)).astype(np.float32)
        frame["prediction_id"] = [f"pred-{start + i:09d}" for i in range(n)]
        frame["timestamp"] = pd.Timestamp("2026-11-01", tz="UTC") + pd.to_timedelta(
            np.arange(start, start + n), unit="s"
        )
        frame["model_version"] = 1
        frame["input_uri"] = [f"s3://bucket/img/{start + i}.jpg" for i in range(n)]
        frame.to_parquet(folder / f"part-{part:04d}.parquet", index=False)


def write_sql_source(database: Path, folder: Path) -> None:
    """The same rows as a table in a SQLite "production" database, indexed for the watermark."""
    import sqlite3

    with sqlite3.connect(database) as conn:
        for part in sorted(folder.glob("*.parquet")):
            frame = pd.read_parquet(part)
            frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S.%f+00:00")
            frame.to_sql("predictions", conn, if_exists="append", index=False, chunksize=50_000)
        conn.execute("CREATE INDEX ix_predictions_watermark ON predictions (timestamp, prediction_id)")


def convert_drop(folder: Path, target: Path, fmt: str) -> None:
    """The Parquet drop as JSON lines or CSV files (one key or column per value)."""
    target.mkdir(parents=True, exist_ok=True)
    for part in sorted(folder.glob("*.parquet")):
        frame = pd.read_parquet(part)
        frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
        if fmt == "jsonl":
            frame.to_json(target / f"{part.stem}.jsonl", orient="records", lines=True, double_precision=15)
        else:
            frame.to_csv(target / f"{part.stem}.csv", index=False)


def write_labels(folder: Path, source: Path, share: float = 0.5, seed: int = 1) -> None:
    """Late labels for a share of the predictions in the Parquet drop ``source``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for part in sorted(source.glob("*.parquet")):
        ids = pd.read_parquet(part, columns=["prediction_id", "timestamp"])
        picked = ids[rng.random(len(ids)) < share]
        labels = pd.DataFrame(
            {
                "prediction_id": picked["prediction_id"],
                "label": rng.choice(CLASSES, size=len(picked)),
                "labelled_at": picked["timestamp"] + pd.Timedelta(days=3),
            }
        )
        labels.to_parquet(folder / part.name, index=False)


def settings_dict(database_url: str, source: Path, labels: Path | None = None) -> dict:
    if source.is_file():  # a SQLite "production" database; a folder is a drop of Parquet files
        predictions = {
            "kind": "sql",
            "url": f"sqlite:///{source}",
            "table": "predictions",
            "id_column": "prediction_id",
        }
    else:
        predictions = {"kind": "files", "path": str(source)}
    return {
        "database": {"url": database_url},
        "ingest": {"batch_size": int(os.environ.get("BENCH_BATCH", "10000"))},
        "models": [
            {
                "name": "bench",
                "class_labels": CLASSES,
                "features": [{"name": n, "type": "numeric"} for n in NUMERIC]
                + [{"name": n, "type": "categorical"} for n in CATEGORICAL],
                "probabilities": {"columns": PROBS},
                "embedding": {"columns": EMBEDDING},
                "predictions": predictions,
                **({"labels": {"kind": "files", "path": str(labels)}} if labels is not None else {}),
            }
        ],
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory.

    Linux's VmHWM counts this process image alone; ``ru_maxrss`` also carries the parent's
    size at the fork that started a subprocess, which inflated earlier numbers here.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(database_url: str, folder: Path, labels: Path | None = None) -> dict:
    """Runs in the child: migrate, register version 1, ingest everything; report."""
    from jobs.config import Settings
    from jobs.ingest.run import ingest
    from storage import repository
    from storage.engine import make_engine, make_session_factory
    from storage.migrate import upgrade

    settings = Settings(**settings_dict(database_url, folder, labels))
    engine = make_engine(database_url)
    upgrade(engine)
    factory = make_session_factory(engine)
    with factory.begin() as session:
        repository.register_version(session, repository.ensure_model(session, "bench", "classification"), 1)
    start = time.perf_counter()
    reports = ingest(factory, settings)
    seconds = time.perf_counter() - start
    peak_mb = peak_rss_mb()
    by_stream = {r.stream: r for r in reports}
    return {
        "inserted": by_stream["predictions"].inserted,
        "seconds": by_stream["predictions"].seconds if labels is not None else seconds,
        "labels": by_stream["labels"].inserted if labels is not None else 0,
        "labels_seconds": by_stream["labels"].seconds if labels is not None else 0.0,
        "peak_mb": peak_mb,
        "quarantined": by_stream["predictions"].quarantined,
    }


def run_once(backend: str, rows: int, folder: Path, tmp: str, attempt: int, labels: Path | None) -> dict:
    """One ingest of the whole source into a fresh database, in a fresh subprocess."""
    schema = None
    if backend == "sqlite":
        url = f"sqlite:///{tmp}/bench-{rows}-{attempt}.db"
    else:
        from sqlalchemy import create_engine, text

        schema = f"dk_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--child", url, str(folder), str(labels or "")],
            check=True,
            capture_output=True,
            text=True,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        if schema:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()
        elif backend == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{tmp}/bench-{rows}-{attempt}.db{suffix}").unlink(missing_ok=True)
    assert result["inserted"] == rows, result
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="100000,1000000")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--source",
        default="files",
        help="comma-separated: Parquet drops (files), JSON-lines or CSV drops (jsonl, csv), a table in a "
        "SQLite database read through ADBC (sql); 'all' for the four",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the table shows the median")
    parser.add_argument("--labels", action="store_true", help="also ingest late labels for half of the rows")
    parser.add_argument("--child", nargs=3, metavar=("URL", "SOURCE", "LABELS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_case(args.child[0], Path(args.child[1]), Path(args.child[2]) if args.child[2] else None)))
        return
    kinds = ["files", "csv", "jsonl", "sql"] if args.source == "all" else args.source.split(",")
    unknown = sorted(set(kinds) - {"files", "csv", "jsonl", "sql"})
    if unknown:
        parser.error(f"unknown --source {', '.join(unknown)} (allowed: files, csv, jsonl, sql, all)")
    header = f"{'source':<7} {'backend':<11} {'rows':>9} {'seconds':>8} {'rows/s':>9}"
    header += f" {'min-max rows/s':>16} {'peak RSS MB':>12}"
    print(header + (f" {'labels':>9} {'labels/s':>9}" if args.labels else ""))
    with tempfile.TemporaryDirectory() as tmp:
        for rows in [int(r) for r in args.rows.split(",")]:
            write_source(Path(tmp) / f"src-{rows}", rows)
            for kind in kinds:
                folder = Path(tmp) / f"src-{rows}"
                if kind in ("jsonl", "csv"):
                    convert_drop(folder, Path(tmp) / f"{kind}-{rows}", kind)
                    folder = Path(tmp) / f"{kind}-{rows}"
                if kind == "sql":
                    if not (Path(tmp) / f"source-{rows}.db").exists():
                        write_sql_source(Path(tmp) / f"source-{rows}.db", folder)
                    folder = Path(tmp) / f"source-{rows}.db"
                labels = None
                if args.labels:
                    labels = Path(tmp) / f"labels-{rows}"
                    if not labels.exists():
                        write_labels(labels, Path(tmp) / f"src-{rows}")
                for backend in args.backends.split(","):
                    results = [run_once(backend, rows, folder, tmp, attempt, labels) for attempt in range(args.repeat)]
                    seconds = statistics.median(r["seconds"] for r in results)
                    rates = sorted(rows / r["seconds"] for r in results)
                    peak = max(r["peak_mb"] for r in results)
                    spread = f"{rates[0] / 1000:,.0f}k-{rates[-1] / 1000:,.0f}k"
                    name = "parquet" if kind == "files" else kind
                    line = (
                        f"{name:<7} {backend:<11} {rows:>9,} {seconds:>8.2f} {rows / seconds:>9,.0f} "
                        f"{spread:>16} {peak:>12,.0f}"
                    )
                    if labels is not None:
                        n_labels = results[0]["labels"]
                        label_seconds = statistics.median(r["labels_seconds"] for r in results)
                        line += f" {n_labels:>9,} {n_labels / label_seconds:>9,.0f}"
                    print(line, flush=True)


if __name__ == "__main__":
    main()
