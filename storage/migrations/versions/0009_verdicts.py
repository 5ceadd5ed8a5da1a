"""each drift run keeps its verdict (ok / watch / act and its concerns) and, when late labels
changed it, the revision (what the verdict was before, and why it changed)

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("drift_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("verdict", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("revision", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("drift_runs", schema=None) as batch_op:
        batch_op.drop_column("revision")
        batch_op.drop_column("verdict")
