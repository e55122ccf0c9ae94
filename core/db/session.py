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


def create_engine(settings: Settings, *, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(
        settings.database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        # A stuck query must not hold a caller's request forever.
        connect_args={"command_timeout": 30, "server_settings": {"application_name": "helpline"}},
    )


async def warm_pool(engine: AsyncEngine, connections: int) -> None:
    """Open ``connections`` pooled connections now and return them to the pool: the first
    burst of calls then finds them ready instead of each paying a connect (a fork on the
    server) inside its query deadline, when the server may be busiest."""
    opened = [await engine.connect() for _ in range(connections)]
    for conn in opened:
        await conn.close()


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
