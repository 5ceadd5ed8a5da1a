"""A PostgreSQL source table: push-down (GROUP BY in the database) against pulling every row.

    .venv/bin/python bench/bench_pushdown.py --rows 1000000,10000000

The table: 20 float8 features, 10 probability columns, a 32-float embedding (float8[]), 10 days,
indexed on its timestamp, in a throwaway schema of $DRIFTKEEPER_TEST_POSTGRES_URL (dropped after).
"pull" reads every row of the window through SQLAlchemy in 100,000-row chunks and profiles them
in Python (what ``compute: pull`` must read, before it even stores them); "pushdown" runs
:class:`jobs.pushdown.engine.PushdownDays`. Both compute the findings too: a Mahalanobis outlier
detector and a per-label calibration (isotonic) are fitted on the reference's 20,000 rows
(labels drawn right with the chance of the confidence), so the push-down runs its outlier
and grouped-calibration queries. "MB read" adds up the result values' sizes (8 bytes a
number or timestamp, a text's length): the payload that crossed the wire; "result rows" counts
the rows that came back (per query kind on stderr). The two paths' outlier counts, far-row
counts and estimated accuracies are printed to show they agree.
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
    """``n`` rows over 10 days: each day written as CSV by Arrow (C++ number formatting) into a
    staging table by COPY, then moved into the table with the embedding as a float8[]."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    engine = create_engine(url)
    features = ", ".join(f"{f} float8" for f in lakebench.FEATURES)
    probs = ", ".join(f"p{j} float8" for j in range(len(lakebench.CLASSES)))
    elements = [f"e{k}" for k in range(lakebench.EMBEDDING)]
    scalars = f"id bigint, prediction_id text, ts timestamptz, model_version integer, {features}, {probs}"
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE {TABLE} ({scalars}, embedding float8[])"))
        conn.execute(text(f"CREATE TEMP TABLE staging ({scalars}, {', '.join(f'{e} float8' for e in elements)})"))
        raw = conn.connection.driver_connection
        assert raw is not None
        per_day = n // lakebench.DAYS
        names = ["id", "prediction_id", "ts", "model_version", *lakebench.FEATURES]
        names += [f"p{j}" for j in range(len(lakebench.CLASSES))]
        for d in range(lakebench.DAYS):
            rows = lakebench.make_rows(per_day, 100 + d, lakebench.START + pd.Timedelta(days=d), 1)
            columns: list[Any] = [
                pa.array(np.arange(d * per_day, (d + 1) * per_day) + 1),
                pa.array(rows["prediction_id"], pa.string()),
                pa.array(rows["timestamp"]).cast(pa.timestamp("us", tz="UTC")),
                pa.array(rows["model_version"]),
                *(pa.array(rows["features"][:, j]) for j in range(len(lakebench.FEATURES))),
                *(pa.array(rows["probabilities"][:, j]) for j in range(len(lakebench.CLASSES))),
                *(pa.array(rows["embedding"][:, k].astype(np.float64)) for k in range(lakebench.EMBEDDING)),
            ]
            buffer = pa.BufferOutputStream()
            table = pa.table(columns, names=names + elements)
            pa_csv.write_csv(table, buffer, pa_csv.WriteOptions(include_header=False))
            with raw.cursor() as cur, cur.copy("COPY staging FROM STDIN (FORMAT csv)") as copy:
                copy.write(buffer.getvalue().to_pybytes())
            array = f"ARRAY[{', '.join(elements)}]"
            conn.execute(text(f"INSERT INTO {TABLE} SELECT {', '.join(names)}, {array} FROM staging"))
            conn.execute(text("TRUNCATE staging"))
        conn.execute(text(f"CREATE INDEX ON {TABLE} (ts)"))
        conn.execute(text(f"ANALYZE {TABLE}"))
    engine.dispose()


def settings(url: str) -> tuple[Any, Any]:
    from jobs.config import ModelSettings, SqlSource

    source = SqlSource(kind="sql", url=url, table=TABLE, compute="pushdown", columns={"timestamp": "ts"})
    model = ModelSettings(
        name="bench",
        class_labels=lakebench.CLASSES,
        features=[{"name": f} for f in lakebench.FEATURES],
        probabilities={"columns": [f"p{j}" for j in range(len(lakebench.CLASSES))]},
        embedding={"column": "embedding", "size": lakebench.EMBEDDING},
        predictions=source,
    )
    return model, source


