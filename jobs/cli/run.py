"""``driftkeeper run <job>`` (one run for cron, Airflow or Kubernetes) and ``driftkeeper serve`` (the daemon).

Both go through :func:`jobs.runner.execute.run_job`: the same leases, the same job-run history.
Exit codes: 0 done, 1 error (also "already running"), 2 usage, 3 drift (only with ``--fail-on-drift``).
With ``metrics.textfile_dir`` set, each ``run`` then writes the metrics for node_exporter's textfile
collector (a failure to write them is logged and leaves the exit code alone).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from jobs.cli.context import app_context, emit, handle_errors
from jobs.cli.monitor import parse_time, parse_window
from jobs.cli.options import JsonOption, ModelOption
from jobs.report.weeks import is_iso_week
from jobs.runner.exit_codes import EXIT_ERROR
from storage.statuses import JobStatus

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from jobs.config import Settings

log = logging.getLogger(__name__)

RequiredModel = Annotated[str, typer.Option("--model", "-m", help="The model.")]

run_app = typer.Typer(
    help="Run one job now and exit, for cron, Airflow or Kubernetes: 0 done, 1 error, 2 usage, 3 drift.",
    no_args_is_help=True,
)


def _run(ctx: typer.Context, name: str, model: str | None, as_json: bool, **options: Any) -> None:
    from jobs.runner.execute import run_job

    state = app_context(ctx)
    session_factory = state.ready_session_factory()
    outcome = run_job(name, session_factory, state.settings, model, **options)
    if state.settings.metrics.textfile_dir is not None:
        _write_metrics(session_factory, state.settings)
    result = outcome.to_dict()

    def render(console: Console) -> None:
        line = Text(f"{name} {model or '(all models)'}: {outcome.status}")
        if outcome.status == JobStatus.SUCCEEDED and outcome.data.get("drifted"):
            line.append(" DRIFT", style="bold red")
        console.print(line)

    emit(result, as_json, render)
    if outcome.error:
        Console(stderr=True).print(f"[bold red]error:[/] {escape(outcome.error)}", highlight=False, soft_wrap=True)
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


def _write_metrics(session_factory: sessionmaker[Session], settings: Settings) -> None:
    """The textfile for node_exporter (metrics.textfile_dir); a failure is logged, the exit code stays the job's."""
    from jobs.metrics.export import write_textfile

    try:
        path = write_textfile(session_factory, settings)
    except Exception as exc:
        log.error("metrics: could not write the textfile in %s: %s", settings.metrics.textfile_dir, exc)
        return
    log.info("metrics: wrote %s", path)


@run_app.command("ingest")
@handle_errors
def run_ingest(ctx: typer.Context, model: ModelOption = None, as_json: JsonOption = False) -> None:
    """Pull new prediction logs and labels from their sources."""
    _run(ctx, "ingest", model, as_json)


@run_app.command("labels")
@handle_errors
def run_labels(ctx: typer.Context, model: ModelOption = None, as_json: JsonOption = False) -> None:
    """Pull new labels only (they arrive late)."""
    _run(ctx, "labels", model, as_json)


@run_app.command("check")
@handle_errors
def run_check(
    ctx: typer.Context,
    model: RequiredModel,
    window: Annotated[str, typer.Option(help="Window length, e.g. 7d, 36h, 2w (default: drift.window_days).")] = "",
    end: Annotated[str | None, typer.Option(help="Window end (ISO-8601, default now).")] = None,
    fail_on_drift: Annotated[bool, typer.Option("--fail-on-drift", help="Exit with code 3 on drift.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Check the latest window of a model against its references."""
    window_days = parse_window(window) if window else None
    _run(
        ctx, "check", model, as_json, fail_on_drift=fail_on_drift, window_days=window_days, end=parse_time(end, "--end")
    )


@run_app.command("report")
@handle_errors
def run_report(
    ctx: typer.Context,
    model: RequiredModel,
    week: Annotated[str | None, typer.Option(help="ISO week, e.g. 2026-W38 (default: the last complete week).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Write the weekly HTML report and summary.json of a model."""
    if week is not None and not is_iso_week(week):
        raise typer.BadParameter("use an ISO week like 2026-W38", param_hint="--week")
    _run(ctx, "report", model, as_json, week=week)


@run_app.command("retrain")
@handle_errors
def run_retrain(
    ctx: typer.Context,
    model: RequiredModel,
    force: Annotated[bool, typer.Option("--force", help="Skip the trigger policy (never the lease).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would happen and why.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Retrain when the policy says so: train, gate, export, promote (exit 1 if the trainer fails)."""
    _run(ctx, "retrain", model, as_json, force=force, dry_run=dry_run)


@handle_errors
def serve_command(
    ctx: typer.Context,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="If another daemon runs: wait for its lease, or exit 1.")
    ] = False,
    once: Annotated[bool, typer.Option("--once", help="Run every job once, then exit (tests, kubectl run).")] = False,
) -> None:
    """Run the scheduled jobs until SIGTERM; one daemon per database does the work."""
    from drift.errors import LeaseHeldError
    from jobs.runner.scheduler import DAEMON_LEASE, serve

    state = app_context(ctx)
    try:
        code = serve(state.ready_session_factory(), state.settings, wait=wait, once=once)
    except LeaseHeldError as exc:
        if exc.name != DAEMON_LEASE:
            raise
        until = f" until {exc.until}" if exc.until else ""
        message = f"another driftkeeper daemon is running ({exc.holder}{until}); use --wait to wait for it"
        Console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_ERROR) from exc
    if code:
        raise typer.Exit(code)
