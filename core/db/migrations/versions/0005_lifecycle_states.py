"""lifecycle states: complaints may be ``rejected_duplicate`` or ``closure_requested``; users
may have the ``cm_office`` role

Only the CHECK constraints change (no row holds a new value before this runs, and every old
value stays allowed). The values are written out, not imported: a migration is history.

Revision ID: 0005_lifecycle_states
Revises: 0004_typed_state
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_lifecycle_states"
down_revision: str | None = "0004_typed_state"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (table, constraint, condition before, condition after)
CHECKS: tuple[tuple[str, str, str, str], ...] = (
    (
        "users",
        "ck_users_role",
        "role IN ('agent', 'supervisor', 'officer', 'admin')",
        "role IN ('agent', 'supervisor', 'officer', 'cm_office', 'admin')",
    ),
    (
        "complaints",
        "ck_complaints_status",
        "status IN ('registered', 'assigned', 'in_progress', 'resolved', 'reopened', "
        "'escalated', 'closed')",
        "status IN ('registered', 'assigned', 'in_progress', 'resolved', 'reopened', "
        "'escalated', 'closed', 'rejected_duplicate', 'closure_requested')",
    ),
)


def _replace(table: str, name: str, condition: str) -> None:
    op.drop_constraint(op.f(name), table, type_="check")
    op.create_check_constraint(op.f(name), table, sa.text(condition))


def upgrade() -> None:
    for table, name, _, after in CHECKS:
        _replace(table, name, after)


def downgrade() -> None:
    """Refused while a row holds a value the old constraint does not allow: such a row's
    meaning has no older equivalent, so deciding what it becomes is left to a person."""
    for table, name, before, _ in CHECKS:
        _replace(table, name, before)
