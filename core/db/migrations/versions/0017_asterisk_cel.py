"""asterisk_cel: Asterisk's own record of every channel (CEL written by ``cel_pgsql``), the
second source from which the queue manager back-fills calls it did not see

Revision ID: 0017_asterisk_cel
Revises: 0016_anonymise
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_asterisk_cel"
down_revision: str | None = "0016_anonymise"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TEXT_COLUMNS = (
    "eventtype",
    "userdeftype",
    "cid_name",
    "cid_num",
    "cid_ani",
    "cid_rdnis",
    "cid_dnid",
    "exten",
    "context",
    "channame",
    "appname",
    "appdata",
    "accountcode",
    "peeraccount",
    "uniqueid",
    "linkedid",
    "userfield",
    "peer",
    "extra",
)


def upgrade() -> None:
    op.create_table(
        "asterisk_cel",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("eventtime", sa.DateTime(timezone=False), nullable=False),
        sa.Column("amaflags", sa.Integer(), nullable=True),
        *(sa.Column(name, sa.Text(), nullable=True) for name in TEXT_COLUMNS),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asterisk_cel")),
    )
    op.create_index("ix_asterisk_cel_linkedid", "asterisk_cel", ["linkedid", "eventtime"])
    op.create_index("ix_asterisk_cel_eventtype", "asterisk_cel", ["eventtype", "eventtime"])


def downgrade() -> None:
    op.drop_table("asterisk_cel")
