"""routing: reference tables (places, departments, categories, officers' posts), complaints
routed to an officer with their history; a call may carry several complaints

Complaints get their department, category, place, assigned officer and level, resolution,
reopen count, duplicate link and the reason no rule placed them. ``UNIQUE(call_id)`` becomes
``UNIQUE(call_id, request_hash)``: the same request twice on one call is still one complaint,
two different ones are two. The CHECKs are written out, not imported (a migration is history).

Revision ID: 0006_routing
Revises: 0005_lifecycle_states
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

LEVELS = "'thana', 'tehsil', 'district', 'division', 'state', 'cm_office'"
#: Statuses as of 0005_lifecycle_states.
STATUSES = (
    "'registered', 'assigned', 'in_progress', 'resolved', 'reopened', 'escalated', 'closed', "
    "'rejected_duplicate', 'closure_requested'"
)
ACTIONS = (
    "'register', 'assign', 'start', 'resolve', 'close', 'reopen', 'reject_duplicate', "
    "'request_closure', 'approve_closure', 'refuse_closure', 'reassign', 'escalate'"
)

revision: str = "0006_routing"
down_revision: str | None = "0005_lifecycle_states"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "departments",
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name_en", sa.String(length=200), nullable=False),
        sa.Column("name_hi", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_departments")),
    )
    op.create_table(
        "divisions",
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name_en", sa.String(length=200), nullable=False),
        sa.Column("name_hi", sa.String(length=200), nullable=False),
        sa.Column("headquarters", sa.String(length=40), nullable=False),
        sa.Column("lgd_code", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_divisions")),
    )
    op.create_table(
        "reference_manifest",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column(
            "seeded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_reference_manifest")),
    )
    op.create_table(
        "categories",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("department", sa.String(length=40), nullable=False),
        sa.Column("name_en", sa.String(length=200), nullable=False),
        sa.Column("name_hi", sa.String(length=200), nullable=False),
        sa.Column("sla_days", sa.Integer(), nullable=False),
        sa.Column("first_level", sa.String(length=16), nullable=False),
        sa.Column("ladder", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.CheckConstraint(f"first_level IN ({LEVELS})", name=op.f("ck_categories_first_level")),
        sa.ForeignKeyConstraint(
            ["department"], ["departments.code"], name=op.f("fk_categories_department_departments")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_categories")),
    )
    op.create_table(
        "districts",
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("division", sa.String(length=40), nullable=False),
        sa.Column("name_en", sa.String(length=200), nullable=False),
        sa.Column("name_hi", sa.String(length=200), nullable=False),
        sa.Column("lgd_code", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["division"], ["divisions.code"], name=op.f("fk_districts_division_divisions")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_districts")),
    )
    op.create_table(
        "officers",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("department", sa.String(length=40), nullable=True),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("place", sa.String(length=40), nullable=False),
        sa.Column("designation_en", sa.String(length=200), nullable=False),
        sa.Column("designation_hi", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(f"level IN ({LEVELS})", name=op.f("ck_officers_level")),
        sa.ForeignKeyConstraint(
            ["department"], ["departments.code"], name=op.f("fk_officers_department_departments")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_officers_user_id_users")),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_officers")),
        sa.UniqueConstraint("user_id", name=op.f("uq_officers_user_id")),
    )
    op.create_table(
        "tehsils",
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("district", sa.String(length=40), nullable=False),
        sa.Column("name_en", sa.String(length=200), nullable=False),
        sa.Column("name_hi", sa.String(length=200), nullable=False),
        sa.Column("lgd_code", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["district"], ["districts.code"], name=op.f("fk_tehsils_district_districts")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_tehsils")),
    )
    op.create_table(
        "thanas",
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("district", sa.String(length=40), nullable=False),
        sa.Column("tehsil", sa.String(length=40), nullable=True),
        sa.Column("name_en", sa.String(length=200), nullable=False),
        sa.Column("name_hi", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["district"], ["districts.code"], name=op.f("fk_thanas_district_districts")
        ),
        sa.ForeignKeyConstraint(
            ["tehsil"], ["tehsils.code"], name=op.f("fk_thanas_tehsil_tehsils")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_thanas")),
    )
    op.create_table(
        "complaint_history",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("complaint_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("actor_user_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("from_status", sa.String(length=20), nullable=True),
        sa.Column("to_status", sa.String(length=20), nullable=False),
        sa.Column("from_officer", sa.String(length=64), nullable=True),
        sa.Column("to_officer", sa.String(length=64), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint(
            f"action IN ({ACTIONS})",
            name=op.f("ck_complaint_history_action"),
        ),
        sa.CheckConstraint(
            f"from_status IN ({STATUSES})",
            name=op.f("ck_complaint_history_from_status"),
        ),
        sa.CheckConstraint(
            f"to_status IN ({STATUSES})",
            name=op.f("ck_complaint_history_to_status"),
        ),
        sa.ForeignKeyConstraint(
            ["actor_user_id"], ["users.id"], name=op.f("fk_complaint_history_actor_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["complaint_id"],
            ["complaints.id"],
            name=op.f("fk_complaint_history_complaint_id_complaints"),
        ),
        sa.ForeignKeyConstraint(
            ["from_officer"],
            ["officers.code"],
            name=op.f("fk_complaint_history_from_officer_officers"),
        ),
        sa.ForeignKeyConstraint(
            ["to_officer"], ["officers.code"], name=op.f("fk_complaint_history_to_officer_officers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_complaint_history")),
    )
    op.create_index(
        "ix_complaint_history_complaint_at",
        "complaint_history",
        ["complaint_id", "at"],
        unique=False,
    )
    op.add_column("complaints", sa.Column("department", sa.String(length=40), nullable=True))
    op.add_column("complaints", sa.Column("category", sa.String(length=64), nullable=True))
    op.add_column("complaints", sa.Column("district", sa.String(length=40), nullable=True))
    op.add_column("complaints", sa.Column("tehsil", sa.String(length=40), nullable=True))
    op.add_column("complaints", sa.Column("thana", sa.String(length=40), nullable=True))
    op.add_column("complaints", sa.Column("assigned_officer", sa.String(length=64), nullable=True))
    op.add_column("complaints", sa.Column("level", sa.String(length=16), nullable=True))
    op.add_column("complaints", sa.Column("unroutable_reason", sa.Text(), nullable=True))
    op.add_column("complaints", sa.Column("resolution_text", sa.Text(), nullable=True))
    op.add_column("complaints", sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("complaints", sa.Column("resolved_by", sa.Integer(), nullable=True))
    op.add_column(
        "complaints",
        sa.Column("reopen_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column("complaints", sa.Column("duplicate_of", sa.BigInteger(), nullable=True))
    op.drop_constraint(op.f("uq_complaints_call_id"), "complaints", type_="unique")
    op.create_index(
        op.f("ix_complaints_assigned_officer"), "complaints", ["assigned_officer"], unique=False
    )
    op.create_index(op.f("ix_complaints_call_id"), "complaints", ["call_id"], unique=False)
    op.create_index(
        "ix_complaints_caller_month", "complaints", ["caller_number", "created_at"], unique=False
    )
    op.create_unique_constraint(
        "uq_complaints_call_request", "complaints", ["call_id", "request_hash"]
    )
    op.create_foreign_key(
        op.f("fk_complaints_department_departments"),
        "complaints",
        "departments",
        ["department"],
        ["code"],
    )
    op.create_foreign_key(
        op.f("fk_complaints_resolved_by_users"), "complaints", "users", ["resolved_by"], ["id"]
    )
    op.create_foreign_key(
        op.f("fk_complaints_district_districts"), "complaints", "districts", ["district"], ["code"]
    )
    op.create_foreign_key(
        op.f("fk_complaints_category_categories"),
        "complaints",
        "categories",
        ["category"],
        ["code"],
    )
    op.create_foreign_key(
        op.f("fk_complaints_tehsil_tehsils"), "complaints", "tehsils", ["tehsil"], ["code"]
    )
    op.create_foreign_key(
        op.f("fk_complaints_duplicate_of_complaints"),
        "complaints",
        "complaints",
        ["duplicate_of"],
        ["id"],
    )
    op.create_foreign_key(
        op.f("fk_complaints_assigned_officer_officers"),
        "complaints",
        "officers",
        ["assigned_officer"],
        ["code"],
    )
    op.create_foreign_key(
        op.f("fk_complaints_thana_thanas"), "complaints", "thanas", ["thana"], ["code"]
    )
    op.create_check_constraint(
        op.f("ck_complaints_level"), "complaints", sa.text(f"level IN ({LEVELS})")
    )


def downgrade() -> None:
    """Refused while two complaints share a call."""
    op.drop_constraint(op.f("ck_complaints_level"), "complaints", type_="check")
    op.drop_constraint(op.f("fk_complaints_thana_thanas"), "complaints", type_="foreignkey")
    op.drop_constraint(
        op.f("fk_complaints_assigned_officer_officers"), "complaints", type_="foreignkey"
    )
    op.drop_constraint(
        op.f("fk_complaints_duplicate_of_complaints"), "complaints", type_="foreignkey"
    )
    op.drop_constraint(op.f("fk_complaints_tehsil_tehsils"), "complaints", type_="foreignkey")
    op.drop_constraint(op.f("fk_complaints_category_categories"), "complaints", type_="foreignkey")
    op.drop_constraint(op.f("fk_complaints_district_districts"), "complaints", type_="foreignkey")
    op.drop_constraint(op.f("fk_complaints_resolved_by_users"), "complaints", type_="foreignkey")
    op.drop_constraint(
        op.f("fk_complaints_department_departments"), "complaints", type_="foreignkey"
    )
    op.drop_constraint("uq_complaints_call_request", "complaints", type_="unique")
    op.drop_index("ix_complaints_caller_month", table_name="complaints")
    op.drop_index(op.f("ix_complaints_call_id"), table_name="complaints")
    op.drop_index(op.f("ix_complaints_assigned_officer"), table_name="complaints")
    op.create_unique_constraint(
        op.f("uq_complaints_call_id"),
        "complaints",
        ["call_id"],
        postgresql_nulls_not_distinct=False,
    )
    op.drop_column("complaints", "duplicate_of")
    op.drop_column("complaints", "reopen_count")
    op.drop_column("complaints", "resolved_by")
    op.drop_column("complaints", "resolved_at")
    op.drop_column("complaints", "resolution_text")
    op.drop_column("complaints", "unroutable_reason")
    op.drop_column("complaints", "level")
    op.drop_column("complaints", "assigned_officer")
    op.drop_column("complaints", "thana")
    op.drop_column("complaints", "tehsil")
    op.drop_column("complaints", "district")
    op.drop_column("complaints", "category")
    op.drop_column("complaints", "department")
    op.drop_index("ix_complaint_history_complaint_at", table_name="complaint_history")
    op.drop_table("complaint_history")
    op.drop_table("thanas")
    op.drop_table("tehsils")
    op.drop_table("officers")
    op.drop_table("districts")
    op.drop_table("categories")
    op.drop_table("reference_manifest")
    op.drop_table("divisions")
    op.drop_table("departments")
