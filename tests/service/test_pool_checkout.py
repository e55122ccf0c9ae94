"""The pool's check at checkout (``core.db.session.create_engine``) on a real PostgreSQL: no
round trip for a connection in steady use, a ping for one left idle, and a connection the
server closed or that failed its ping replaced before a statement runs on it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.config import Settings
from core.db.session import asyncpg_dsn, create_engine

IDLE = 0.3


@pytest.fixture
async def engine(db_settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_settings, pool_size=2, max_overflow=0, ping_idle_after=IDLE)
    yield engine
    await engine.dispose()


def count_pings(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, fail: int = 0) -> list[int]:
    """Pings the pool makes from now on (one entry each); the first ``fail`` of them fail as
    on a link that died while idle."""
    dialect = engine.dialect
    real = dialect.do_ping
    pings: list[int] = []

    def ping(dbapi_connection: Any) -> bool:
        pings.append(1)
        if len(pings) <= fail:
            raise ConnectionResetError("the link died while idle")
        return real(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", ping)
    return pings


async def pid_of(conn: AsyncConnection) -> int:
    return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def backend(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return await pid_of(conn)


async def test_a_connection_in_steady_use_is_not_pinged_and_an_idle_one_once(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await backend(engine)
    pings = count_pings(engine, monkeypatch)
    for _ in range(50):
        assert await backend(engine) == first
    assert pings == []
    await asyncio.sleep(IDLE + 0.2)
    assert await backend(engine) == first  # alive: pinged, then used
    assert len(pings) == 1
    assert await backend(engine) == first
    assert len(pings) == 1


async def test_a_failed_ping_replaces_the_idle_connections_before_a_statement_runs(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with engine.connect() as one, engine.connect() as two:  # both pooled connections
        old = {await pid_of(conn) for conn in (one, two)}
    assert len(old) == 2
    pings = count_pings(engine, monkeypatch, fail=1)
    await asyncio.sleep(IDLE + 0.2)
    async with engine.connect() as one, engine.connect() as two:
        new = {await pid_of(conn) for conn in (one, two)}
    assert pings == [1]  # the failed one; the new connections are not pinged
    assert not new & old  # the other idle connection was replaced too


async def test_a_connection_the_server_closed_is_replaced_without_a_ping(
    db_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PostgreSQL restart or a terminated backend, as the pool sees it; also for the engines
    that never ping (the API's and the IVR's)."""
    engine = create_engine(db_settings, pool_size=1, max_overflow=0, ping_idle_after=None)
    try:
        pings = count_pings(engine, monkeypatch)
        first = await backend(engine)
        admin = await asyncpg.connect(asyncpg_dsn(db_settings.database_url))
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
        finally:
            await admin.close()
        await asyncio.sleep(0.2)  # the server's close reaches the event loop
        assert await backend(engine) != first
        await asyncio.sleep(IDLE + 0.2)
        await backend(engine)
        assert pings == []
    finally:
        await engine.dispose()
