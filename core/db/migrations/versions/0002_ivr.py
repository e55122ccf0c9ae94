"""IVR: sessions (path, keys, prompts, outcome per call), callback requests, budget index

Revision ID: 0002_ivr
Revises: 0001
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_ivr"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ivr_sessions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("uniqueid", sa.String(length=64), nullable=False),
        sa.Column("caller_number", sa.String(length=16), nullable=True),
        sa.Column("caller_number_raw", sa.String(length=64), nullable=True),
        sa.Column("lang", sa.String(length=8), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("path", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("digits", sa.String(length=256), server_default=sa.text("''"), nullable=False),
        sa.Column("prompts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("outcome", sa.String(length=80), nullable=True),
        sa.Column("last_node", sa.String(length=64), nullable=True),
        sa.Column(
            "detail",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ivr_sessions")),
        sa.UniqueConstraint("uniqueid", name=op.f("uq_ivr_sessions_uniqueid")),
    )
    op.create_index(op.f("ix_ivr_sessions_started_at"), "ivr_sessions", ["started_at"])
    op.create_index(op.f("ix_ivr_sessions_outcome"), "ivr_sessions", ["outcome"])
    op.create_table(
        "callback_requests",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("uniqueid", sa.String(length=64), nullable=False),
        sa.Column("caller_number", sa.String(length=16), nullable=False),
        sa.Column("lang", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("ivr_path", sa.Text(), nullable=True),
        sa.Column(
            "status", sa.String(length=16), server_default=sa.text("'pending'"), nullable=False
        ),
        sa.Column(
            "requested_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_requests")),
        sa.UniqueConstraint("uniqueid", name=op.f("uq_callback_requests_uniqueid")),
    )
    op.create_index("ix_callback_requests_status_id", "callback_requests", ["status", "id"])
    # Today's inbound calls are counted before every queued call (the budget check).
    op.create_index("ix_calls_started_at_budget", "calls", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_calls_started_at_budget", table_name="calls")
    op.drop_index("ix_callback_requests_status_id", table_name="callback_requests")
    op.drop_table("callback_requests")
    op.drop_index(op.f("ix_ivr_sessions_outcome"), table_name="ivr_sessions")
    op.drop_index(op.f("ix_ivr_sessions_started_at"), table_name="ivr_sessions")
    op.drop_table("ivr_sessions")
