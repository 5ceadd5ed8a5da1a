"""The ``driftkeeper`` command line (Typer). Exit codes: 0 done, 1 error, 2 usage, 3 drift."""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from jobs.cli.context import app_context, cells, emit, handle_errors, run_job_or_exit
from jobs.cli.options import ConfigAnywhereGroup, JsonOption, ModelOption
from jobs.config import DEFAULT_CONFIG_NAME
from jobs.runner.exit_codes import EXIT_ERROR
from jobs.runner.logs import configure_logging
from storage.clock import wall_clock

app = typer.Typer(
    cls=ConfigAnywhereGroup,
    help="driftkeeper keeps production ML models honest.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
)
db_app = typer.Typer(help="Database schema and housekeeping.", no_args_is_help=True)
app.add_typer(db_app, name="db")

log = logging.getLogger("driftkeeper")


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Config file (default: $DRIFTKEEPER_CONFIG, ./driftkeeper.yaml)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    state = app_context(ctx)
    state.config_path = config
    state.verbose = verbose
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    configure_logging(verbose)
    ctx.call_on_close(state.close)


@app.command()
@handle_errors
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the example config.")] = Path(DEFAULT_CONFIG_NAME),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented example config file."""
    if path.exists() and not force:
        typer.echo(f"{path} exists; use --force to overwrite", err=True)
        raise typer.Exit(EXIT_ERROR)
    path.write_text(resources.files("jobs").joinpath("example_config.yaml").read_text(encoding="utf-8"))
    typer.echo(f"wrote {path}")


@db_app.command("upgrade")
@handle_errors
def db_upgrade(ctx: typer.Context, revision: str = "head", as_json: JsonOption = False) -> None:
    """Apply schema migrations (creates the SQLite file under ./var/ if needed)."""
    from storage.migrate import upgrade

    state = app_context(ctx)
    now = upgrade(state.engine, revision)
    emit(
        {"database": state.database, "revision": now}, as_json, lambda c: c.print(f"{state.database} at revision {now}")
    )


