"""The Arrow readers (CSV, JSON lines, ADBC) give what the per-row readers give."""

from __future__ import annotations

import csv
import json
import logging
import math

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, select, text

from jobs.config import SqlSource
from jobs.ingest import arrow_files, python_readers, sources
from jobs.ingest.fields import text_numbers
from jobs.ingest.run import Ingestor
from storage import repository
from storage.engine import make_source_engine
from storage.models import PredictionLog, QuarantinedRow
from tests.jobs.logdata import make_rows, settings_for, write_sqlite_source


def _plain(value):
    """A cell as a comparable Python value: missing as None, arrays as lists."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, list | dict):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return value.item() if isinstance(value, np.generic) else value


def _batches(batches):
    return [
        (
            list(b.frame.columns),
            [{k: _plain(v) for k, v in r.items()} for r in b.frame.to_dict("records")],
            b.positions,
            [(r.position, r.field, r.reason, r.raw) for r in b.rejects],
            b.consumed,
        )
        for b in batches
    ]


def _write_csv(path, rows, extra_lines=()):
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows[: len(rows) // 2])
        for line in extra_lines:
            handle.write(line)
        writer.writerows(rows[len(rows) // 2 :])
    return path


def _mixed_rows(n=30):
    rows = make_rows(n)
    rows[1]["device"] = 'say "hi", twice'  # quotes and a comma
    rows[2]["device"] = "two\nlines"  # a newline inside a quoted field
    rows[3]["device"] = "ünïcødé ✓ 猫"
    rows[4]["device"] = None  # NULL
    rows[5]["brightness"] = ""  # a blank number
    rows[6]["sharpness"] = "very"
    return rows


CSV_CASES = {
    "good and bad rows": ["short,row\n", "1,2,3,4,5,6,7,8,9,10,11,12,13,14\n"],
    "a blank line": ["\n"],
    "clean": [],
}


@pytest.mark.parametrize("case", list(CSV_CASES), ids=list(CSV_CASES))
@pytest.mark.parametrize("batch_size", [1, 7, 100], ids=lambda b: f"batch{b}")
@pytest.mark.parametrize("skip", [0, 4, 16, 40], ids=lambda s: f"skip{s}")
def test_csv_batches_match_the_csv_module(tmp_path, case, batch_size, skip):
    path = _write_csv(tmp_path / "a.csv", _mixed_rows(), CSV_CASES[case])
    arrow = _batches(arrow_files.csv_batches(path, batch_size, skip))
    assert arrow == _batches(python_readers.csv_batches(path, batch_size, skip))
    if case == "good and bad rows" and skip == 0:
        rejects = [r for batch in arrow for r in batch[3]]
        assert [(p, reason) for p, _, reason, _ in rejects] == [
            ("row 16", "expected 12 fields, got 2"),
            ("row 17", "expected 12 fields, got 14"),
        ]


def test_csv_files_arrow_cannot_read_alike_fall_back_whole(tmp_path):
    """Empty, header only, a byte-order mark, bytes that are not UTF-8 (read as U+FFFD)."""
    cases = {
        "empty.csv": b"",
        "header.csv": b"a,b\n",
        "bom.csv": b"\xef\xbb\xbfa,b\n1,2\n",
        "latin1.csv": b"a,b\n1,2\nx\xff,4\n5,6\n",
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        for batch_size in (1, 7):
            arrow = _batches(arrow_files.csv_batches(path, batch_size, 0))
            assert arrow == _batches(python_readers.csv_batches(path, batch_size, 0)), name
    assert _batches(arrow_files.csv_batches(tmp_path / "latin1.csv", 7, 0))[0][1][1]["a"] == "x\ufffd"


def _jsonl(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_json_lines_match_the_line_parser(tmp_path):
    rows = _mixed_rows(40)
    rows[7]["probabilities"] = [0.2, 0.3, 0.5]  # a list column
    rows[8]["model_version"] = 1.0
    del rows[9]["sharpness"]
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    lines[12:12] = ["", "{not json", "   ", "[1, 2]", '{"a": 1} {"a": 2}']
    path = _jsonl(tmp_path / "a.jsonl", lines)
    for batch_size in (1, 7, 100):
        for skip in (0, 3, 13, 50):
            arrow = _batches(arrow_files.jsonl_batches(path, batch_size, skip))
            assert arrow == _batches(python_readers.jsonl_batches(path, batch_size, skip)), (batch_size, skip)
    rejects = {r[0]: r[2] for b in _batches(arrow_files.jsonl_batches(path, 100, 0)) for r in b[3]}
    assert set(rejects) == {"line 14", "line 16", "line 17"}
    assert rejects["line 16"] == "expected a JSON object"


def test_json_lines_a_block_with_a_list_column_is_read_by_arrow_as_arrays(tmp_path):
    rows = make_rows(5)
    for row in rows:
        row["probabilities"] = json.loads(row["probabilities"])
    path = _jsonl(tmp_path / "a.jsonl", [json.dumps(r) for r in rows])
    (batch,) = arrow_files.jsonl_batches(path, 10, 0)
    assert isinstance(batch.frame["probabilities"].iloc[0], np.ndarray)  # the Arrow path, not the fallback
    assert batch.frame["timestamp"].tolist() == [r["timestamp"] for r in rows]  # timestamps stay text
    assert _batches([batch]) == _batches(python_readers.jsonl_batches(path, 10, 0))


def test_text_numbers_follow_float_on_every_path():
    cells = ["1.5", "-.5e+3", "+1", " 2", "inf", "nan", "1_000", "\u0661", "abc", None, "", "0.1000000000000000055511"]
    expected = [float(c) if c and c.isascii() and "_" not in c and c != "abc" else math.nan for c in cells]
    for dtype in ("str", object):
        got = text_numbers(pd.Series(cells, dtype=dtype))
        assert [(g == e) or (math.isnan(g) and math.isnan(e)) for g, e in zip(got, expected, strict=True)] == [
            True
        ] * len(cells)
    plain = pd.Series([repr(float(x)) for x in np.random.default_rng(0).normal(size=2000) / 7], dtype="str")
    assert text_numbers(plain).tolist() == [float(c) for c in plain]


# ---------------------------------------------------------------- files, end to end


class Crash(RuntimeError):
    pass


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_crash_mid_file_then_a_rerun_gives_every_row_once(database, tmp_path, fmt):
    drop = tmp_path / "drop"
    drop.mkdir()
    settings = settings_for(database.url, {"kind": "files", "path": str(drop)})
    with database.session_factory.begin() as s:
        repository.register_version(s, repository.ensure_model(s, "pets", "classification"), 1)
    rows = make_rows(40)
    rows[20]["sharpness"] = "very"
    if fmt == "csv":
        _write_csv(drop / "a.csv", rows, ["short,row\n"])
    else:
        lines = [json.dumps(r) for r in rows]
        _jsonl(drop / "a.jsonl", [*lines[:20], "{broken", "", *lines[20:]])

    def crash_on_third(stream, batch):
        if batch == 3:
            raise Crash("killed")

    model = settings.models[0]
    with pytest.raises(Crash):
        Ingestor(database.session_factory, settings, model, before_commit=crash_on_third).run()
    report = Ingestor(database.session_factory, settings, model).run()[0]
    with database.session_factory() as s:
        ids = s.scalars(select(PredictionLog.prediction_id)).all()
        quarantined = sorted((q.position, q.field, q.reason) for q in s.scalars(select(QuarantinedRow)))
    assert sorted(ids) == sorted(r["prediction_id"] for i, r in enumerate(rows) if i != 20)
    assert report.duplicates == 0
    bad_line = ("row 21", None, "expected 12 fields, got 2") if fmt == "csv" else ("line 21", None, quarantined[0][2])
    sharp = ("row 22", "sharpness", "not a number: expected a numeric sharpness")
    if fmt == "jsonl":
        sharp = ("line 23", "sharpness", "not a number: expected a numeric sharpness")
    assert quarantined == sorted([bad_line, sharp])


# ---------------------------------------------------------------- SQL sources


def _reader(url, use_adbc):
    source = SqlSource(kind="sql", url=url, table="prediction_log", columns={"timestamp": "logged_at"})
    return sources.SqlReader(source, make_source_engine(url), "logged_at", use_adbc=use_adbc)


def _pages(reader, limit=7):
    out, ts, last = [], None, None
    try:
        while True:
            frame, positions = reader.fetch_after(ts, last, limit)
            if not len(frame):
                return out
            row = frame.iloc[-1]
            ts = sources.encode_key(_plain_ts(row["logged_at"]))
            last = sources.encode_key(_plain(row["id"]))
            out.append((positions, [{k: _plain(v) for k, v in r.items()} for r in frame.to_dict("records")]))
    finally:
        reader.close()
        reader.engine.dispose()


def _plain_ts(value):
    return value.to_pydatetime() if isinstance(value, pd.Timestamp) else value


def test_adbc_and_sqlalchemy_give_the_same_pages_from_sqlite(tmp_path, caplog):
    rows = make_rows(30)
    rows[3]["device"] = None
    for row in rows[10:14]:
        row["logged_at"] = row["timestamp"] = rows[10]["timestamp"]  # ties across a page boundary
    write_sqlite_source(tmp_path / "prod.db", rows)
    url = f"sqlite:///{tmp_path / 'prod.db'}"
    with caplog.at_level(logging.INFO, logger="jobs.ingest.sources"):
        arrow = _pages(_reader(url, True))
    assert arrow == _pages(_reader(url, False))
    assert sum(len(p) for p, _ in arrow) == 30
    assert [r.getMessage() for r in caplog.records] == [f"{url} prediction_log: read with ADBC (sqlite)"]


def test_a_sqlite_column_that_changes_type_is_read_by_sqlalchemy(tmp_path, caplog):
    rows = make_rows(3000)
    rows[2500]["brightness"] = "very"  # past ADBC's type-inference rows
    write_sqlite_source(tmp_path / "prod.db", rows)
    url = f"sqlite:///{tmp_path / 'prod.db'}"
    with caplog.at_level(logging.INFO, logger="jobs.ingest.sources"):
        arrow = _pages(_reader(url, True), limit=3000)
    assert arrow == _pages(_reader(url, False), limit=3000)
    assert any("read with SQLAlchemy (ADBC:" in r.getMessage() for r in caplog.records)


def test_an_unreachable_adbc_source_falls_back_and_hides_the_password(caplog):
    url = "postgresql+psycopg://reader:s3cret@127.0.0.1:1/prod"
    source = SqlSource(kind="sql", url=url, table="prediction_log")
    reader = sources.SqlReader(source, create_engine(url), "logged_at")
    with caplog.at_level(logging.INFO, logger="jobs.ingest.sources"), pytest.raises(Exception, match="cannot read"):
        reader.fetch_after(None, None, 5)  # SQLAlchemy cannot connect either
    messages = [r.getMessage() for r in caplog.records]
    assert any("ADBC could not connect" in m for m in messages)
    assert not any("s3cret" in m for m in messages)


@pytest.mark.postgres
def test_adbc_and_sqlalchemy_give_the_same_pages_from_postgresql(postgres_schema_url):
    engine = create_engine(postgres_schema_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE prediction_log (id bigint PRIMARY KEY, prediction_id text, logged_at timestamptz, "
                "model_version integer, brightness double precision, device text, confidence real)"
            )
        )
        rows = make_rows(25)
        rows[4]["device"] = None
        conn.execute(
            text(
                "INSERT INTO prediction_log VALUES (:id, :prediction_id, CAST(:timestamp AS timestamptz), "
                ":model_version, :brightness, :device, :confidence)"
            ),
            rows,
        )
    engine.dispose()
    arrow = _pages(_reader(postgres_schema_url, True))
    assert arrow == _pages(_reader(postgres_schema_url, False))
    assert [p for page, _ in arrow for p in page] == [f"id={k + 1}" for k in range(25)]
