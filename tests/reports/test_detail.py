"""evidently's detailed page on bounded samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reports import render_evidently


def _frames(shift: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(7)
    ref = pd.DataFrame({"brightness": rng.normal(0, 1, 300), "label": rng.choice(["a", "b"], 300)})
    cur = pd.DataFrame({"brightness": rng.normal(shift, 1, 300), "label": rng.choice(["a", "b"], 300), "extra": 1})
    return ref, cur


def test_evidently_page_is_written_and_bundles_its_scripts(tmp_path: Path) -> None:
    ref, cur = _frames(1.0)
    out = render_evidently(ref, cur, tmp_path / "evidently.html", title="digits <cnn> 2026-W38")
    assert out == tmp_path / "evidently.html"
    html = out.read_text(encoding="utf-8")
    assert "<title>digits &lt;cnn&gt; 2026-W38</title>" in html
    assert "<script" in html and "<script src" not in html  # bundled inline, no CDN
    assert "<link" not in html
    assert "brightness" in html


@pytest.mark.parametrize("which", ["reference", "current", "columns"])
def test_evidently_page_skipped_without_data(tmp_path: Path, which: str) -> None:
    ref, cur = _frames(0.0)
    if which == "reference":
        ref = ref.iloc[:0]
    elif which == "current":
        cur = cur.iloc[:0]
    else:
        cur = cur.rename(columns={"brightness": "b2", "label": "l2"})
    assert render_evidently(ref, cur, tmp_path / "evidently.html", title="t") is None
    assert not (tmp_path / "evidently.html").exists()


def test_hostile_names_and_values_cannot_break_out_of_evidently_scripts(tmp_path):
    import pandas as pd

    from reports import render_evidently

    hostile = "</script><img src=x onerror=alert(1)>"
    ref = pd.DataFrame({hostile: ["a", hostile] * 30, "x": range(60)})
    cur = pd.DataFrame({hostile: [hostile, "b"] * 30, "x": range(60)})
    page = render_evidently(ref, cur, tmp_path / "e.html", "t").read_text()
    assert "</script><img" not in page  # the value can no longer close evidently's script block
