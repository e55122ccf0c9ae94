"""typed state: CHECK constraints for every enumerated column and every caller number;
the IVR outcome's node moves out of the outcome into ``last_node``

``ivr_sessions.outcome`` was ``abandoned_at:<node>`` / ``failed_at:<node>``; it becomes
``abandoned`` / ``failed`` and the node is ``last_node`` (which already held the same node).
The values are written out here, not imported from core.domain: a migration is history, and
the drift test (tests/service/test_schema.py) fails when the enums move on without a new one.

Revision ID: 0004_typed_state
Revises: 0003_merge
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_typed_state"
down_revision: str | None = "0003_merge"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CALLER_NUMBER = "caller_number ~ '^[1-9][0-9]{9}$'"

#: (table, constraint name, condition)
CHECKS: tuple[tuple[str, str, str], ...] = (
    ("users", "ck_users_role", "role IN ('agent', 'supervisor', 'officer', 'admin')"),
    (
        "users",
        "ck_users_skills",
        'jsonb_typeof(skills) = \'array\' AND skills <@ \'["general", "police", "health"]\'::jsonb',
    ),
    (
        "agent_sessions",
        "ck_agent_sessions_pause_reason",
        "pause_reason IN ('break', 'training', 'meeting', 'after_call_work')",
    ),
    ("calls", "ck_calls_caller_number", CALLER_NUMBER),
    (
        "calls",
        "ck_calls_disposition",
        "disposition IN ('answered', 'abandoned', 'ivr_only', 'unanswered')",
    ),
    ("complaints", "ck_complaints_caller_number", CALLER_NUMBER),
    (
        "complaints",
        "ck_complaints_status",
        "status IN ('registered', 'assigned', 'in_progress', 'resolved', 'reopened', "
        "'escalated', 'closed')",
    ),
    ("ivr_sessions", "ck_ivr_sessions_caller_number", CALLER_NUMBER),
    (
        "ivr_sessions",
        "ck_ivr_sessions_outcome",
        "outcome IN ('queued', 'self_served', 'transferred', 'callback', 'abandoned', 'failed')",
    ),
    ("callback_requests", "ck_callback_requests_caller_number", CALLER_NUMBER),
    ("callback_requests", "ck_callback_requests_reason", "reason IN ('budget', 'wait', 'asked')"),
    ("callback_requests", "ck_callback_requests_status", "status IN ('pending')"),
)


def upgrade() -> None:
    op.execute(
        sa.text(
            """
            UPDATE ivr_sessions
               SET last_node = COALESCE(last_node, substr(outcome, strpos(outcome, ':') + 1)),
                   outcome = CASE WHEN outcome LIKE 'abandoned\\_at:%' THEN 'abandoned'
                                  ELSE 'failed' END
             WHERE outcome LIKE 'abandoned\\_at:%' OR outcome LIKE 'failed\\_at:%'
            """
        )
    )
    for table, name, condition in CHECKS:
        op.create_check_constraint(op.f(name), table, sa.text(condition))


def downgrade() -> None:
    for table, name, _ in reversed(CHECKS):
        op.drop_constraint(op.f(name), table, type_="check")
    op.execute(
        sa.text(
            """
            UPDATE ivr_sessions
               SET outcome = CASE outcome WHEN 'abandoned' THEN 'abandoned_at:'
                                          ELSE 'failed_at:' END || COALESCE(last_node, '')
             WHERE outcome IN ('abandoned', 'failed')
            """
        )
    )
