"""Engine and session factory, plus a plain asyncpg connection for LISTEN/NOTIFY."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from core.config import Settings


def create_engine(
    settings: Settings, *, pool_size: int = 10, max_overflow: int | None = None
) -> AsyncEngine:
    """``pool_size`` connections kept open once made, and ``max_overflow`` (default: as many
    again) opened past them when busy and closed on return. Overflow suits a process that is
    rarely busy; under steady load it opens and closes a connection per request (a new backend,
    authentication, asyncpg's type introspection: milliseconds each), so the API keeps all."""
    return create_async_engine(
        settings.database_url,
        pool_size=pool_size,
        max_overflow=pool_size if max_overflow is None else max_overflow,
        pool_pre_ping=True,
        # A stuck query must not hold a caller's request forever.
        connect_args={"command_timeout": 30, "server_settings": {"application_name": "helpline"}},
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def asyncpg_dsn(database_url: str) -> str:
    """The SQLAlchemy URL as a DSN asyncpg understands (no ``+asyncpg`` driver suffix)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


@asynccontextmanager
async def raw_connection(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A dedicated asyncpg connection (LISTEN needs one that the pool does not hand out)."""
    conn = await asyncpg.connect(asyncpg_dsn(settings.database_url), timeout=10)
    try:
        yield conn
    finally:
        await conn.close()


async def ensure_database(settings: Settings) -> bool:
    """Create the configured database if it does not exist. Returns True if it was created."""
    url = make_url(settings.database_url)
    name = url.database
    if not name:
        raise ValueError("database_url names no database")
    admin = asyncpg_dsn(url.set(database="postgres").render_as_string(hide_password=False))
    conn = await asyncpg.connect(admin, timeout=10)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        await conn.execute(f'CREATE DATABASE "{name.replace(chr(34), "")}"')
        return True
    finally:
        await conn.close()
