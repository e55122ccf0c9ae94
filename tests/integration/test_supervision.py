"""Issue 15 on the real stack: every service outlives a database outage (connections cut, then
refused for a while, as a PostgreSQL restart looks to a client) without being restarted, and
``/health`` says so while it lasts; a service killed with SIGKILL is named stale by ``/health``
and restarted by ``helpline supervise``; after each, a citizen's call is recorded whole."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.heartbeat import EXPECTED_SERVICES, STALE_AFTER_SECONDS
from core.db.models import Call, ServiceHeartbeat
from core.db.session import asyncpg_dsn
from helpline import services, supervisor
from helpline.sipp import citizen_call
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 8.0


async def health(api: httpx.AsyncClient) -> dict[str, Any]:
    body: dict[str, Any] = (await api.get("/health")).json()
    return body


async def healthy(api: httpx.AsyncClient) -> dict[str, Any] | None:
    body = await health(api)
    return body if body["status"] == "ok" else None


async def beats_since(db: async_sessionmaker[AsyncSession], since: datetime) -> dict[str, int]:
    """Services whose row was written after ``since``: service -> pid."""
    async with db() as session:
        rows = (await session.execute(select(ServiceHeartbeat))).scalars().all()
    return {row.service: row.pid for row in rows if row.seen_at > since}


async def a_call_is_recorded(settings: Settings, db: async_sessionmaker[AsyncSession]) -> Call:
    """A citizen presses 1 1 and waits a moment in the queue (no agent): the queue manager
    records the call with its IVR path, the FastAGI server ran the IVR."""
    started = datetime.now(UTC)
    outcome = await citizen_call(settings, "11", hold=3.0, caller_id="9876500015")
    assert outcome.answered, outcome.errors

    async def recorded() -> Call | None:
        async with db() as session:
            call = (
                await session.execute(
                    select(Call)
                    .where(Call.started_at >= started, Call.caller_number == "9876500015")
                    .order_by(Call.id.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
        return call if call is not None and call.ended_at is not None else None

    call = await wait_for(recorded, 20, what="the call after the fault, recorded whole")
    assert call.ivr_done and not call.ivr_fallback and call.queue_joined_at is not None
    return call


@pytest.fixture
async def database_admin(stack_settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    url = make_url(stack_settings.database_url)
    conn = await asyncpg.connect(asyncpg_dsn(url.set(database="postgres").render_as_string(False)))
    try:
        yield conn
    finally:
        await conn.execute(f'ALTER DATABASE "{url.database}" WITH ALLOW_CONNECTIONS true')
        await conn.close()


async def test_every_service_outlives_a_database_outage(
    stack_settings: Settings,
    api: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
    database_admin: asyncpg.Connection,
) -> None:
    settings = stack_settings
    await wait_for(lambda: healthy(api), 60, what="a healthy helpline before the outage")
    pids = {name: services.state(settings, name).pid for name in services.SERVICES}
    name = make_url(settings.database_url).database

    # The outage: every connection cut, new ones refused, for OUTAGE_SECONDS.
    await database_admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
    cut = await database_admin.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = $1 AND pid <> pg_backend_pid()",
        name,
    )
    assert cut >= len(EXPECTED_SERVICES)  # at least each service's pool and LISTEN link
    during = await health(api)
    assert during["status"] == "degraded" and "database" in during["failing"], during
    await asyncio.sleep(OUTAGE_SECONDS)
    await database_admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
    back = datetime.now(UTC)

    async def all_beating_again() -> dict[str, int] | None:
        seen = await beats_since(db, back)
        return seen if set(EXPECTED_SERVICES) <= set(seen) else None

    await wait_for(all_beating_again, 3 * STALE_AFTER_SECONDS, what="every heartbeat again")
    await wait_for(lambda: healthy(api), 30, what="/health ok after the outage")
    for service, pid in pids.items():  # carried on: none died, none was restarted
        now = services.state(settings, service)
        assert now.running and now.pid == pid, (service, pid, now)
    await a_call_is_recorded(settings, db)


async def test_a_killed_service_is_named_and_restarted_by_the_supervisor(
    stack_settings: Settings, api: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    settings = stack_settings
    await wait_for(lambda: healthy(api), 60, what="a healthy helpline before the kill")
    old = services.state(settings, "queue-manager").pid
    assert old is not None
    services.kill(settings, "queue-manager")
    # `kill` removes the pid file (the crash tests' own restart); a crash leaves it behind.
    services.pid_file(settings, "queue-manager").write_text(f"{old}\n")

    async def named_stale() -> dict[str, Any] | None:
        body = await health(api)
        return body if "queue_manager" in body["failing"] else None

    started = time.monotonic()
    stale = await wait_for(named_stale, STALE_AFTER_SECONDS + 10, what="/health naming it")
    assert time.monotonic() - started >= STALE_AFTER_SECONDS - 6  # not before it was stale
    assert stale["status"] == "degraded"
    assert "stale" in stale["parts"]["queue_manager"]["detail"]

    said: list[str] = []
    watcher = supervisor.Supervisor(settings, say=said.append)

    def restarted() -> list[str] | None:
        return watcher.check() or None

    assert await wait_for(restarted, 10, what="the supervisor's restart") == ["queue-manager"]
    new = services.state(settings, "queue-manager")
    assert new.running and new.pid != old
    assert any(f"was pid {old}" in line for line in said), said

    async def fresh() -> dict[str, Any] | None:
        body = await healthy(api)
        if body and body["heartbeats"]["queue_manager"]["pid"] == new.pid:
            return body
        return None

    await wait_for(fresh, 30, what="/health ok with the new queue manager")
    await a_call_is_recorded(settings, db)
