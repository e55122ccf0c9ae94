"""merge the IVR (0002_ivr) and queue (0002_queue) branches

Both were built at the same time on 0001; neither touches the other's tables.

Revision ID: 0003_merge
Revises: 0002_ivr, 0002_queue
Create Date: 2026-11-29
"""

from collections.abc import Sequence

revision: str = "0003_merge"
down_revision: str | tuple[str, ...] | None = ("0002_ivr", "0002_queue")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
