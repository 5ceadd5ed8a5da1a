"""The weekly page as a person sees it: Debian's headless Chromium, driven by selenium.

Checks that the page loads without console errors (a CSP violation is one), that every
section is in the rendered DOM, and saves a full-page screenshot (in the test's tmp
dir; set ``DRIFTKEEPER_SCREENSHOT_DIR`` to keep a copy). A page that breaks the CSP on
purpose proves the console check can fail.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reports import IndexEntry, WeeklySummary, render_evidently, render_index, render_weekly
from tests.chromium import browser_marks, chromium
from tests.reports.report_sample import SCRIPT, SECTION_IDS

pytestmark = browser_marks


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    yield from chromium(performance_log=True)


def _load(drv: Any, page: Path) -> list[dict[str, Any]]:
    """Open ``page`` and return what the console said while loading it."""
    drv.get_log("browser")  # drop earlier messages
    drv.get_log("performance")
    drv.get(page.as_uri())
    drv.find_element("tag name", "body")
    return list(drv.get_log("browser"))


def _screenshot(drv: Any, path: Path) -> Path:
    """A full-page PNG through the DevTools protocol."""
    import base64

    size = drv.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = drv.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        },
    )
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def test_weekly_page_in_chromium(driver: Any, summary: dict[str, Any], tmp_path: Path) -> None:
    files = render_weekly(WeeklySummary.from_dict(summary), tmp_path / "2026-W38")
    console = _load(driver, files.report_html)
    errors = [m for m in console if m.get("level") in {"SEVERE", "ERROR", "WARNING"}]
    assert errors == []
    for sid in SECTION_IDS:
        assert driver.find_element("id", sid).is_displayed(), sid
    assert driver.find_elements("tag name", "script") == []
    assert driver.title == f"{summary['model']} · 2026-W38 · drift report"
    features = driver.find_element("id", "features").text
    assert SCRIPT in features  # shown as text, never run
    images = driver.find_elements("css selector", "figure.thumb img")
    assert images and all(driver.execute_script("return arguments[0].naturalWidth", img) > 0 for img in images)
    assert len(driver.find_elements("css selector", "svg.chart")) == 4

    shot = _screenshot(driver, tmp_path / "report.png")
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 50_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width >= 1000 and height > 2000  # the whole page, not just the first screen
    keep = os.environ.get("DRIFTKEEPER_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "weekly-report.png")


def test_index_page_in_chromium(driver: Any, tmp_path: Path) -> None:
    weeks = [
        IndexEntry(week=f"2026-W{w}", status=s, headline=h) for w, s, h in [(37, "drift", SCRIPT), (38, "ok", "quiet")]
    ]
    out = render_index("digits-cnn", weeks, tmp_path / "index.html")
    assert [m for m in _load(driver, out) if m.get("level") == "SEVERE"] == []
    links = [a.get_attribute("href") for a in driver.find_elements("css selector", "#weeks a")]
    assert links == [(tmp_path / f"2026-W{w}" / "report.html").as_uri() for w in (38, 37)]


def test_console_check_sees_a_csp_violation(driver: Any, tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text(
        '<!DOCTYPE html><meta http-equiv="Content-Security-Policy" content="default-src \'none\'">'
        "<title>bad</title><script>console.log('ran')</script><p>x</p>",
        encoding="utf-8",
    )
    console = _load(driver, page)
    assert any(m.get("level") == "SEVERE" and "Content Security Policy" in m.get("message", "") for m in console)


def test_evidently_page_works_offline(driver: Any, tmp_path: Path) -> None:
    import json

    import numpy as np
    import pandas as pd
    from selenium.webdriver.support.ui import WebDriverWait

    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"brightness": rng.normal(0, 1, 200), "label": rng.choice(["a", "b"], 200)})
    cur = pd.DataFrame({"brightness": rng.normal(1, 1, 200), "label": rng.choice(["a", "b"], 200)})
    page = render_evidently(ref, cur, tmp_path / "evidently.html", title="digits-cnn 2026-W38")
    assert page is not None
    console = _load(driver, page)
    WebDriverWait(driver, 30).until(lambda d: "Dataset Drift" in d.find_element("tag name", "body").text)
    console += driver.get_log("browser")
    assert [m for m in console if m.get("level") == "SEVERE"] == []
    events = [json.loads(m["message"])["message"] for m in driver.get_log("performance")]
    urls = [e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"]
    assert urls and all(u.startswith(("file:", "data:", "blob:")) for u in urls), urls
