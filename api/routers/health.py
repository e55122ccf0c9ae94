"""``GET /health``: is each part a caller depends on reachable right now?

200 when the database, AMI and the FastAGI server all answer; 503 (same body) otherwise, so a
load balancer or ``helpline up`` can wait on it.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response, status
from sqlalchemy import text

from api.schemas import HealthOut, ServiceHealth
from core.config import Settings

router = APIRouter(tags=["health"])

PROBE_TIMEOUT = 2.0


async def _database(request: Request) -> ServiceHealth:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT), request.app.state.sessions() as session:
            await session.execute(text("SELECT 1"))
    except (OSError, TimeoutError) as exc:
        return ServiceHealth(ok=False, detail=f"unreachable: {exc!r}")
    except Exception as exc:  # any driver error means "not healthy", never a 500
        return ServiceHealth(ok=False, detail=f"error: {exc!r}")
    return ServiceHealth(ok=True, detail="SELECT 1 answered")


def _ami(request: Request) -> ServiceHealth:
    ami = request.app.state.ami
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


@router.get("/health", responses={503: {"model": HealthOut}})
async def health(request: Request, response: Response) -> HealthOut:
    database, fastagi = await asyncio.gather(
        _database(request), _fastagi(request.app.state.settings)
    )
    ami = _ami(request)
    ok = database.ok and ami.ok and fastagi.ok
    if not ok:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return HealthOut(status="ok" if ok else "degraded", database=database, ami=ami, fastagi=fastagi)
