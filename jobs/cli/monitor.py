"""``driftkeeper compare``, ``check`` and ``reference``: the drift engine from the command line."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from drift.errors import BadInputError
from jobs.check.blind import Blind
from jobs.cli.context import app_context, cells, emit, handle_errors, run_job_or_exit
from jobs.cli.options import JsonOption, RequiredModelOption
from jobs.report.weeks import is_iso_week
from jobs.runner.exit_codes import EXIT_BLIND, EXIT_DRIFT
from storage.clock import wall_clock

FailOnDrift = Annotated[bool, typer.Option("--fail-on-drift", help="Exit with code 3 when drift is found.")]
reference_app = typer.Typer(help="Reference sets of model versions.", no_args_is_help=True)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([hdw])\s*$")


def parse_window(text: str) -> float:
    """``7d``, ``36h`` or ``2w`` as days."""
    match = _DURATION.match(text)
    if not match:
        raise typer.BadParameter("use a number and a unit: h, d or w (e.g. 7d, 36h, 2w)", param_hint="--window")
    value, unit = float(match.group(1)), match.group(2)
    return value * {"h": 1 / 24, "d": 1.0, "w": 7.0}[unit]


def parse_time(text: str | None, hint: str) -> datetime | None:
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter("use ISO-8601, e.g. 2026-11-23 or 2026-11-23T12:00:00+00:00", param_hint=hint) from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise BadInputError(str(path), "file not found")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path)
    except Exception as exc:
        raise BadInputError(str(path), f"cannot be read: {exc}") from exc
    raise BadInputError(str(path), f"unknown file type {path.suffix!r}; allowed: .csv, .parquet")


def render_result(console: Console, result: dict[str, Any], title: str = "") -> None:
    verdict = "[bold red]DRIFT[/]" if result["drifted"] else "[bold green]no drift[/]"
    console.print(f"{title}{verdict}  ({result.get('policy', '')})")
    table = Table("column", "kind", "method", "score", "p-value", "threshold", "drifted")
    for c in sorted(result["columns"], key=lambda c: (not c["drifted"], c["column"])):
        p = c.get("p_value")
        table.add_row(
            *cells(
                c["column"],
                c["kind"],
                c["method"],
                f"{c['score']:.4g}" if c["score"] is not None else "-",
                f"{p:.3g}" if p is not None else "-",
                f"{c['threshold']:.3g}",
                "yes" if c["drifted"] else "no",
            )
        )
    console.print(table)


@handle_errors
def compare_command(
    reference: Annotated[Path, typer.Option("--reference", "-r", help="Reference rows (CSV or Parquet).")],
    current: Annotated[Path, typer.Option("--current", help="Current rows (CSV or Parquet).")],
    engine: Annotated[str, typer.Option(help="fast (numpy), profile (binned) or evidently.")] = "fast",
    as_json: JsonOption = False,
    fail_on_drift: FailOnDrift = False,
) -> None:
    """Compare two files column by column; columns typed as evidently types them."""
    import drift

    result = drift.compare(read_table(reference), read_table(current), engine=engine)
    data = result.to_dict()
    emit(data, as_json, lambda c: render_result(c, data))
    if fail_on_drift and result.drifted:
        raise typer.Exit(EXIT_DRIFT)


@handle_errors
def check_command(
    ctx: typer.Context,
    model: RequiredModelOption,
    window: Annotated[
        str, typer.Option(help="Window length, e.g. 7d, 36h, 2w (default: the model's drift.window_days).")
    ] = "",
    end: Annotated[str | None, typer.Option(help="Window end (ISO-8601, default now).")] = None,
    as_json: JsonOption = False,
    fail_on_drift: FailOnDrift = False,
) -> None:
    """Check the latest window of a model against its versions' references; stores a drift run."""
    days = parse_window(window) if window else None
    data = run_job_or_exit(ctx, "check", model, window_days=days, end=parse_time(end, "--end")).data
    runs = data["runs"]

    def render(console: Console) -> None:
        for r in runs:
            version = f" v{r['version']}" if r["version"] is not None else ""
            head = f"{model}{version} {r['window_start'][:10]}..{r['window_end'][:10]}, {r['n_rows']:,} rows: "
            if r["blind"]:
                console.print(Text("BLIND ", style="bold red") + Text(Blind.from_dict(r["blind"]).message))
            if r["skipped"]:
                console.print(Text(head + f"skipped ({r['skipped']})"))
                continue
            render_result(console, r["result"], head)
            if r["retrain_worthy"]:
                console.print(Text("retrain-worthy: ", style="bold") + Text("; ".join(r["reasons"])))

    emit(data, as_json, render)
    if fail_on_drift and data["blind"]:
        raise typer.Exit(EXIT_BLIND)
    if fail_on_drift and data["drifted"]:
        raise typer.Exit(EXIT_DRIFT)


