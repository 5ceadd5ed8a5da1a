"""watermark keys and quarantine positions as unbounded text

A source id or a position longer than 200 characters must not stop ingestion on PostgreSQL.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ingest_watermarks", schema=None) as batch_op:
        batch_op.alter_column("last_ts", existing_type=sa.String(length=64), type_=sa.Text())
        batch_op.alter_column("last_id", existing_type=sa.String(length=200), type_=sa.Text())
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.alter_column("position", existing_type=sa.String(length=200), type_=sa.Text(), existing_nullable=False)
        batch_op.alter_column("field", existing_type=sa.String(length=200), type_=sa.Text())


def downgrade() -> None:
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.alter_column("field", existing_type=sa.Text(), type_=sa.String(length=200))
        batch_op.alter_column("position", existing_type=sa.Text(), type_=sa.String(length=200), existing_nullable=False)
    with op.batch_alter_table("ingest_watermarks", schema=None) as batch_op:
        batch_op.alter_column("last_id", existing_type=sa.Text(), type_=sa.String(length=200))
        batch_op.alter_column("last_ts", existing_type=sa.Text(), type_=sa.String(length=64))
