"""Weekly report page, its ``summary.json``, and the per-model index of weeks.

The page is self-contained: inline CSS and SVG, thumbnails as ``data:`` URIs, no
script, no external URL, and a Content-Security-Policy that forbids anything else.
Every text from the summary goes through Jinja2's autoescaping.
"""

from __future__ import annotations

import functools
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2

from drift.errors import ValidationError
from reports import view

TEMPLATES = Path(__file__).parent / "templates"
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
_WEEK = re.compile(r"\d{4}-W\d{2}")
_RELATIVE_PATH = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")


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


def fmt_when(value: str | None) -> str:
    """An ISO timestamp as ``YYYY-MM-DD HH:MM`` plus its UTC offset; other text unchanged.

    >>> fmt_when("2026-09-21T06:00:00+00:00"), fmt_when(None), fmt_when("soon")
    ('2026-09-21 06:00 UTC', '—', 'soon')
    """
    if value is None:
        return "—"
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


def render_weekly_html(summary: Mapping[str, Any]) -> str:
    """The weekly page as a string (see :func:`render_weekly`)."""
    return environment().get_template("weekly.html.j2").render(v=view.build_view(summary))


def render_weekly(summary: Mapping[str, Any], out_dir: Path) -> WeeklyReportFiles:
    """Write ``out_dir/report.html`` and ``out_dir/summary.json`` (the summary, verbatim).

    Both files are written atomically; nothing is written when the summary is invalid.

    Raises:
        ValidationError: the summary is not schema 1, has a section of the wrong shape,
            or holds a value JSON cannot represent (NaN, infinity, an object).
    """
    out_dir = Path(out_dir)
    html = render_weekly_html(summary)
    try:
        text = json.dumps(summary, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"summary cannot be written as strict JSON: {exc}") from exc
    summary_json = write_atomic(out_dir / "summary.json", text)
    report_html = write_atomic(out_dir / "report.html", html)
    return WeeklyReportFiles(report_html=report_html, summary_json=summary_json)


def _index_entry(entry: Mapping[str, Any], i: int) -> dict[str, Any]:
    week = entry.get("week")
    if not isinstance(week, str) or not _WEEK.fullmatch(week):
        raise ValidationError(f"index entry {i}: week {week!r} is not like 2026-W38")
    status = entry.get("status") or "no-data"
    if status not in view.STATUSES:
        raise ValidationError(f"index entry {i}: status {status!r} is not one of {', '.join(view.STATUSES)}")
    path = entry.get("path") or f"{week}/report.html"
    if not isinstance(path, str) or not _RELATIVE_PATH.fullmatch(path) or ".." in path.split("/"):
        raise ValidationError(f"index entry {i}: path {path!r} must be relative, like {week}/report.html")
    headline = entry.get("headline")
    return {"week": week, "status": status, "headline": None if headline is None else str(headline), "path": path}


def render_index(model: str, weeks: Sequence[Mapping[str, Any]], out_path: Path) -> Path:
    """Write the index of weekly reports of ``model``, newest week first, and return its path.

    Each entry: ``{"week": "2026-W38", "status": "ok"|"drift"|"retrain"|"no-data",
    "headline": str | None, "path": "2026-W38/report.html"}`` (``path`` defaults to that).

    Raises:
        ValidationError: a week that is not ``YYYY-Www``, an unknown status, or a path
            that is not a plain relative path.
    """
    entries = sorted((_index_entry(e, i) for i, e in enumerate(weeks)), key=lambda e: e["week"], reverse=True)
    html = environment().get_template("index.html.j2").render(model=str(model), weeks=entries)
    return write_atomic(Path(out_path), html)
