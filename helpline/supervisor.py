"""``helpline supervise``: restarts a service of this instance that died, and says so.

What systemd's ``Restart=on-failure`` does in production (deploy/systemd/), for the machines
where ``helpline up`` runs the helpline without systemd. It watches the pid files of
:data:`helpline.services.SERVICES`: a service whose pid file is there but whose process is
gone died on its own (``helpline down`` removes the pid file before stopping it, so a stop is
never mistaken for a crash). It is started again after a backoff that doubles from
:data:`BACKOFF_INITIAL` to :data:`BACKOFF_MAX` while it keeps dying, and resets once it has
lived for :data:`STABLE_AFTER` seconds. Each restart is one line in the supervisor's log
(``<state_dir>/logs/supervise.log``) and in ``helpline status``.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Final

from core.config import Settings
from helpline import services

#: The supervisor's own name for its pid file and log (not a service of SERVICES: it has no
#: foreground mode of its own to supervise).
NAME: Final = "supervise"
BACKOFF_INITIAL: Final = 1.0
BACKOFF_MAX: Final = 60.0
#: A service that lived this long after a restart is healthy again: its backoff resets.
STABLE_AFTER: Final = 60.0
POLL_SECONDS: Final = 1.0


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

    def check(self) -> list[str]:
        """Restart every service that died and whose backoff has passed; their names."""
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
