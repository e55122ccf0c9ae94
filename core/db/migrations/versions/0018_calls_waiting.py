"""calls: a partial index of the callers waiting in a queue now (the IVR's queue check and the
waiting room's position read it on every queued call; through ``ix_calls_queue_joined_at``
they scanned every call that joined in the last 2 h 15 min, ~25,000 rows at the peak hour)

Built CONCURRENTLY: the queue manager writes ``calls`` for every AMI event, and a plain CREATE
INDEX would block those writes for as long as it takes on a table of months of calls.

Revision ID: 0018_calls_waiting
Revises: 0017_asterisk_cel
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018_calls_waiting"
down_revision: str | None = "0017_asterisk_cel"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WAITING = (
    "queue_joined_at IS NOT NULL AND queue_left_at IS NULL "
    "AND agent_connected_at IS NULL AND ended_at IS NULL"
)


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_calls_waiting "
            f"ON calls (queue_joined_at) WHERE {WAITING}"
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_calls_waiting")
