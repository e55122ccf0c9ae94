"""The schema the migrations build is the one the models describe -- every table, index and
CHECK constraint -- and the CHECK constraints keep free strings out of typed columns."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.migrate import alembic_config
from core.db.models import Base, User
from core.db.session import asyncpg_dsn, create_engine, drop_database, ensure_database
from tests.conftest import fresh_database

#: Every CHECK constraint's definition as PostgreSQL normalises it.
_CHECKS_SQL = """
    SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS definition
      FROM pg_constraint
     WHERE contype = 'c' AND connamespace = 'public'::regnamespace
     ORDER BY 1, 2
"""

#: Columns whose state is an enum (or a caller number): each must have its CHECK.
TYPED_COLUMNS = {
    ("users", "ck_users_role"),
    ("users", "ck_users_skills"),
    ("agent_sessions", "ck_agent_sessions_pause_reason"),
    ("calls", "ck_calls_caller_number"),
    ("calls", "ck_calls_disposition"),
    ("complaints", "ck_complaints_caller_number"),
    ("complaints", "ck_complaints_status"),
    ("complaints", "ck_complaints_level"),
    ("complaint_history", "ck_complaint_history_action"),
    ("complaint_history", "ck_complaint_history_from_status"),
    ("complaint_history", "ck_complaint_history_to_status"),
    ("categories", "ck_categories_first_level"),
    ("officers", "ck_officers_level"),
    ("ivr_sessions", "ck_ivr_sessions_caller_number"),
    ("ivr_sessions", "ck_ivr_sessions_outcome"),
    ("callback_requests", "ck_callback_requests_caller_number"),
    ("callback_requests", "ck_callback_requests_reason"),
    ("callback_requests", "ck_callback_requests_status"),
    ("sms_outbox", "ck_sms_outbox_caller_number"),
    ("sms_outbox", "ck_sms_outbox_kind"),
    ("sms_outbox", "ck_sms_outbox_status"),
    ("dialer_campaigns", "ck_dialer_campaigns_name"),
    ("dialer_jobs", "ck_dialer_jobs_campaign"),
    ("dialer_jobs", "ck_dialer_jobs_state"),
    ("dialer_jobs", "ck_dialer_jobs_last_outcome"),
    ("dialer_jobs", "ck_dialer_jobs_result"),
    ("dialer_jobs", "ck_dialer_jobs_number"),
    ("dialer_attempts", "ck_dialer_attempts_campaign"),
    ("dialer_attempts", "ck_dialer_attempts_outcome"),
    ("dialer_attempts", "ck_dialer_attempts_number"),
    ("dialer_budget", "ck_dialer_budget_scope"),
    ("dialer_number_day", "ck_dialer_number_day_number"),
    ("dialer_dnc", "ck_dialer_dnc_number"),
    ("dialer_dnc", "ck_dialer_dnc_source"),
}


async def _checks(dsn: str) -> list[tuple[str, str, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        return [(r["tbl"], r["conname"], r["definition"]) for r in await conn.fetch(_CHECKS_SQL)]
    finally:
        await conn.close()


async def test_models_match_the_migrations_for_every_table(db_settings: Settings) -> None:
    engine = create_engine(db_settings, pool_size=1)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata
                )
            )
    finally:
        await engine.dispose()
    assert diff == []


async def test_check_constraints_match_the_models(db_settings: Settings) -> None:
    """Alembic does not compare CHECK constraints: compare PostgreSQL's own rendering of the
    migrated database's with that of a database built from the models."""
    base = make_url(db_settings.database_url)
    name = f"helpline_models_{os.getpid()}"
    models = Settings(database_url=base.set(database=name).render_as_string(hide_password=False))
    await ensure_database(models)
    try:
        engine = create_engine(models, pool_size=1)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(Base.metadata.create_all)
        finally:
            await engine.dispose()
        from_models = await _checks(asyncpg_dsn(models.database_url))
        migrated = await _checks(asyncpg_dsn(db_settings.database_url))
    finally:
        await drop_database(models.database_url)
    assert migrated == from_models
    assert {(table, check) for table, check, _ in migrated} >= TYPED_COLUMNS


