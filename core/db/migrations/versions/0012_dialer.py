"""outbound dialer: campaigns (one row each, made here), jobs (UNIQUE so none is made twice),
attempts (id = the AMI ChannelId; one per job and attempt number, one open per job), the
per-IST-day budget and channel counters, attempts per number and day, the do-not-call list;
and ``feedback_unreachable`` in complaint_history's actions

The values of the CHECK constraints are written out, not imported: a migration is history.

Revision ID: 0012_dialer
Revises: 0011_waiting_room
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_dialer"
down_revision: str | None = "0011_waiting_room"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: How an attempt ended (core.domain.dialing.Outcome).
OUTCOMES = (
    "'completed', 'busy', 'no_answer', 'congestion', 'failed', 'silence', 'hung_up', "
    "'abandoned', 'lost'"
)
#: complaint_history's actions before this revision (0006_routing).
ACTIONS = (
    "'register', 'assign', 'start', 'resolve', 'close', 'reopen', 'reject_duplicate', "
    "'request_closure', 'approve_closure', 'refuse_closure', 'reassign', 'escalate'"
)


def upgrade() -> None:
    op.create_table(
        "dialer_budget",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("used", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("active", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.CheckConstraint(
            "scope IN ('all', 'feedback', 'followup', 'callback')",
            name=op.f("ck_dialer_budget_scope"),
        ),
        sa.CheckConstraint("active >= 0", name=op.f("ck_dialer_budget_active")),
        sa.CheckConstraint("used >= 0", name=op.f("ck_dialer_budget_used")),
        sa.PrimaryKeyConstraint("day", "scope", name=op.f("pk_dialer_budget")),
    )
    op.create_table(
        "dialer_number_day",
        sa.Column("number", sa.String(length=16), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.CheckConstraint("number ~ '^[1-9][0-9]{9}$'", name=op.f("ck_dialer_number_day_number")),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_dialer_number_day_attempts")),
        sa.PrimaryKeyConstraint("number", "day", name=op.f("pk_dialer_number_day")),
    )
    op.create_table(
        "dialer_campaigns",
        sa.Column("name", sa.String(length=16), nullable=False),
        sa.Column("paused", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("max_attempts", sa.Integer(), server_default=sa.text("3"), nullable=False),
        sa.Column("max_concurrent", sa.Integer(), nullable=True),
        sa.Column("daily_limit", sa.Integer(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "name IN ('feedback', 'followup', 'callback')", name=op.f("ck_dialer_campaigns_name")
        ),
        sa.CheckConstraint(
            "daily_limit IS NULL OR daily_limit >= 0", name=op.f("ck_dialer_campaigns_daily_limit")
        ),
        sa.CheckConstraint("max_attempts > 0", name=op.f("ck_dialer_campaigns_max_attempts")),
        sa.CheckConstraint(
            "max_concurrent IS NULL OR max_concurrent >= 0",
            name=op.f("ck_dialer_campaigns_max_concurrent"),
        ),
        sa.ForeignKeyConstraint(
            ["updated_by"], ["users.id"], name=op.f("fk_dialer_campaigns_updated_by_users")
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_dialer_campaigns")),
    )
    op.create_table(
        "dialer_dnc",
        sa.Column("number", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column(
            "added_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("added_by", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint("number ~ '^[1-9][0-9]{9}$'", name=op.f("ck_dialer_dnc_number")),
        sa.CheckConstraint(
            "source IN ('citizen', 'supervisor')", name=op.f("ck_dialer_dnc_source")
        ),
        sa.ForeignKeyConstraint(
            ["added_by"], ["users.id"], name=op.f("fk_dialer_dnc_added_by_users")
        ),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_dialer_dnc")),
    )
    op.create_table(
        "dialer_jobs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("campaign", sa.String(length=16), nullable=False),
        sa.Column("complaint_id", sa.BigInteger(), nullable=True),
        sa.Column("callback_request_id", sa.BigInteger(), nullable=True),
        sa.Column("dedupe_key", sa.String(length=64), nullable=False),
        sa.Column("resolution_id", sa.BigInteger(), nullable=True),
        sa.Column("number", sa.String(length=16), nullable=False),
        sa.Column(
            "not_before",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "state", sa.String(length=16), server_default=sa.text("'pending'"), nullable=False
        ),
        sa.Column("last_outcome", sa.String(length=16), nullable=True),
        sa.Column("result", sa.String(length=16), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "campaign IN ('feedback', 'followup', 'callback')", name=op.f("ck_dialer_jobs_campaign")
        ),
        sa.CheckConstraint(
            f"last_outcome IN ({OUTCOMES})",
            name=op.f("ck_dialer_jobs_last_outcome"),
        ),
        sa.CheckConstraint("number ~ '^[1-9][0-9]{9}$'", name=op.f("ck_dialer_jobs_number")),
        sa.CheckConstraint(
            "result IN ('satisfied', 'unsatisfied')", name=op.f("ck_dialer_jobs_result")
        ),
        sa.CheckConstraint(
            "state IN ('pending', 'dialing', 'done', 'unreachable', 'stopped')",
            name=op.f("ck_dialer_jobs_state"),
        ),
        sa.CheckConstraint(
            "(complaint_id IS NULL) <> (callback_request_id IS NULL)",
            name=op.f("ck_dialer_jobs_one_subject"),
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_dialer_jobs_attempts")),
        sa.ForeignKeyConstraint(
            ["callback_request_id"],
            ["callback_requests.id"],
            name=op.f("fk_dialer_jobs_callback_request_id_callback_requests"),
        ),
        sa.ForeignKeyConstraint(
            ["resolution_id"],
            ["complaint_history.id"],
            name=op.f("fk_dialer_jobs_resolution_id_complaint_history"),
        ),
        sa.ForeignKeyConstraint(
            ["complaint_id"], ["complaints.id"], name=op.f("fk_dialer_jobs_complaint_id_complaints")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dialer_jobs")),
        sa.UniqueConstraint("callback_request_id", name="uq_dialer_jobs_callback_request_id"),
        sa.UniqueConstraint(
            "campaign", "complaint_id", "dedupe_key", name="uq_dialer_jobs_complaint_key"
        ),
    )
    op.create_index(
        "ix_dialer_jobs_due",
        "dialer_jobs",
        ["not_before", "id"],
        unique=False,
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_index(op.f("ix_dialer_jobs_number"), "dialer_jobs", ["number"], unique=False)
    op.create_table(
        "dialer_attempts",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=False),
        sa.Column("attempt_no", sa.Integer(), nullable=False),
        sa.Column("campaign", sa.String(length=16), nullable=False),
        sa.Column("number", sa.String(length=16), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("originate_reason", sa.Integer(), nullable=True),
        sa.Column("hangup_cause", sa.Integer(), nullable=True),
        sa.Column("answered", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("abandoned", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("dialer", sa.String(length=128), nullable=False),
        sa.CheckConstraint(
            "campaign IN ('feedback', 'followup', 'callback')",
            name=op.f("ck_dialer_attempts_campaign"),
        ),
        sa.CheckConstraint("number ~ '^[1-9][0-9]{9}$'", name=op.f("ck_dialer_attempts_number")),
        sa.CheckConstraint(
            f"outcome IN ({OUTCOMES})",
            name=op.f("ck_dialer_attempts_outcome"),
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["dialer_jobs.id"], name=op.f("fk_dialer_attempts_job_id_dialer_jobs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dialer_attempts")),
        sa.UniqueConstraint("job_id", "attempt_no", name="uq_dialer_attempts_job_attempt"),
    )
    op.create_index(
        "ix_dialer_attempts_number_started",
        "dialer_attempts",
        ["number", "started_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_dialer_attempts_outcome"), "dialer_attempts", ["outcome"], unique=False
    )
    op.create_index(
        "uq_dialer_attempts_open_job",
        "dialer_attempts",
        ["job_id"],
        unique=True,
        postgresql_where=sa.text("ended_at IS NULL"),
    )
    op.bulk_insert(
        sa.table(
            "dialer_campaigns",
            sa.column("name", sa.String()),
            sa.column("max_attempts", sa.Integer()),
        ),
        [
            {"name": "feedback", "max_attempts": 3},
            {"name": "followup", "max_attempts": 2},
            {"name": "callback", "max_attempts": 3},
        ],
    )
    op.drop_constraint(op.f("ck_complaint_history_action"), "complaint_history", type_="check")
    op.create_check_constraint(
        op.f("ck_complaint_history_action"),
        "complaint_history",
        f"action IN ({ACTIONS}, 'feedback_unreachable')",
    )
    # A callback request is settled when the dialer's job for it ends.
    op.drop_constraint(op.f("ck_callback_requests_status"), "callback_requests", type_="check")
    op.create_check_constraint(
        op.f("ck_callback_requests_status"),
        "callback_requests",
        "status IN ('pending', 'called', 'unreachable', 'stopped')",
    )


def downgrade() -> None:
    op.execute("UPDATE callback_requests SET status = 'pending' WHERE status <> 'pending'")
    op.drop_constraint(op.f("ck_callback_requests_status"), "callback_requests", type_="check")
    op.create_check_constraint(
        op.f("ck_callback_requests_status"), "callback_requests", "status IN ('pending')"
    )
    op.drop_constraint(op.f("ck_complaint_history_action"), "complaint_history", type_="check")
    op.create_check_constraint(
        op.f("ck_complaint_history_action"), "complaint_history", f"action IN ({ACTIONS})"
    )
    op.drop_index(
        "uq_dialer_attempts_open_job",
        table_name="dialer_attempts",
        postgresql_where=sa.text("ended_at IS NULL"),
    )
    op.drop_index(op.f("ix_dialer_attempts_outcome"), table_name="dialer_attempts")
    op.drop_index("ix_dialer_attempts_number_started", table_name="dialer_attempts")
    op.drop_table("dialer_attempts")
    op.drop_index(op.f("ix_dialer_jobs_number"), table_name="dialer_jobs")
    op.drop_index(
        "ix_dialer_jobs_due",
        table_name="dialer_jobs",
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.drop_table("dialer_jobs")
    op.drop_table("dialer_dnc")
    op.drop_table("dialer_campaigns")
    op.drop_table("dialer_number_day")
    op.drop_table("dialer_budget")
