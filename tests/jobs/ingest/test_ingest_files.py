from __future__ import annotations

import csv
import json
import shutil

import pandas as pd
import pytest
from sqlalchemy import func, select

from jobs.ingest.run import Ingestor, ingest
from jobs.ingest.validate import validate_predictions
from storage import repository
from storage.codec import FLOAT32, FLOAT64, unpack_rows
from storage.models import Label, PredictionLog, QuarantinedRow
from tests.jobs.logdata import CLASSES, make_rows, settings_for, write_jsonl


def _register(database, settings):
    with database.session_factory.begin() as s:
        model = repository.ensure_model(s, "pets", "classification")
        repository.register_version(s, model, 1)


def _count(database, entity=PredictionLog):
    with database.session_factory() as s:
        return s.scalar(select(func.count()).select_from(entity))


@pytest.fixture
def drop(tmp_path):
    return tmp_path / "drop"


def test_files_are_taken_once_even_when_renamed_or_redropped(database, drop):
    settings = settings_for(database.url, {"kind": "files", "path": str(drop)})
    _register(database, settings)
    write_jsonl(drop / "a.jsonl", make_rows(20))
    first = ingest(database.session_factory, settings)[0]
    assert (first.inserted, first.files_taken, first.quarantined) == (20, 1, 0)
    (drop / "a.jsonl").rename(drop / "renamed.jsonl")
    shutil.copy(drop / "renamed.jsonl", drop / "again.jsonl")
    second = ingest(database.session_factory, settings)[0]
    assert (second.inserted, second.files_skipped, second.rows_read) == (0, 2, 0)
    assert _count(database) == 20


def test_stored_arrays_round_trip(database, drop):
    settings = settings_for(database.url, {"kind": "files", "path": str(drop)})
    _register(database, settings)
    rows = make_rows(5)
    write_jsonl(drop / "a.jsonl", rows)
    ingest(database.session_factory, settings)
    with database.session_factory() as s:
        stored = s.scalars(select(PredictionLog).order_by(PredictionLog.prediction_id)).all()
    probs = unpack_rows([r.probabilities for r in stored], len(CLASSES), FLOAT32)
    expected = [json.loads(r["probabilities"]) for r in rows]
    assert probs == pytest.approx(pd.DataFrame(expected).to_numpy(), abs=1e-6)
    assert stored[0].ts == pd.Timestamp(rows[0]["timestamp"]).to_pydatetime()
    assert stored[0].ts.tzinfo is not None
    assert json.loads(stored[0].categorical_features) == {"device": rows[0]["device"]}


def test_bad_rows_are_quarantined_with_their_reason_and_the_rest_goes_in(database, drop):
    settings = settings_for(database.url, {"kind": "files", "path": str(drop)})
    _register(database, settings)
    rows = make_rows(8)
    del rows[0]["brightness"]
    rows[1]["sharpness"] = "very"
    rows[2]["probabilities"] = json.dumps([0.5, 0.4, 0.4])
    rows[3]["predicted_label"] = "unicorn"
    rows[4]["model_version"] = 9
    rows[5]["embedding"] = json.dumps([1.0, 2.0])
    path = write_jsonl(drop / "bad.jsonl", rows)
    with path.open("a") as handle:
        handle.write("{not json\n")
    report = ingest(database.session_factory, settings)[0]
    assert (report.inserted, report.quarantined, report.rows_read) == (2, 7, 9)
    with database.session_factory() as s:
        found = {q.position: (q.field, q.reason) for q in s.scalars(select(QuarantinedRow))}
        raw = s.scalar(select(QuarantinedRow.raw).where(QuarantinedRow.position == "line 2"))
    assert found["line 1"] == ("brightness", "missing field 'brightness'") or found["line 1"][0] == "brightness"
    assert found["line 2"][0] == "sharpness" and "not a number" in found["line 2"][1]
    assert found["line 3"][0] == "probabilities" and "sum to 1.3000" in found["line 3"][1]
    assert found["line 4"] == ("predicted_label", "unknown label (allowed: cat, dog, other)")
    assert found["line 5"] == ("model_version", "unknown model version 9 (known: 1)")
    assert found["line 6"] == ("embedding", "expected 4 values, got 2")
    assert found["line 9"][0] is None and "not valid JSON" in found["line 9"][1]
    assert json.loads(raw)["sharpness"] == "very"  # kept whole, as it came


