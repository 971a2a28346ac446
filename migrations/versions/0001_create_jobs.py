"""create the jobs table

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("params", JSONType, nullable=False),
        sa.Column("input", JSONType, nullable=True),
        sa.Column("soft_time_limit_s", sa.Float, nullable=False),
        sa.Column("time_limit_s", sa.Float, nullable=False),
        sa.Column("progress_fraction", sa.Float, nullable=False),
        sa.Column("progress_stage", sa.String(64), nullable=True),
        sa.Column("progress_message", sa.Text, nullable=True),
        sa.Column("progress_seq", sa.Integer, nullable=False),
        sa.Column("result", JSONType, nullable=True),
        sa.Column("artifacts", JSONType, nullable=False),
        sa.Column("error_code", sa.String(32), nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("error_details", JSONType, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("redeliveries", sa.Integer, nullable=False),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("worker", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_seconds", sa.Float, nullable=True),
    )
    op.create_index("ix_jobs_created_at", "jobs", ["created_at"])
    op.create_index("ix_jobs_kind_status", "jobs", ["kind", "status"])
    op.create_index("ix_jobs_status", "jobs", ["status"])


def downgrade() -> None:
    op.drop_table("jobs")
