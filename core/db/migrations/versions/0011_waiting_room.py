"""waiting room: a callback request keeps the caller's place in line (``place_at``, the queue),
one pending request per caller number, the reason ``waiting`` (pressed 1 while waiting); calls
record each entry into and exit from app_queue (the waiting room re-enters callers after each
announcement) so the place (``queue_joined_at``) survives the re-entries; a call whose caller
chose a callback ends with the disposition ``callback`` (not ``abandoned``)

Existing requests get ``place_at = requested_at`` (they were all made in the IVR, before any
queue). Should a caller number hold two pending requests already, creating the unique index
fails and the upgrade stops: which one to keep is a decision for a person, not a migration.
Downgrading turns ``waiting`` requests into ``asked`` ones (still to be called back).

The values of the CHECK constraints are written out, not imported: a migration is history.

Revision ID: 0011_waiting_room
Revises: 0010_desk
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_waiting_room"
down_revision: str | None = "0010_desk"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DISPOSITIONS_BEFORE = "disposition IN ('answered', 'abandoned', 'ivr_only', 'unanswered')"
DISPOSITIONS_AFTER = (
    "disposition IN ('answered', 'abandoned', 'ivr_only', 'callback', 'unanswered')"
)
REASONS_BEFORE = "reason IN ('budget', 'wait', 'asked')"
REASONS_AFTER = "reason IN ('budget', 'wait', 'asked', 'waiting')"
PENDING = "status = 'pending'"


def upgrade() -> None:
    op.add_column("calls", sa.Column("queue_entered_at", sa.DateTime(timezone=True)))
    op.add_column("calls", sa.Column("queue_exited_at", sa.DateTime(timezone=True)))
    op.add_column(
        "callback_requests",
        sa.Column(
            "place_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    )
    op.execute("UPDATE callback_requests SET place_at = requested_at")
    op.add_column("callback_requests", sa.Column("queue", sa.String(length=64)))
    op.drop_constraint(op.f("ck_callback_requests_reason"), "callback_requests", type_="check")
    op.create_check_constraint(
        op.f("ck_callback_requests_reason"), "callback_requests", sa.text(REASONS_AFTER)
    )
    op.drop_constraint(op.f("ck_calls_disposition"), "calls", type_="check")
    op.create_check_constraint(op.f("ck_calls_disposition"), "calls", sa.text(DISPOSITIONS_AFTER))
    op.create_index(
        "ix_callback_requests_status_place", "callback_requests", ["status", "place_at", "id"]
    )
    op.create_index(
        "uq_callback_requests_pending_caller",
        "callback_requests",
        ["caller_number"],
        unique=True,
        postgresql_where=sa.text(PENDING),
    )


def downgrade() -> None:
    op.drop_index("uq_callback_requests_pending_caller", table_name="callback_requests")
    op.drop_index("ix_callback_requests_status_place", table_name="callback_requests")
    op.execute("UPDATE callback_requests SET reason = 'asked' WHERE reason = 'waiting'")
    op.drop_constraint(op.f("ck_calls_disposition"), "calls", type_="check")
    op.execute(
        "UPDATE calls SET disposition = CASE WHEN queue_joined_at IS NULL THEN 'ivr_only' "
        "ELSE 'abandoned' END WHERE disposition = 'callback'"
    )
    op.create_check_constraint(op.f("ck_calls_disposition"), "calls", sa.text(DISPOSITIONS_BEFORE))
    op.drop_constraint(op.f("ck_callback_requests_reason"), "callback_requests", type_="check")
    op.create_check_constraint(
        op.f("ck_callback_requests_reason"), "callback_requests", sa.text(REASONS_BEFORE)
    )
    op.drop_column("callback_requests", "queue")
    op.drop_column("callback_requests", "place_at")
    op.drop_column("calls", "queue_exited_at")
    op.drop_column("calls", "queue_entered_at")