def test_csv_and_parquet_files(database, drop):
    settings = settings_for(database.url, {"kind": "files", "path": str(drop)})
    _register(database, settings)
    rows = make_rows(30)
    drop.mkdir()
    with (drop / "a.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows[:15])
        handle.write("short,row\n")
    pd.DataFrame(rows[15:]).to_parquet(drop / "b.parquet")
    report = ingest(database.session_factory, settings)[0]
    assert (report.inserted, report.quarantined, report.files_taken) == (30, 1, 2)
    with database.session_factory() as s:
        reason = s.scalar(select(QuarantinedRow.reason))
    assert reason == f"expected {len(rows[0])} fields, got 2"


class Crash(RuntimeError):
    pass


def test_crash_mid_file_then_rerun_gives_every_row_exactly_once(database, drop):
    settings = settings_for(database.url, {"kind": "files", "path": str(drop)})
    _register(database, settings)
    write_jsonl(drop / "a.jsonl", make_rows(30))  # batches of 7: 5 batches

    def crash_on_third(stream, batch):
        if batch == 3:
            raise Crash("killed")

    model = settings.models[0]
    with pytest.raises(Crash):
        Ingestor(database.session_factory, settings, model, before_commit=crash_on_third).run()
    assert _count(database) == 14  # two committed batches; the third rolled back
    report = Ingestor(database.session_factory, settings, model).run()[0]
    assert (report.inserted, report.duplicates, report.rows_read) == (16, 0, 16)
    with database.session_factory() as s:
        ids = s.scalars(select(PredictionLog.prediction_id)).all()
    assert sorted(ids) == [f"p{k:05d}" for k in range(30)]


def test_labels_may_arrive_before_their_predictions_and_later_ones_win(database, drop, tmp_path):
    labels_dir = tmp_path / "labels"
    settings = settings_for(
        database.url, {"kind": "files", "path": str(drop)}, {"kind": "files", "path": str(labels_dir)}
    )
    _register(database, settings)
    drop.mkdir()
    write_jsonl(
        labels_dir / "l1.jsonl",
        [
            {"prediction_id": "p00001", "label": "dog", "labelled_at": "2026-11-10T00:00:00+00:00"},
            {"prediction_id": "p00002", "label": "cat", "labelled_at": "2026-11-10T00:00:00+00:00"},
            {"prediction_id": "p00003", "label": "zebra", "labelled_at": "2026-11-10T00:00:00+00:00"},
        ],
    )
    reports = ingest(database.session_factory, settings)
    assert reports[1].inserted == 2 and reports[1].quarantined == 1
    write_jsonl(drop / "a.jsonl", make_rows(5))
    write_jsonl(
        labels_dir / "l2.jsonl",
        [
            {"prediction_id": "p00001", "label": "other", "labelled_at": "2026-11-12T00:00:00+00:00"},
            {"prediction_id": "p00002", "label": "dog", "labelled_at": "2026-11-01T00:00:00+00:00"},  # older: ignored
        ],
    )
    ingest(database.session_factory, settings)
    with database.session_factory() as s:
        joined = dict(
            s.execute(
                select(PredictionLog.prediction_id, Label.label).join(
                    Label,
                    (Label.model_id == PredictionLog.model_id) & (Label.prediction_id == PredictionLog.prediction_id),
                )
            ).all()
        )
    assert joined == {"p00001": "other", "p00002": "cat"}


def test_integer_ids_stay_integers_when_a_row_lacks_them(database, drop):
    settings = settings_for(database.url, {"kind": "files", "path": str(drop)})
    _register(database, settings)
    rows = make_rows(3)
    for i, row in enumerate(rows):
        row["prediction_id"] = 101 + i
    del rows[1]["prediction_id"]  # pandas widens the column to float for the whole batch
    write_jsonl(drop / "a.jsonl", rows)
    report = ingest(database.session_factory, settings)[0]
    assert (report.inserted, report.quarantined) == (2, 1)
    with database.session_factory() as s:
        assert sorted(s.scalars(select(PredictionLog.prediction_id))) == ["101", "103"]


def test_a_label_batch_may_correct_the_same_prediction_twice(database, drop, tmp_path):
    labels_dir = tmp_path / "labels"
    settings = settings_for(
        database.url, {"kind": "files", "path": str(drop)}, {"kind": "files", "path": str(labels_dir)}
    )
    _register(database, settings)
    drop.mkdir()
    write_jsonl(
        labels_dir / "l.jsonl",
        [
            {"prediction_id": "p1", "label": "dog", "labelled_at": "2026-11-10T00:00:00+00:00"},
            {"prediction_id": "p1", "label": "cat", "labelled_at": "2026-11-11T00:00:00+00:00"},
            {"prediction_id": "p1", "label": "other", "labelled_at": "2026-11-09T00:00:00+00:00"},
        ],
    )
    ingest(database.session_factory, settings)
    with database.session_factory() as s:
        assert s.scalars(select(Label.label)).all() == ["cat"]  # the latest correction wins


def test_an_overlong_prediction_id_is_quarantined_not_fatal(database, drop):
    settings = settings_for(database.url, {"kind": "files", "path": str(drop)})
    _register(database, settings)
    rows = make_rows(3)
    rows[0]["prediction_id"] = "x" * 250
    write_jsonl(drop / "a.jsonl", rows)
    report = ingest(database.session_factory, settings)[0]
    assert (report.inserted, report.quarantined) == (2, 1)
    with database.session_factory() as s:
        assert s.scalar(select(QuarantinedRow.reason)) == "longer than 200 characters"


def test_text_no_database_stores_as_given_is_quarantined_on_both_backends(database, drop):
    """A NUL character (PostgreSQL refuses it; SQLite's JSON reader would cut the text there,
    merging distinct ids) sends the row to quarantine naming the field; a lone surrogate
    escape rejects the line."""
    settings = settings_for(database.url, {"kind": "files", "path": str(drop)})
    _register(database, settings)
    rows = make_rows(6)
    rows[0]["prediction_id"] = "batch7\u0000a"
    rows[1]["prediction_id"] = "batch7\u0000b"
    rows[2]["input_uri"] = "images/\ud800.png"
    rows[3]["device"] = "mid\u0000"
    drop.mkdir()
    (drop / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))  # \u escapes, as apps send them
    report = ingest(database.session_factory, settings)[0]
    assert (report.inserted, report.quarantined) == (2, 4)
    with database.session_factory() as s:
        reasons = {(q.position, q.field, q.reason) for q in s.scalars(select(QuarantinedRow))}
        stored = set(s.scalars(select(PredictionLog.prediction_id)))
    assert reasons == {
        ("line 1", "prediction_id", "contains a NUL character, which cannot be stored"),
        ("line 2", "prediction_id", "contains a NUL character, which cannot be stored"),
        ("line 3", None, "not valid Unicode text (a lone surrogate)"),
        ("line 4", "device", "contains a NUL character, which cannot be stored"),
    }
    assert stored == {"p00004", "p00005"}


