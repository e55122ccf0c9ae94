"""Each service's heartbeat: its ``service_heartbeats`` row, rewritten every few seconds.

One implementation for every background service (FastAGI, queue manager, dialer, SLA worker).
The loop never ends because the database is away: a failed write is logged once when the
outage starts and once when it ends (not every beat), and the next beat tries again. Under
systemd the same loop pets the watchdog (``WATCHDOG=1``), whatever the database says: the
watchdog asks "is this process's event loop alive", the row asks "can it reach the database".

``/health`` and ``helpline status`` call a row stale after :data:`STALE_AFTER_SECONDS`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.models import ServiceHeartbeat
from core.outage import Outage
from core.systemd import notify

log = logging.getLogger(__name__)

#: How often each service rewrites its row.
HEARTBEAT_SECONDS: Final = 5.0
#: A row older than this (three beats missed) says the service is gone or cannot write.
STALE_AFTER_SECONDS: Final = 3 * HEARTBEAT_SECONDS
#: The rows ``/health`` expects (``service_heartbeats.service``): a missing one is stale too.
#: The API itself answers ``/health``, so it has no row.
EXPECTED_SERVICES: Final = ("agi", "queue_manager", "dialer", "sla")


async def beat(
    sessions: async_sessionmaker[AsyncSession],
    service: str,
    *,
    started_at: datetime,
    detail: dict[str, Any],
) -> None:
    """Upsert the service's row (any number of processes of one service share it: the row
    says the newest beat of any of them)."""
    row = {
        "pid": os.getpid(),
        "started_at": started_at,
        "seen_at": datetime.now(UTC),
        "detail": detail,
    }
    async with sessions() as session:
        statement = insert(ServiceHeartbeat).values(service=service, **row)
        await session.execute(statement.on_conflict_do_update(index_elements=["service"], set_=row))
        await session.commit()


async def keep_beating(
    sessions: async_sessionmaker[AsyncSession],
    service: str,
    detail: Callable[[], dict[str, Any]],
    *,
    started_at: datetime | None = None,
    interval: float = HEARTBEAT_SECONDS,
) -> None:
    """Beat every ``interval`` seconds until cancelled; survives any database error."""
    started = started_at or datetime.now(UTC)
    outage = Outage(log, f"{service} heartbeat")
    notify("READY=1")
    while True:
        notify("WATCHDOG=1")
        try:
            await beat(sessions, service, started_at=started, detail=detail())
        except Exception as error:  # the database is away: say so once, keep beating
            outage.failed(error)
        else:
            outage.ok()
        await asyncio.sleep(interval)
