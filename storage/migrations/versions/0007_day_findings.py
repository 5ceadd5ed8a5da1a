"""per-day findings state beside each daily profile; a version's rows by time

The check's label-free findings of a day (row count, confident outliers, the accuracy
estimate's sums) are kept with the day's profile and merged like it. The check reads a
version's rows of a window in (ts, id) order through a (model_id, model_version, ts) index.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("window_profiles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("findings", sa.JSON(), nullable=True))
    op.create_index(
        "ix_prediction_logs_model_version_ts", "prediction_logs", ["model_id", "model_version", "ts"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_prediction_logs_model_version_ts", table_name="prediction_logs")
    with op.batch_alter_table("window_profiles", schema=None) as batch_op:
        batch_op.drop_column("findings")