def test_non_text_uris_are_stored_as_their_text(database, drop):
    """An integer image id in the URI column is stored as its text on both backends."""
    settings = settings_for(database.url, {"kind": "files", "path": str(drop)})
    _register(database, settings)
    rows = make_rows(3)
    for i, row in enumerate(rows):
        row["input_uri"] = 1000 + i
    rows[2]["input_uri"] = None
    write_jsonl(drop / "a.jsonl", rows)
    assert ingest(database.session_factory, settings)[0].inserted == 3
    with database.session_factory() as s:
        uris = s.execute(select(PredictionLog.prediction_id, PredictionLog.input_uri)).all()
    assert sorted(uris) == [("p00000", "1000"), ("p00001", "1001"), ("p00002", None)]


def test_validation_quarantines_lone_surrogates_from_any_source():
    """Sources other than JSON lines (a DataFrame built by a custom reader, say) may carry a
    lone surrogate, which no database encoding can store: the row is rejected naming the field."""
    settings = settings_for("sqlite://", {"kind": "files", "path": "unused"})
    raw = pd.DataFrame(make_rows(2)).astype({"input_uri": object})
    raw.loc[1, "input_uri"] = "images/\ud800.png"
    rows, rejects = validate_predictions(raw, ["row 1", "row 2"], settings.models[0], {}, {1}, 1e-3)
    assert rows.prediction_id.tolist() == ["p00000"]
    assert [(r.position, r.field, r.reason) for r in rejects] == [
        ("row 2", "input_uri", "not valid Unicode text (a lone surrogate)")
    ]
    assert "\\ud800" in rejects[0].raw  # kept whole, as storable text


