"""anonymisation by data class (lifecycle.privacy): the caller numbers of settled callback
requests and of finished dialer jobs and attempts may be NULL once anonymised (their CHECK
already lets NULL through), and a complaint records when its personal data was anonymised.

Revision ID: 0016_anonymise
Revises: 0015_inbound_budget
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_anonymise"
down_revision: str | None = "0015_inbound_budget"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (table, column) of the caller numbers the privacy pass sets to NULL.
NUMBERS = (
    ("callback_requests", "caller_number"),
    ("dialer_jobs", "number"),
    ("dialer_attempts", "number"),
)


def upgrade() -> None:
    for table, column in NUMBERS:
        op.alter_column(table, column, existing_type=sa.String(16), nullable=True)
    op.add_column(
        "complaints", sa.Column("anonymised_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("complaints", "anonymised_at")
    for table, column in NUMBERS:
        # Fails while anonymised rows exist: they have no number to give back.
        op.alter_column(table, column, existing_type=sa.String(16), nullable=False)
