"""The FastAGI service: every call flow behind one listener on ``settings.agi_url``."""

from __future__ import annotations

import asyncio
import logging
import signal

from agi_scripts.ivr import ivr
from core.config import Settings
from core.transport.fastagi import FastAGIServer, Script

log = logging.getLogger(__name__)

ROUTES: dict[str, Script] = {"ivr": ivr}


def build_server(settings: Settings) -> FastAGIServer:
    return FastAGIServer(
        ROUTES,
        host=settings.agi_host,
        port=settings.agi_port,
        backlog=settings.agi_backlog,
        handshake_timeout=settings.agi_handshake_timeout,
        command_timeout=settings.agi_command_timeout,
        call_timeout=settings.agi_call_timeout,
    )


async def serve(settings: Settings, drain_timeout: float = 10.0) -> None:
    """Serve until SIGTERM/SIGINT, then stop accepting and let live calls finish (drain)."""
    server = build_server(settings)
    await server.start()
    log.info("FastAGI listening on %s (scripts: %s)", settings.agi_url, ", ".join(ROUTES))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("draining %d live call(s)", server.active_calls)
    await server.close(drain_timeout)
