"""Weekly report page, its ``summary.json``, and the per-model index of weeks.

The page is self-contained: inline CSS and SVG, thumbnails as ``data:`` URIs, no
script, no external URL, and a Content-Security-Policy that forbids anything else.
Every text from the summary (a :class:`reports.summary.WeeklySummary`) goes through Jinja2's
autoescaping.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import jinja2

from drift.errors import ValidationError
from reports import charts, view
from reports.summary import IndexEntry, WeeklySummary

TEMPLATES = Path(__file__).parent / "templates"
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


@dataclass(frozen=True, kw_only=True)
class WeeklyReportFiles:
    """What :func:`render_weekly` wrote."""

    report_html: Path
    summary_json: Path


def fmt_num(value: float | int | None, digits: int = 4) -> str:
    """A number for people: 4 significant digits, thousands separated; ``—`` for missing.

    >>> fmt_num(0.012345), fmt_num(12345.6), fmt_num(None), fmt_num(3)
    ('0.01235', '12,346', '—', '3')
    """
    if value is None:
        return "—"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if abs(value) >= 10**digits:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def fmt_pct(value: float | None, digits: int = 1) -> str:
    """A fraction as a percentage.

    >>> fmt_pct(0.1234), fmt_pct(None)
    ('12.3%', '—')
    """
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def fmt_when(value: datetime | str | None) -> str:
    """A timestamp (a datetime or ISO text) as ``YYYY-MM-DD HH:MM`` plus its UTC offset; other text unchanged.

    >>> fmt_when("2026-09-21T06:00:00+00:00"), fmt_when(None), fmt_when("soon")
    ('2026-09-21 06:00 UTC', '—', 'soon')
    >>> from datetime import timezone
    >>> fmt_when(datetime(2026, 9, 21, 8, 30, tzinfo=timezone(timedelta(hours=2))))
    '2026-09-21 08:30 +0200'
    """
    if value is None:
        return "—"
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(value)
        except (TypeError, ValueError):
            return str(value)
    offset = dt.utcoffset()
    zone = "" if offset is None else (" UTC" if offset == timedelta(0) else dt.strftime(" %z"))
    return dt.strftime("%Y-%m-%d %H:%M") + zone


def fmt_flag(value: bool | None) -> str:
    return "—" if value is None else ("yes" if value else "no")


@functools.cache
def environment() -> jinja2.Environment:
    """The Jinja2 environment (built on first use): autoescape everywhere, undefined names are errors."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=fmt_num, pct=fmt_pct, when=fmt_when, flag=fmt_flag)
    env.globals.update(csp=CSP)
    return env


def write_atomic(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def render_weekly_html(summary: WeeklySummary) -> str:
    """The weekly page as a string (see :func:`render_weekly`)."""
    return environment().get_template("weekly.html.j2").render(v=view.build_view(summary))


def render_weekly(summary: WeeklySummary, out_dir: Path) -> WeeklyReportFiles:
    """Write ``out_dir/report.html`` and ``out_dir/summary.json`` (``summary.to_dict()``).

    Both files are written atomically; nothing is written when the summary cannot be shown.

    Raises:
        ValidationError: the summary holds a value JSON cannot represent (NaN, infinity), or
            lists a chart cannot pair up (class labels and shares of different lengths).
    """
    out_dir = Path(out_dir)
    try:
        text = json.dumps(summary.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"summary cannot be written as strict JSON: {exc}") from exc
    html = render_weekly_html(summary)
    summary_json = write_atomic(out_dir / "summary.json", text)
    report_html = write_atomic(out_dir / "report.html", html)
    return WeeklyReportFiles(report_html=report_html, summary_json=summary_json)


def render_index(model: str, weeks: Sequence[IndexEntry], out_path: Path) -> Path:
    """Write the index of weekly reports of ``model``, newest week first, and return its path."""
    entries = sorted(weeks, key=lambda e: e.week, reverse=True)
    references = {e.reference_week: e.serving_version for e in entries if e.reference_week}
    trend = [
        {
            "week": e.week,
            "estimated_accuracy": e.estimated_accuracy,
            "estimate_low": None,
            "estimate_high": None,
            "realized_accuracy": e.realized_accuracy,
            "realized_low": None,
            "realized_high": None,
            "label_coverage": e.label_coverage,
        }
        for e in reversed(entries)
    ]
    chart = charts.accuracy_svg(trend) if any(e.realized_accuracy or e.estimated_accuracy for e in entries) else None
    html = (
        environment()
        .get_template("index.html.j2")
        .render(model=str(model), weeks=entries, references=references, chart=chart)
    )
    return write_atomic(Path(out_path), html)
