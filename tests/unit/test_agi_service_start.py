"""The FastAGI service serves without its database: a restart that meets PostgreSQL refusing
connections (down, or "too many clients") must not leave every caller without the IVR."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from pathlib import Path

from agi_scripts import service
from core.config import Settings
from core.liveness import liveness_file, stalled_for
from tests.waiting import wait_for


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_fastagi_listens_and_ticks_when_the_database_refuses(tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path,
        database_url=f"postgresql+asyncpg://nobody@127.0.0.1:{_free_port()}/nothing",
        agi_port=_free_port(),
    )
    serving = asyncio.create_task(service.serve(settings, drain_timeout=1.0))

    async def accepts() -> bool:
        assert not serving.done(), serving.exception()
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", settings.agi_port)
        except OSError:
            return False
        writer.close()
        await writer.wait_closed()
        return True

    path = liveness_file(tmp_path, service.HEARTBEAT_SERVICE)
    ticked = False
    try:
        await wait_for(accepts, 20, what="FastAGI listening without a database")
        # The tick task starts after serve() took SIGTERM over: now it may be sent.
        await wait_for(lambda: stalled_for(path, os.getpid()) is not None, 5, what="a tick")
        ticked = True
    finally:
        if ticked:
            os.kill(os.getpid(), signal.SIGTERM)  # serve()'s own handler: stop, drain
        else:
            serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(serving, 20)
    assert not path.exists()  # stopped on purpose: no stale liveness file left
