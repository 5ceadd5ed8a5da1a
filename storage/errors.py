"""SQLAlchemy's errors as :class:`drift.errors.StorageError`, translated at the storage boundary.

The error classes themselves live in :mod:`drift.errors`; this module only translates. The
message is one line naming the database with its password masked, and the SQLAlchemy error
stays reachable as ``__cause__``::

    with translate(session_factory):
        ...  # an OperationalError here becomes
             # StorageError("database postgresql://dk:***@db:5432/dk: connection refused")

Storage functions that take a Session use the :func:`translated` decorator instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from drift.errors import StorageError
from storage.engine import one_line, redact_url

P = ParamSpec("P")
R = TypeVar("R")

Where = str | URL | Engine | Connection | Session | sessionmaker[Session] | None
"""What names the database: its URL, or something bound to it (None: not known)."""


def _url(where: Where) -> URL | str | None:
    if isinstance(where, Session):
        try:
            where = where.get_bind()
        except SQLAlchemyError:  # an unbound session
            return None
    if isinstance(where, sessionmaker):
        where = where.kw.get("bind")
    if isinstance(where, Connection):
        where = where.engine
    if isinstance(where, Engine):
        return where.url
    return where if isinstance(where, str | URL) else None


def database_label(where: Where) -> str:
    """The database as it may be shown: the URL with its password and secret parameters as ``***``."""
    url = _url(where)
    return "(unknown database)" if url is None else redact_url(url)


def storage_error(where: Where, exc: SQLAlchemyError) -> StorageError:
    """The one-line :class:`StorageError` for ``exc`` (raise it ``from exc``)."""
    detail = one_line(exc)
    url = _url(where)
    try:
        password = make_url(url).password if url is not None else None
    except Exception:  # unparsable: redact_url already says so, and shows nothing of it
        password = None
    if password:  # a driver that echoes its connection string must not show the password either
        detail = detail.replace(str(password), "***")
    return StorageError(f"database {database_label(where)}: {detail}")


@contextmanager
def translate(where: Where) -> Iterator[None]:
    """Raise a :class:`SQLAlchemyError` of the block as :class:`StorageError`, ``from`` the original."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise storage_error(where, exc) from exc


def translated(func: Callable[P, R]) -> Callable[P, R]:
    """:func:`translate` around a storage function whose first argument is its Session."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except SQLAlchemyError as exc:
            where = args[0] if args and isinstance(args[0], Session | sessionmaker) else None
            raise storage_error(where, exc) from exc

    return wrapper
