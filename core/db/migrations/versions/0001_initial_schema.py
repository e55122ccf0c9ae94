"""initial schema: calls, seats, agents, complaints, audit

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


COMPLAINT_SEQUENCE = sa.Sequence("complaint_number_seq", start=100_000_000)


def upgrade() -> None:
    # Complaint numbers: 9-digit sequence + Verhoeff check digit (core.domain.complaints).
    op.execute(sa.schema.CreateSequence(COMPLAINT_SEQUENCE))
    op.create_table(
        "queue_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("uniqueid", sa.String(length=64), nullable=True),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=True),
        sa.Column("interface", sa.String(length=128), server_default=sa.text("''"), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_events")),
        sa.UniqueConstraint(
            "uniqueid", "event", "interface", "event_time", name="uq_queue_events_key"
        ),
    )
    op.create_index(op.f("ix_queue_events_uniqueid"), "queue_events", ["uniqueid"], unique=False)
    op.create_table(
        "seats",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("sip_password", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_seats")),
    )
    op.create_table(
        "service_heartbeats",
        sa.Column("service", sa.String(length=32), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "detail",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("service", name=op.f("pk_service_heartbeats")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column(
            "skills",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[\"general\"]'::jsonb"),
            nullable=False,
        ),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "agent_sessions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("seat", sa.String(length=32), nullable=False),
        sa.Column(
            "logged_in_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("logged_out_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("penalty", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(
            ["seat"], ["seats.name"], name=op.f("fk_agent_sessions_seat_seats")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_agent_sessions_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_sessions")),
    )
    op.create_index(
        "uq_agent_sessions_open_seat",
        "agent_sessions",
        ["seat"],
        unique=True,
        postgresql_where=sa.text("logged_out_at IS NULL"),
    )
    op.create_index(
        "uq_agent_sessions_open_user",
        "agent_sessions",
        ["user_id"],
        unique=True,
        postgresql_where=sa.text("logged_out_at IS NULL"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_api_tokens")),
    )
    op.create_index(op.f("ix_api_tokens_user_id"), "api_tokens", ["user_id"], unique=False)
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("service", sa.String(length=32), nullable=False),
        sa.Column("actor_user_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.String(length=64), nullable=True),
        sa.Column(
            "detail",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["actor_user_id"], ["users.id"], name=op.f("fk_audit_log_actor_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_table(
        "calls",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("uniqueid", sa.String(length=64), nullable=False),
        sa.Column("linkedid", sa.String(length=64), nullable=True),
        sa.Column("channel", sa.String(length=128), nullable=True),
        sa.Column("caller_number", sa.String(length=16), nullable=True),
        sa.Column("caller_number_raw", sa.String(length=64), nullable=True),
        sa.Column("caller_name", sa.String(length=200), nullable=True),
        sa.Column("dnis", sa.String(length=32), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ivr_done", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("ivr_fallback", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("ivr_path", sa.Text(), nullable=True),
        sa.Column("ivr_lang", sa.String(length=8), nullable=True),
        sa.Column("queue", sa.String(length=64), nullable=True),
        sa.Column("queue_joined_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("queue_left_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("agent_connected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("agent_seat", sa.String(length=32), nullable=True),
        sa.Column("agent_user_id", sa.Integer(), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("hangup_cause", sa.Integer(), nullable=True),
        sa.Column("disposition", sa.String(length=32), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["agent_user_id"], ["users.id"], name=op.f("fk_calls_agent_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
        sa.UniqueConstraint("uniqueid", name=op.f("uq_calls_uniqueid")),
    )
    op.create_index(op.f("ix_calls_agent_seat"), "calls", ["agent_seat"], unique=False)
    op.create_index(op.f("ix_calls_caller_number"), "calls", ["caller_number"], unique=False)
    op.create_table(
        "seat_status",
        sa.Column("seat", sa.String(length=32), nullable=False),
        sa.Column("in_queue", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("paused", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("pause_reason", sa.String(length=64), nullable=True),
        sa.Column("device_status", sa.Integer(), nullable=True),
        sa.Column("agent_session_id", sa.BigInteger(), nullable=True),
        sa.Column("current_call_uniqueid", sa.String(length=64), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["seat"], ["seats.name"], name=op.f("fk_seat_status_seat_seats")),
        sa.PrimaryKeyConstraint("seat", name=op.f("pk_seat_status")),
    )
    op.create_table(
        "complaints",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("number", sa.String(length=16), nullable=False),
        sa.Column("caller_number", sa.String(length=16), nullable=True),
        sa.Column("caller_name", sa.String(length=200), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("call_id", sa.BigInteger(), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column(
            "status", sa.String(length=20), server_default=sa.text("'registered'"), nullable=False
        ),
        sa.Column("idempotency_key", sa.String(length=128), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_complaints_call_id_calls")
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_complaints_created_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_complaints")),
        sa.UniqueConstraint("call_id", name=op.f("uq_complaints_call_id")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_complaints_idempotency_key")),
        sa.UniqueConstraint("number", name=op.f("uq_complaints_number")),
    )
    op.create_index(
        op.f("ix_complaints_caller_number"), "complaints", ["caller_number"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_complaints_caller_number"), table_name="complaints")
    op.drop_table("complaints")
    op.drop_table("seat_status")
    op.drop_index(op.f("ix_calls_caller_number"), table_name="calls")
    op.drop_index(op.f("ix_calls_agent_seat"), table_name="calls")
    op.drop_table("calls")
    op.drop_table("audit_log")
    op.drop_index(op.f("ix_api_tokens_user_id"), table_name="api_tokens")
    op.drop_table("api_tokens")
    op.drop_index(
        "uq_agent_sessions_open_user",
        table_name="agent_sessions",
        postgresql_where=sa.text("logged_out_at IS NULL"),
    )
    op.drop_index(
        "uq_agent_sessions_open_seat",
        table_name="agent_sessions",
        postgresql_where=sa.text("logged_out_at IS NULL"),
    )
    op.drop_table("agent_sessions")
    op.drop_table("users")
    op.drop_table("service_heartbeats")
    op.drop_table("seats")
    op.drop_index(op.f("ix_queue_events_uniqueid"), table_name="queue_events")
    op.drop_table("queue_events")
    op.execute(sa.schema.DropSequence(COMPLAINT_SEQUENCE))