@reference_app.command("from-window")
@handle_errors
def reference_from_window_command(
    ctx: typer.Context,
    model: RequiredModelOption,
    version: Annotated[int, typer.Option(help="The model version whose reference this becomes.")],
    start: Annotated[str, typer.Option(help="Window start (ISO-8601).")],
    end: Annotated[str | None, typer.Option(help="Window end (default: start + 7 days).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Make a production window (e.g. the first week after a deploy) a version's reference."""
    from jobs.check.reference import reference_from_window

    state = app_context(ctx)
    begin = parse_time(start, "--start")
    assert begin is not None
    finish = parse_time(end, "--end") or begin + timedelta(days=7)
    row = reference_from_window(state.ready_session_factory(), state.settings.model(model), version, begin, finish)
    data = {
        "model": model,
        "version": version,
        "rows": row.n_rows,
        "source": row.source,
        "fingerprint": row.fingerprint,
    }
    emit(
        data,
        as_json,
        lambda c: c.print(
            f"{model} v{version}: reference of {row.n_rows:,} rows from {begin:%Y-%m-%d}..{finish:%Y-%m-%d}"
        ),
    )


@handle_errors
def errors_command(
    ctx: typer.Context,
    model: RequiredModelOption,
    window: Annotated[str, typer.Option(help="Window length, e.g. 7d, 36h, 2w (default: drift.window_days).")] = "",
    end: Annotated[str | None, typer.Option(help="Window end (ISO-8601, default now).")] = None,
    top: Annotated[int, typer.Option(min=1, max=1000, help="How many of each kind.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """The most confidently wrong predictions (labelled) and confident outliers (unlabelled too)."""
    from jobs.check.errors import flagged_in_window

    state = app_context(ctx)
    settings = state.settings.model(model)
    finish = parse_time(end, "--end") or wall_clock()
    start = finish - timedelta(days=parse_window(window) if window else settings.drift.window_days)
    factory = state.ready_session_factory(read_only=True)
    flagged = [
        f.to_dict() | {"model_version": found.version}
        for found in flagged_in_window(factory, state.settings, model, start, finish, top_k=top)
        for f in found.flagged
    ]

    def render(console: Console) -> None:
        table = Table("kind", "prediction", "confidence", "predicted", "true", "input")
        for f in flagged:
            table.add_row(
                *cells(
                    f["kind"],
                    f["prediction_id"],
                    f"{f['confidence']:.3f}",
                    f["predicted_label"],
                    f["true_label"],
                    f["input_uri"],
                )
            )
        console.print(table)

    emit(flagged, as_json, render)


@handle_errors
def retrain_command(
    ctx: typer.Context,
    model: RequiredModelOption,
    force: Annotated[bool, typer.Option("--force", help="Skip the trigger policy (never the lease).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would happen and why.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Retrain when the policy says so: train, gate, export to TFLite, register, promote."""
    data = run_job_or_exit(ctx, "retrain", model, force=force, dry_run=dry_run).data

    def render(console: Console) -> None:
        head = "would retrain" if dry_run and data["plan"]["should_run"] else data["decision"]
        console.print(f"{model}: {head}" + (f" (version {data['version']})" if data["version"] else ""))
        for reason in data["reasons"]:
            console.print(Text(f"  - {reason}"))

    emit(data, as_json, render)


@handle_errors
def report_command(
    ctx: typer.Context,
    model: RequiredModelOption,
    week: Annotated[str | None, typer.Option(help="ISO week, e.g. 2026-W38 (default: the last complete week).")] = None,
    evidently: Annotated[bool, typer.Option(help="Also write evidently's detail page (a bounded sample).")] = True,
    as_json: JsonOption = False,
) -> None:
    """Write the weekly HTML report (and summary.json) of a model, and its index."""
    if week is not None and not is_iso_week(week):
        raise typer.BadParameter("use an ISO week like 2026-W38", param_hint="--week")
    data = run_job_or_exit(ctx, "report", model, read_only=True, week=week, evidently=evidently).data
    emit(
        data,
        as_json,
        lambda c: c.print(Text(f"{model} {data['week']}: {data['status']} - {data['headline']}\n{data['report']}")),
    )