@db_app.command("prune")
@handle_errors
def db_prune(
    ctx: typer.Context,
    model: ModelOption = None,
    days: Annotated[int | None, typer.Option(help="Override ingest.retention_days.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Delete unlabelled raw prediction rows older than the retention period."""
    from storage.retention import prune_models

    state = app_context(ctx)
    keep = days if days is not None else state.settings.ingest.retention_days
    if keep is None:
        emit(
            {"pruned": {}, "reason": "no retention configured"},
            as_json,
            lambda c: c.print("no retention configured (ingest.retention_days)"),
        )
        return
    cutoff = wall_clock() - timedelta(days=keep)
    factory = state.ready_session_factory()
    pruned = prune_models(factory, [(m.name, m.task) for m in state.settings.select_models(model)], cutoff)
    emit(
        {"pruned": pruned, "cutoff": cutoff.isoformat()},
        as_json,
        lambda c: c.print(f"pruned {pruned} (older than {cutoff:%Y-%m-%d})"),
    )


@app.command()
@handle_errors
def ingest(
    ctx: typer.Context,
    model: ModelOption = None,
    stream: Annotated[str | None, typer.Option(help="predictions or labels (default: both).")] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Only compare the sources' columns with the config; read no row.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Pull prediction logs and labels from their sources, validating every row."""
    from jobs.ingest.run import STREAMS
    from jobs.runner.progress import progress

    if stream is not None and stream not in STREAMS:
        raise typer.BadParameter(f"must be one of {', '.join(STREAMS)}", param_hint="--stream")
    if check:
        from jobs.cli.preflight import preflight_command

        preflight_command(ctx, model, (stream,) if stream else STREAMS, as_json)
        return
    jobs = {"predictions": "ingest", "labels": "labels"}
    runs: list[dict[str, Any]] = []
    with progress("ingest", enabled=not as_json) as bar:
        for name in [jobs[stream]] if stream else ["ingest", "labels"]:  # one job per stream, as the daemon runs them
            runs += run_job_or_exit(ctx, name, model, progress=bar).data["runs"]

    def render(console: Console) -> None:
        table = Table("model", "stream", "read", "new", "duplicates", "quarantined", "files", "seconds")
        for r in runs:
            table.add_row(
                *cells(
                    r["model"],
                    r["stream"],
                    f"{r['rows_read']:,}",
                    f"{r['inserted']:,}",
                    f"{r['duplicates']:,}",
                    f"{r['quarantined']:,}",
                    f"{r['files_taken']} new, {r['files_skipped']} seen",
                    f"{r['seconds']:.2f}",
                )
            )
        console.print(table)

    emit({"runs": runs}, as_json, render)


@app.command()
@handle_errors
def status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Models, versions, rows, quarantine counts and the last job runs."""
    from storage import repository

    state = app_context(ctx)
    with state.ready_session_factory(read_only=True)() as session:
        models = [repository.model_status(session, m) for m in repository.list_models(session)]
        runs = repository.recent_runs(session, limit=10)
        run_dicts: list[dict[str, Any]] = [
            {
                "id": r.id,
                "job": r.job,
                "model": r.model,
                "status": r.status,
                "started_at": r.started_at.isoformat(),
                "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                "counts": r.counts,
                "error": r.error,
            }
            for r in runs
        ]
    data = {"database": state.database, "models": [m.to_dict() for m in models], "recent_runs": run_dicts}

    def render(console: Console) -> None:
        console.print(f"database: {state.database}")
        table = Table(
            "model",
            "task",
            "champion",
            "versions",
            "predictions",
            "labels",
            "quarantined",
            "last accepted",
            "quarantined, 24 h",
        )
        for m in models:
            table.add_row(
                *cells(
                    m.name,
                    m.task,
                    str(m.champion or "-"),
                    ",".join(map(str, m.versions)) or "-",
                    f"{m.predictions:,}",
                    f"{m.labels:,}",
                    f"{m.quarantined:,}",
                    f"{m.last_ts:%Y-%m-%d %H:%M}" if m.last_ts else "-",
                    _share(m.quarantine_share_last_day, m.quarantined_last_day),
                )
            )
        console.print(table)
        runs_table = Table("run", "job", "model", "status", "started", "counts", "error", title="last runs")
        for r in run_dicts:
            runs_table.add_row(
                *cells(
                    str(r["id"]),
                    r["job"],
                    r["model"] or "-",
                    r["status"],
                    r["started_at"][:19],
                    ", ".join(f"{k}={v}" for k, v in r["counts"].items()),
                    (r["error"] or "")[:60],
                )
            )
        console.print(runs_table)

    emit(data, as_json, render)


@app.command()
@handle_errors
def demo(
    ctx: typer.Context,
    var_dir: Annotated[Path, typer.Option(help="Where the demo keeps everything.")] = Path("var"),
    weeks: Annotated[int, typer.Option(min=2, max=52, help="Simulated weeks of production.")] = 6,
    rows_per_week: Annotated[int, typer.Option(min=100, help="Predictions per simulated week.")] = 2000,
    drift_from_week: Annotated[int, typer.Option(min=2, help="First week whose inputs drift.")] = 3,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Training epochs of the baseline (8 digits, 5 photos).")
    ] = None,
    scenario: Annotated[
        str, typer.Option(help="digits (the small CNN) or photos (a MobileNetV3Small photo classifier, RGB 96x96).")
    ] = "digits",
    as_json: JsonOption = False,
) -> None:
    """Run the whole story on the embedded default: train, simulate production, ingest, check."""
    from jobs.demo.run import DemoOptions, run_demo

    if scenario not in ("digits", "photos"):
        raise typer.BadParameter("must be digits or photos", param_hint="--scenario")
    options = DemoOptions(
        var_dir=var_dir, weeks=weeks, rows_per_week=rows_per_week, drift_from_week=drift_from_week,
        epochs=epochs or (5 if scenario == "photos" else 8), scenario=scenario,
    )  # fmt: skip
    console = Console(stderr=as_json)
    if not app_context(ctx).verbose:
        logging.getLogger("jobs").setLevel(logging.WARNING)  # the demo narrates; job logs with -v
    report = run_demo(options, echo=lambda line: console.print(line, markup=False, highlight=False))
    if as_json:
        emit(report.to_dict(), True)
        return
    console.print(f"\ndatabase: {report.database}")
    console.print(f"model:    {report.model_path}")
    if report.export_dir:
        console.print(f"TFLite:   {report.export_dir}")
    console.print(f"reports:  {report.reports_index}")
    if var_dir == Path("var"):
        console.print("next:     driftkeeper init   (a driftkeeper.yaml matching the demo), then")
        name = scenario
        console.print(f"          driftkeeper status | errors -m {name} | models list -m {name} | report -m {name}")


def _share(share: float | None, rows: int) -> str:
    return "-" if share is None else f"{share:.0%} ({rows:,} rows)"


def _review_root(
    ctx: typer.Context,
    model: ModelOption = None,
    host: Annotated[str | None, typer.Option("--host", help="Address (default: review.host, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (default: review.port, 8765).")] = None,
) -> None:
    """Label flagged predictions from the keyboard in a local web app (no subcommand), or export,
    import and follow the review queue."""
    from jobs.cli.review_serve import review_serve_command

    if ctx.invoked_subcommand is None:
        review_serve_command(ctx, model, host, port)


def _register_subcommands() -> None:
    from jobs.cli import alerts as cli_alerts
    from jobs.cli import models as cli_models
    from jobs.cli import monitor as cli_drift
    from jobs.cli import quarantine as cli_quarantine
    from jobs.cli import review as cli_review
    from jobs.cli import run as cli_run

    app.add_typer(cli_models.models_app, name="models")
    app.add_typer(cli_alerts.alerts_app, name="alerts")
    app.add_typer(
        cli_review.review_app, name="review", callback=_review_root, invoke_without_command=True, no_args_is_help=False
    )
    app.add_typer(cli_quarantine.quarantine_app, name="quarantine", no_args_is_help=True)
    app.add_typer(cli_drift.reference_app, name="reference")
    app.command("compare")(cli_drift.compare_command)
    app.command("check")(cli_drift.check_command)
    app.command("errors")(cli_drift.errors_command)
    app.command("retrain")(cli_drift.retrain_command)
    app.command("report")(cli_drift.report_command)
    app.add_typer(cli_run.run_app, name="run")
    app.command("serve")(cli_run.serve_command)


_register_subcommands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