def test_a_lone_surrogate_in_a_categorical_feature_is_quarantined_not_raised():
    settings = settings_for("sqlite://", {"kind": "files", "path": "unused"})
    raw = pd.DataFrame(make_rows(2)).astype({"device": object})
    raw.loc[0, "device"] = "low\ud800"
    rows, rejects = validate_predictions(raw, ["row 1", "row 2"], settings.models[0], {}, {1}, 1e-3)
    assert rows.prediction_id.tolist() == ["p00001"]
    assert [(r.field, r.reason) for r in rejects] == [("device", "not valid Unicode text (a lone surrogate)")]


def _write_csv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_csv_numbers_are_parsed_exactly_and_bad_cells_named(database, drop):
    """A CSV batch of plain numbers is parsed in one pass to the same doubles as float();
    a batch with a blank, a word, "nan" or "inf" names each bad cell as before."""
    settings = settings_for(database.url, {"kind": "files", "path": str(drop)})
    _register(database, settings)
    good = make_rows(7, seed=3)
    for row in good:
        row["brightness"] = repr(row["brightness"] / 3)  # 17 significant digits
    _write_csv(drop / "a.csv", good)
    bad = make_rows(5, seed=4, start_index=7)
    bad[0]["brightness"], bad[1]["sharpness"], bad[2]["brightness"], bad[3]["brightness"] = "", "abc", "nan", "inf"
    _write_csv(drop / "b.csv", bad)
    report = ingest(database.session_factory, settings)[0]
    assert (report.inserted, report.quarantined) == (8, 4)
    with database.session_factory() as s:
        reasons = {(q.position, q.field, q.reason) for q in s.scalars(select(QuarantinedRow))}
        stored = {r.prediction_id: r.numeric_features for r in s.scalars(select(PredictionLog))}
    assert reasons == {
        ("row 1", "brightness", "missing value"),
        ("row 2", "sharpness", "not a number: expected a numeric sharpness"),
        ("row 3", "brightness", "not a number: expected a numeric brightness"),
        ("row 4", "brightness", "not a finite number"),
    }
    brightness = {pid: unpack_rows([blob], 2, FLOAT64)[0, 0] for pid, blob in stored.items()}
    assert [brightness[r["prediction_id"]] for r in good] == [float(r["brightness"]) for r in good]


