"""The weekly page and summary.json: structure, empty sections, escaping, thumbnails, size.

The tests change the sample as ``summary.json`` data (a dict) and render it typed, through
:meth:`WeeklySummary.from_dict`, as a report read back from its file would be.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from drift.errors import ValidationError
from reports import WeeklyReportFiles, render_weekly
from reports.render import CSP
from reports.summary import WeeklySummary
from tests.reports.htmlcheck import parse
from tests.reports.report_sample import HOSTILE, IMG, MATH, SCHEMA_KEYS, SCRIPT, SECTION_IDS, make_weekly, png_data_uri

FEATURE_KEYS = ["column", "kind", "method", "score", "p_value", "effect", "threshold", "drifted", "trend"]
EXAMPLE_KEYS = ["prediction_id", "input_uri", "thumbnail", "true_label", "predicted_label", "confidence"]


def _render(summary: dict[str, Any], tmp_path: Path) -> tuple[WeeklyReportFiles, str]:
    files = render_weekly(WeeklySummary.from_dict(summary), tmp_path / "2026-W38")
    return files, files.report_html.read_text(encoding="utf-8")


def test_the_typed_summary_round_trips_through_json() -> None:
    typed = make_weekly()
    assert WeeklySummary.from_dict(json.loads(json.dumps(typed.to_dict()))) == typed
    assert typed.verdict.status == "act" and typed.runs[0].n_rows == 48213
    assert typed.confident_outliers is not None and typed.confident_outliers.examples[0].score == 7.5


def test_summary_json_is_the_input_verbatim(summary: dict[str, Any], tmp_path: Path) -> None:
    files, _ = _render(summary, tmp_path)
    assert files.summary_json == tmp_path / "2026-W38" / "summary.json"
    assert files.report_html == tmp_path / "2026-W38" / "report.html"
    written = json.loads(files.summary_json.read_text(encoding="utf-8"))
    assert written == summary
    # Golden structure of schema 2 (the sample is the contract's shape, key for key and in order).
    assert list(written) == SCHEMA_KEYS
    assert list(written["features"][0]) == FEATURE_KEYS
    assert list(written["features"][0]["trend"][0]) == ["week", "score", "drifted"]
    assert list(written["outputs"]) == ["columns", "class_distribution", "confidence"]
    assert list(written["confidently_wrong"]["examples"][0]) == EXAMPLE_KEYS
    assert list(written["confident_outliers"]["examples"][0]) == [*EXAMPLE_KEYS, "score"]
    assert list(written["performance"]["weeks"][0]) == [
        "week",
        "estimated_accuracy",
        "estimate_low",
        "estimate_high",
        "realized_accuracy",
        "realized_low",
        "realized_high",
        "label_coverage",
        "n_labelled",
    ]
    text = files.summary_json.read_text(encoding="utf-8")
    assert text.startswith('{\n  "schema": 2,') and text.endswith("}\n")
    assert SCRIPT in text  # not escaped for HTML: it is data
    assert sorted(p.name for p in files.report_html.parent.iterdir()) == ["report.html", "summary.json"]


def test_every_section_is_present_with_its_content(summary: dict[str, Any], tmp_path: Path) -> None:
    _, html = _render(summary, tmp_path)
    page = parse(html)
    assert set(SECTION_IDS) <= set(page.ids)
    assert len(page.ids) == len(set(page.ids))
    s = page.section_text
    assert "ACT" in s["verdict"] and "retraining recommended" in s["verdict"]
    assert "Revised on" in s["verdict"] and "(was WATCH)" in s["verdict"] and "310 more labels" in s["verdict"]
    assert "What to do" in s["verdict"] and "label these 24 predictions" in s["verdict"]
    assert "any-2-of-3" in s["verdict"]
    assert "/var/driftkeeper/exports/digits-cnn/3" in s["serving"] and "(the champion now)" in s["serving"]
    assert "Confusion matrix" in s["performance"] and "22.7%" in s["performance"]
    assert "3 of 6 drifted" in s["features"]
    assert s["features"].index("brightness") < s["features"].index("ink_ratio")  # the lead's ranking is kept
    assert "predicted_label" in s["outputs"] and "Predicted classes" in s["outputs"] and "Confidence" in s["outputs"]
    assert "mmd" in s["embedding"]
    assert "Reliability" in s["calibration"] and "0.074" in s["calibration"]
    assert "not trustworthy" in s["performance"] and "covariate shift" in s["performance"]
    assert "2026-W31" in s["performance"] and "5.0%" in s["performance"]
    assert "rose significantly" in s["confidently-wrong"]
    assert "unlabelled → 0" in s["confident-outliers"]
    assert "promoted" in s["retrains"] and "failed" in s["retrains"] and "1.2 MiB" in s["retrains"]
    assert "178" in s["data-quality"] and "missing field 'confidence'" in s["data-quality"]
    assert "312" in s["review"] and "62.0%" in s["review"]
    assert "median 6.5 days, 90% within 18.25 days" in s["data-quality"]
    links = [a["href"] for a in page.attrs("a")]
    assert "evidently.html" in links
    for sid in SECTION_IDS:
        assert "no data" not in s[sid].lower(), sid


def test_examples_are_grouped_by_true_and_predicted_class(summary: dict[str, Any], tmp_path: Path) -> None:
    _, html = _render(summary, tmp_path)
    text = parse(html).section_text["confidently-wrong"]
    headings = re.findall(r"(\S+ → \S+) \((\d+)\)", text)
    assert headings[0] == ("7 → 1", "2")  # largest group first
    assert {h for h, _ in headings} >= {"3 → 8", "4 → 9"}
    assert f"{SCRIPT} → {IMG} (1)" in text


NO_DATA = {"status": "no-data", "headline": "no checked predictions this week", "reasons": []}


@pytest.mark.parametrize("value", [None, "missing"], ids=["null", "missing"])
def test_missing_sections_say_no_data(summary: dict[str, Any], tmp_path: Path, value: Any) -> None:
    keep = {"schema", "model", "week", "window", "generated_at"}
    empty = {k: v for k, v in summary.items() if k in keep} | {"verdict": NO_DATA}
    if value is None:  # every section there, as null or empty
        empty |= {k: [] if k in ("runs", "retrains", "actions") else None for k in summary if k not in empty}
    _, html = _render(empty, tmp_path)
    page = parse(html)
    for sid in SECTION_IDS:
        assert "no data" in page.section_text[sid].lower(), sid
    assert "NO-DATA" in page.section_text["verdict"]


def test_empty_lists_and_inner_sections_say_no_data(summary: dict[str, Any], tmp_path: Path) -> None:
    summary.update(
        verdict={"status": "no-data", "headline": "No predictions this week", "reasons": []},
        runs=[],
        features=[],
        outputs={"columns": [], "class_distribution": None, "confidence": None},
        calibration={"reference": None, "current": None},
        performance={"weeks": [], "trustworthy": False, "warning": None},
        confidently_wrong={
            "count": 0,
            "rate": None,
            "reference_rate": None,
            "rose_significantly": False,
            "examples": [],
        },
        confident_outliers={"count": 0, "rate": None, "examples": []},
        retrains=[],
        data_quality=None,
        serving=None,
        actions=[],
        review=None,
        embedding=None,
        evidently_report=None,
    )
    _, html = _render(summary, tmp_path)
    page = parse(html)
    for sid in (*SECTION_IDS, "evidently"):
        assert "no data" in page.section_text[sid].lower(), sid
    assert "<svg" not in html.split('id="features"')[1].split("</section>")[0]


def test_hostile_strings_are_escaped_everywhere(summary: dict[str, Any], tmp_path: Path) -> None:
    summary["model"] = SCRIPT
    summary["week"] = IMG
    _, html = _render(summary, tmp_path)
    assert "<script" not in html.lower()
    assert "<img src=x" not in html
    page = parse(html)
    assert not [t for t, _ in page.tags if t in {"script", "iframe", "object", "embed", "link", "base", "form"}]
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            if name in {"src", "href", "xlink:href"}:
                assert value is not None
                assert value.startswith(("data:image/png;base64,", "#", "evidently.html", "to_label.csv")), (tag, value)
    # shown literally, as text, in the page and inside the SVG charts
    for hostile in HOSTILE:
        assert hostile in page.text
    assert SCRIPT in page.svg_text
    assert "{{ 7*7 }}" in page.section_text["features"]  # data is never evaluated as a template
    assert "49" not in page.section_text["features"]
    # "$...$" must not become matplotlib mathtext
    assert MATH[:12] in page.text


def test_strict_csp_and_no_external_url(summary: dict[str, Any], tmp_path: Path) -> None:
    _, html = _render(summary, tmp_path)
    page = parse(html)
    metas = [m for m in page.attrs("meta") if m.get("http-equiv") == "Content-Security-Policy"]
    assert [m["content"] for m in metas] == [CSP]
    assert CSP.startswith("default-src 'none'; img-src data:; style-src 'unsafe-inline'")
    urls = re.findall(r"""(?:src|href)\s*=\s*["']?\s*([a-z][a-z0-9+.-]*:)""", html, flags=re.IGNORECASE)
    assert set(urls) <= {"data:"}
    assert not re.search(r"url\((?!#)", html) and "@import" not in html  # only references within the page
    assert "https://" not in html  # matplotlib's metadata (creator URL) is dropped


