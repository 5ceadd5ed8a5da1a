"""``driftkeeper alerts ...``: send a test alert to each channel; list recent deliveries."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from drift.errors import DriftkeeperError
from jobs.cli.context import app_context, cells, emit, handle_errors
from jobs.cli.options import JsonOption, ModelOption
from jobs.runner.exit_codes import EXIT_ERROR

alerts_app = typer.Typer(help="Alert channels: send a test alert, list recent deliveries.", no_args_is_help=True)


@alerts_app.command("test")
@handle_errors
def alerts_test(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Send a test alert to each configured channel; exit 1 if any failed or none is configured."""
    from jobs.alerts.notify import send_test

    state = app_context(ctx)
    settings = state.settings
    factory: sessionmaker[Session] | None
    try:  # the deliveries are recorded where the database is there; a test needs none
        factory = state.ready_session_factory(read_only=True)
    except DriftkeeperError:
        factory = None
    deliveries = send_test(settings, session_factory=factory)
    data = {"channels": [d.to_dict() for d in deliveries], "configured": list(settings.alerts.channels)}

    def render(console: Console) -> None:
        if not deliveries:
            console.print("no alert channel configured (alerts.webhook, alerts.slack, alerts.email)")
            return
        table = Table("channel", "result", "attempts", "seconds", "error")
        for d in deliveries:
            result = "delivered" if d.delivered else "failed"
            table.add_row(*cells(d.channel, result, d.attempts, f"{d.seconds:.2f}", d.error))
        console.print(table)

    emit(data, as_json, render)
    if not deliveries or not all(d.delivered for d in deliveries):
        raise typer.Exit(EXIT_ERROR)


@alerts_app.command("list")
@handle_errors
def alerts_list(
    ctx: typer.Context,
    model: ModelOption = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 20,
    failed: Annotated[bool, typer.Option("--failed", help="Only failed deliveries.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Recent alert deliveries: when, which channel, the message, delivered or the error."""
    from storage import alerts as store

    state = app_context(ctx)
    with state.ready_session_factory(read_only=True)() as session:
        records = store.recent_deliveries(session, limit=limit, failed_only=failed, model=model)
    data = {"deliveries": [r.to_dict() for r in records]}

    def render(console: Console) -> None:
        table = Table("when", "channel", "status", "result", "attempts", "message", "error")
        for r in records:
            result = "delivered" if r.delivered else "failed"
            when = f"{r.created_at:%Y-%m-%d %H:%M}"
            table.add_row(*cells(when, r.channel, r.status, result, r.attempts, r.summary, r.error))
        console.print(table)

    emit(data, as_json, render)
