"""Review app latency through litestar's TestClient: a page of 48 thumbnails, one keyboard decision.

Run: ``PYTHONPATH=. .venv/bin/python bench/bench_review_app.py [N_PREDICTIONS]`` (SQLite in a temporary folder).
Targets (issue 14): a page renders in < 300 ms, a decision is stored in < 100 ms.
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from litestar.testing import TestClient
from PIL import Image

from jobs.review.app import create_app
from storage.engine import make_engine, make_session_factory
from storage.migrate import upgrade
from tests.jobs.review import data


def main(n: int = 5000) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="dk-bench-review-"))
    url = f"sqlite:///{tmp / 'db.sqlite'}"
    engine = make_engine(url)
    upgrade(engine)
    factory = make_session_factory(engine)
    root = tmp / "images"
    root.mkdir()
    preds = [data.Pred(f"p{i:06d}", i / 60, 0.3 + 0.6 * (i % 97) / 97, device=("low", "high")[i % 2]) for i in range(n)]
    data.store(factory, preds)
    for p in preds[:200]:
        Image.new("L", (28, 28), 99).save(root / f"{p.pid}.png")
    settings = data.settings_for(url, image_roots=[str(root)])
    import os

    os.chdir(tmp)  # the stored input_uri is images/<id>.png
    with TestClient(create_app(factory, settings, model="pets", token=None), base_url="http://127.0.0.1") as c:
        page_ms, decide_ms, undo_ms = [], [], []
        token = ""
        for _ in range(20):
            t = time.perf_counter()
            r = c.get("/m/pets")
            page_ms.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200 and r.text.count('<li class="card"') == 48
            token = re.search(r'name="csrf-token" content="([0-9a-f]+)"', r.text).group(1)  # type: ignore[union-attr]
            ids = re.findall(r'data-id="([^"]+)"', r.text)
            t = time.perf_counter()
            assert c.post(
                "/m/pets/decide", json={"ids": ids[:1], "label": "dog"}, headers={"x-csrftoken": token}
            ).is_success
            decide_ms.append((time.perf_counter() - t) * 1000)
        for _ in range(10):
            t = time.perf_counter()
            assert c.post("/m/pets/undo", headers={"x-csrftoken": token}).is_success
            undo_ms.append((time.perf_counter() - t) * 1000)
    print(f"review app, SQLite, {n:,} queued predictions (20 runs; ms)")
    print(f"{'what':<34}{'median':>8}{'max':>8}  target")
    for name, values, target in (
        ("queue page, 48 thumbnails", page_ms, "< 300"),
        ("decision (store + progress)", decide_ms, "< 100"),
        ("undo (+ progress)", undo_ms, ""),
    ):
        print(f"{name:<34}{statistics.median(values):>8.1f}{max(values):>8.1f}  {target}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
