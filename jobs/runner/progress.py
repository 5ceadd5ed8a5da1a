"""Progress for long work: a bar on a terminal, plain log lines under a scheduler."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

log = logging.getLogger("driftkeeper.progress")


class Progress(Protocol):
    def advance(self, rows: int, note: str = "") -> None: ...


class LogProgress:
    """Logs a line at most every ``every`` seconds, and at the end."""

    def __init__(self, title: str, every: float = 5.0) -> None:
        self.title = title
        self.every = every
        self.rows = 0
        self._start = time.monotonic()
        self._last = self._start

    def advance(self, rows: int, note: str = "") -> None:
        self.rows += rows
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            rate = self.rows / max(now - self._start, 1e-9)
            log.info("%s: %d rows (%.0f rows/s)%s", self.title, self.rows, rate, f" {note}" if note else "")

    def close(self) -> None:
        elapsed = time.monotonic() - self._start
        log.info("%s: done, %d rows in %.1f s", self.title, self.rows, elapsed)


class _NullProgress:
    def advance(self, rows: int, note: str = "") -> None:
        return None


@contextmanager
def progress(title: str, *, enabled: bool = True) -> Iterator[Progress]:
    """A rich bar when stderr is a terminal, log lines otherwise; nothing when disabled."""
    if not enabled:
        yield _NullProgress()
        return
    if sys.stderr.isatty():
        from rich.progress import Progress as RichProgress
        from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

        with RichProgress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("{task.completed:,} rows"),
            TimeElapsedColumn(),
            transient=True,
        ) as bar:
            task = bar.add_task(title, total=None)

            class _Bar:
                def advance(self, rows: int, note: str = "") -> None:
                    bar.update(task, advance=rows, description=f"{title} {note}".strip())

            yield _Bar()
        return
    plain = LogProgress(title)
    try:
        yield plain
    finally:
        plain.close()