def test_only_png_data_uris_become_images(summary: dict[str, Any], tmp_path: Path) -> None:
    good = png_data_uri("7")
    bad = [
        "javascript:alert(1)",
        "http://example.com/x.png",
        "data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+PC9zdmc+",
        "data:image/png;base64," + "QUJDREVGR0hJSktM",  # valid base64, not a PNG
        good + '" onerror="alert(1)',
        good.replace("data:image/png", "DATA:image/png"),
        "data:image/png;base64,",
        "data:image/png;base64," + "A" * 60_000,
        None,
    ]
    examples = summary["confidently_wrong"]["examples"]
    for i, thumb in enumerate(bad):
        examples.append({**examples[0], "prediction_id": f"bad-{i}", "thumbnail": thumb})
    examples[0]["thumbnail"] = good
    _, html = _render(summary, tmp_path)
    page = parse(html)
    srcs = [a["src"] for a in page.attrs("img")]
    n_good = len(summary["confidently_wrong"]["examples"]) - len(bad) + len(summary["confident_outliers"]["examples"])
    assert len(srcs) == n_good
    assert all(s is not None and re.fullmatch(r"data:image/png;base64,[A-Za-z0-9+/]+=*", s) for s in srcs)
    assert "javascript:" not in html and "svg+xml" not in html and "example.com" not in html
    assert "8 thumbnails were not embedded" in page.section_text["confidently-wrong"]


