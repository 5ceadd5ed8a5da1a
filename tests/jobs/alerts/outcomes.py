"""Settings pointing at the test receivers, and job outcomes built as run_job builds them."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

from jobs.config import Settings
from jobs.runner.execute import JobOutcome
from storage.statuses import JobStatus
from tests.jobs.alerts.receivers import HttpReceiver

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
MODELS = [{"name": "digits", "class_labels": ["0", "1"]}]
NOW = datetime(2026, 9, 16, 3, 0, tzinfo=UTC)  # a Wednesday of 2026-W38
WINDOW_END = datetime(2026, 9, 16, 0, 0, tzinfo=UTC)
FAST = {"timeout_seconds": 2, "retries": 2, "backoff_seconds": 0.01, "cooldown_minutes": 60}


def settings(url: str = "sqlite://", **alerts: Any) -> Settings:
    return Settings(database={"url": url}, alerts={**FAST, **alerts}, models=MODELS)


def webhook_settings(receiver: HttpReceiver, url: str = "sqlite://", **alerts: Any) -> Settings:
    return settings(url, webhook={"url": f"{receiver.url}/hook", "secret": SECRET}, **alerts)


def run(
    *,
    drifted: bool = False,
    worthy: bool = False,
    end: datetime = WINDOW_END,
    model: str = "digits",
    blind: dict[str, Any] | None = None,
    reasons: tuple[str, ...] = (),
    skipped: str | None = None,
) -> dict[str, Any]:
    return {
        "model": model,
        "version": 1,
        "run_id": 7,
        "window_start": (end - timedelta(days=7)).isoformat(),
        "window_end": end.isoformat(),
        "n_rows": 500,
        "drifted": drifted,
        "outputs_drifted": drifted,
        "embedding_drifted": None,
        "retrain_worthy": worthy,
        "reasons": list(reasons),
        "skipped": skipped,
        "figures": {},
        "flagged": [],
        "result": None,
        "blind": blind,
    }


def check(*runs: dict[str, Any], model: str = "digits") -> JobOutcome:
    data = {
        "model": model,
        "drifted": any(r["drifted"] for r in runs),
        "retrain_worthy": any(r["retrain_worthy"] for r in runs),
        "blind": any(r["blind"] for r in runs),
        "runs": list(runs),
    }
    return JobOutcome(job="check", model=model, status=JobStatus.SUCCEEDED, exit_code=0, data=data)


def retrain(decision: str, *, run_id: int = 3, version: int | None = 2, model: str = "digits") -> JobOutcome:
    data = {
        "model": model,
        "decision": decision,
        "run_id": run_id,
        "version": version,
        "parent": 1,
        "reasons": ["accuracy +0.041 on the recent slice"],
        "metrics": {},
        "export": {},
        "plan": {},
    }
    failed = decision == "failed"
    return JobOutcome(
        job="retrain",
        model=model,
        status=JobStatus.FAILED if failed else JobStatus.SUCCEEDED,
        exit_code=1 if failed else 0,
        data=data,
        error="trainer failed" if failed else None,
    )


def failed_job(job: str = "ingest", model: str | None = None, error: str = "source rejected: bad rows") -> JobOutcome:
    return JobOutcome(job=job, model=model, status=JobStatus.FAILED, exit_code=4, error=error)


def succeeded_job(job: str = "ingest", model: str | None = None) -> JobOutcome:
    return JobOutcome(job=job, model=model, status=JobStatus.SUCCEEDED, exit_code=0, data={"runs": []})
