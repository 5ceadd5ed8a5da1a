"""The review app as a reviewer uses it: uvicorn on a free port, Debian's headless Chromium via selenium.

A week goes through the real jobs (ingest, reference, check); its unlabelled predictions, with
images inside the image root, fill the queue. The reviewer labels 20 images by keyboard, undoes
one and bulk-assigns 5; the labels are in the database and the next ``check`` counts them. The
console stays clean (a CSP violation would be an error). The token login and a CSRF refusal are
exercised in the browser too.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from jobs.check.reference import reference_from_window
from jobs.config import Settings
from jobs.review.app import create_app
from jobs.runner.execute import run_job
from storage import repository
from storage.models import DriftRun, Label
from tests.chromium import browser_marks, chromium
from tests.jobs.logdata import make_rows, settings_for, write_jsonl

REF_START = datetime(2026, 10, 1, tzinfo=UTC)
WEEK_START = datetime(2026, 11, 2, tzinfo=UTC)
WEEK_END = WEEK_START + timedelta(days=7)

pytestmark = browser_marks


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    yield from chromium()


def checked_week(database: Any, tmp_path: Path) -> Settings:
    """A checked, unlabelled week of 200 predictions, each with an image inside the image root."""
    root = tmp_path / "images"
    root.mkdir()
    base = settings_for(database.url, {"kind": "files", "path": str(tmp_path / "drop")}, batch_size=5000)
    model = base.models[0].model_dump() | {"image_roots": [str(root)]}
    settings = Settings(
        database={"url": database.url},
        paths={"var_dir": tmp_path / "var", "reports_dir": tmp_path / "reports", "models_dir": tmp_path / "models"},
        ingest=base.ingest,
        models=[model],
    )
    rng = np.random.default_rng(5)
    week = make_rows(200, seed=7, start_index=10_000, start=WEEK_START, minutes_per_row=45, brightness_shift=0.3)
    for row in week:
        path = root / f"{row['prediction_id']}.png"
        Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8), mode="L").save(path)
        row["input_uri"] = str(path)
    with database.session_factory.begin() as s:
        repository.register_version(s, repository.ensure_model(s, "pets", "classification"), 1)
    write_jsonl(tmp_path / "drop" / "ref.jsonl", make_rows(1500, seed=0, start=REF_START, minutes_per_row=5))
    write_jsonl(tmp_path / "drop" / "week.jsonl", week)
    assert run_job("ingest", database.session_factory, settings).status == "succeeded"
    reference_from_window(database.session_factory, settings.models[0], 1, REF_START, REF_START + timedelta(days=7))
    outcome = run_job("check", database.session_factory, settings, "pets", end=WEEK_END, now=WEEK_END)
    assert outcome.status == "succeeded", outcome.error
    return settings


def ticking(start: datetime) -> Callable[[], datetime]:
    """A clock that moves a second a call: decisions get distinct, known times whatever the date."""
    counter = itertools.count()
    return lambda: start + timedelta(seconds=next(counter))


@pytest.fixture
def serve(database: Any) -> Iterator[Callable[..., str]]:
    """Start the app under uvicorn in a thread; returns its base URL. Stopped afterwards."""
    import uvicorn

    servers: list[tuple[Any, threading.Thread]] = []

    def start(settings: Settings, token: str | None = None) -> str:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        app = create_app(
            database.session_factory, settings, model="pets", token=token, clock=ticking(WEEK_END + timedelta(hours=1))
        )
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


def settle(drv: Any) -> None:
    """Wait until every decision the page sent has been answered."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(drv, 20).until(lambda d: d.find_element("id", "grid").get_attribute("data-pending") == "0")