def findings_inputs() -> Any:
    """An outlier detector and a calibration fitted on the reference's rows (as the check fits them)."""
    from drift.outliers import EmbeddingOutlierDetector
    from jobs.check.state import Calibration
    from jobs.check.windows import FindingsInputs

    rows = lakebench.make_rows(20_000, seed=1, start=lakebench.START - pd.Timedelta(days=7), days=7)
    probs = rows["probabilities"].astype(np.float64)
    conf = probs.max(axis=1)
    predicted = np.asarray(lakebench.CLASSES, dtype=object)[probs.argmax(axis=1)]
    correct = np.random.default_rng(5).random(conf.size) < conf
    return FindingsInputs(
        detector=EmbeddingOutlierDetector(kind="mahalanobis").fit(rows["embedding"].astype(np.float64)),
        calibration=Calibration.fit(conf, correct, predicted),
        min_confidence=0.9,
    )


def summary(states: Any) -> str:
    """Outliers, far rows and the estimated accuracy of some day states (to compare the paths)."""
    from jobs.check.state import DayFindings

    merged = DayFindings.merge_all([s.findings for s in states])
    est = merged.estimate
    assert est is not None
    return f"outliers {merged.n_outliers:,}, far rows {est.n_far:,}, estimated accuracy {est.sum_p / est.n:.12f}"


def run(url: str, n: int) -> list[tuple[str, int, float, int, int]]:
    from jobs.check.windows import DAY
    from jobs.lake.partial import BatchJob, batch_states, merge_into
    from jobs.pushdown.engine import PushdownDays

    model, source = settings(url)
    ref = lakebench.reference()
    inputs = findings_inputs()
    segments = [(lakebench.START + i * DAY, lakebench.START + (i + 1) * DAY) for i in range(lakebench.DAYS)]
    out = []

    class Counted(PushdownDays):
        read = 0

        def _run(self, conn: Any, query: str, params: dict[str, Any], *, what: str = "other") -> list[Any]:
            rows = super()._run(conn, query, params, what=what)
            Counted.read += sum(size(v) for r in rows for v in r)
            return rows

    engine = Counted(model, source, {1}, 0.01)
    t0 = time.perf_counter()
    states = engine.states(1, segments, ref, inputs)
    seconds = time.perf_counter() - t0
    out.append(("pushdown", sum(s.n_rows for s in states.values()), seconds, Counted.read, engine.rows_read))
    print(f"pushdown: {summary(states.values())}", file=sys.stderr)
    print(f"pushdown result rows {dict(engine.reads)}", file=sys.stderr)
    print(f"pushdown seconds { ({k: round(v, 1) for k, v in engine.seconds.items()}) }", file=sys.stderr)
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
    t0, read, n_read = time.perf_counter(), 0, 0
    merged: dict[int, Any] = {}
    with pulled.connect().execution_options(stream_results=True, max_row_buffer=100_000) as conn:
        result = conn.execute(
            text(f"SELECT * FROM {TABLE} WHERE ts >= :a AND ts < :b"), {"a": segments[0][0], "b": segments[-1][1]}
        )
        names = list(result.keys())
        for i, chunk in enumerate(result.partitions(100_000)):
            read += sum(size(v) for r in chunk for v in r)
            n_read += len(chunk)
            frame = pd.DataFrame(chunk, columns=names)
            frame["embedding"] = [np.asarray(e) for e in frame["embedding"]]
            batch = pa.RecordBatch.from_pandas(frame.drop(columns=["embedding"]), preserve_index=False)
            batch = batch.append_column("embedding", pa.array(frame["embedding"].tolist(), pa.list_(pa.float64())))
            merge_into(merged, batch_states(job, batch, f"{segments[0][0]:%Y-%m-%d}", f"pull#{i}"))
    out.append(("pull", sum(s.n_rows for s in merged.values()), time.perf_counter() - t0, read, n_read))
    print(f"pull:     {summary(merged.values())}", file=sys.stderr)
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
    print(f"{'table rows':>12} {'path':>9} {'profiled':>11} {'seconds':>9} {'MB read':>9} {'result rows':>12}")
    for n, path, rows, seconds, read, n_read in results:
        print(f"{n:>12,} {path:>9} {rows:>11,} {seconds:>9.1f} {read / 1e6:>9.2f} {n_read:>12,}")


if __name__ == "__main__":
    main()
