from __future__ import annotations

from sqlalchemy import inspect

from storage.migrate import current_revision, downgrade, head_revision, is_up_to_date, upgrade
from storage.models import Base


def test_upgrade_creates_every_table_of_the_models(database):
    tables = set(inspect(database.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert is_up_to_date(database.engine)


def test_downgrade_to_base_and_back(database):
    downgrade(database.engine, "base")
    assert current_revision(database.engine) is None
    assert "prediction_logs" not in inspect(database.engine).get_table_names()
    assert upgrade(database.engine) == head_revision()


def test_migrations_match_the_models(database):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with database.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": False})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []
