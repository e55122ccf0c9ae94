"""acr ledger: ``acr_breaches``, one row per SLA breach charged to the officer whose
assignment ran out (UNIQUE on the assignment: complaint, level, due date), and the partial
index the SLA pass finds overdue complaints with

The values of the CHECK constraints are written out, not imported: a migration is history.

Revision ID: 0008_acr_ledger
Revises: 0007_notifications
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_acr_ledger"
down_revision: str | None = "0007_notifications"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The statuses in which an officer holds a complaint and its SLA runs.
WITH_OFFICER = "status IN ('assigned', 'reopened', 'escalated', 'in_progress')"


def upgrade() -> None:
    op.create_table(
        "acr_breaches",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("complaint_id", sa.BigInteger(), nullable=False),
        sa.Column("officer_id", sa.String(length=64), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("breached_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_acr_breaches")),
        sa.ForeignKeyConstraint(
            ["complaint_id"],
            ["complaints.id"],
            name=op.f("fk_acr_breaches_complaint_id_complaints"),
        ),
        sa.ForeignKeyConstraint(
            ["officer_id"], ["officers.code"], name=op.f("fk_acr_breaches_officer_id_officers")
        ),
        sa.UniqueConstraint(
            "complaint_id", "level", "due_at", name=op.f("uq_acr_breaches_assignment")
        ),
        sa.CheckConstraint(
            "level IN ('thana', 'tehsil', 'district', 'division', 'state', 'cm_office')",
            name=op.f("ck_acr_breaches_level"),
        ),
    )
    op.create_index(
        "ix_acr_breaches_officer_breached", "acr_breaches", ["officer_id", "breached_at"]
    )
    op.create_index(
        "ix_complaints_overdue",
        "complaints",
        ["due_at", "id"],
        postgresql_where=sa.text(WITH_OFFICER),
    )


def downgrade() -> None:
    op.drop_index("ix_complaints_overdue", table_name="complaints")
    op.drop_table("acr_breaches")
