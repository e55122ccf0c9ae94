"""Is each part a caller depends on reachable right now: the database, AMI, the FastAGI
server. Never raises: a probe that fails is a "not ok" with the reason."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.schemas import HealthOut, HeartbeatOut, ServiceHealth
from core.config import Settings
from core.db.models import ServiceHeartbeat

PROBE_TIMEOUT = 2.0


async def _database(sessions: async_sessionmaker[AsyncSession]) -> ServiceHealth:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT), sessions() as session:
            await session.execute(text("SELECT 1"))
    except (OSError, TimeoutError) as exc:
        return ServiceHealth(ok=False, detail=f"unreachable: {exc!r}")
    except Exception as exc:  # any driver error means "not healthy", never a 500
        return ServiceHealth(ok=False, detail=f"error: {exc!r}")
    return ServiceHealth(ok=True, detail="SELECT 1 answered")


async def _heartbeats(sessions: async_sessionmaker[AsyncSession]) -> dict[str, HeartbeatOut]:
    """Each service's heartbeat row; none when the database does not answer (its own probe
    says why)."""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT), sessions() as session:
            rows = (await session.execute(select(ServiceHeartbeat))).scalars().all()
    except Exception:  # the database probe reports the failure; never a 500
        return {}
    now = datetime.now(UTC)
    return {
        row.service: HeartbeatOut(
            pid=row.pid,
            started_at=row.started_at,
            seen_at=row.seen_at,
            age_seconds=round((now - row.seen_at).total_seconds(), 3),
            detail=row.detail,
        )
        for row in sorted(rows, key=lambda r: r.service)
    }


def _ami(ami: Any) -> ServiceHealth:
    if ami is None:
        return ServiceHealth(ok=False, detail="AMI client not started")
    if not ami.connected.is_set():
        return ServiceHealth(ok=False, detail="not connected to Asterisk's AMI")
    if not ami.fully_booted.is_set():
        return ServiceHealth(ok=False, detail="connected; Asterisk not fully booted yet")
    return ServiceHealth(ok=True, detail="logged in; Asterisk fully booted")


async def _fastagi(settings: Settings) -> ServiceHealth:
    # A bare TCP connect: the FastAGI server drops a peer that sends no handshake at no cost.
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            _reader, writer = await asyncio.open_connection(settings.agi_host, settings.agi_port)
            writer.close()
            await writer.wait_closed()
    except (OSError, TimeoutError) as exc:
        return ServiceHealth(ok=False, detail=f"{settings.agi_url} unreachable: {exc!r}")
    return ServiceHealth(ok=True, detail=f"{settings.agi_url} accepts connections")


async def check(
    sessions: async_sessionmaker[AsyncSession], ami: Any, settings: Settings
) -> HealthOut:
    """Probe the three at once; ``ami`` is the API's AMI client (``connected`` and
    ``fully_booted`` events) or None. The services' heartbeats are listed alongside."""
    database, fastagi, heartbeats = await asyncio.gather(
        _database(sessions), _fastagi(settings), _heartbeats(sessions)
    )
    ami_health = _ami(ami)
    ok = database.ok and ami_health.ok and fastagi.ok
    return HealthOut(
        status="ok" if ok else "degraded",
        database=database,
        ami=ami_health,
        fastagi=fastagi,
        heartbeats=heartbeats,
    )
