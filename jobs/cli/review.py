"""``driftkeeper review ...``: export the review queue, import labels back, show progress."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from jobs.cli.context import app_context, cells, emit, handle_errors
from jobs.cli.options import JsonOption, RequiredModelOption
from jobs.review.exchange import ExportFormat
from jobs.review.queue import ReviewKind
from jobs.runner.exit_codes import EXIT_ERROR

review_app = typer.Typer(help="The review loop: export the queue, import labels, progress.", no_args_is_help=True)

WeekOption = Annotated[str | None, typer.Option("--week", help="Only this ISO week, e.g. 2026-W45.")]


@review_app.command("export")
@handle_errors
def review_export(
    ctx: typer.Context,
    model: RequiredModelOption,
    out: Annotated[Path, typer.Option("--out", "-o", help="The file (label-studio, csv) or folder (folders).")],
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="What to write.")] = ExportFormat.LABEL_STUDIO,
    week: WeekOption = None,
    kind: Annotated[ReviewKind | None, typer.Option("--kind", help="Only this queue.")] = None,
    reviewed_only: Annotated[
        bool, typer.Option("--reviewed-only", help="folders: only labels that came from a review.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Write the queue as Label Studio tasks or CSV, or the labelled images as class folders."""
    from jobs.review.exchange import export_queue

    state = app_context(ctx)
    result = export_queue(
        state.ready_session_factory(read_only=True),
        state.settings,
        model,
        fmt,
        out,
        week=week,
        kind=kind,
        reviewed_only=reviewed_only,
    )

    def render(console: Console) -> None:
        extra = f", {result.files} images, {result.missing} not found in image_roots" if fmt == "folders" else ""
        console.print(f"{result.items} items written to {result.path} ({result.format}{extra})", highlight=False)

    emit(result.to_dict(), as_json, render)


@review_app.command("import")
@handle_errors
def review_import(
    ctx: typer.Context,
    model: RequiredModelOption,
    file: Annotated[Path, typer.Argument(help="A Label Studio JSON export.", exists=True, dir_okay=False)],
    reviewer: Annotated[
        str | None, typer.Option("--reviewer", help="Who, where an annotation names no e-mail.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Read a Label Studio JSON export back as labels; importing the same file twice stores nothing new."""
    from jobs.review.exchange import import_label_studio

    state = app_context(ctx)
    result = import_label_studio(state.ready_session_factory(), state.settings, model, file, reviewer=reviewer)

    def render(console: Console) -> None:
        console.print(
            f"{result.stored} labels stored, {result.unchanged} imported before, {len(result.rejected)} rejected",
            highlight=False,
        )
        for reason in result.rejected[:20]:
            console.print(*cells(f"  {reason}"))

    emit(result.to_dict(), as_json, render)
    if result.rejected and not result.stored and not result.unchanged:
        raise typer.Exit(EXIT_ERROR)


@review_app.command("progress")
@handle_errors
def review_progress(ctx: typer.Context, model: RequiredModelOption, as_json: JsonOption = False) -> None:
    """Decisions done and skipped, what is left, throughput and agreement with the model."""
    from jobs.review.queue import progress

    state = app_context(ctx)
    p = progress(state.ready_session_factory(read_only=True), state.settings, model)

    def render(console: Console) -> None:
        table = Table("done", "skipped", "left", "per minute", "agreement")
        per_minute = f"{p.per_minute:.1f}" if p.per_minute is not None else None
        agreement = f"{p.agreement:.0%}" if p.agreement is not None else None
        table.add_row(*cells(p.done, p.skipped, p.left, per_minute, agreement))
        console.print(table)

    emit(p.to_dict() | {"model": model}, as_json, render)