@pytest.mark.parametrize(("noise", "size"), [(False, 32), (True, 64)], ids=["digits-32px", "noise-64px"])
def test_page_stays_under_2mb_with_40_thumbnails(
    summary: dict[str, Any], tmp_path: Path, noise: bool, size: int
) -> None:
    for key, extra in (("confidently_wrong", {}), ("confident_outliers", {"score": 5.0})):
        summary[key]["examples"] = [
            {
                "prediction_id": f"{key}-{i}",
                "input_uri": f"/data/images/{i}.png",
                "thumbnail": png_data_uri(str(i % 10), size=size, noise=noise, seed=i),
                "true_label": str(i % 3),
                "predicted_label": str((i + 1) % 3),
                "confidence": 0.99,
                **extra,
            }
            for i in range(20)
        ]
    files, html = _render(summary, tmp_path)
    assert len(parse(html).attrs("img")) == 40
    assert files.report_html.stat().st_size < 2_000_000


def test_thumbnail_budget_keeps_the_page_under_2mb(summary: dict[str, Any], tmp_path: Path) -> None:
    big = png_data_uri("x", size=128, noise=True)  # ~22 KB each, the largest kind still embedded
    assert len(big) < 48_000
    for key in ("confidently_wrong", "confident_outliers"):
        summary[key]["examples"] = [
            {**summary[key]["examples"][0], "prediction_id": f"{key}-{i}", "thumbnail": big} for i in range(60)
        ]
    files, html = _render(summary, tmp_path)
    assert files.report_html.stat().st_size < 2_000_000
    assert 0 < len(parse(html).attrs("img")) < 120


@pytest.mark.parametrize("status", ["ok", "watch", "act", "no-data"])
def test_status_badge(summary: dict[str, Any], tmp_path: Path, status: str) -> None:
    summary["verdict"]["status"] = status
    _, html = _render(summary, tmp_path)
    assert f'<span class="badge {status} big">{status.upper()}</span>' in html
    colours = {
        "ok": "--ok: #16a34a",
        "watch": "--drift: #f59e0b",
        "act": "--retrain: #dc2626",
        "no-data": "--nodata: #6b7280",
    }
    assert colours[status] in html


@pytest.mark.parametrize(
    ("name", "linked"),
    [
        ("evidently.html", True),
        ("../evidently.html", False),
        ("https://evil.example/x.html", False),
        ("a/b.html", False),
    ],
)
def test_evidently_link_is_a_file_in_the_same_folder(
    summary: dict[str, Any], tmp_path: Path, name: str, linked: bool
) -> None:
    summary["evidently_report"] = name
    _, html = _render(summary, tmp_path)
    hrefs = [a["href"] for a in parse(html).attrs("a")]
    assert (name in hrefs) is linked
    assert (name in html) is linked


