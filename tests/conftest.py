"""Fixtures shared by the whole suite: a real PostgreSQL database per test run."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.services import reference
from core.config import Settings
from core.db.migrate import upgrade
from core.db.session import (
    create_engine,
    drop_database,
    ensure_database,
    session_factory,
)
from core.reference import Reference, load_reference

#: Tables emptied between tests (the schema and the reference data stay). ``users`` is emptied
#: with DELETE after unlinking the officers' posts: a TRUNCATE would cascade to ``officers``.
TABLES = (
    "audit_log, recordings, sms_outbox, acr_breaches, complaint_history, complaints, call_wrapups, "
    "readback_sessions, ivr_sessions, callback_requests, queue_events, calls, "
    "seat_status, agent_sessions, api_tokens, auth_throttle, seats, service_heartbeats, "
    "dialer_attempts, dialer_jobs, dialer_budget, dialer_number_day, dialer_dnc, asterisk_cel, "
    "inbound_budget"
)
EMPTY_USERS = (
    "UPDATE officers SET user_id = NULL WHERE user_id IS NOT NULL",
    "UPDATE dialer_campaigns SET updated_by = NULL WHERE updated_by IS NOT NULL",
    "DELETE FROM users",
    "ALTER TABLE users ALTER COLUMN id RESTART",
)


def _base_settings() -> Settings:
    return Settings.load(Path(os.environ.get("HELPLINE_STATE_DIR", ".helpline")))


async def seed_reference(settings: Settings) -> None:
    """The reference tables, as ``helpline up`` seeds them (complaints point at them)."""
    engine = create_engine(settings, pool_size=1)
    try:
        async with session_factory(engine)() as session:
            await reference.seed(session, settings.load_reference())
            await session.commit()
    finally:
        await engine.dispose()


@contextmanager
def fresh_database(purpose: str) -> Iterator[str]:
    """A new database migrated with Alembic; dropped afterwards. Yields its URL."""
    base = make_url(_base_settings().database_url)
    name = f"helpline_{purpose}_{os.getpid()}"
    url = base.set(database=name).render_as_string(hide_password=False)
    settings = Settings(database_url=url)
    asyncio.run(ensure_database(settings))
    upgrade(settings)
    asyncio.run(seed_reference(settings))
    try:
        yield url
    finally:
        asyncio.run(drop_database(url))


@pytest.fixture(scope="session")
def reference_data() -> Reference:
    """The shipped reference data, loaded once per run as each process does."""
    return load_reference()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A database for the tests that empty it between tests (tests/service)."""
    with fresh_database("test") as url:
        yield url


@pytest.fixture
async def db_settings(database_url: str, tmp_path: Path) -> AsyncIterator[Settings]:
    """Settings on the test database, emptied before each test."""
    settings = Settings(database_url=database_url, state_dir=tmp_path / "state")
    engine = create_engine(settings, pool_size=1)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
        for statement in EMPTY_USERS:
            await conn.execute(text(statement))
    await engine.dispose()
    yield settings


@pytest.fixture
async def sessions(db_settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(db_settings, pool_size=2)
    yield session_factory(engine)
    await engine.dispose()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Issue 15's counts: faults injected, invariants checked, violations (tests/faults.py)."""
    from tests import faults

    lines = faults.report()
    if lines:
        terminalreporter.section("fault injection")
        for line in lines:
            terminalreporter.write_line(line)
