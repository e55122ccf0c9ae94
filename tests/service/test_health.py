"""``/health``, ``/metrics`` and ``helpline status`` tell the truth about every part (issue 15):
a service whose heartbeat is stale or missing makes the helpline ``degraded`` (503) and is
named, with its age; all fresh, with the probes answering, is ``ok``."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.heartbeat import EXPECTED_SERVICES, STALE_AFTER_SECONDS
from core.db.models import ServiceHeartbeat
from tests.api_app import api_client, stand_in_ami

PARTS = {"database", "asterisk", "fastagi", "queue_manager", "dialer", "sla"}


@pytest.fixture
async def fastagi_port() -> AsyncIterator[int]:
    """Something accepting connections where the FastAGI server would."""

    async def drop(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    server.close()
    await server.wait_closed()


@pytest.fixture
async def api(db_settings: Settings, fastagi_port: int) -> AsyncIterator[httpx.AsyncClient]:
    settings = db_settings.model_copy(update={"agi_host": "127.0.0.1", "agi_port": fastagi_port})
    async for http in api_client(settings, stand_in_ami(up=True, last_heard=None)):
        yield http


async def beats(sessions: async_sessionmaker[AsyncSession], ages: dict[str, float]) -> None:
    """Heartbeat rows last written ``ages[service]`` seconds ago (the others removed)."""
    now = datetime.now(UTC)
    async with sessions() as session:
        await session.execute(delete(ServiceHeartbeat))
        for service, age in ages.items():
            await session.execute(
                insert(ServiceHeartbeat).values(
                    service=service,
                    pid=os.getpid(),
                    started_at=now - timedelta(hours=1),
                    seen_at=now - timedelta(seconds=age),
                    detail={},
                )
            )
        await session.commit()


async def test_every_part_fresh_is_ok(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await beats(sessions, dict.fromkeys(EXPECTED_SERVICES, 1.0))
    api.ami.last_heard = time.monotonic()  # type: ignore[attr-defined]
    response = await api.get("/health")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok" and body["failing"] == []
    assert set(body["parts"]) == PARTS
    assert all(part["ok"] for part in body["parts"].values())
    assert 0.5 < body["parts"]["sla"]["age_seconds"] < 5
    assert body["parts"]["asterisk"]["age_seconds"] is not None


@pytest.mark.parametrize("service", EXPECTED_SERVICES)
async def test_a_stale_service_degrades_the_helpline_and_is_named(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], service: str
) -> None:
    ages = dict.fromkeys(EXPECTED_SERVICES, 1.0)
    ages[service] = STALE_AFTER_SECONDS + 5
    await beats(sessions, ages)
    response = await api.get("/health")
    body = response.json()
    part = "fastagi" if service == "agi" else service
    assert response.status_code == 503
    assert body["status"] == "degraded"
    assert body["failing"] == [part]
    assert body["parts"][part]["age_seconds"] > STALE_AFTER_SECONDS
    assert "stale" in body["parts"][part]["detail"]
    metrics = (await api.get("/metrics")).text
    assert f'helpline_part_up{{part="{part}"}} 0.0' in metrics
    assert 'helpline_part_up{part="database"} 1.0' in metrics


async def test_a_missing_heartbeat_is_stale_too(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await beats(sessions, {name: 1.0 for name in EXPECTED_SERVICES if name != "dialer"})
    body = (await api.get("/health")).json()
    assert body["failing"] == ["dialer"]
    assert body["parts"]["dialer"]["age_seconds"] is None


async def test_asterisk_unreachable_is_named(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await beats(sessions, dict.fromkeys(EXPECTED_SERVICES, 1.0))
    api.ami.connected.clear()  # type: ignore[attr-defined]
    body: dict[str, Any] = (await api.get("/health")).json()
    assert body["failing"] == ["asterisk"]
    assert body["ami"]["ok"] is False