def _set(path: str, value: Any) -> Any:
    """A change to the sample: ``value`` at ``path`` (``a.b`` keys, ``[i]`` list items)."""

    def change(summary: dict[str, Any]) -> None:
        *parents, last = re.findall(r"[^.\[\]]+", path)
        target: Any = summary
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        target[int(last) if last.isdigit() else last] = value

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set("schema", 3), "summary schema 3 is not supported; allowed: 1, 2"),
        (_set("verdict.status", "fine"), "summary verdict.status: Input should be 'no-data', 'ok', 'watch' or"),
        (_set("features", {"column": "x"}), "summary features: Input should be a valid tuple"),
        (_set("embedding.score", "high"), "summary embedding.score: Input should be a valid number"),
        (_set("retrains[0].decision", "maybe"), "summary retrains[0].decision: Input should be 'running', 'promoted'"),
        (
            _set("retrains[0].decision", "running"),
            "retrain decision 'running' is not one of promoted, rejected, failed",
        ),
        (_set("data_quality.rows", "many"), "summary data_quality.rows: Input should be a valid integer"),
        (_set("runs[0].n_rows", None), "summary runs[0].n_rows: Input should be a valid integer"),
        (_set("verdict", None), "summary verdict: Input should be a dictionary or an instance of Verdict"),
        (_set("actions[0].href", "javascript:alert(1)"), "must be a file name in the report's folder"),
    ],
    ids=[
        "schema",
        "status",
        "features-shape",
        "number",
        "decision",
        "unfinished",
        "integer",
        "null",
        "verdict",
        "href",
    ],
)
def test_a_summary_of_the_wrong_shape_is_refused_naming_the_key(
    summary: dict[str, Any], change: Any, message: str
) -> None:
    change(summary)
    with pytest.raises(ValidationError, match=re.escape(message)):
        WeeklySummary.from_dict(summary)


def test_a_value_json_cannot_hold_raises_and_writes_nothing(summary: dict[str, Any], tmp_path: Path) -> None:
    summary["serving"]["metrics"]["accuracy"] = float("nan")
    with pytest.raises(ValidationError, match="strict JSON"):
        render_weekly(WeeklySummary.from_dict(summary), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_chart_of_mismatched_lists_raises_and_writes_nothing(summary: dict[str, Any], tmp_path: Path) -> None:
    summary["outputs"]["class_distribution"]["current"] = [0.5, 0.5]
    with pytest.raises(ValidationError, match="lists must have the same length"):
        render_weekly(WeeklySummary.from_dict(summary), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_long_lists_stay_readable(summary: dict[str, Any], tmp_path: Path) -> None:
    column = summary["features"][0]
    summary["features"] = [{**column, "column": f"f{i:03d}", "drifted": i < 3} for i in range(60)]
    labels = [f"class-{i}" for i in range(100)]
    shares = [1 / 100] * 100
    summary["outputs"]["class_distribution"] = {"labels": labels, "reference": shares, "current": shares[::-1]}
    _, html = _render(summary, tmp_path)
    page = parse(html)
    assert "Predicted classes (25 largest of 100)" in page.svg_text
    assert "35 more columns" in page.section_text["features"]
    assert "3 of 60 drifted" in page.section_text["features"]
    assert html.index("f024") < html.index("<details>") < html.index("f025")


def test_a_segmentation_section_shows_mask_quality_only_when_present(tmp_path, summary):
    _, without = _render(summary, tmp_path / "a")
    assert 'id="segmentation"' not in without
    summary["segmentation"] = {
        "iou_threshold": 0.5,
        "n_labelled": 11,
        "n_with_masks": 11,
        "n_scored": 9,
        "n_skipped": 2,
        "skipped": {"mask missing": 2},
        "mean_iou": 0.42,
        "per_class_iou": {"<road>": 0.5, "car": None},
        "reference_mean_iou": 0.81,
    }
    _, page = _render(summary, tmp_path / "b")
    assert 'id="segmentation"' in page and "0.42" in page and "0.81" in page and "2 skipped" in page
    assert "&lt;road&gt;" in page and "<road>" not in page


def test_a_schema_1_summary_is_read_as_schema_2(summary: dict[str, Any]) -> None:
    old = dict(summary) | {"schema": 1}
    old["verdict"] = {"status": "retrain", "headline": "retrain-worthy: outputs drifted", "reasons": [SCRIPT]}
    old["champion"] = {k: v for k, v in old.pop("serving").items() if k != "champion_now"}
    del old["actions"], old["slices"], old["baselines"]
    typed = WeeklySummary.from_dict(old)
    assert typed.schema == 2 and typed.verdict.status == "act"
    assert [(c.kind, c.level, c.text) for c in typed.verdict.reasons] == [("policy", "act", SCRIPT)]
    assert typed.serving is not None and typed.serving.version == 3 and typed.serving.champion_now
