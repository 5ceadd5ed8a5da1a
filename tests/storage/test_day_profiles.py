"""Stored day profiles: one upsert, the profile covering more rows wins, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime

from storage import repository
from storage.windows import save_day, stored_day

DAY = datetime(2026, 11, 3, tzinfo=UTC)


def save(session, model_id: int, last_row_id: int, n_rows: int) -> None:
    save_day(
        session,
        model_id=model_id,
        version=1,
        day=DAY,
        fingerprint="f" * 16,
        n_rows=n_rows,
        last_row_id=last_row_id,
        profile={"n": n_rows},
        findings={"n_rows": n_rows},
        updated_at=DAY,
    )


def test_the_profile_covering_more_rows_stays(database):
    with database.session_factory.begin() as s:
        model_id = repository.ensure_model(s, "pets", "classification").id
        save(s, model_id, last_row_id=100, n_rows=100)
    with database.session_factory.begin() as s:
        save(s, model_id, last_row_id=250, n_rows=240)  # newer: replaces
    with database.session_factory.begin() as s:
        save(s, model_id, last_row_id=120, n_rows=120)  # a slower, older check: ignored
    with database.session_factory() as s:
        row = stored_day(s, model_id, 1, DAY, "f" * 16)
        assert row is not None
        assert (row.last_row_id, row.n_rows, row.profile, row.findings) == (250, 240, {"n": 240}, {"n_rows": 240})
