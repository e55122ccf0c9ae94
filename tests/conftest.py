"""Fixtures shared by the whole suite: a real PostgreSQL database per test run."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.migrate import upgrade
from core.db.session import asyncpg_dsn, create_engine, ensure_database, session_factory

#: Tables emptied between tests (the schema stays).
TABLES = (
    "audit_log, complaints, queue_events, calls, seat_status, agent_sessions, api_tokens, "
    "seats, users, service_heartbeats"
)


def _base_settings() -> Settings:
    return Settings.load(Path(os.environ.get("HELPLINE_STATE_DIR", ".helpline")))


@contextmanager
def fresh_database(purpose: str) -> Iterator[str]:
    """A new database migrated with Alembic; dropped afterwards. Yields its URL."""
    base = make_url(_base_settings().database_url)
    name = f"helpline_{purpose}_{os.getpid()}"
    url = base.set(database=name).render_as_string(hide_password=False)
    settings = Settings(database_url=url)
    asyncio.run(ensure_database(settings))
    upgrade(settings)
    try:
        yield url
    finally:

        async def drop() -> None:
            admin = asyncpg_dsn(base.set(database="postgres").render_as_string(hide_password=False))
            conn = await asyncpg.connect(admin)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()

        asyncio.run(drop())


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
    await engine.dispose()
    yield settings


@pytest.fixture
async def sessions(db_settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(db_settings, pool_size=2)
    yield session_factory(engine)
    await engine.dispose()
