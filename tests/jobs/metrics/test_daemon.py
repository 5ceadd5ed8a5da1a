"""A real daemon serves /metrics: scraped over HTTP, parsed with prometheus_client's parser."""

from __future__ import annotations

import logging
import re
import threading
import time

import httpx
import pytest

from jobs.check.figures import stored_figures
from jobs.config import Settings
from jobs.runner.scheduler import serve
from storage import repository
from storage.models import DriftRun
from tests.jobs.metrics.data import BAD_SUM_ROWS, UNKNOWN_LABEL_ROWS, checked_week
from tests.jobs.metrics.scrape import parse, value

SERVING = re.compile(r"metrics: serving (http://\S+/metrics)")


def _wait_for_url(caplog: pytest.LogCaptureFixture, thread: threading.Thread, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and thread.is_alive():
        for record in caplog.records:
            found = SERVING.search(record.getMessage())
            if found:
                return found.group(1)
        time.sleep(0.05)
    raise AssertionError(f"the daemon logged no metrics address: {[r.getMessage() for r in caplog.records]}")


def test_a_running_daemon_serves_the_checked_state(database, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    settings, outcome = checked_week(database, tmp_path, port=0)
    with database.session_factory.begin() as s:  # a retrain promoted version 2 since the check of version 1
        repository.register_version(s, repository.get_model(s, "pets"), 2)
        run = s.get(DriftRun, outcome.data["runs"][0]["run_id"])
        figures = stored_figures(run.figures)
    stop = threading.Event()
    codes: list[int] = []
    daemon = threading.Thread(
        target=lambda: codes.append(serve(database.session_factory, settings, stop=stop, install_signals=False))
    )
    daemon.start()
    try:
        url = _wait_for_url(caplog, daemon)
        assert url.startswith("http://127.0.0.1:") and not url.startswith("http://127.0.0.1:0/")
        response = httpx.get(url, timeout=10)
    finally:
        stop.set()
        daemon.join(timeout=30)
    assert codes == [0]
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = parse(response.text)

    assert value(samples, "driftkeeper_collect_success") == 1
    assert value(samples, "driftkeeper_champion_version", model="pets") == 2
    v1 = {"model": "pets", "version": "1"}
    assert value(samples, "driftkeeper_column_drifted", column="brightness", **v1) == 1
    assert value(samples, "driftkeeper_column_drifted", column="sharpness", **v1) == 0
    assert value(samples, "driftkeeper_drift_score", column="brightness", **v1) > value(
        samples, "driftkeeper_drift_score", column="sharpness", **v1
    )
    assert value(samples, "driftkeeper_verdict_level", **v1) == 1  # drifted, not retrain-worthy
    assert value(samples, "driftkeeper_accuracy_realized", **v1) == pytest.approx(figures.realized_performance.accuracy)
    assert value(samples, "driftkeeper_accuracy_estimated", **v1) == pytest.approx(
        figures.estimated_performance.estimate
    )
    assert value(samples, "driftkeeper_confidently_wrong_rate", **v1) == pytest.approx(figures.confidently_wrong.rate)
    assert value(samples, "driftkeeper_confident_outliers", **v1) == figures.confident_outliers.count
    assert value(samples, "driftkeeper_prediction_rows", model="pets") == 2900
    quarantined = {
        labels["reason"]: n for labels, n in samples["driftkeeper_quarantined_rows"] if labels["model"] == "pets"
    }
    assert quarantined == {
        "unknown label (allowed: cat, dog, other)": UNKNOWN_LABEL_ROWS,
        "probabilities sum to #, not # (±#)": BAD_SUM_ROWS,  # two sums, one reason
    }
    assert value(samples, "driftkeeper_window_blind", model="pets") == 0
    assert value(samples, "driftkeeper_job_last_run_succeeded", job_name="check", model="pets") == 1
    assert value(samples, "driftkeeper_job_last_success_timestamp_seconds", job_name="ingest", model="") > 0
    assert "process_cpu_seconds_total" in samples or "python_gc_objects_collected_total" in samples

    with pytest.raises(httpx.TransportError):  # serve returned: the endpoint is gone
        httpx.get(url, timeout=2)


def test_a_daemon_with_metrics_disabled_listens_nowhere(database, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    settings = Settings(database={"url": database.url}, metrics={"enabled": False})
    stop = threading.Event()
    threading.Timer(1.0, stop.set).start()
    assert serve(database.session_factory, settings, stop=stop, install_signals=False) == 0
    messages = [r.getMessage() for r in caplog.records]
    assert not any(SERVING.search(m) for m in messages) and any("/metrics disabled" in m for m in messages)
