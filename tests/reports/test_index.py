"""The per-model index of weekly reports."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from drift.errors import ValidationError
from reports import IndexEntry, render_index
from reports.render import CSP
from tests.reports.htmlcheck import parse
from tests.reports.report_sample import IMG, SCRIPT


def test_index_lists_weeks_newest_first_with_badges(tmp_path: Path) -> None:
    weeks = [
        IndexEntry(
            week="2026-W36",
            status="ok",
            headline="All quiet",
            path="2026-W36/report.html",
            realized_accuracy=0.9,
            estimated_accuracy=0.91,
            n_labelled=300,
            label_coverage=0.2,
            features_drifted=0,
            features=6,
            serving_version=1,
            reference_week="2025-W52",
        ),
        IndexEntry(
            week="2026-W38", status="act", headline=SCRIPT, path="2026-W38/report.html", revised=f"revised: {IMG}"
        ),
        IndexEntry(week="2025-W52", status="no-data", headline=None, path="2025-W52/report.html"),
        IndexEntry(
            week="2026-W37", status="drift", headline=IMG, realized_accuracy=0.672, n_labelled=247
        ),  # schema 1's "drift" is "watch"
    ]
    out = render_index(SCRIPT, weeks, tmp_path / "m" / "index.html")
    assert out == tmp_path / "m" / "index.html"
    html = out.read_text(encoding="utf-8")
    page = parse(html)
    hrefs = [a["href"] for a in page.attrs("a")]
    assert hrefs == [f"{w}/report.html" for w in ("2026-W38", "2026-W37", "2026-W36", "2025-W52")]
    badges = re.findall(r'<span class="badge ([a-z-]+)">([A-Z-]+)</span>', html)
    assert badges == [("act", "ACT"), ("watch", "WATCH"), ("ok", "OK"), ("no-data", "NO-DATA")]
    assert "<script" not in html.lower() and "<img" not in html
    assert SCRIPT in page.text and IMG in page.text
    assert [m["content"] for m in page.attrs("meta") if m.get("http-equiv")] == [CSP]
    assert "reference of v1" in page.text  # 2025-W52 is version 1's reference week
    assert "-22.8 pts" in page.text  # week over week: 67.2% after 90.0%
    assert "<svg" in html  # the accuracy trend


def test_index_without_weeks_says_no_data(tmp_path: Path) -> None:
    html = render_index("m", [], tmp_path / "index.html").read_text(encoding="utf-8")
    assert "no data" in parse(html).section_text["weeks"].lower()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"week": "2026-38", "status": "ok"}, "is not like 2026-W38"),
        ({"week": "2026-W38", "status": "great"}, "'great' is not one of no-data, ok, watch, act"),
        ({"week": "2026-W38", "status": "ok", "path": "../2026-W38/report.html"}, "must be relative"),
        ({"week": "2026-W38", "status": "ok", "path": "javascript:alert(1)"}, "must be relative"),
        ({"week": "2026-W38", "status": "ok", "path": "/etc/passwd"}, "must be relative"),
    ],
    ids=["week", "status", "parent", "scheme", "absolute"],
)
def test_index_refuses_bad_entries(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        IndexEntry(**entry)
