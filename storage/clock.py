"""The wall clock: the one place in driftkeeper that reads it.

Jobs, triggers and windows take ``now`` (or a ``Clock``) as an argument and fall back to
:func:`wall_clock` only at the outermost call, so that a test can pass simulated time and a
static test (``tests/test_wall_clock.py``) can check that nothing else reads the clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)
