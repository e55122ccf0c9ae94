"""desk: ``call_wrapups`` (the agent's wrap-up code and note, one per call; writer: api) and
``readback_sessions`` (each read-back of a complaint number to a caller; writer: agi)

The values of the CHECK constraints are written out, not imported: a migration is history.

Revision ID: 0010_desk
Revises: 0008_acr_ledger
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010_desk"
down_revision: str | None = "0009_recordings"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WRAPUP_CODES = (
    "complaint_filed",
    "status_given",
    "duplicate",
    "wrong_number",
    "abusive_caller",
    "silent_call",
    "transferred_112",
    "transferred_108",
    "other",
)


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "call_wrapups",
        sa.Column("call_id", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("call_id", name=op.f("pk_call_wrapups")),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_call_wrapups_call_id_calls")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_call_wrapups_user_id_users")
        ),
        sa.CheckConstraint(_in("code", WRAPUP_CODES), name=op.f("ck_call_wrapups_code")),
    )
    op.create_table(
        "readback_sessions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("uniqueid", sa.String(length=64), nullable=False),
        sa.Column("complaint_number", sa.String(length=16), nullable=False),
        sa.Column("lang", sa.String(length=8), nullable=False),
        sa.Column("then_action", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "digits_spoken", sa.String(length=64), server_default=sa.text("''"), nullable=False
        ),
        sa.Column("prompts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_readback_sessions")),
        sa.UniqueConstraint("uniqueid", "started_at", name="uq_readback_sessions_key"),
        sa.CheckConstraint(
            _in("outcome", ("completed", "hung_up", "not_found", "failed")),
            name=op.f("ck_readback_sessions_outcome"),
        ),
        sa.CheckConstraint(
            _in("then_action", ("return", "hangup")), name=op.f("ck_readback_sessions_then_action")
        ),
    )
    op.create_index(
        op.f("ix_readback_sessions_uniqueid"), "readback_sessions", ["uniqueid"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_readback_sessions_uniqueid"), table_name="readback_sessions")
    op.drop_table("readback_sessions")
    op.drop_table("call_wrapups")
