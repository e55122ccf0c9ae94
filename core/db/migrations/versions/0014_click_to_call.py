"""click-to-call: the campaign ``click`` (an agent's seat rings first, then the citizen), the
job's seat and requester, the attempt's ``Dial()`` status (what the citizen did), and the
dialer's attempt of a recorded call (``calls.dialer_attempt_id``, for the screen-pop)

The values of the CHECK constraints are written out, not imported: a migration is history.

Revision ID: 0014_click_to_call
Revises: 0013_auth_throttle
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_click_to_call"
down_revision: str | None = "0013_auth_throttle"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "'feedback', 'followup', 'callback'"
NEW = "'feedback', 'followup', 'callback', 'click'"
#: (table, constraint, column) of every CHECK that lists the campaigns.
CHECKS = (
    ("dialer_campaigns", "ck_dialer_campaigns_name", "name"),
    ("dialer_jobs", "ck_dialer_jobs_campaign", "campaign"),
    ("dialer_attempts", "ck_dialer_attempts_campaign", "campaign"),
)


def _campaign_checks(values: str) -> None:
    for table, name, column in CHECKS:
        op.drop_constraint(op.f(name), table, type_="check")
        op.create_check_constraint(op.f(name), table, f"{column} IN ({values})")
    op.drop_constraint(op.f("ck_dialer_budget_scope"), "dialer_budget", type_="check")
    op.create_check_constraint(
        op.f("ck_dialer_budget_scope"), "dialer_budget", f"scope IN ('all', {values})"
    )


def upgrade() -> None:
    _campaign_checks(NEW)
    op.add_column("dialer_jobs", sa.Column("seat", sa.String(length=32), nullable=True))
    op.add_column("dialer_jobs", sa.Column("requested_by", sa.Integer(), nullable=True))
    op.create_foreign_key(
        op.f("fk_dialer_jobs_seat_seats"), "dialer_jobs", "seats", ["seat"], ["name"]
    )
    op.create_foreign_key(
        op.f("fk_dialer_jobs_requested_by_users"), "dialer_jobs", "users", ["requested_by"], ["id"]
    )
    op.create_check_constraint(
        op.f("ck_dialer_jobs_click_seat"),
        "dialer_jobs",
        "(campaign = 'click') = (seat IS NOT NULL)",
    )
    op.add_column("dialer_attempts", sa.Column("dial_status", sa.String(length=16), nullable=True))
    # A dialer call the queue manager records (a callback in the queue, a click-to-call): the
    # screen-pop reads why the citizen was called through it; the inbound budget leaves it out.
    # No foreign key: calls -> dialer_attempts -> dialer_jobs -> complaints -> calls would be
    # a cycle; the recorder writes it only from an existing attempt's row.
    op.add_column("calls", sa.Column("dialer_attempt_id", sa.String(length=64), nullable=True))
    op.bulk_insert(
        sa.table(
            "dialer_campaigns",
            sa.column("name", sa.String()),
            sa.column("max_attempts", sa.Integer()),
        ),
        # One attempt: the agent clicks again if the citizen did not answer.
        [{"name": "click", "max_attempts": 1}],
    )


def downgrade() -> None:
    for table, column in (
        ("dialer_attempts", "campaign"),
        ("dialer_jobs", "campaign"),
        ("dialer_budget", "scope"),
        ("dialer_campaigns", "name"),
    ):
        op.execute(f"DELETE FROM {table} WHERE {column} = 'click'")
    op.drop_column("calls", "dialer_attempt_id")
    op.drop_column("dialer_attempts", "dial_status")
    op.drop_constraint(op.f("ck_dialer_jobs_click_seat"), "dialer_jobs", type_="check")
    op.drop_constraint(op.f("fk_dialer_jobs_requested_by_users"), "dialer_jobs", type_="foreignkey")
    op.drop_constraint(op.f("fk_dialer_jobs_seat_seats"), "dialer_jobs", type_="foreignkey")
    op.drop_column("dialer_jobs", "requested_by")
    op.drop_column("dialer_jobs", "seat")
    _campaign_checks(OLD)
