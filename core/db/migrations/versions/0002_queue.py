"""queue manager: pause intent, seat state from member events, call timings, seat config state

Revision ID: 0002_queue
Revises: 0001
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_queue"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The agent's pause is intent (api writes it), re-applied after every AMI (re)connect.
    op.add_column(
        "agent_sessions",
        sa.Column("paused", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.add_column("agent_sessions", sa.Column("pause_reason", sa.String(length=32)))
    # What app_queue says, kept by queue_manager from member events (ordered by event time).
    op.add_column(
        "seat_status",
        sa.Column(
            "queues",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
    )
    op.add_column("seat_status", sa.Column("last_call_ended_at", sa.DateTime(timezone=True)))
    op.add_column("seat_status", sa.Column("state_at", sa.DateTime(timezone=True)))
    # Call timings for the supervisors' numbers.
    op.add_column("calls", sa.Column("abandoned_at", sa.DateTime(timezone=True)))
    op.add_column("calls", sa.Column("agent_completed_at", sa.DateTime(timezone=True)))
    op.add_column("calls", sa.Column("hold_seconds", sa.Integer()))
    op.add_column("calls", sa.Column("talk_seconds", sa.Integer()))
    op.create_index("ix_calls_queue_joined_at", "calls", ["queue_joined_at"])
    op.create_table(
        "seat_config_state",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("seats_hash", sa.String(length=64), nullable=False),
        sa.Column("seat_count", sa.Integer(), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reload_seconds", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_seat_config_state")),
    )


def downgrade() -> None:
    op.drop_table("seat_config_state")
    op.drop_index("ix_calls_queue_joined_at", table_name="calls")
    for column in ("talk_seconds", "hold_seconds", "agent_completed_at", "abandoned_at"):
        op.drop_column("calls", column)
    for column in ("state_at", "last_call_ended_at", "queues"):
        op.drop_column("seat_status", column)
    op.drop_column("agent_sessions", "pause_reason")
    op.drop_column("agent_sessions", "paused")
