"""The check job on stored rows: the first weekly check (profiles seven days from the rows and
keeps them) against the next ones (merge seven stored daily profiles), with findings, then the
weekly report of that week (stored runs only), without and with evidently's detail page.

    .venv/bin/python bench/bench_check.py --rows 100000,1000000

Rows are written with the real bulk path (SQLite); the reference is the first day's rows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
import bench_ingest as data

START = datetime(2026, 11, 1, tzinfo=UTC)  # a Sunday: the reference day; the checked week is 2026-W45
WEEK = "2026-W45"


def _timed(call, profile: bool) -> float:  # type: ignore[no-untyped-def]
    """Seconds ``call()`` took; with ``profile``, its top functions by cumulative time on stderr."""
    if not profile:
        t0 = time.perf_counter()
        call()
        return time.perf_counter() - t0
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.runcall(call)
    seconds = time.perf_counter() - t0
    pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(25)
    return seconds


def run_checks(url: str, folder: Path, profile: bool = False) -> tuple[float, float, float, float, float]:
    """Seconds of the first and the next weekly check, of the week's report without and with
    evidently's detail page, and the process's peak RSS in MB."""
    import jobs.check.job as check_module
    from jobs.config import Settings
    from jobs.report.job import weekly_report
    from storage.engine import make_engine, make_session_factory

    config = data.settings_dict(url, folder)
    config["paths"] = {"reports_dir": str(folder.parent / "reports")}
    settings = Settings(**config)
    factory = make_session_factory(make_engine(url))
    end = START + timedelta(days=8)

    def weekly() -> None:
        check_module.check(factory, settings, "bench", window_days=7, end=end, now=end + timedelta(hours=1))

    def report(evidently: bool) -> None:
        weekly_report(factory, settings, "bench", week=WEEK, now=end + timedelta(hours=1), evidently=evidently)

    first = _timed(weekly, profile)
    second = _timed(weekly, profile)
    plain = _timed(lambda: report(False), profile)
    detailed = _timed(lambda: report(True), False)
    return first, second, plain, detailed, data.peak_rss_mb()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="100000,1000000")
    parser.add_argument("--profile", action="store_true", help="cProfile each check (top functions on stderr)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_checks(args.child[0], Path(args.child[1]), args.profile)))
        return
    from jobs.check.reference import reference_from_window
    from jobs.config import Settings
    from jobs.ingest.validate import validate_predictions
    from storage import bulk, repository
    from storage.engine import make_engine, make_session_factory
    from storage.migrate import upgrade

    header = ("rows", "write s", "first check s", "next check s", "report s", "+evidently s", "rows/s (1st)", "RSS MB")
    widths = (9, 8, 14, 13, 9, 13, 13, 7)
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)))
    for n in [int(r) for r in args.rows.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "src"
            data.write_source(folder, n)
            url = f"sqlite:///{tmp}/check.db"
            settings = Settings(**data.settings_dict(url, folder))
            model = settings.models[0]
            engine = make_engine(url)
            upgrade(engine)
            factory = make_session_factory(engine)
            with factory.begin() as s:
                model_id = repository.ensure_model(s, "bench", "classification").id
                repository.register_version(s, repository.ensure_model(s, "bench", "classification"), 1)
            started = time.perf_counter()
            offset = 0
            for path in sorted(folder.glob("*.parquet")):
                frame = pd.read_parquet(path)
                # spread the rows over 8 days: day 0 is the reference, days 1-7 the checked week
                frame["timestamp"] = START + pd.to_timedelta(
                    (np.arange(offset, offset + len(frame)) * (8 * 86400 / n)).astype("int64"), unit="s"
                )
                offset += len(frame)
                for chunk in range(0, len(frame), 50_000):
                    part = frame.iloc[chunk : chunk + 50_000]
                    rows, _ = validate_predictions(part, [str(i) for i in range(len(part))], model, {}, {1}, 0.01)
                    with factory.begin() as s:
                        bulk.insert_predictions(s.connection(), model_id, rows)
            write = time.perf_counter() - started
            reference_from_window(factory, model, 1, START, START + timedelta(days=1))
            engine.dispose()
            child = [sys.executable, __file__, "--child", url, str(folder), *(["--profile"] if args.profile else [])]
            out = subprocess.run(  # the checks in a fresh process: its peak RSS is the check's own
                child, check=True, capture_output=True, text=True
            )
            if args.profile:
                print(out.stderr, file=sys.stderr)
            first, second, plain, detailed, peak = json.loads(out.stdout.strip().splitlines()[-1])
            rate = n * 7 / 8 / first
            print(
                f"{n:>9,} {write:>8.1f} {first:>14.1f} {second:>13.2f} {plain:>9.2f} {detailed:>13.2f}"
                f" {rate:>13,.0f} {peak:>7,.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
