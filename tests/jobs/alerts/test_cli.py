"""``driftkeeper alerts test`` and ``alerts list``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from jobs.cli.alerts import alerts_app
from jobs.cli.context import app_context
from tests.jobs.alerts.outcomes import FAST, MODELS, SECRET
from tests.jobs.alerts.receivers import HttpReceiver, closed_port
from tests.jobs.alerts.test_webhook import verify_standard_webhook


def make_app() -> typer.Typer:
    """``alerts`` as ``jobs.cli.commands`` registers it, under a root taking ``--config``."""
    from jobs.cli import commands

    if any(group.name == "alerts" for group in commands.app.registered_groups):
        return commands.app
    app = typer.Typer()

    @app.callback()
    def root(ctx: typer.Context, config: Annotated[Path, typer.Option("--config", "-c")]) -> None:
        state = app_context(ctx)
        state.config_path = config
        ctx.call_on_close(state.close)

    app.add_typer(alerts_app, name="alerts")
    return app


def write_config(tmp_path: Path, url: str, alerts: dict[str, Any]) -> Path:
    path = tmp_path / "driftkeeper.yaml"
    path.write_text(yaml.safe_dump({"database": {"url": url}, "alerts": {**FAST, **alerts}, "models": MODELS}))
    return path


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


def test_alerts_test_sends_to_each_channel_and_lists_the_deliveries(
    cli: CliRunner, database, receiver: HttpReceiver, tmp_path: Path, monkeypatch
):
    monkeypatch.setenv("DRIFTKEEPER__ALERTS__WEBHOOK__SECRET", SECRET)
    alerts = {"webhook": {"url": f"{receiver.url}/hook"}, "slack": {"webhook_url": f"{receiver.url}/slack/s3cr3t"}}
    config = write_config(tmp_path, database.url, alerts)
    result = cli.invoke(make_app(), ["-c", str(config), "alerts", "test", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [(c["channel"], c["delivered"]) for c in data["channels"]] == [("webhook", True), ("slack", True)]
    hook, slack = receiver.requests
    assert verify_standard_webhook(hook, SECRET)
    assert hook.json()["alerts"][0]["labels"]["alertname"] == "DriftkeeperTest"
    assert "test alert" in slack.json()["text"]
    listed = cli.invoke(make_app(), ["-c", str(config), "alerts", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert {d["channel"] for d in json.loads(listed.stdout)["deliveries"]} == {"webhook", "slack"}
    table = cli.invoke(make_app(), ["-c", str(config), "alerts", "list"])
    assert table.exit_code == 0 and "webhook" in table.stdout and "s3cr3t" not in table.stdout


def test_alerts_test_exits_1_when_a_channel_fails(cli: CliRunner, receiver: HttpReceiver, tmp_path: Path):
    alerts = {
        "webhook": {"url": f"{receiver.url}/hook"},
        "slack": {"webhook_url": f"http://127.0.0.1:{closed_port()}/services/T/B/t0ken"},
    }
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'absent.db'}", alerts)  # no database: not recorded
    result = cli.invoke(make_app(), ["-c", str(config), "alerts", "test"])
    assert result.exit_code == 1
    assert "delivered" in result.stdout and "failed" in result.stdout and "t0ken" not in result.output


def test_alerts_test_exits_1_with_no_channel(cli: CliRunner, tmp_path: Path):
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'dk.db'}", {})
    result = cli.invoke(make_app(), ["-c", str(config), "alerts", "test", "--json"])
    assert result.exit_code == 1 and json.loads(result.stdout)["channels"] == []
