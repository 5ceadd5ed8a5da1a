"""What a command needs at start-up: settings, engine, session factory (built once, lazily)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from drift.errors import DriftkeeperError, NoDatabaseError, StorageError
from jobs.config import CONFIG_SEARCH, DEFAULT_DATABASE_URL, Settings, find_config, load_settings
from jobs.runner.exit_codes import EXIT_ERROR

if TYPE_CHECKING:
    from jobs.runner.execute import JobOutcome
from storage.engine import make_engine, make_session_factory, one_line, redact_url, sqlite_file_exists
from storage.migrate import current_revision, head_revision, upgrade
from storage.statuses import JobStatus

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class AppContext:
    config_path: Path | None = None
    verbose: bool = False
    _engine: Engine | None = field(default=None, repr=False)

    @cached_property
    def settings(self) -> Settings:
        if self.config_path is None:  # say which config a bare command uses, if any
            found = find_config(None)
            where = f"config {found}" if found is not None else f"no config file ({CONFIG_SEARCH}): the defaults"
            announce = Text(f"driftkeeper: using {where}", style="dim")
            Console(stderr=True).print(announce, highlight=False, soft_wrap=True)
        return load_settings(self.config_path)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.settings.database.url.get_secret_value())
        return self._engine

    @cached_property
    def session_factory(self) -> sessionmaker[Session]:
        return make_session_factory(self.engine)

    @property
    def database(self) -> str:
        return redact_url(self.settings.database.url.get_secret_value())

    def ready_session_factory(self, *, read_only: bool = False) -> sessionmaker[Session]:
        """The session factory of an up-to-date schema.

        ``read_only`` (status, errors, listings, report) never creates a database, a table or a
        folder: a missing or empty database is a :class:`NoDatabaseError`. Otherwise an empty
        database is migrated on first use, but a SQLite file is only created for the default
        URL: a mistyped path is an error, not a fresh empty database.
        """
        url = self.settings.database.url.get_secret_value()
        if (read_only or url != DEFAULT_DATABASE_URL) and not sqlite_file_exists(url):
            raise NoDatabaseError(self.database)
        try:
            revision = current_revision(self.engine)
            if revision is None and read_only:
                raise NoDatabaseError(self.database)
            if revision != head_revision():
                if read_only:
                    raise StorageError(
                        f"database {self.database} is at revision {revision}, not {head_revision()}: "
                        "run `driftkeeper db upgrade`"
                    )
                upgrade(self.engine)
        except DriftkeeperError:
            raise
        except Exception as exc:
            raise StorageError(f"database {self.database} is not usable: {one_line(exc)}") from exc
        return self.session_factory

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def app_context(ctx: typer.Context) -> AppContext:
    root = ctx.find_root()
    if not isinstance(root.obj, AppContext):
        root.obj = AppContext()
    return root.obj


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn driftkeeper's errors into a one-line message and exit code 1."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except DriftkeeperError as exc:
            _print_error(str(exc))
            raise typer.Exit(EXIT_ERROR) from exc
        except SQLAlchemyError as exc:  # a database error the storage layer did not translate
            _print_error(f"database error: {one_line(exc)}")
            raise typer.Exit(EXIT_ERROR) from exc

    return wrapper


def run_job_or_exit(
    ctx: typer.Context, name: str, model: str | None, *, read_only: bool = False, **options: Any
) -> JobOutcome:
    """Run job ``name`` through :func:`jobs.runner.execute.run_job`, as the daemon and ``driftkeeper run`` do.

    The same lease, the same job-run record, the same counts; a failed run prints its error and
    exits 1. ``read_only``: the database must exist already (see :meth:`AppContext.ready_session_factory`).
    """
    from jobs.runner.execute import run_job

    state = app_context(ctx)
    outcome = run_job(name, state.ready_session_factory(read_only=read_only), state.settings, model, **options)
    if outcome.status != JobStatus.SUCCEEDED:
        _print_error(outcome.error or f"{name} failed")
        raise typer.Exit(outcome.exit_code or EXIT_ERROR)
    return outcome


def _print_error(message: str) -> None:
    text = escape(message)  # the text may hold brackets, which rich would read as markup
    Console(stderr=True).print(f"[bold red]error:[/] {text}", highlight=False, soft_wrap=True)


def cells(*values: object) -> list[Text]:
    """Table cells shown as they are: user text is never read as rich markup."""
    return [Text("-" if v is None else str(v)) for v in values]


def emit(data: Any, as_json: bool, render: Callable[[Console], None] | None = None) -> None:
    """JSON on stdout for scripts, or a human rendering."""
    if as_json or render is None:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        return
    render(Console())
