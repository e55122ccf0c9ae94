"""Is each part of the helpline alive right now: the database, Asterisk (AMI), the FastAGI
server, and every background service by its heartbeat row (a row older than
:data:`core.db.heartbeat.STALE_AFTER_SECONDS`, or none, is a stale service). Never raises: a
probe that fails is a "not ok" with the reason."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.schemas import HealthOut, HeartbeatOut, PartHealth, ServiceHealth
from core.config import Settings
from core.db.heartbeat import EXPECTED_SERVICES, STALE_AFTER_SECONDS
from core.db.models import ServiceHeartbeat

PROBE_TIMEOUT = 2.0
#: How much longer than its own timeout a probe may take (to give up cleanly) before
#: /health answers without it.
PROBE_SLACK = 0.2

T = TypeVar("T")


#: Probes given up on (still cleaning up after their timeout), kept until they end.
_abandoned: set[asyncio.Task[Any]] = set()


async def _within(probe: Awaitable[T], seconds: float) -> T:
    """``probe``'s result, or TimeoutError after ``seconds`` at the latest. A probe cancelled
    by its own timeout may still wait to close its connection (a rollback over a link that
    answers nothing: the fault suite saw /health take twice its timeout while the database
    was unreachable), so it is left to finish in the background instead of being waited for."""
    task = asyncio.ensure_future(probe)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if task in done:
        return task.result()
    _abandoned.add(task)
    task.add_done_callback(_forget)
    raise TimeoutError(f"no answer within {seconds:g} s")


def _forget(task: asyncio.Task[Any]) -> None:
    _abandoned.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: the probe's failure was reported already


async def _select_one(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with asyncio.timeout(PROBE_TIMEOUT), sessions() as session:
        await session.execute(text("SELECT 1"))


async def _database(sessions: async_sessionmaker[AsyncSession]) -> ServiceHealth:
    try:
        await _within(_select_one(sessions), PROBE_TIMEOUT + PROBE_SLACK)
    except (OSError, TimeoutError) as exc:
        return ServiceHealth(ok=False, detail=f"unreachable: {exc!r}")
    except Exception as exc:  # any driver error means "not healthy", never a 500
        return ServiceHealth(ok=False, detail=f"error: {exc!r}")
    return ServiceHealth(ok=True, detail="SELECT 1 answered")


async def _heartbeat_rows(sessions: async_sessionmaker[AsyncSession]) -> list[ServiceHeartbeat]:
    async with asyncio.timeout(PROBE_TIMEOUT), sessions() as session:
        return list((await session.execute(select(ServiceHeartbeat))).scalars().all())


async def _heartbeats(sessions: async_sessionmaker[AsyncSession]) -> dict[str, HeartbeatOut]:
    """Each service's heartbeat row; none when the database does not answer (its own probe
    says why)."""
    try:
        rows = await _within(_heartbeat_rows(sessions), PROBE_TIMEOUT + PROBE_SLACK)
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


def _service(name: str, beat: HeartbeatOut | None) -> PartHealth:
    if beat is None:
        return PartHealth(ok=False, age_seconds=None, detail=f"no heartbeat from {name} yet")
    if beat.age_seconds > STALE_AFTER_SECONDS:
        return PartHealth(
            ok=False,
            age_seconds=beat.age_seconds,
            detail=f"stale: last heartbeat {beat.age_seconds:.0f} s ago (pid {beat.pid})",
        )
    return PartHealth(ok=True, age_seconds=beat.age_seconds, detail=f"pid {beat.pid}")


def _parts(
    database: ServiceHealth,
    ami_health: ServiceHealth,
    ami: Any,
    fastagi: ServiceHealth,
    heartbeats: dict[str, HeartbeatOut],
) -> dict[str, PartHealth]:
    heard = getattr(ami, "last_heard", None)
    parts = {
        "database": PartHealth(
            ok=database.ok, age_seconds=0.0 if database.ok else None, detail=database.detail
        ),
        "asterisk": PartHealth(
            ok=ami_health.ok,
            age_seconds=None if heard is None else round(time.monotonic() - heard, 3),
            detail=ami_health.detail,
        ),
    }
    if not database.ok:  # no rows to read: the services' state is unknown, not stale
        unknown = "unknown: the database does not answer"
        for name in ("fastagi", *[n for n in EXPECTED_SERVICES if n != "agi"]):
            parts[name] = PartHealth(ok=False, age_seconds=None, detail=unknown)
        return parts
    agi = _service("agi", heartbeats.get("agi"))
    parts["fastagi"] = PartHealth(
        ok=fastagi.ok and agi.ok,
        age_seconds=agi.age_seconds,
        detail=f"{fastagi.detail}; heartbeat: {agi.detail}",
    )
    for name in EXPECTED_SERVICES:
        if name != "agi":
            parts[name] = _service(name, heartbeats.get(name))
    return parts


async def check(
    sessions: async_sessionmaker[AsyncSession], ami: Any, settings: Settings
) -> HealthOut:
    """Probe the database, AMI and FastAGI at once and read the services' heartbeats; ``ami``
    is the API's AMI client (``connected``, ``fully_booted``, ``last_heard``) or None."""
    database, fastagi, heartbeats = await asyncio.gather(
        _database(sessions), _fastagi(settings), _heartbeats(sessions)
    )
    ami_health = _ami(ami)
    parts = _parts(database, ami_health, ami, fastagi, heartbeats)
    failing = [name for name, part in parts.items() if not part.ok]
    return HealthOut(
        status="degraded" if failing else "ok",
        database=database,
        ami=ami_health,
        fastagi=fastagi,
        parts=parts,
        failing=failing,
        stale_after_seconds=STALE_AFTER_SECONDS,
        heartbeats=heartbeats,
    )
