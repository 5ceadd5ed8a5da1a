"""``driftkeeper run <job>`` and ``driftkeeper serve`` from the command line, as cron or kubectl would run them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
import yaml
from typer.testing import CliRunner, Result

from jobs.check.reference import reference_from_window
from jobs.cli.context import app_context
from jobs.cli.run import run_app, serve_command
from jobs.report.weeks import week_window
from jobs.runner.scheduler import DAEMON_LEASE
from storage import leases, repository
from tests.jobs.logdata import make_rows, settings_for, write_jsonl
from tests.jobs.runner.test_scheduler import MODELS, OTHER, FakeJobs, job_runs

REPO = Path(__file__).resolve().parents[3]


def make_app() -> typer.Typer:
    """The commands as ``jobs.cli.commands`` registers them, under a root taking ``--config``."""
    app = typer.Typer()

    @app.callback()
    def root(ctx: typer.Context, config: Annotated[Path, typer.Option("--config", "-c")]) -> None:
        state = app_context(ctx)
        state.config_path = config
        ctx.call_on_close(state.close)

    app.add_typer(run_app, name="run")
    app.command("serve")(serve_command)
    return app


def write_config(path: Path, url: str, models: list[dict[str, Any]]) -> Path:
    # metrics on a free port: daemons of tests running side by side never contend for one
    config = {
        "database": {"url": url},
        "schedule": {"daemon_lease_seconds": 10},
        "metrics": {"port": 0},
        "models": models,
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture
def config(database, tmp_path: Path) -> Path:
    return write_config(tmp_path / "driftkeeper.yaml", database.url, MODELS)


@pytest.fixture
def fake_jobs(monkeypatch: pytest.MonkeyPatch) -> FakeJobs:
    return FakeJobs().install(monkeypatch)


def invoke(config: Path, *args: str) -> Result:
    return CliRunner().invoke(make_app(), ["-c", str(config), *args])


@pytest.mark.parametrize(
    ("drifted", "flags", "exit_code"),
    [
        pytest.param(True, ["--fail-on-drift"], 3, id="drift-fail-on-drift-exits-3"),
        pytest.param(True, [], 0, id="drift-exits-0"),
        pytest.param(False, ["--fail-on-drift"], 0, id="quiet-fail-on-drift-exits-0"),
    ],
)
def test_run_check_exit_codes(config: Path, fake_jobs: FakeJobs, drifted: bool, flags: list[str], exit_code: int):
    fake_jobs.drifted = drifted
    result = invoke(config, "run", "check", "-m", "digits", "--window", "36h", "--json", *flags)
    assert result.exit_code == exit_code, result.output
    data = json.loads(result.stdout)
    assert {k: data[k] for k in ("job", "model", "status", "exit_code")} == {
        "job": "check",
        "model": "digits",
        "status": "succeeded",
        "exit_code": exit_code,
    }
    assert data["data"]["drifted"] is drifted
    assert fake_jobs.calls[0][2]["window_days"] == 1.5


def test_real_ingest_then_check_of_shifted_data_exits_3(database, tmp_path: Path):
    """The real jobs end to end: `run ingest`, then `run check --fail-on-drift` on a drifted week."""
    ref_start, week_end = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 9, tzinfo=UTC)
    drop = tmp_path / "drop"
    write_jsonl(drop / "ref.jsonl", make_rows(1500, seed=0, start=ref_start, minutes_per_row=5))
    start = week_end - timedelta(days=7)
    week = make_rows(
        1400, seed=7, start_index=10_000, start=start, minutes_per_row=7.2, brightness_shift=0.3, logit_shift=2.0
    )
    write_jsonl(drop / "week.jsonl", week)
    settings = settings_for(database.url, {"kind": "files", "path": str(drop)})
    config = write_config(tmp_path / "driftkeeper.yaml", database.url, [settings.models[0].model_dump(mode="json")])
    with database.session_factory.begin() as s:
        repository.register_version(s, repository.ensure_model(s, "pets", "classification"), 1)

    ingested = invoke(config, "run", "ingest", "--json")
    assert ingested.exit_code == 0, ingested.output
    assert sum(r["inserted"] for r in json.loads(ingested.stdout)["data"]["runs"]) == 1500 + len(week)
    reference_from_window(database.session_factory, settings.models[0], 1, ref_start, ref_start + timedelta(days=7))
    checked = invoke(config, "run", "check", "-m", "pets", "--end", week_end.isoformat(), "--fail-on-drift", "--json")
    assert checked.exit_code == 3, checked.output
    data = json.loads(checked.stdout)["data"]
    assert data["drifted"] and data["retrain_worthy"] and data["runs"][0]["n_rows"] == len(week)
    assert [(job, status) for job, _, status, _ in job_runs(database.session_factory)] == [
        ("ingest", "succeeded"),
        ("check", "succeeded"),
    ]


def test_run_on_a_held_lease_exits_1_already_running(config: Path, database, fake_jobs: FakeJobs):
    leases.acquire(database.session_factory, "job:check:digits", OTHER, timedelta(minutes=5))
    result = invoke(config, "run", "check", "--model", "digits", "--json")
    assert result.exit_code == 1
    assert "already running" in result.stderr and json.loads(result.stdout)["status"] == "failed"
    assert fake_jobs.calls == []
    assert job_runs(database.session_factory)[0][:3] == ("check", "digits", "failed")


def test_run_ingest_human_output_and_history(config: Path, database, fake_jobs: FakeJobs):
    result = invoke(config, "run", "ingest")
    assert result.exit_code == 0, result.output
    assert "ingest (all models): succeeded" in result.stdout
    assert job_runs(database.session_factory) == [("ingest", None, "succeeded", None)]


def test_run_report_and_retrain_pass_their_options(config: Path, fake_jobs: FakeJobs):
    assert invoke(config, "run", "report", "-m", "pets", "--week", "2026-W38", "--json").exit_code == 0
    assert invoke(config, "run", "retrain", "-m", "digits", "--force", "--dry-run", "--json").exit_code == 0
    week_check, report, retrain = fake_jobs.calls
    assert week_check[:2] == ("check", "pets")  # the fake check stores nothing: the week is checked first
    assert (week_check[2]["window_days"], week_check[2]["end"]) == (7, week_window("2026-W38")[1])
    assert report[:2] == ("report", "pets") and report[2]["week"] == "2026-W38"
    assert retrain[:2] == ("retrain", "digits")
    assert (retrain[2]["force"], retrain[2]["dry_run"]) == (True, True)


def test_a_crashing_job_exits_1_with_the_error(config: Path, fake_jobs: FakeJobs):
    fake_jobs.fail = {"ingest": 1}  # labels is ingest of the labels stream
    result = invoke(config, "run", "labels", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"] == "RuntimeError: ingest crashed on purpose"


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["run", "check"], id="check-without-model"),
        pytest.param(["run", "check", "-m", "digits", "--window", "7x"], id="bad-window"),
        pytest.param(["run", "check", "-m", "digits", "--end", "yesterday"], id="bad-end"),
        pytest.param(["run", "report", "-m", "digits", "--week", "2026-38"], id="bad-week"),
        pytest.param(["run", "train"], id="unknown-job"),
    ],
)
def test_usage_errors_exit_2(config: Path, fake_jobs: FakeJobs, args: list[str]):
    assert invoke(config, *args).exit_code == 2
    assert fake_jobs.calls == []


def test_an_unknown_model_exits_1(config: Path):
    result = invoke(config, "run", "check", "-m", "nope", "--json")
    assert result.exit_code == 1 and "nope" in json.loads(result.stdout)["error"]


def test_serve_once_runs_every_job(config: Path, database, fake_jobs: FakeJobs):
    result = invoke(config, "serve", "--once")
    assert result.exit_code == 0, result.output
    assert sorted({r[0] for r in job_runs(database.session_factory)}) == ["check", "ingest", "labels", "report"]


def test_a_second_serve_exits_1_naming_the_other_daemon(config: Path, database, fake_jobs: FakeJobs):
    leases.acquire(database.session_factory, DAEMON_LEASE, OTHER, timedelta(minutes=2))
    result = invoke(config, "serve", "--no-wait", "--once")
    assert result.exit_code == 1
    assert "another driftkeeper daemon is running" in result.stderr and OTHER in result.stderr
    assert fake_jobs.calls == []


SERVE = """
from jobs.cli import commands as cli
from jobs.cli import run as cli_run
if not any(c.name == "serve" for c in cli.app.registered_commands):
    cli.app.command("serve")(cli_run.serve_command)
cli.main()
"""


def test_sigterm_stops_the_daemon_cleanly(database, tmp_path: Path):
    """``driftkeeper serve`` in a subprocess: it runs the missed jobs, SIGTERM -> exit 0, lease released."""
    config = write_config(tmp_path / "driftkeeper.yaml", database.url, [])
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1"}
    daemon = subprocess.Popen(
        [sys.executable, "-c", SERVE, "-c", str(config), "serve"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and daemon.poll() is None:
            runs = job_runs(database.session_factory)
            if {"ingest", "labels"} <= {job for job, _, status, _ in runs if status == "succeeded"}:
                break
            time.sleep(0.2)
        holder = leases.current_holder(database.session_factory, DAEMON_LEASE)
        assert holder is not None and f":{daemon.pid}:" in holder.holder
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate()
    assert daemon.returncode == 0, stderr
    assert "SIGTERM received" in stderr and "daemon stopped" in stderr
    assert leases.current_holder(database.session_factory, DAEMON_LEASE) is None