def severe(drv: Any) -> list[dict[str, Any]]:
    return [m for m in drv.get_log("browser") if m.get("level") in {"SEVERE", "ERROR"}]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_label_by_keyboard_undo_and_bulk(driver: Any, database: Any, tmp_path: Path, serve: Any) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.select import Select

    settings = checked_week(database, tmp_path)
    url = serve(settings)
    driver.get_log("browser")
    driver.get(f"{url}/m/pets?week=2026-W45")  # the checked week (the reference's weeks are unlabelled too)
    cards = driver.find_elements("css selector", "#grid .card")
    assert len(cards) == 48
    assert all(
        driver.execute_script("return arguments[0].naturalWidth", img) == 28
        for img in driver.find_elements("css selector", "#grid .frame img")
    )
    ids = [c.get_attribute("data-id") for c in cards]
    predicted = [c.get_attribute("data-predicted") for c in cards]
    legend = {
        b.get_attribute("data-key"): b.get_attribute("data-label")
        for b in driver.find_elements("css selector", ".choice")
    }
    assert legend == {"1": "cat", "2": "dog", "3": "other"}

    keys = ["1", "2", "3", Keys.ENTER] * 5  # 20 decisions, one key each
    started = time.monotonic()
    ActionChains(driver).send_keys(*keys).perform()
    settle(driver)
    elapsed = time.monotonic() - started
    expected = {ids[i]: legend.get(k, predicted[i]) if k != Keys.ENTER else predicted[i] for i, k in enumerate(keys)}
    assert len(driver.find_elements("css selector", ".card.done")) == 20
    assert elapsed < 40, f"20 decisions took {elapsed:.1f}s: slower than 30 a minute"

    ActionChains(driver).send_keys("u").perform()  # undo the last one: the cursor goes back to it
    settle(driver)
    del expected[ids[19]]
    assert driver.find_element("id", "status").text == f"undid {ids[19]}"
    assert "current" in cards[19].get_attribute("class")

    ActionChains(driver).send_keys(" ", Keys.ARROW_RIGHT, " ", Keys.ARROW_RIGHT, " ", Keys.ARROW_RIGHT, " ").perform()
    ActionChains(driver).send_keys(Keys.ARROW_RIGHT, " ").perform()
    assert driver.find_element("id", "selected-count").text == "5"
    Select(driver.find_element("id", "bulk-label")).select_by_value("other")
    driver.find_element("id", "bulk-assign").click()
    settle(driver)
    expected |= {ids[i]: "other" for i in range(19, 24)}
    assert driver.find_element("id", "p-done").text == "24"
    assert driver.find_element("id", "selected-count").text == "0"
    assert severe(driver) == []

    with database.session_factory() as s:
        stored = dict(s.execute(select(Label.prediction_id, Label.label)).all())  # type: ignore[arg-type]
    assert stored == expected

    outcome = run_job(
        "check", database.session_factory, settings, "pets", end=WEEK_END, now=WEEK_END + timedelta(days=1)
    )
    assert outcome.status == "succeeded", outcome.error
    with database.session_factory() as s:
        run = s.get(DriftRun, outcome.data["runs"][0]["run_id"])
        assert run is not None and (run.figures or {})["realized_performance"]["n_labelled"] == 24

    driver.get(f"{url}/m/pets?week=2026-W45")  # decided images left the queue
    assert not set(ids[:24]) & {c.get_attribute("data-id") for c in driver.find_elements("css selector", "#grid .card")}
    assert severe(driver) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_token_login_and_csrf_refusal_in_the_browser(driver: Any, database: Any, tmp_path: Path, serve: Any) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    settings = checked_week(database, tmp_path)
    url = serve(settings, token="review-token")
    driver.delete_all_cookies()
    driver.get(f"{url}/m/pets")
    assert driver.current_url.startswith(f"{url}/login")
    driver.find_element("id", "token").send_keys("wrong")
    driver.find_element("css selector", "form button").click()
    wait = WebDriverWait(driver, 20)
    assert wait.until(lambda d: d.find_elements("css selector", ".error"))[0].text == "wrong token"
    driver.get_log("browser")  # the 401 of the wrong token is logged: expected
    driver.find_element("id", "token").send_keys("review-token")
    driver.find_element("css selector", "form button").click()
    wait.until(lambda d: d.current_url == f"{url}/m/pets")
    assert len(driver.find_elements("css selector", "#grid .card")) == 48
    first = driver.find_element("css selector", "#grid .card").get_attribute("data-id")
    assert severe(driver) == []
    refused = driver.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "fetch('/m/pets/decide', {method: 'POST', headers: {'Content-Type': 'application/json'},"
        " body: JSON.stringify({ids: [arguments[0]], label: 'cat'})}).then(function (r) { done(r.status); });",
        first,
    )
    assert refused == 403
    with database.session_factory() as s:
        assert s.scalars(select(Label.prediction_id)).all() == []
