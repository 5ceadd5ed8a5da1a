"""A check with nothing to look at says so loudly: exit code 5, the quarantine count and its reason."""

from __future__ import annotations

from datetime import timedelta

import yaml
from sqlalchemy import select
from typer.testing import CliRunner

from jobs.check.blind import blindness
from jobs.cli.commands import app
from jobs.ingest.run import ingest
from jobs.runner.execute import run_job
from jobs.runner.exit_codes import EXIT_BLIND
from storage import repository
from storage.clock import wall_clock
from storage.models import ModelVersion
from tests.jobs.logdata import START, make_rows, settings_for, write_jsonl


def _quarantined_week(database, tmp_path, n=120):
    """A week of rows logged by an unregistered version, all quarantined (breaker off), just now."""
    start = wall_clock() - timedelta(days=3)
    write_jsonl(tmp_path / "drop" / "a.jsonl", make_rows(n, version=3, start=start))
    settings = settings_for(
        database.url, {"kind": "files", "path": str(tmp_path / "drop")}, batch_size=50, max_reject_share=1
    )
    with database.session_factory.begin() as s:
        repository.register_version(s, repository.ensure_model(s, "pets", "classification"), 1)
    assert ingest(database.session_factory, settings)[0].quarantined == n
    return settings


def test_a_window_of_quarantined_rows_is_blind_and_run_check_exits_5(database, tmp_path):
    settings = _quarantined_week(database, tmp_path)
    outcome = run_job("check", database.session_factory, settings, "pets")
    assert outcome.exit_code == EXIT_BLIND
    assert outcome.data["blind"] is True
    (run,) = outcome.data["runs"]
    assert run["version"] is None  # no "v0"
    assert run["blind"]["reason"] == "no accepted predictions in the window"
    assert run["blind"]["quarantined"] == 120
    assert run["blind"]["main_reason"] == "model_version: unknown model version 3 (known: 1)"
    daemon_like = run_job("check", database.session_factory, settings, "pets", fail_on_blind=False)
    assert daemon_like.exit_code == 0  # what the finding is worth is the caller's choice


def test_check_fail_on_drift_exits_5_and_names_the_quarantine(database, tmp_path, monkeypatch):
    settings = _quarantined_week(database, tmp_path)
    config = tmp_path / "driftkeeper.yaml"
    data = settings.model_dump(mode="json")
    data["database"]["url"] = database.url
    config.write_text(yaml.safe_dump(data))
    monkeypatch.delenv("DRIFTKEEPER_CONFIG", raising=False)
    quiet = CliRunner().invoke(app, ["-c", str(config), "check", "-m", "pets"])
    assert quiet.exit_code == 0, quiet.output
    loud = CliRunner().invoke(app, ["-c", str(config), "check", "-m", "pets", "--fail-on-drift"])
    assert loud.exit_code == EXIT_BLIND, loud.output
    assert "BLIND" in loud.output and "120 rows quarantined" in loud.output
    assert "unknown model version 3" in loud.output
    assert " v0 " not in loud.output
    run = CliRunner().invoke(app, ["-c", str(config), "run", "check", "-m", "pets"])
    assert run.exit_code == EXIT_BLIND


def test_no_rows_of_the_champion_or_mostly_quarantined_is_blind(database, tmp_path):
    _quarantined_week(database, tmp_path, n=100)
    start, end = wall_clock() - timedelta(days=7), wall_clock() + timedelta(minutes=1)
    with database.session_factory() as s:
        model_id = repository.get_model(s, "pets").id
        mostly = blindness(s, model_id, {1: 40}, start, end)
        assert mostly is not None and mostly.reason == "most rows were quarantined (100 of 140)"
        assert blindness(s, model_id, {1: 400}, start, end) is None  # 100 of 500: watched
    with database.session_factory.begin() as s:  # version 2 became champion before the window
        model = repository.get_model(s, "pets")
        repository.register_version(s, model, 2)
        row = s.scalar(select(ModelVersion).where(ModelVersion.model_id == model.id, ModelVersion.version == 2))
        row.promoted_at = start - timedelta(days=1)
    with database.session_factory() as s:
        stale = blindness(s, model_id, {1: 400}, start, end)
        assert stale is not None
        assert stale.reason == "no accepted predictions of the champion (version 2) in the window"
        assert blindness(s, model_id, {1: 400, 2: 10}, start, end) is None


def test_old_windows_are_judged_by_the_champion_of_their_time(database, tmp_path):
    _quarantined_week(database, tmp_path, n=10)
    with database.session_factory() as s:
        model_id = repository.get_model(s, "pets").id
        # version 1 was promoted now (after this window), and the rows of the window are its
        assert blindness(s, model_id, {1: 200}, START, START + timedelta(days=7)) is None


def test_status_shows_the_quarantine_share_of_the_last_day(database, tmp_path, monkeypatch):
    settings = _quarantined_week(database, tmp_path, n=60)
    config = tmp_path / "driftkeeper.yaml"
    data = settings.model_dump(mode="json")
    data["database"]["url"] = database.url
    config.write_text(yaml.safe_dump(data))
    monkeypatch.delenv("DRIFTKEEPER_CONFIG", raising=False)
    result = CliRunner().invoke(app, ["-c", str(config), "status", "--json"])
    assert result.exit_code == 0, result.output
    import json

    (model,) = json.loads(result.output)["models"]
    assert (model["quarantined_last_day"], model["accepted_last_day"]) == (60, 0)
    assert model["quarantine_share_last_day"] == 1.0
    assert model["last_ts"] is None


def test_a_blind_check_alerts_the_webhook_through_the_job_runner(database, tmp_path):
    from tests.jobs.alerts.receivers import http_receiver

    settings = _quarantined_week(database, tmp_path)
    with http_receiver() as receiver:
        data = settings.model_dump()
        data["alerts"] = {"webhook": {"url": receiver.url + "/hook"}, "backoff_seconds": 0.01}
        alerting = type(settings)(**data)
        outcome = run_job("check", database.session_factory, alerting, "pets")
        assert outcome.exit_code == EXIT_BLIND
        (request,) = receiver.requests
    body = request.json()
    assert body["status"] == "firing"
    (alert,) = body["alerts"]
    assert alert["labels"]["model"] == "pets"
    assert "120" in json_text(alert["annotations"])  # the quarantine count reaches the owner


def json_text(value) -> str:
    import json

    return json.dumps(value)
