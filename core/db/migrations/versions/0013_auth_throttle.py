"""auth throttle: ``auth_throttle``, failed logins counted per user name and per address
(``user:<name>``, ``addr:<ip>``) in a window, and until when each is blocked; shared by every
API process, updated atomically (INSERT … ON CONFLICT DO UPDATE)

Revision ID: 0013_auth_throttle
Revises: 0012_dialer
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_auth_throttle"
down_revision: str | None = "0012_dialer"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "auth_throttle",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_auth_throttle")),
    )


def downgrade() -> None:
    op.drop_table("auth_throttle")
