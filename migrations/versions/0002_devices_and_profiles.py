"""devices and their camera profiles

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("driver", sa.String(32), nullable=False),
        sa.Column("connection", JSONType, nullable=False),
        sa.Column("calibration", JSONType, nullable=False),
        sa.Column("schedule", sa.String(128), nullable=True),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("capabilities", JSONType, nullable=True),
        sa.Column("current_profile_version", sa.Integer, nullable=True),
        sa.Column("last_calibrated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_scheduled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "camera_profiles",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("job_id", sa.String(32), nullable=True),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("reasons", JSONType, nullable=False),
        sa.Column("checks", JSONType, nullable=False),
        sa.Column("settings", JSONType, nullable=False),
        sa.Column("intrinsics", JSONType, nullable=True),
        sa.Column("sweeps", JSONType, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("device_id", "version", name="uq_camera_profiles_device_version"),
    )


def downgrade() -> None:
    op.drop_table("camera_profiles")
    op.drop_table("devices")
