"""``helpline supervise``: restarts a service of this instance that died, and says so.

What systemd's ``Restart=on-failure`` does in production (deploy/systemd/), for the machines
where ``helpline up`` runs the helpline without systemd. It watches the pid files of
:data:`helpline.services.SERVICES`: a service whose pid file is there but whose process is
gone died on its own (``helpline down`` removes the pid file before stopping it, so a stop is
never mistaken for a crash). It is started again after a backoff that doubles from
:data:`BACKOFF_INITIAL` to :data:`BACKOFF_MAX` while it keeps dying, and resets once it has
lived for :data:`STABLE_AFTER` seconds. Each restart is one line in the supervisor's log
(``<state_dir>/logs/supervise.log``) and in ``helpline status``.

It also kills a service that is alive but stalled (what systemd's ``WatchdogSec`` does): one
whose liveness file (core.liveness) has not been rewritten by its pid for
:func:`stall_limits` seconds (the FastAGI server: ``agi_stall_seconds``). A stopped or hung
FastAGI process keeps Asterisk's AGI sockets open and its callers in silence; killed, the
sockets close, the dialplan sends them to the queue, and the restart above brings it back.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Final

from core.config import Settings
from core.liveness import liveness_file, stalled_for
from helpline import services

#: The supervisor's own name for its pid file and log (not a service of SERVICES: it has no
#: foreground mode of its own to supervise).
NAME: Final = "supervise"
BACKOFF_INITIAL: Final = 1.0
BACKOFF_MAX: Final = 60.0
#: A service that lived this long after a restart is healthy again: its backoff resets.
STABLE_AFTER: Final = 60.0
POLL_SECONDS: Final = 1.0


def stall_limits(settings: Settings) -> dict[str, float]:
    """Services that tick a liveness file, and how long a silence means stalled."""
    return {"agi": settings.agi_stall_seconds}


@dataclass
class Restarts:
    """What the supervisor did to one service, kept in ``<state_dir>/run/restarts.json``."""

    count: int = 0
    last_at: str | None = None
    last_old_pid: int | None = None
    backoff: float = BACKOFF_INITIAL
    #: monotonic time before which it is not started again.
    not_before: float = field(default=0.0, repr=False)
    started_mono: float = field(default=0.0, repr=False)


def restarts_file(settings: Settings) -> Path:
    return settings.state_dir / "run" / "restarts.json"


def read_restarts(settings: Settings) -> dict[str, dict[str, object]]:
    """The supervisor's record by service (empty if it never restarted anything)."""
    try:
        data = json.loads(restarts_file(settings).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class Supervisor:
    """One pass per :data:`POLL_SECONDS`; :meth:`check` is one pass (tests call it)."""

    def __init__(
        self,
        settings: Settings,
        *,
        say: Callable[[str], None] = print,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.say = say
        self.clock = clock
        self.record: dict[str, Restarts] = {name: Restarts() for name in services.SERVICES}

    def kill_stalled(self) -> list[str]:
        """SIGKILL every running service whose event loop has not ticked for its stall limit
        (it is then dead, and restarted like any crash); their names."""
        killed: list[str] = []
        for name, limit in stall_limits(self.settings).items():
            current = services.state(self.settings, name)
            if not current.running or current.pid is None:
                continue
            silent = stalled_for(liveness_file(self.settings.state_dir, name), current.pid)
            if silent is None or silent < limit:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(current.pid, signal.SIGKILL)
            self.say(
                f"{name}: pid {current.pid} stalled (no liveness tick for {silent:.1f} s, "
                f"limit {limit:g} s); killed"
            )
            killed.append(name)
        return killed

    def check(self) -> list[str]:
        """Kill stalled services, then restart every service that died and whose backoff has
        passed; the names restarted."""
        self.kill_stalled()
        restarted: list[str] = []
        now = self.clock()
        for name in services.SERVICES:
            record = self.record[name]
            current = services.state(self.settings, name)
            if current.running:
                if record.started_mono and now - record.started_mono >= STABLE_AFTER:
                    record.backoff = BACKOFF_INITIAL
                continue
            if current.pid is None:  # never started, or stopped by `helpline down`
                continue
            if record.not_before == 0.0:  # first seen dead: wait one backoff
                record.not_before = now + record.backoff
                self.say(
                    f"{name}: pid {current.pid} died (log: {current.log}); "
                    f"restarting in {record.backoff:.0f} s"
                )
                continue
            if now < record.not_before:
                continue
            services.pid_file(self.settings, name).unlink(missing_ok=True)
            started = services.start(self.settings, name)
            record.count += 1
            record.last_at = datetime.now(UTC).isoformat(timespec="seconds")
            record.last_old_pid = current.pid
            record.started_mono = now
            record.not_before = 0.0
            record.backoff = min(record.backoff * 2, BACKOFF_MAX)
            self.say(
                f"{name}: restarted as pid {started.pid} (was pid {current.pid}; "
                f"restart {record.count})"
            )
            restarted.append(name)
        if restarted:
            self._save()
        return restarted

    def _save(self) -> None:
        path = restarts_file(self.settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            name: {k: v for k, v in asdict(r).items() if k in ("count", "last_at", "last_old_pid")}
            for name, r in self.record.items()
            if r.count
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(path)

    def run(self) -> None:
        """Until SIGTERM/SIGINT or its pid file is removed."""
        stopping = False

        def stop(_signum: int, _frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        mine = services.pid_file(self.settings, NAME)
        self.say(f"supervising {', '.join(services.SERVICES)}")
        while not stopping and mine.exists():
            self.check()
            time.sleep(POLL_SECONDS)
        self.say("supervisor stopped")
