"""``driftkeeper ingest --check``: the sources' columns against the config, no row read."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console
from rich.text import Text

from drift.errors import NoDatabaseError, NotFoundError
from jobs.cli.context import app_context, emit
from jobs.config import ModelSettings
from jobs.ingest.preflight import PreflightResult, check_stream
from jobs.ingest.sources import file_sha256
from jobs.runner.exit_codes import EXIT_ERROR


def preflight_command(ctx: typer.Context, model: str | None, streams: tuple[str, ...], as_json: bool) -> None:
    """Check every selected model's streams; exit 1 when any source does not match."""
    state = app_context(ctx)
    results: list[PreflightResult] = []
    for model_settings in state.settings.select_models(model):
        for stream in streams:
            results += check_stream(model_settings, stream, taken=_taken_files(ctx, model_settings, stream))

    def render(console: Console) -> None:
        if not results:
            console.print("no source to check (no model with a source, or no file waiting)")
        for r in results:
            status = Text("ok  ", style="green") if r.ok else Text("FAIL", style="bold red")
            console.print(status + Text(f" {r.model}/{r.stream} {r.source}: {len(r.columns)} columns"))
            for problem in r.problems:
                console.print(Text(f"     {problem}"), soft_wrap=True)

    emit({"ok": all(r.ok for r in results), "sources": [r.to_dict() for r in results]}, as_json, render)
    if not all(r.ok for r in results):
        raise typer.Exit(EXIT_ERROR)


def _taken_files(ctx: typer.Context, model: ModelSettings, stream: str) -> Callable[[Path], bool] | None:
    """Which files of a folder were taken already (they are not checked); None without a database."""
    from storage import repository

    state = app_context(ctx)
    try:
        factory = state.ready_session_factory(read_only=True)
        with factory() as session:
            model_id = repository.get_model(session, model.name).id
    except (NoDatabaseError, NotFoundError):
        return None

    def taken(path: Path) -> bool:
        with factory() as session:
            record = repository.get_file_record(session, model_id, stream, file_sha256(path))
            return record is not None and record.completed

    return taken
