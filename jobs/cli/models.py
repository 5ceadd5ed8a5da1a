"""``driftkeeper models ...``: the model registry from the command line."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from jobs.cli.context import app_context, cells, emit, handle_errors
from jobs.cli.options import JsonOption, RequiredModelOption
from jobs.runner.exit_codes import EXIT_ERROR

models_app = typer.Typer(help="The model registry: list, show, register, promote, rollback.", no_args_is_help=True)


def version_dict(v: Any) -> dict[str, Any]:
    return {
        "version": v.version,
        "status": v.status,
        "parent": v.parent_version,
        "metrics": v.metrics,
        "artifact_path": v.artifact_path,
        "export_dir": v.export_dir,
        "created_at": v.created_at.isoformat() if v.created_at else None,
        "promoted_at": v.promoted_at.isoformat() if v.promoted_at else None,
    }


@models_app.command("list")
@handle_errors
def models_list(ctx: typer.Context, model: RequiredModelOption, as_json: JsonOption = False) -> None:
    """Every version of a model with its status and metrics."""
    from storage import repository

    state = app_context(ctx)
    with state.ready_session_factory(read_only=True)() as session:
        versions = [version_dict(v) for v in repository.get_model(session, model).versions]

    def render(console: Console) -> None:
        table = Table("version", "status", "parent", "metrics", "artifact")
        for v in versions:
            metrics = ", ".join(
                f"{k}={val:.3f}" if isinstance(val, float) else f"{k}={val}"
                for k, val in v["metrics"].items()
                if not k.startswith("champion_")  # the gate's comparison figures: see `models show`
            )
            table.add_row(
                *cells(str(v["version"]), v["status"], str(v["parent"] or "-"), metrics, v["artifact_path"] or "-")
            )
        console.print(table)

    emit({"model": model, "versions": versions}, as_json, render)


@models_app.command("register")
@handle_errors
def models_register(
    ctx: typer.Context,
    model: RequiredModelOption,
    version: Annotated[int | None, typer.Option(help="Version number (default: next).")] = None,
    artifact: Annotated[
        str | None, typer.Option(help="The .keras file of a model trained elsewhere: checked, copied, registered.")
    ] = None,
    export: Annotated[
        str | None, typer.Option("--export", help="Also export it to TFLite in this folder, every variant verified.")
    ] = None,
    status: Annotated[str, typer.Option(help="champion or challenger.")] = "champion",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check what a retrain would need (file, contract, data); change nothing.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Register a model version trained elsewhere: the parent of the next retrain.

    With --artifact the file is checked against the model's contract and training data first;
    without it, a version is only recorded so that its prediction logs are accepted.
    """
    from storage import repository

    if status not in ("champion", "challenger"):
        raise typer.BadParameter("must be champion or challenger", param_hint="--status")
    if export is not None and artifact is None:
        raise typer.BadParameter("needs --artifact", param_hint="--export")
    state = app_context(ctx)
    settings = state.settings.model(model)
    if artifact is not None:
        from pathlib import Path

        from jobs.retrain.onboard import register_trained_model

        report = register_trained_model(
            state.ready_session_factory(),
            state.settings,
            model,
            Path(artifact),
            version=version,
            export_dir=Path(export) if export else None,
            dry_run=dry_run,
            status=status,
        )
        data = report.to_dict()
        emit(data, as_json, lambda c: _render_onboarding(c, data))
        if report.missing:
            raise typer.Exit(EXIT_ERROR)
        return
    if dry_run:
        raise typer.BadParameter(
            "needs --artifact (there is nothing to check without a model file)", param_hint="--dry-run"
        )
    with state.ready_session_factory().begin() as session:
        row = repository.ensure_model(session, settings.name, settings.task)
        registered = version_dict(repository.register_version(session, row, version, status=status))
    emit(
        registered,
        as_json,
        lambda c: c.print(f"{model} version {registered['version']} registered as {registered['status']}"),
    )


def _render_onboarding(console: Console, data: dict[str, Any]) -> None:
    table = Table("check", "", "detail")
    for check in data["checks"]:
        mark = "ok" if check["ok"] else ("MISSING" if check["required"] else "warning")
        table.add_row(*cells(check["name"], mark, check["detail"]))
    console.print(table)
    if data["missing"]:
        console.print(f"not ready: {len(data['missing'])} required check(s) failed; nothing was registered")
    elif data["dry_run"]:
        console.print(f"ready: {data['model']} version {data['version']} can be registered (dry run: nothing changed)")
    else:
        console.print(f"{data['model']} version {data['version']} registered from {data['artifact']}")
        if data["export"]:
            console.print(f"exported and verified in {data['export']['out_dir']}")
        console.print(
            f"next: build its reference (driftkeeper reference ... -m {data['model']} --version {data['version']})"
        )


@models_app.command("show")
@handle_errors
def models_show(
    ctx: typer.Context,
    model: RequiredModelOption,
    version: Annotated[int | None, typer.Option(help="Default: the champion.")] = None,
    as_json: JsonOption = False,
) -> None:
    """One version with its lineage, metrics and export directory."""
    from jobs.retrain import registry
    from storage import repository

    state = app_context(ctx)
    with state.ready_session_factory(read_only=True)() as session:
        row = repository.get_model(session, model)
        found = registry.champion(session, row) if version is None else repository.get_version(session, row, version)
        data = version_dict(found) | {"lineage": found.lineage}
    emit(data, as_json, lambda c: c.print_json(data=data))


@models_app.command("promote")
@handle_errors
def models_promote(
    ctx: typer.Context,
    model: RequiredModelOption,
    version: Annotated[int, typer.Option(help="The version to make champion (it needs a reference set).")],
    as_json: JsonOption = False,
) -> None:
    """Make a version the champion; later checks compare its rows with its own reference."""
    from jobs.retrain import registry
    from storage import repository

    state = app_context(ctx)
    with state.ready_session_factory().begin() as session:
        promoted = version_dict(registry.promote(session, repository.get_model(session, model), version))
    emit(promoted, as_json, lambda c: c.print(f"{model}: version {version} is the champion"))


@models_app.command("rollback")
@handle_errors
def models_rollback(ctx: typer.Context, model: RequiredModelOption, as_json: JsonOption = False) -> None:
    """Restore the previous champion (the current one becomes 'rolled_back')."""
    from jobs.retrain import registry
    from storage import repository

    state = app_context(ctx)
    with state.ready_session_factory().begin() as session:
        restored, removed = registry.rollback(session, repository.get_model(session, model))
        data = {"champion": version_dict(restored), "rolled_back": version_dict(removed)}
    emit(
        data,
        as_json,
        lambda c: c.print(f"{model}: version {restored.version} restored, version {removed.version} rolled back"),
    )
