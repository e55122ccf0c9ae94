"""notifications: ``sms_outbox``, the SMS to callers about their complaints (queued with the
change they report, delivered at least once by the ``sla`` worker)

The values of the CHECK constraints are written out, not imported: a migration is history.

Revision ID: 0007_notifications
Revises: 0006_routing
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_notifications"
down_revision: str | None = "0006_routing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sms_outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("complaint_number", sa.String(length=16), nullable=False),
        sa.Column("caller_number", sa.String(length=16), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("dedupe_key", sa.String(length=128), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("dlt_template_id", sa.String(length=32), nullable=False),
        sa.Column(
            "status", sa.String(length=16), server_default=sa.text("'pending'"), nullable=False
        ),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("lease_token", sa.String(length=36), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("provider_message_id", sa.String(length=128), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_outbox")),
        sa.UniqueConstraint(
            "complaint_number", "kind", "dedupe_key", name=op.f("uq_sms_outbox_event")
        ),
        sa.CheckConstraint(
            "caller_number ~ '^[1-9][0-9]{9}$'", name=op.f("ck_sms_outbox_caller_number")
        ),
        sa.CheckConstraint(
            "kind IN ('registered', 'assigned', 'escalated', 'resolved')",
            name=op.f("ck_sms_outbox_kind"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'failed', 'sent', 'dead', 'skipped')",
            name=op.f("ck_sms_outbox_status"),
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_sms_outbox_attempts")),
    )
    op.create_index(op.f("ix_sms_outbox_complaint_number"), "sms_outbox", ["complaint_number"])
    op.create_index(
        "ix_sms_outbox_due",
        "sms_outbox",
        ["next_attempt_at"],
        postgresql_where=sa.text("status IN ('pending', 'failed', 'sending')"),
    )


def downgrade() -> None:
    op.drop_table("sms_outbox")
