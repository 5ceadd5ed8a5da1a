"""What a command needs at start-up: settings, engine, session factory (built once, lazily)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from drift.errors import DriftkeeperError, StorageError
from jobs.config import Settings, load_settings
from storage.engine import make_engine, make_session_factory, redact_url
from storage.migrate import is_up_to_date, upgrade

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_DRIFT = 0, 1, 2, 3

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class AppContext:
    config_path: Path | None = None
    verbose: bool = False
    _engine: Engine | None = field(default=None, repr=False)

    @cached_property
    def settings(self) -> Settings:
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

    def ready_session_factory(self) -> sessionmaker[Session]:
        """The session factory of an up-to-date schema (migrated on first use of an empty SQLite file)."""
        try:
            if not is_up_to_date(self.engine):
                upgrade(self.engine)
        except DriftkeeperError:
            raise
        except Exception as exc:
            raise StorageError(f"database {self.database} is not usable: {exc}") from exc
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
            message = escape(str(exc))  # the text may hold brackets, which rich would read as markup
            Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_ERROR) from exc

    return wrapper


def cells(*values: object) -> list[Text]:
    """Table cells shown as they are: user text is never read as rich markup."""
    return [Text("-" if v is None else str(v)) for v in values]


def emit(data: Any, as_json: bool, render: Callable[[Console], None] | None = None) -> None:
    """JSON on stdout for scripts, or a human rendering."""
    if as_json or render is None:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        return
    render(Console())