@pytest.mark.parametrize(
    ("statement", "constraint"),
    [
        (
            "INSERT INTO users (username, full_name, role, password_hash) "
            "VALUES ('x', 'X', 'superuser', 'h')",
            "ck_users_role",
        ),
        (
            "INSERT INTO users (username, full_name, role, password_hash, skills) "
            "VALUES ('x', 'X', 'agent', 'h', '[\"fire\"]')",
            "ck_users_skills",
        ),
        (
            "INSERT INTO calls (uniqueid, caller_number) VALUES ('u.1', '+919876543210')",
            "ck_calls_caller_number",
        ),
        (
            "INSERT INTO calls (uniqueid, disposition) VALUES ('u.1', 'dropped')",
            "ck_calls_disposition",
        ),
        (
            "INSERT INTO ivr_sessions (uniqueid, lang, started_at, path, prompts, outcome) "
            "VALUES ('u.1', 'hi', now(), '[]', '[]', 'abandoned_at:welcome')",
            "ck_ivr_sessions_outcome",
        ),
        (
            "INSERT INTO callback_requests (uniqueid, caller_number, lang, reason) "
            "VALUES ('u.1', '9876543210', 'hi', 'bored')",
            "ck_callback_requests_reason",
        ),
        (
            "INSERT INTO sms_outbox (complaint_number, kind, dedupe_key, language, body,"
            " dlt_template_id, status) VALUES ('1', 'registered', 'k', 'hi', 'x', '1', 'queued')",
            "ck_sms_outbox_status",
        ),
    ],
)
async def test_the_database_refuses_free_strings(
    sessions: async_sessionmaker[AsyncSession], statement: str, constraint: str
) -> None:
    async with sessions() as session:
        with pytest.raises(IntegrityError, match=constraint):
            await session.execute(text(statement))


async def test_the_models_refuse_free_strings_before_the_database(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        session.add(User(username="x", full_name="X", role="superuser", password_hash="h"))
        with pytest.raises(StatementError, match="superuser"):
            await session.flush()


def test_the_migration_moves_the_ivr_outcome_node_into_last_node() -> None:
    """``abandoned_at:<node>`` rows of 0003 become ``abandoned`` at ``last_node``, and back."""
    with fresh_database("outcomes") as url:
        cfg = alembic_config(Settings(database_url=url))
        command.downgrade(cfg, "0003_merge")
        dsn = asyncpg_dsn(url)

        async def run(sql: str) -> list[Any]:
            conn = await asyncpg.connect(dsn)
            try:
                return [tuple(r) for r in await conn.fetch(sql)]
            finally:
                await conn.close()

        asyncio.run(
            run(
                "INSERT INTO ivr_sessions (uniqueid, lang, started_at, path, prompts, outcome,"
                " last_node) VALUES"
                " ('a', 'hi', now(), '[]', '[]', 'abandoned_at:main_menu', 'main_menu'),"
                " ('b', 'hi', now(), '[]', '[]', 'failed_at:new_complaint', NULL),"
                " ('c', 'hi', now(), '[]', '[]', 'queued', 'new_complaint'),"
                " ('d', 'hi', now(), '[]', '[]', NULL, NULL)"
            )
        )
        command.upgrade(cfg, "head")
        rows = "SELECT uniqueid, outcome, last_node FROM ivr_sessions ORDER BY uniqueid"
        assert asyncio.run(run(rows)) == [
            ("a", "abandoned", "main_menu"),
            ("b", "failed", "new_complaint"),
            ("c", "queued", "new_complaint"),
            ("d", None, None),
        ]
        command.downgrade(cfg, "0003_merge")
        assert asyncio.run(run(rows)) == [
            ("a", "abandoned_at:main_menu", "main_menu"),
            ("b", "failed_at:new_complaint", "new_complaint"),
            ("c", "queued", "new_complaint"),
            ("d", None, None),
        ]
