"""``driftkeeper review``: the review web app (see :mod:`jobs.review.app`)."""

from __future__ import annotations

from typing import Annotated

import typer

from jobs.cli.context import app_context, handle_errors
from jobs.cli.options import ModelOption
from jobs.review.settings import ReviewSettings

HostOption = Annotated[
    str | None, typer.Option("--host", help="Address to listen on (default: review.host, 127.0.0.1).")
]
PortOption = Annotated[int | None, typer.Option("--port", help="Port to listen on (default: review.port, 8765).")]


@handle_errors
def review_serve_command(
    ctx: typer.Context, model: ModelOption = None, host: HostOption = None, port: PortOption = None
) -> None:
    """Open the review queue in a local web app: label flagged predictions from the keyboard."""
    from jobs.review.serve import check_binding, serve_review

    state = app_context(ctx)
    settings = state.settings
    review: ReviewSettings = getattr(settings, "review", ReviewSettings())
    token = review.token.get_secret_value() if review.token is not None else None
    host = host or review.host
    port = review.port if port is None else port
    check_binding(host, token)  # before touching the database
    if model is not None:
        settings.model(model)  # an unknown model is an error here, not an empty page
    session_factory = state.ready_session_factory()
    typer.echo(f"driftkeeper review: http://{host}:{port}/ (Ctrl-C to stop)", err=True)
    serve_review(session_factory, settings, model=model, host=host, port=port, token=token)
