"""inbound budget: one counter row per IST day of citizens' calls recorded (``inbound_budget``),
so the IVR's budget check reads one row instead of counting the day's calls before every queued
call (a cost that grew through the day). Filled from the calls already recorded.

Revision ID: 0015_inbound_budget
Revises: 0014_click_to_call
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_inbound_budget"
down_revision: str | None = "0014_click_to_call"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbound_budget",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("used", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.CheckConstraint("used >= 0", name=op.f("ck_inbound_budget_used")),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_inbound_budget")),
    )
    # The days so far, counted once (IST, as core.domain.clock.helpline_day).
    op.execute(
        """
        INSERT INTO inbound_budget (day, used)
        SELECT (started_at AT TIME ZONE 'Asia/Kolkata')::date, count(*)
        FROM calls WHERE dialer_attempt_id IS NULL
        GROUP BY 1
        """
    )


def downgrade() -> None:
    op.drop_table("inbound_budget")
