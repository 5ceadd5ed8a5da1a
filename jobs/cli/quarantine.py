"""``driftkeeper quarantine``: the rows rejected at ingestion, by reason, and their replay."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from jobs.cli.context import app_context, cells, emit, handle_errors
from jobs.cli.monitor import parse_time
from jobs.cli.options import JsonOption, ModelOption, RequiredModelOption

quarantine_app = typer.Typer(help="Rows rejected at ingestion, with their reasons; replay them after a fix.")


@quarantine_app.command("list")
@handle_errors
def quarantine_list(
    ctx: typer.Context,
    model: ModelOption = None,
    limit: Annotated[int, typer.Option(help="How many of the latest rows to show.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Counts by reason first, then the latest rejected rows with source, position, field and reason."""
    from storage import quarantine, repository

    state = app_context(ctx)
    with state.ready_session_factory(read_only=True)() as session:
        model_id = repository.get_model(session, model).id if model else None
        reasons: list[dict[str, Any]] = [
            {
                "model": c.model,
                "stream": c.stream,
                "field": c.field,
                "reason": c.reason,
                "rows": c.rows,
                "first_at": c.first_at.isoformat(),
                "last_at": c.last_at.isoformat(),
            }
            for c in quarantine.reason_counts(session, model_id)
        ]
        rows = [
            {
                "id": q.id,
                "stream": q.stream,
                "source": q.source,
                "position": q.position,
                "field": q.field,
                "reason": q.reason,
                "raw": q.raw,
                "at": q.created_at.isoformat(),
            }
            for q in repository.quarantined_rows(session, model_id, limit)
        ]

    def render(console: Console) -> None:
        by_reason = Table("rows", "model", "stream", "field", "reason", "last", title="by reason")
        for r in reasons:
            by_reason.add_row(
                *cells(f"{r['rows']:,}", r["model"], r["stream"], r["field"], r["reason"], r["last_at"][:16])
            )
        console.print(by_reason)
        latest = Table("id", "stream", "source", "position", "field", "reason", title=f"latest {len(rows)}")
        for r in rows:
            latest.add_row(*cells(str(r["id"]), r["stream"], r["source"], r["position"], r["field"], r["reason"]))
        console.print(latest)

    emit({"reasons": reasons, "rows": rows}, as_json, render)


@quarantine_app.command("replay")
@handle_errors
def quarantine_replay(
    ctx: typer.Context,
    model: RequiredModelOption,
    reason: Annotated[str | None, typer.Option(help="Only rows whose reason contains this text.")] = None,
    since: Annotated[str | None, typer.Option(help="Only rows quarantined since (ISO-8601 date or time).")] = None,
    stream: Annotated[str | None, typer.Option(help="predictions or labels (default: both).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be accepted; change nothing.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Validate quarantined rows again against the current config and registry: the accepted
    ones move into the logs (once), the rest stay with their new reason."""
    from jobs.ingest.replay import STREAMS, replay
    from jobs.runner.progress import progress
    from jobs.runner.runs import recorded_run

    if stream is not None and stream not in STREAMS:
        raise typer.BadParameter(f"must be one of {', '.join(STREAMS)}", param_hint="--stream")
    state = app_context(ctx)
    factory = state.ready_session_factory()
    after = parse_time(since, "--since")
    streams = (stream,) if stream else STREAMS
    with progress("replay", enabled=not as_json) as bar:
        if dry_run:
            reports = replay(factory, state.settings, model, reason=reason, since=after, dry_run=True, streams=streams)
        else:
            with recorded_run(factory, "replay", model) as record:
                reports = replay(
                    factory, state.settings, model, reason=reason, since=after, streams=streams, progress=bar
                )
                record.counts = {k: sum(getattr(r, k) for r in reports) for k in ("accepted", "still_rejected")}
    data = {"runs": [r.to_dict() for r in reports]}

    def render(console: Console) -> None:
        table = Table("stream", "examined", "accepted", "new in logs", "still rejected", "main reason now")
        for r in reports:
            main = next(iter(r.reasons), "-")
            table.add_row(
                *cells(r.stream, f"{r.examined:,}", f"{r.accepted:,}", f"{r.stored:,}", f"{r.still_rejected:,}", main)
            )
        if dry_run:
            table.title = "dry run: nothing changed"
        console.print(table)

    emit(data, as_json, render)
