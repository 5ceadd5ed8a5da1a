"""The registry's queries (versions by status, reference sets), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storage import repository, versions
from storage.models import ModelVersion, ReferenceSet

T0 = datetime(2026, 9, 7, tzinfo=UTC)


def _model_with_versions(session, statuses: dict[int, tuple[str, datetime | None]]) -> int:
    model = repository.ensure_model(session, "digits", "classification")
    for version, (status, promoted_at) in statuses.items():
        session.add(ModelVersion(model_id=model.id, version=version, status=status, promoted_at=promoted_at))
    session.flush()
    return model.id


def test_champions_and_the_previous_champion(database):
    with database.session_factory.begin() as s:
        model_id = _model_with_versions(
            s,
            {
                1: ("retired", T0),
                2: ("retired", T0 + timedelta(days=7)),  # promoted last of the retired ones
                3: ("retired", None),  # never promoted: not a former champion
                4: ("rejected", T0 + timedelta(days=9)),
                5: ("champion", T0 + timedelta(days=14)),
            },
        )
    with database.session_factory() as s:
        assert [v.version for v in versions.champions(s, model_id)] == [5]
        previous = versions.previous_champion(s, model_id, 5)
        assert previous is not None and previous.version == 2
        assert versions.champions(s, model_id + 1) == []


def test_the_previous_champion_breaks_ties_by_version_and_skips_the_current(database):
    with database.session_factory.begin() as s:
        model_id = _model_with_versions(s, {1: ("retired", T0), 2: ("retired", T0), 3: ("champion", T0)})
    with database.session_factory() as s:
        assert versions.previous_champion(s, model_id, 3).version == 2
        assert versions.previous_champion(s, model_id, 2).version == 1


def test_a_reference_set_is_found_by_model_and_version(database):
    with database.session_factory.begin() as s:
        model_id = _model_with_versions(s, {1: ("champion", T0), 2: ("challenger", None)})
        s.add(
            ReferenceSet(
                model_id=model_id, version=1, source="window", fingerprint="f" * 64, n_rows=3, profile={}, created_at=T0
            )
        )
    with database.session_factory() as s:
        found = versions.reference_set(s, model_id, 1)
        assert found is not None and (found.version, found.source) == (1, "window")
        assert versions.has_reference_set(s, model_id, 1)
        assert versions.reference_set(s, model_id, 2) is None
        assert not versions.has_reference_set(s, model_id, 2)
        assert not versions.has_reference_set(s, model_id + 1, 1)
