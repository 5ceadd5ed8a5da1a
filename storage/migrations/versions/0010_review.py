"""review decisions (labels, skips and mask verdicts, with what they replaced) and the review queue

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_decisions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("prediction_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("verdict", sa.String(length=10), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("predicted_label", sa.String(length=200), nullable=False),
        sa.Column("reviewer", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("external_id", sa.String(length=300), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("previous_label", sa.String(length=200), nullable=True),
        sa.Column("previous_labelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("previous_mask_uri", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model_id", "external_id", name="uq_review_decisions_external"),
    )
    with op.batch_alter_table("review_decisions", schema=None) as batch_op:
        batch_op.create_index("ix_review_decisions_model_prediction", ["model_id", "prediction_id"], unique=False)
        batch_op.create_index("ix_review_decisions_model_reviewer", ["model_id", "reviewer", "id"], unique=False)
        batch_op.create_index("ix_review_decisions_model_decided", ["model_id", "decided_at"], unique=False)
    op.create_table(
        "review_queue_items",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("prediction_id", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=30), nullable=False),
        sa.Column("is_open", sa.Boolean(), nullable=False),
        sa.Column("priority", sa.Float(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("predicted_label", sa.String(length=200), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("true_label", sa.String(length=200), nullable=True),
        sa.Column("input_uri", sa.Text(), nullable=True),
        sa.Column("mask_uri", sa.Text(), nullable=True),
        sa.Column("categorical_features", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model_id", "prediction_id", name="uq_review_queue_items_prediction"),
    )
    with op.batch_alter_table("review_queue_items", schema=None) as batch_op:
        batch_op.create_index(
            "ix_review_queue_items_order", ["model_id", "is_open", "priority", "ts", "prediction_id"], unique=False
        )
        batch_op.create_index(
            "ix_review_queue_items_source",
            ["model_id", "source", "is_open", "priority", "ts", "prediction_id"],
            unique=False,
        )
        batch_op.create_index("ix_review_queue_items_ts", ["model_id", "is_open", "ts"], unique=False)
        batch_op.create_index(
            "ix_review_queue_items_source_ts", ["model_id", "source", "is_open", "ts"], unique=False
        )
    op.create_table(
        "review_queue_sync",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("flagged_id", sa.BigInteger(), nullable=False),
        sa.Column("prediction_row_id", sa.BigInteger(), nullable=False),
        sa.Column("label_id", sa.BigInteger(), nullable=False),
        sa.Column("low_below", sa.Float(), nullable=False),
        sa.Column("control_share", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("model_id"),
    )


def downgrade() -> None:
    op.drop_table("review_queue_sync")
    with op.batch_alter_table("review_queue_items", schema=None) as batch_op:
        batch_op.drop_index("ix_review_queue_items_source_ts")
        batch_op.drop_index("ix_review_queue_items_ts")
        batch_op.drop_index("ix_review_queue_items_source")
        batch_op.drop_index("ix_review_queue_items_order")
    op.drop_table("review_queue_items")
    with op.batch_alter_table("review_decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_review_decisions_model_decided")
        batch_op.drop_index("ix_review_decisions_model_reviewer")
        batch_op.drop_index("ix_review_decisions_model_prediction")
    op.drop_table("review_decisions")
