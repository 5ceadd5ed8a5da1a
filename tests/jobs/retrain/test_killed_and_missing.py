"""A killed retrain holds nothing, is marked killed, and never starts the cooldown; a retrain
with nothing to train from is refused by the plan (the dry run says so), even with --force."""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from jobs.config import Settings
from jobs.retrain.job import lease_name, plan_retrain
from jobs.runner.execute import run_job
from storage import leases, repository, retrains
from storage.models import JobRun, RetrainRun
from storage.statuses import JobStatus, RetrainDecision

NOW = datetime(2026, 11, 20, tzinfo=UTC)


def _dead_holder() -> str:
    """The holder id of a process of this host that has exited."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    return f"{socket.gethostname()}:{int(done.stdout)}:deadbeef"


def _settings(database, **retrain) -> Settings:
    model = {"name": "pets", "class_labels": ["cat", "dog"], "retrain": {"min_new_labels": 1, **retrain}}
    return Settings(database={"url": database.url}, models=[model])


def test_a_dead_holder_on_this_host_holds_nothing(database):
    name = lease_name("pets")
    assert leases.acquire(database.session_factory, name, _dead_holder(), timedelta(minutes=60))
    assert leases.current_holder(database.session_factory, name) is None
    settings = _settings(database)
    with database.session_factory.begin() as s:
        repository.register_version(s, repository.ensure_model(s, "pets", "classification"), 1)
    plan = plan_retrain(database.session_factory, settings, "pets", force=True, now=NOW)
    assert not any("already in flight" in r for r in plan.reasons), plan.reasons


def test_a_version_without_a_model_file_is_refused_by_the_plan_even_forced(database, tmp_path):
    settings = _settings(database, training_data=str(tmp_path / "missing.npz"))
    with database.session_factory.begin() as s:
        repository.register_version(s, repository.ensure_model(s, "pets", "classification"), 3)
    plan = plan_retrain(database.session_factory, settings, "pets", force=True, now=NOW)
    assert plan.should_run is False
    assert any("the champion has no model file to start from" in r for r in plan.reasons)
    assert any("missing.npz does not exist" in r for r in plan.reasons)
    outcome = run_job("retrain", database.session_factory, settings, "pets", force=True, dry_run=True, now=NOW)
    assert outcome.data["decision"] == "skipped" and outcome.exit_code == 0
    with database.session_factory() as s:
        assert s.scalar(select(RetrainRun.id)) is None  # nothing started: no cooldown, no labels used up


def test_killed_runs_are_marked_and_never_start_the_cooldown(database):
    with database.session_factory.begin() as s:
        model = repository.ensure_model(s, "pets", "classification")
        s.add(JobRun(job="ingest", model=None, started_at=NOW, status=JobStatus.RUNNING, counts={}))
        retrains.start_retrain_run(
            s, model.id, started_at=NOW, trigger="check", drift_run_id=None, parent_version=1, version=2, reasons=[]
        )
        model_id = model.id
    outcome = run_job("ingest", database.session_factory, Settings(database={"url": database.url}))
    assert outcome.status == "succeeded"
    with database.session_factory.begin() as s:
        statuses = [r.status for r in s.scalars(select(JobRun).order_by(JobRun.id))]
        assert statuses == ["killed", "succeeded"]
        assert retrains.last_retrain_start(s, model_id) == NOW  # a running one counts while it may be alive
        assert retrains.mark_killed(s, model_id, NOW + timedelta(hours=1)) == 1
    with database.session_factory() as s:
        run = s.scalars(select(RetrainRun)).one()
        assert run.decision == RetrainDecision.KILLED and "died" in (run.error or "")
        assert retrains.last_retrain_start(s, model_id) is None  # killed: no cooldown
