"""A PostgreSQL source table: push-down (GROUP BY in the database) against pulling every row.

    .venv/bin/python bench/bench_pushdown.py --rows 1000000,10000000

The table: 20 float8 features, 10 probability columns, a 32-float embedding (float8[]), 10 days,
indexed on its timestamp, in a throwaway schema of $DRIFTKEEPER_TEST_POSTGRES_URL (dropped after).
"pull" reads every row of the window through SQLAlchemy in 100,000-row chunks and profiles them
in Python (what ``compute: pull`` must read, before it even stores them); "pushdown" runs
:class:`jobs.pushdown.engine.PushdownDays`. "MB read" adds up the result values' sizes
(8 bytes a number or timestamp, a text's length): the payload that crossed the wire.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent))
import bench_lake as lakebench

URL = os.environ.get("DRIFTKEEPER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TABLE = "bench_predictions"


def size(value: Any) -> int:
    """Bytes of a result value on the wire, about (8 a number or timestamp, a text's length)."""
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, list | tuple):
        return sum(size(v) for v in value)
    return 8


def load(url: str, n: int) -> None:
    engine = create_engine(url)
    features = ", ".join(f"{f} float8" for f in lakebench.FEATURES)
    probs = ", ".join(f"p{j} float8" for j in range(len(lakebench.CLASSES)))
    with engine.begin() as conn:
        conn.execute(
            text(
                f"CREATE TABLE {TABLE} (id bigint, prediction_id text, ts timestamptz, model_version integer,"
                f" {features}, {probs}, embedding float8[])"
            )
        )
        raw = conn.connection.driver_connection
        assert raw is not None
        per_day = n // lakebench.DAYS
        for d in range(lakebench.DAYS):
            rows = lakebench.make_rows(per_day, 100 + d, lakebench.START + pd.Timedelta(days=d), 1)
            frame = pd.DataFrame(rows["features"], columns=lakebench.FEATURES)
            frame.insert(0, "id", np.arange(d * per_day, (d + 1) * per_day) + 1)
            frame.insert(1, "prediction_id", rows["prediction_id"])
            frame.insert(2, "ts", pd.DatetimeIndex(rows["timestamp"]).strftime("%Y-%m-%d %H:%M:%S.%f+00"))
            frame.insert(3, "model_version", 1)
            for j in range(len(lakebench.CLASSES)):
                frame[f"p{j}"] = rows["probabilities"][:, j]
            emb = rows["embedding"].astype(np.float64)
            frame["embedding"] = ["{" + ",".join(map(repr, e)) + "}" for e in emb.tolist()]
            with raw.cursor() as cur, cur.copy(f"COPY {TABLE} FROM STDIN (FORMAT csv)") as copy:
                copy.write(frame.to_csv(index=False, header=False, float_format="%.17g"))
        conn.execute(text(f"CREATE INDEX ON {TABLE} (ts)"))
        conn.execute(text(f"ANALYZE {TABLE}"))
    engine.dispose()


def settings(url: str) -> tuple[Any, Any]:
    from jobs.config import ModelSettings, SqlSource

    source = SqlSource(kind="sql", url=url, table=TABLE, compute="pushdown", columns={"timestamp": "ts"})  # type: ignore[arg-type]
    model = ModelSettings(
        name="bench",
        class_labels=lakebench.CLASSES,
        features=[{"name": f} for f in lakebench.FEATURES],
        probabilities={"columns": [f"p{j}" for j in range(len(lakebench.CLASSES))]},
        embedding={"column": "embedding", "size": lakebench.EMBEDDING},
        predictions=source,
    )
    return model, source


def run(url: str, n: int) -> list[tuple[str, int, float, int]]:
    from jobs.check.windows import DAY, FindingsInputs
    from jobs.lake.partial import BatchJob, batch_states, merge_into
    from jobs.pushdown.engine import PushdownDays

    model, source = settings(url)
    ref = lakebench.reference()
    inputs = FindingsInputs(detector=None, calibration=None, min_confidence=0.9)
    segments = [(lakebench.START + i * DAY, lakebench.START + (i + 1) * DAY) for i in range(lakebench.DAYS)]
    out = []

    class Counted(PushdownDays):
        read = 0

        def _run(self, conn: Any, query: str, params: dict[str, Any]) -> list[Any]:
            rows = super()._run(conn, query, params)
            Counted.read += sum(size(v) for r in rows for v in r)
            return rows

    engine = Counted(model, source, {1}, 0.01)
    t0 = time.perf_counter()
    states = engine.states(1, segments, ref, inputs)
    out.append(("pushdown", sum(s.n_rows for s in states.values()), time.perf_counter() - t0, Counted.read))
    job = BatchJob(
        model=model,
        columns=dict(source.columns),
        known_versions=(1,),
        tolerance=0.01,
        version=1,
        segments=tuple(segments),
        reference=ref,
        inputs=inputs,
    )
    import pyarrow as pa

    pulled = create_engine(url)
    t0, read = time.perf_counter(), 0
    merged: dict[int, Any] = {}
    with pulled.connect().execution_options(stream_results=True, max_row_buffer=100_000) as conn:
        result = conn.execute(
            text(f"SELECT * FROM {TABLE} WHERE ts >= :a AND ts < :b"), {"a": segments[0][0], "b": segments[-1][1]}
        )
        names = list(result.keys())
        for i, chunk in enumerate(result.partitions(100_000)):
            read += sum(size(v) for r in chunk for v in r)
            frame = pd.DataFrame(chunk, columns=names)
            frame["embedding"] = [np.asarray(e) for e in frame["embedding"]]
            batch = pa.RecordBatch.from_pandas(frame.drop(columns=["embedding"]), preserve_index=False)
            batch = batch.append_column("embedding", pa.array(frame["embedding"].tolist(), pa.list_(pa.float64())))
            merge_into(merged, batch_states(job, batch, f"{segments[0][0]:%Y-%m-%d}", f"pull#{i}"))
    out.append(("pull", sum(s.n_rows for s in merged.values()), time.perf_counter() - t0, read))
    pulled.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000")
    args = parser.parse_args()
    admin = create_engine(URL)
    results = []
    for n in [int(x) for x in args.rows.split(",")]:
        schema = f"dk_bench_{uuid.uuid4().hex[:10]}"
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = f"{URL}{'&' if '?' in URL else '?'}options=-csearch_path%3D{schema}"
        try:
            t0 = time.perf_counter()
            load(url, n)
            print(f"loaded {n:,} rows in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
            results += [(n, *r) for r in run(url, n)]
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    print(f"{'table rows':>12} {'path':>9} {'profiled':>11} {'seconds':>9} {'MB read':>9}")
    for n, path, rows, seconds, read in results:
        print(f"{n:>12,} {path:>9} {rows:>11,} {seconds:>9.1f} {read / 1e6:>9.2f}")


if __name__ == "__main__":
    main()
