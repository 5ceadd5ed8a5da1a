"""The week's slices: per categorical value, share against the reference, accuracy, the
confidently-wrong rate and the share of the errors, on rows stored through the real ingest and
labels jobs, on every backend; top-K folding; the chi-square of the shares; escaping."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError as PydanticValidationError

from jobs.check.frames import layout
from jobs.check.reference import reference_from_window
from jobs.config import ModelSettings, Settings
from jobs.report.slices import ReferenceCounts, Tally, ValueCounts, build_slices, count_chunk, week_slices
from jobs.runner.execute import run_job
from reports.render import environment
from reports.slices import Slices
from storage import repository
from storage.windows import iter_rows
from tests.jobs.logdata import CLASSES, make_rows, write_jsonl

REF_START = datetime(2026, 10, 5, tzinfo=UTC)
WEEK_START = datetime(2026, 11, 2, tzinfo=UTC)
WEEK_END = WEEK_START + timedelta(days=7)
HOSTILE = "<script>alert(1)</script>\"'&"
# the week's devices: "low" doubles its share (1/3 in the reference) and fails
WEEK_DEVICES = {"low": 300, "mid": 180, "high": 90, HOSTILE: 20, "tablet": 10}
THRESHOLD = 0.5


@dataclass(frozen=True, kw_only=True)
class Week:
    settings: Settings
    rows: list[dict[str, Any]]
    labels: dict[str, str]  # prediction id -> label, for the labelled rows


def _settings(database_url: str, tmp_path: Path, **drift: Any) -> Settings:
    model = {
        "name": "pets",
        "class_labels": CLASSES,
        "features": [
            {"name": "brightness", "type": "numeric"},
            {"name": "sharpness", "type": "numeric"},
            {"name": "device", "type": "categorical"},
            {"name": "lighting", "type": "categorical"},
        ],
        "embedding": {"column": "embedding", "size": 4},
        "predictions": {"kind": "files", "path": str(tmp_path / "drop")},
        "labels": {"kind": "files", "path": str(tmp_path / "labels")},
        "confidence_threshold": THRESHOLD,
        "drift": drift,
    }
    return Settings(
        database={"url": database_url},
        paths={"var_dir": tmp_path / "var", "reports_dir": tmp_path / "reports", "models_dir": tmp_path / "models"},
        ingest={"batch_size": 5000},
        models=[model],
    )


def _wrong(label: str) -> str:
    return next(c for c in CLASSES if c != label)


@pytest.fixture
def week(database: Any, tmp_path: Path) -> Week:
    """A reference with devices ~1/3 each, and a week where every labelled ``low`` prediction is
    wrong and every other one right; ``lighting`` alternates day/night on both sides; every
    third week row has no label."""
    settings = _settings(database.url, tmp_path)
    with database.session_factory.begin() as s:
        repository.register_version(s, repository.ensure_model(s, "pets", "classification"), 1)
    ref = make_rows(900, seed=0, start=REF_START, minutes_per_row=10)
    rows = make_rows(sum(WEEK_DEVICES.values()), seed=1, start_index=10_000, start=WEEK_START, minutes_per_row=15)
    devices = [device for device, n in WEEK_DEVICES.items() for _ in range(n)]
    for i, row in enumerate(ref):
        row["lighting"] = ("day", "night")[i % 2]
    for i, (row, device) in enumerate(zip(rows, devices, strict=True)):
        row["device"], row["lighting"] = device, ("day", "night")[i % 2]
    labels = {
        row["prediction_id"]: _wrong(row["predicted_label"]) if row["device"] == "low" else row["predicted_label"]
        for i, row in enumerate(rows)
        if i % 3
    }
    label_rows = [
        {"prediction_id": p, "label": y, "labelled_at": "2026-11-20T00:00:00+00:00"} for p, y in labels.items()
    ]
    write_jsonl(tmp_path / "drop" / "ref.jsonl", ref)
    write_jsonl(tmp_path / "drop" / "week.jsonl", rows)
    write_jsonl(tmp_path / "labels" / "week.jsonl", label_rows)
    for job in ("ingest", "labels"):
        assert run_job(job, database.session_factory, settings).status == "succeeded"
    reference_from_window(database.session_factory, settings.models[0], 1, REF_START, REF_START + timedelta(days=7))
    return Week(settings=settings, rows=rows, labels=labels)


def _slices(database: Any, model: ModelSettings) -> Slices | None:
    with database.session_factory() as session:
        model_row = repository.get_model(session, model.name)
        return week_slices(session, model, model_row, 1, WEEK_START, WEEK_END)


def _with_drift(settings: Settings, **drift: Any) -> ModelSettings:
    data = settings.models[0].model_dump()
    data["drift"] |= drift
    return ModelSettings(**data)


def test_the_failing_slice_ranks_first_with_its_share_of_the_errors(database, week: Week):
    slices = _slices(database, week.settings.models[0])
    assert slices is not None
    n = len(week.rows)
    low = [r for r in week.rows if r["device"] == "low"]
    low_labelled = [r for r in low if r["prediction_id"] in week.labels]
    confident_low = [r for r in low_labelled if r["confidence"] >= THRESHOLD]
    assert (slices.n, slices.n_labelled, slices.errors) == (n, len(week.labels), len(low_labelled))
    assert slices.features == ("device", "lighting") and slices.top_k == 5
    first = slices.rows[0]
    assert (first.feature, first.value, first.other) == ("device", "low", False)
    assert first.n == 300 and first.share == pytest.approx(300 / n)
    assert first.n_labelled == first.errors == len(low_labelled)
    assert first.error_share == 1.0 and first.accuracy == 0.0
    assert first.accuracy_ci_low == 0.0 and 0.0 < first.accuracy_ci_high < 0.05
    assert first.n_confident_labelled == first.confidently_wrong == len(confident_low) > 0
    assert first.confidently_wrong_rate == 1.0
    ref_low = first.reference_n
    assert ref_low is not None and first.reference_share == pytest.approx(ref_low / 900)
    assert first.share_shift == pytest.approx(300 / n - ref_low / 900)
    mid = next(r for r in slices.of("device") if r.value == "mid")
    assert (mid.errors, mid.error_share, mid.accuracy, mid.confidently_wrong_rate) == (0, 0.0, 1.0, 0.0)
    assert mid.n_labelled == sum(1 for r in week.rows if r["device"] == "mid" and r["prediction_id"] in week.labels)
    # a feature's slices partition the week: shares and error shares add up to 1
    for feature in slices.features:
        assert sum(r.n for r in slices.of(feature)) == n
        assert sum(r.error_share or 0.0 for r in slices.of(feature)) == pytest.approx(1.0)
    night = next(r for r in slices.of("lighting") if r.value == "night")
    assert night.error_share == pytest.approx(
        sum(1 for r in low_labelled if r["lighting"] == "night") / len(low_labelled)
    )
    assert Slices.from_dict(json.loads(json.dumps(slices.to_dict(), allow_nan=False))) == slices


def test_values_past_the_top_k_fold_into_other(database, week: Week):
    slices = _slices(database, _with_drift(week.settings, slice_top_k=2, slices=["device"]))
    assert slices is not None and slices.features == ("device",)
    device = {("other" if r.other else r.value): r for r in slices.rows}
    assert set(device) == {"low", "mid", "other"}
    other = device["other"]
    assert (other.value, other.n_values, other.n) == ("other", 3, 90 + 20 + 10)
    assert other.n_labelled == sum(
        1 for r in week.rows if r["device"] not in ("low", "mid") and r["prediction_id"] in week.labels
    )
    assert other.errors == 0 and other.accuracy == 1.0
    assert other.reference_n == 900 - (device["low"].reference_n or 0) - (device["mid"].reference_n or 0)


def test_the_chi_square_flags_the_feature_whose_shares_moved(database, week: Week):
    slices = _slices(database, week.settings.models[0])
    assert slices is not None
    drift = {d.feature: d for d in slices.drift}
    assert drift["device"].drifted and drift["device"].p_value < 1e-6
    assert drift["device"].method == "chisquare_2s"
    # day/night alternate on both sides: identical shares, no drift
    assert not drift["lighting"].drifted and drift["lighting"].statistic == pytest.approx(0.0, abs=1e-9)
    assert drift["lighting"].p_value == pytest.approx(1.0)
    assert slices.drifted_features == ("device",)


def test_chunks_merge_exactly(database, week: Week):
    """Counts of the week read 37 rows at a time are those of one read."""
    model = week.settings.models[0]
    tallies = []
    with database.session_factory() as session:
        model_row = repository.get_model(session, model.name)
        for chunk_size in (37, 100_000):
            tally: Tally = {"device": {}, "lighting": {}}
            chunks = iter_rows(
                session,
                model_row.id,
                layout(model),
                version=1,
                start=WEEK_START,
                end=WEEK_END,
                with_labels=True,
                chunk_size=chunk_size,
            )
            for rows in chunks:
                count_chunk(tally, rows, THRESHOLD)
            tallies.append(tally)
    assert tallies[0] == tallies[1] and sum(c.n for c in tallies[0]["device"].values()) == len(week.rows)


def test_no_categorical_feature_to_slice_gives_none(database, week: Week):
    assert _slices(database, _with_drift(week.settings, slices=[])) is None


def test_a_hostile_value_is_escaped_in_the_section(database, week: Week):
    slices = _slices(database, week.settings.models[0])
    assert slices is not None
    assert any(r.value == HOSTILE for r in slices.rows)
    template = environment().from_string('{% from "slices.html.j2" import slices_section %}{{ slices_section(s) }}')
    html = template.render(s=slices)
    assert "<script>" not in html and HOSTILE not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&#39;&amp;" in html
    assert html.index(">low<") < html.index(">mid<")  # ranked: the failing slice first
    assert "No data" in template.render(s=None)


def test_missing_values_are_a_slice_and_no_reference_gives_no_drift():
    tally = {
        "device": {"low": ValueCounts(n=3, n_labelled=2, errors=1), None: ValueCounts(n=1, n_labelled=1, errors=1)}
    }
    slices = build_slices(tally, None, version=1, top_k=5, confidence_threshold=0.9, correction="bh")
    assert [(r.value, r.error_share) for r in slices.rows] == [("low", 0.5), (None, 0.5)]  # tie: the larger first
    assert slices.drift == () and slices.reference_n is None and slices.rows[0].reference_share is None
    reference = ReferenceCounts(n_rows=4, features={"device": {"low": 3, None: 1}})
    same = build_slices(tally, reference, version=1, top_k=5, confidence_threshold=0.9, correction="bh")
    assert same.rows[1].reference_share == 0.25 and same.rows[1].share_shift == 0.0
    assert not same.drift[0].drifted


def test_slices_must_name_categorical_features(tmp_path: Path):
    with pytest.raises(PydanticValidationError, match=r"drift\.slices names no categorical feature: brightness"):
        _settings("sqlite://", tmp_path, slices=["brightness", "device"])
    with pytest.raises(PydanticValidationError, match="slice_top_k"):
        _settings("sqlite://", tmp_path, slice_top_k=0)
