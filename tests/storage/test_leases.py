from __future__ import annotations

import multiprocessing as mp
from datetime import UTC, datetime, timedelta

import pytest

from drift.errors import LeaseHeldError
from storage import leases
from storage.engine import make_engine, make_session_factory


def _contend(url: str, barrier, results, index: int) -> None:
    engine = make_engine(url)
    factory = make_session_factory(engine)
    barrier.wait()
    won = leases.acquire(factory, "retrain:digits", f"worker-{index}", timedelta(minutes=5))
    results.put((index, won))
    engine.dispose()


def test_only_one_of_several_processes_takes_the_lease(database):
    ctx = mp.get_context("spawn")
    n = 4
    barrier, results = ctx.Barrier(n), ctx.Queue()
    workers = [ctx.Process(target=_contend, args=(database.url, barrier, results, i)) for i in range(n)]
    for w in workers:
        w.start()
    outcome = dict(results.get(timeout=60) for _ in range(n))
    for w in workers:
        w.join(timeout=30)
    assert sum(outcome.values()) == 1
    winner = next(i for i, won in outcome.items() if won)
    assert leases.current_holder(database.session_factory, "retrain:digits").holder == f"worker-{winner}"


def test_an_expired_lease_can_be_taken_over_and_held_names_the_holder(database):
    factory = database.session_factory
    past = datetime.now(UTC) - timedelta(hours=1)
    assert leases.acquire(factory, "check:m", "old-daemon", timedelta(minutes=5), now=past)
    assert leases.acquire(factory, "check:m", "new-daemon", timedelta(minutes=5))  # old one expired
    with (
        pytest.raises(LeaseHeldError, match="held by new-daemon"),
        leases.held(factory, "check:m", timedelta(minutes=1)),
    ):
        pass
    leases.release(factory, "check:m", "new-daemon")
    with leases.held(factory, "check:m", timedelta(minutes=1)) as me:
        assert leases.current_holder(factory, "check:m").holder == me
    assert leases.current_holder(factory, "check:m") is None


def test_a_lease_of_a_killed_process_on_this_host_is_taken_over_at_once(database):
    import socket
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = f"{socket.gethostname()}:{int(gone.stdout)}:deadbeef"
    alive = f"{socket.gethostname()}:{__import__('os').getpid()}:cafe"
    factory = database.session_factory
    assert leases.acquire(factory, "ingest:m:predictions", dead, timedelta(hours=1))
    assert leases.acquire(factory, "ingest:m:predictions", "me", timedelta(minutes=5))  # not waiting an hour
    assert leases.acquire(factory, "ingest:m:labels", alive, timedelta(hours=1))
    assert not leases.acquire(factory, "ingest:m:labels", "me", timedelta(minutes=5))  # a live holder keeps it
