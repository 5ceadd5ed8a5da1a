"""A real kill (SIGKILL) in the middle of an ingest, then a rerun: every row exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from sqlalchemy import func, select

from jobs.ingest.run import ingest
from storage import repository
from storage.models import IngestedFile, PredictionLog
from tests.jobs.logdata import make_rows, settings_for, write_jsonl

CHILD = """
import sys, time
sys.path.insert(0, {tests!r})
from tests.jobs.logdata import settings_for
from jobs.ingest.run import Ingestor
from storage.engine import make_engine, make_session_factory
settings = settings_for({url!r}, {{"kind": "files", "path": {drop!r}}}, batch_size=50)
factory = make_session_factory(make_engine({url!r}))
Ingestor(factory, settings, settings.models[0], before_commit=lambda stream, batch: time.sleep(0.05)).run()
"""


def _count(database):
    with database.session_factory() as s:
        return s.scalar(select(func.count()).select_from(PredictionLog))


def test_a_killed_ingest_resumes_without_duplicates_or_gaps(database, tmp_path):
    drop = tmp_path / "drop"
    settings = settings_for(database.url, {"kind": "files", "path": str(drop)}, batch_size=50)
    with database.session_factory.begin() as s:
        repository.register_version(s, repository.ensure_model(s, "pets", "classification"), 1)
    write_jsonl(drop / "a.jsonl", make_rows(2000))  # 40 batches of 50
    code = CHILD.format(tests=os.path.dirname(__file__), url=database.url, drop=str(drop))
    child = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 60
    while _count(database) < 300 and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    done = _count(database)
    assert 0 < done < 2000, "the kill should land mid-file"
    with database.session_factory() as s:
        record = s.scalars(select(IngestedFile)).one()
        assert record.rows_done == done and not record.completed  # progress committed with the rows
    report = ingest(database.session_factory, settings)[0]
    assert (report.inserted, report.duplicates) == (2000 - done, 0)
    with database.session_factory() as s:
        ids = s.scalars(select(PredictionLog.prediction_id)).all()
    assert sorted(ids) == [f"p{k:05d}" for k in range(2000)]
