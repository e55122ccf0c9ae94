"""A service's liveness file: proof that its event loop still turns, for ``helpline supervise``.

The heartbeat row (core.db.heartbeat) answers "can it reach the database" and is rightly stale
while PostgreSQL is away; it cannot tell a stalled process (SIGSTOP, a blocking call, a runaway
loop) from a database outage. This file can: a task of the service's own event loop rewrites
``<state_dir>/run/<service>.alive`` (its pid) every :data:`TICK_SECONDS`, touching nothing else.
A file of the running pid older than the stall threshold means the loop has not run for that
long; the supervisor then kills the process (SIGKILL), which closes its sockets, and restarts it.
Under systemd the same tick pets the watchdog (``WATCHDOG=1``), which does the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import Final

from core.systemd import notify

#: How often the loop proves it turns (a write of a few bytes to a local file).
TICK_SECONDS: Final = 0.5


def liveness_file(state_dir: Path, service: str) -> Path:
    return state_dir / "run" / f"{service}.alive"


def tick(path: Path) -> None:
    """Rewrite the file (its mtime is the proof); never raises: a full disk must not kill the
    service it is meant to watch."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}")
        tmp.write_text(f"{os.getpid()}\n")
        tmp.replace(path)


async def keep_alive(path: Path, interval: float = TICK_SECONDS) -> None:
    """Tick every ``interval`` seconds until cancelled (then the file is removed: a service
    that stopped on purpose is not stalled)."""
    try:
        while True:
            tick(path)
            notify("WATCHDOG=1")
            await asyncio.sleep(interval)
    finally:
        _remove(path)


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def stalled_for(path: Path, pid: int, now: float | None = None) -> float | None:
    """Seconds since process ``pid`` last ticked, or ``None`` when there is nothing to judge
    (no file yet, or one of another process: a service still starting is not stalled)."""
    try:
        owner = int(path.read_text().strip())
        mtime = path.stat().st_mtime
    except (OSError, ValueError):
        return None
    if owner != pid:
        return None
    return max(0.0, (time.time() if now is None else now) - mtime)
