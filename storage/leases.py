"""Leases: named locks with an expiry, held in the database.

Two processes (two daemons, a daemon and a cron job) never hold the same lease: taking it
is one INSERT, or one UPDATE of an expired row, and the database decides who wins. A holder
that dies leaves the lease to expire, unless it ran on the same host and its process is gone
(killed): then the lease is taken over at once. A long job renews its lease.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from drift.errors import LeaseHeldError
from storage.clock import wall_clock
from storage.models import Lease

log = logging.getLogger(__name__)


def holder_id() -> str:
    """Who is asking: host, process and a random part (two leases in one process differ)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def acquire(
    session_factory: sessionmaker[Session], name: str, holder: str, ttl: timedelta, *, now: datetime | None = None
) -> bool:
    """Take ``name`` for ``ttl`` if it is free or expired; False if someone else holds it."""
    now = now or wall_clock()
    try:
        with session_factory.begin() as session:
            session.execute(insert(Lease).values(name=name, holder=holder, acquired_at=now, expires_at=now + ttl))
        return True
    except IntegrityError:
        pass
    with session_factory.begin() as session:
        current = session.scalar(select(Lease.holder).where(Lease.name == name))
        takeable = (Lease.expires_at < now) | (Lease.holder == holder)
        if current is not None and holder_is_dead(current):
            takeable = takeable | (Lease.holder == current)  # killed on this host: no need to wait it out
        taken = session.connection().execute(
            update(Lease)
            .where(Lease.name == name, takeable)
            .values(holder=holder, acquired_at=now, expires_at=now + ttl)
        )
        return bool(taken.rowcount)


def holder_is_dead(holder: str) -> bool:
    """Whether ``holder`` (see :func:`holder_id`) was a process on this host that no longer runs."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def renew(session_factory: sessionmaker[Session], name: str, holder: str, ttl: timedelta) -> bool:
    now = wall_clock()
    with session_factory.begin() as session:
        done = session.connection().execute(
            update(Lease).where(Lease.name == name, Lease.holder == holder).values(expires_at=now + ttl)
        )
        return bool(done.rowcount)


def release(session_factory: sessionmaker[Session], name: str, holder: str) -> None:
    with session_factory.begin() as session:
        session.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))


def current_holder(session_factory: sessionmaker[Session], name: str) -> Lease | None:
    """Who holds ``name`` now: None when nobody does, the lease expired, or its holder was a
    process on this host that no longer runs (a killed holder holds nothing, as in :func:`acquire`)."""
    with session_factory() as session:
        lease = session.scalar(select(Lease).where(Lease.name == name))
        if lease is not None and (lease.expires_at < wall_clock() or holder_is_dead(lease.holder)):
            return None
        return lease


@contextmanager
def held(session_factory: sessionmaker[Session], name: str, ttl: timedelta, holder: str | None = None) -> Iterator[str]:
    """Hold ``name`` for the block, or raise :class:`LeaseHeldError` naming the holder."""
    me = holder or holder_id()
    if not acquire(session_factory, name, me, ttl):
        other = current_holder(session_factory, name)
        raise LeaseHeldError(
            name,
            other.holder if other else "another process",
            other.expires_at.isoformat() if other else None,
        )
    try:
        yield me
    finally:
        release(session_factory, name, me)


@contextmanager
def renewing_lease(
    session_factory: sessionmaker[Session], name: str, ttl: timedelta, holder: str | None = None
) -> Iterator[str]:
    """Hold lease ``name`` for the block, renewed every ``ttl / 3`` so a long job keeps it.

    Raises :class:`LeaseHeldError` when someone else holds it. A holder that dies leaves it to expire.
    """
    with held(session_factory, name, ttl, holder) as me:
        stop = threading.Event()

        def keep() -> None:
            while not stop.wait(ttl.total_seconds() / 3):
                try:
                    if not renew(session_factory, name, me, ttl):
                        log.error("lease %r was lost (expired and taken by another process)", name)
                        return
                except Exception:
                    log.exception("could not renew lease %r; retrying", name)

        keeper = threading.Thread(target=keep, name=f"lease {name}", daemon=True)
        keeper.start()
        try:
            yield me
        finally:
            stop.set()
            keeper.join()
