"""Background services of one helpline instance: start, stop, status, with pid files and logs
under ``<state_dir>``. Used by ``helpline up/down/status`` and by the integration tests, so the
tests exercise the same start-up path a user does."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from core.config import Settings

#: Start order; stop runs in reverse. The IVR must be listening before calls can arrive.
#: ``sla`` is the lifecycle worker (SMS outbox delivery, SLA escalation); ``dialer`` the
#: outbound dialer (feedback and follow-up calls; any number may run).
SERVICES: tuple[str, ...] = ("agi", "queue-manager", "api", "sla", "dialer")


@dataclass(frozen=True, slots=True)
class ServiceState:
    name: str
    pid: int | None
    running: bool
    log: Path


def pid_file(settings: Settings, service: str) -> Path:
    return settings.state_dir / "run" / f"{service}.pid"


def log_file(settings: Settings, service: str) -> Path:
    return settings.state_dir / "logs" / f"{service}.log"


#: Children started by this process, kept so they are reaped (and not warned about) properly.
_children: dict[int, subprocess.Popen[bytes]] = {}


def _alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie of ours counts as dead.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def state(settings: Settings, service: str) -> ServiceState:
    path = pid_file(settings, service)
    pid: int | None = None
    if path.exists():
        with contextlib.suppress(ValueError):
            pid = int(path.read_text().strip())
    return ServiceState(service, pid, pid is not None and _alive(pid), log_file(settings, service))


def start(settings: Settings, service: str) -> ServiceState:
    """Start ``helpline <service>`` in the background unless it already runs (idempotent)."""
    current = state(settings, service)
    if current.running:
        return current
    log = log_file(settings, service)
    log.parent.mkdir(parents=True, exist_ok=True)
    pid_file(settings, service).parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HELPLINE_STATE_DIR=str(settings.state_dir))
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "helpline", service],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # survives the terminal that ran `helpline up`
        )
    _children[process.pid] = process
    pid_file(settings, service).write_text(f"{process.pid}\n")
    return ServiceState(service, process.pid, True, log)


def stop(settings: Settings, service: str, timeout: float = 15.0) -> bool:
    """SIGTERM (graceful drain), then SIGKILL after ``timeout``. True if it was running."""
    current = state(settings, service)
    pid_file(settings, service).unlink(missing_ok=True)
    if not current.running or current.pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(current.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(current.pid):
        time.sleep(0.1)
    if _alive(current.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(current.pid, signal.SIGKILL)
    return True


def kill(settings: Settings, service: str) -> None:
    """SIGKILL without a drain: what a crash looks like (used by the fallback tests)."""
    current = state(settings, service)
    if current.running and current.pid is not None:
        os.kill(current.pid, signal.SIGKILL)
        while _alive(current.pid):
            time.sleep(0.05)
    pid_file(settings, service).unlink(missing_ok=True)
