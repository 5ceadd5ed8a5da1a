"""segmentation masks: mask_uri on prediction_logs and labels

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 07:50:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('prediction_logs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mask_uri', sa.Text(), nullable=True))
    with op.batch_alter_table('labels', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mask_uri', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('labels', schema=None) as batch_op:
        batch_op.drop_column('mask_uri')
    with op.batch_alter_table('prediction_logs', schema=None) as batch_op:
        batch_op.drop_column('mask_uri')
