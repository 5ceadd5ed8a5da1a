"""The review loop at scale: a page of the queue and one keyboard decision, with 100,000 flagged
predictions stored (and as many unflagged ones), on SQLite and, where reachable, PostgreSQL.

    .venv/bin/python bench/bench_review.py [--flagged 100000] [--repeats 30] [--postgres URL]

Targets (issue 14): a page of 48 in < 300 ms, a decision stored in < 100 ms. PostgreSQL runs in
a fresh schema that is dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, insert, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs.config import Settings
from jobs.review.queue import ReviewKind, decide, review_queue
from jobs.review.settings import ReviewSettings
from storage import repository
from storage.bulk import PredictionRows, insert_predictions, upsert_labels
from storage.engine import make_engine, make_session_factory
from storage.migrate import upgrade
from storage.models import DriftRun, FlaggedPrediction

CLASSES = ("cat", "dog", "other")
START = datetime(2026, 11, 2, tzinfo=UTC)  # 2026-W45
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def settings_for(url: str) -> Settings:
    base = Settings(
        database={"url": url},
        models=[
            {
                "name": "pets",
                "class_labels": list(CLASSES),
                "features": [{"name": "device", "type": "categorical"}],
                "confidence_threshold": 0.9,
            }
        ],
    )
    return base.model_copy(update={"review": ReviewSettings(control_share=0.01)})


def populate(url: str, flagged: int, seed: int = 0) -> None:
    """``flagged`` flagged predictions (half confidently wrong with a label, half confident
    outliers) and as many unflagged ones (a tenth below the confidence threshold), over 4 weeks."""
    engine = make_engine(url)
    upgrade(engine)
    factory = make_session_factory(engine)
    rng = np.random.default_rng(seed)
    n = 2 * flagged
    conf = np.where(np.arange(n) < flagged, rng.uniform(0.9, 1.0, n), rng.uniform(0.5, 1.0, n))
    predicted = rng.integers(0, 3, n)
    probs = np.full((n, 3), 0.0, np.float32)
    probs[np.arange(n), predicted] = conf
    ids = np.array([f"p{i:07d}" for i in range(n)], dtype=object)
    ts = pd.DatetimeIndex(START + pd.to_timedelta(rng.uniform(0, 28 * 86400, n), unit="s"))
    rows = PredictionRows(
        prediction_id=ids,
        ts=ts,
        model_version=np.ones(n, np.int64),
        predicted_label=np.array([CLASSES[k] for k in predicted], dtype=object),
        confidence=conf,
        probabilities=probs,
        numeric_features=None,
        categorical_features=pd.DataFrame({"device": rng.choice(["low", "mid", "high"], n)}),
        embedding=None,
        input_uri=np.array([f"images/{i}.png" for i in range(n)], dtype=object),
    )
    with factory.begin() as s:
        model = repository.ensure_model(s, "pets", "classification")
        repository.register_version(s, model, 1)
        insert_predictions(s.connection(), model.id, rows)
        run = DriftRun(
            model_id=model.id,
            version=1,
            window_start=START,
            window_end=START + timedelta(days=28),
            n_rows=n,
            drifted=True,
            engine="bench",
            created_at=START + timedelta(days=28),
        )
        s.add(run)
        s.flush()
        wrong = flagged // 2
        true = [CLASSES[(k + 1) % 3] for k in predicted[:wrong]]
        upsert_labels(s.connection(), model.id, ids[:wrong].tolist(), true, pd.DatetimeIndex([START] * wrong))
        records = [
            {
                "run_id": run.id,
                "model_id": model.id,
                "prediction_id": ids[i],
                "kind": "confidently_wrong" if i < wrong else "confident_outlier",
                "confidence": float(conf[i]),
                "score": None if i < wrong else float(rng.uniform(1, 5)),
                "predicted_label": CLASSES[predicted[i]],
                "true_label": true[i] if i < wrong else None,
                "input_uri": f"images/{i}.png",
            }
            for i in range(flagged)
        ]
        for start in range(0, len(records), 10_000):
            s.execute(insert(FlaggedPrediction), records[start : start + 10_000])
    settings = settings_for(url)
    from jobs.review.queue import review_queue as first_look

    first_look(factory, settings, "pets")  # the first look fills the queue table
    if engine.dialect.name == "postgresql":  # what autovacuum does on a server: index-only counts
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE review_queue_items"))
    engine.dispose()


def timings(call: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median and p95 milliseconds of ``call()`` over ``repeats`` runs (after one warm-up)."""
    call()
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - t0)
    return statistics.median(seconds) * 1000, float(np.percentile(seconds, 95)) * 1000


def bench(url: str, flagged: int, repeats: int) -> list[tuple[str, float, float]]:
    t0 = time.perf_counter()
    populate(url, flagged)
    print(
        f"  stored {2 * flagged} predictions ({flagged} flagged) in {time.perf_counter() - t0:.1f} s", file=sys.stderr
    )
    settings = settings_for(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    first = review_queue(factory, settings, "pets")
    out = [
        ("queue page of 48 (all kinds)", *timings(lambda: review_queue(factory, settings, "pets"), repeats)),
        (
            "queue page of 48 (week, outliers)",
            *timings(
                lambda: review_queue(factory, settings, "pets", week="2026-W46", kind=ReviewKind.CONFIDENT_OUTLIER),
                repeats,
            ),
        ),
        ("queue page 50 of 48", *timings(lambda: review_queue(factory, settings, "pets", page=50), repeats)),
    ]
    pending = iter(item.prediction_id for item in review_queue(factory, settings, "pets", per_page=repeats + 5).items)
    out.append(
        (
            "decide one item",
            *timings(lambda: decide(factory, settings, "pets", [next(pending)], "dog", reviewer="bench"), repeats),
        )
    )
    print(f"  queue total {first.total}", file=sys.stderr)
    engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flagged", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--postgres", default=PG_URL)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict[str, list[tuple[str, float, float]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        print("sqlite", file=sys.stderr)
        results["sqlite"] = bench(f"sqlite:///{folder}/review.db", args.flagged, args.repeats)
    schema = f"dk_bench_{uuid.uuid4().hex[:10]}"
    try:
        admin = create_engine(args.postgres, connect_args={"connect_timeout": 3})
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        print(f"PostgreSQL skipped: {type(exc).__name__}: {str(exc).splitlines()[0]}", file=sys.stderr)
    else:
        try:
            print("postgresql", file=sys.stderr)
            sep = "&" if "?" in args.postgres else "?"
            results["postgresql"] = bench(
                f"{args.postgres}{sep}options=-csearch_path%3D{schema}", args.flagged, args.repeats
            )
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
    if args.json:
        print(json.dumps({k: [list(r) for r in v] for k, v in results.items()}, indent=2))
        return
    print(f"{'backend':<11} {'operation':<36} {'median ms':>10} {'p95 ms':>9}")
    for backend, rows in results.items():
        for name, median, p95 in rows:
            print(f"{backend:<11} {name:<36} {median:>10.1f} {p95:>9.1f}")


if __name__ == "__main__":
    main()