def test_json_lines_parse_as_the_standard_library_does(database, drop):
    """Integers beyond 64 bits stay exact (no float rounding merging two ids), and NaN or
    Infinity, which Python's json writes, reach validation: an unused NaN is harmless, an
    infinite confidence is named."""
    settings = settings_for(database.url, {"kind": "files", "path": str(drop)})
    _register(database, settings)
    rows = make_rows(5)
    rows[0]["prediction_id"] = 123456789012345678901234567890
    rows[1]["prediction_id"] = 123456789012345678901234567891
    rows[2]["prediction_id"] = -9223372036854775809
    rows[3]["note"] = float("nan")
    rows[4]["confidence"] = float("inf")
    write_jsonl(drop / "a.jsonl", rows)
    report = ingest(database.session_factory, settings)[0]
    assert (report.inserted, report.duplicates, report.quarantined) == (4, 0, 1)
    with database.session_factory() as s:
        stored = set(s.scalars(select(PredictionLog.prediction_id)))
        reject = s.execute(select(QuarantinedRow.position, QuarantinedRow.field, QuarantinedRow.reason)).one()
    assert stored == {
        "123456789012345678901234567890",
        "123456789012345678901234567891",
        "-9223372036854775809",
        "p00003",
    }
    assert tuple(reject) == ("line 5", "confidence", "not a finite number")


def test_an_invalid_line_holding_a_nul_byte_is_quarantined_whole(database, drop):
    settings = settings_for(database.url, {"kind": "files", "path": str(drop)})
    _register(database, settings)
    write_jsonl(drop / "a.jsonl", make_rows(2))
    with (drop / "a.jsonl").open("a") as handle:
        handle.write('{"prediction_id": "x\x00y", \n')
    report = ingest(database.session_factory, settings)[0]
    assert (report.inserted, report.quarantined) == (2, 1)
    with database.session_factory() as s:
        raw = s.scalar(select(QuarantinedRow.raw))
    assert raw == '{"prediction_id": "x\\x00y", '


def test_numbers_follow_one_rule_whichever_path_reads_them(database, drop):
    """'1_000' or Arabic-Indic digits are not numbers, in a batch of plain numbers or not;
    two features may read the same column."""
    settings = settings_for(database.url, {"kind": "files", "path": str(drop), "columns": {"sharpness": "brightness"}})
    _register(database, settings)
    rows = make_rows(4)
    rows[1]["brightness"] = "1_000"
    rows[2]["brightness"] = "\u0661\u0662"
    _write_csv(drop / "a.csv", rows)
    report = ingest(database.session_factory, settings)[0]
    assert (report.inserted, report.quarantined) == (2, 2)
    with database.session_factory() as s:
        reasons = sorted((q.position, q.reason) for q in s.scalars(select(QuarantinedRow)))
        stored = [unpack_rows([b], 2, FLOAT64)[0] for b in s.scalars(select(PredictionLog.numeric_features))]
    assert reasons == [
        ("row 2", "not a number: expected a numeric brightness"),
        ("row 3", "not a number: expected a numeric brightness"),
    ]
    assert all(first == second for first, second in stored)  # brightness read twice


def test_json_lines_with_crlf_endings_and_bytes_that_are_not_utf8(database, drop):
    """Windows line endings are fine; a byte that is not UTF-8 is read as U+FFFD, as a text
    reader with errors="replace" would."""
    settings = settings_for(database.url, {"kind": "files", "path": str(drop)})
    _register(database, settings)
    rows = make_rows(3)
    lines = [json.dumps(r).encode() for r in rows]
    lines[1] = lines[1].replace(b'"p00001"', b'"p0\xff001"')
    drop.mkdir()
    (drop / "a.jsonl").write_bytes(b"\r\n".join(lines) + b"\r\n")
    report = ingest(database.session_factory, settings)[0]
    assert (report.inserted, report.quarantined) == (3, 0)
    with database.session_factory() as s:
        assert sorted(s.scalars(select(PredictionLog.prediction_id))) == ["p00000", "p00002", "p0\ufffd001"]
