"""ISO weeks (``2026-W38``), the unit of the weekly report: naming, parsing, windows. Defined once."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_WEEK = re.compile(r"^\d{4}-W(0[1-9]|[1-4]\d|5[0-3])$")


def iso_week(t: datetime) -> str:
    """The ISO week ``t`` falls in, as ``YYYY-Www``."""
    year, week, _ = t.isocalendar()
    return f"{year}-W{week:02d}"


def last_complete_week(now: datetime) -> str:
    """The ISO week before the one ``now`` falls in: what a weekly report covers by default.

    >>> last_complete_week(datetime(2026, 11, 30, 6, tzinfo=UTC))  # a Monday morning
    '2026-W48'
    >>> last_complete_week(datetime(2026, 11, 29, 23, tzinfo=UTC))  # the Sunday before
    '2026-W47'
    """
    return iso_week(now - timedelta(days=7))


def is_iso_week(text: str) -> bool:
    """Whether ``text`` names an ISO week that exists (``2025-W53`` does not; ``2026-W53`` does).

    >>> is_iso_week("2026-W38"), is_iso_week("2026-W53"), is_iso_week("2025-W53"), is_iso_week("2026-38")
    (True, True, False, False)
    """
    return bool(_WEEK.match(text)) and iso_week(week_window(text)[0]) == text


def week_window(week: str) -> tuple[datetime, datetime]:
    """Monday 00:00 UTC of ``YYYY-Www`` and the Monday after."""
    start = datetime.strptime(week + "-1", "%G-W%V-%u").replace(tzinfo=UTC)
    return start, start + timedelta(days=7)
