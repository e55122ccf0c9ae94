"""Supervision (issue 15): systemd's notify protocol on a real socket, a heartbeat that outlives
its database, ``helpline supervise`` restarting a service that died (with backoff, never one
that was stopped), and the shipped systemd units, checked by ``systemd-analyze verify``."""

from __future__ import annotations

import asyncio
import configparser
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core import liveness
from core.config import Settings
from core.db import heartbeat
from core.systemd import notify
from helpline import services, supervisor

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "deploy" / "systemd"


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def received(sock: socket.socket) -> list[str]:
    out: list[str] = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


def test_notify_sends_one_datagram_and_is_silent_outside_systemd(
    notify_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert notify("READY=1") is True
    assert received(notify_socket) == ["READY=1"]
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert notify("WATCHDOG=1") is False


def test_notify_reaches_an_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"helpline-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify("WATCHDOG=1")
        assert sock.recv(100) == b"WATCHDOG=1"


def test_notify_to_a_vanished_socket_does_not_raise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    assert notify("WATCHDOG=1") is False


class FlakyDatabase:
    """A session factory whose database is away for the first ``down`` beats."""

    def __init__(self, down: int) -> None:
        self.down = down
        self.calls = 0
        self.written: list[dict[str, Any]] = []

    def __call__(self) -> FlakyDatabase:
        return self

    async def __aenter__(self) -> FlakyDatabase:
        self.calls += 1
        if self.calls <= self.down:
            raise ConnectionRefusedError("the database is restarting")
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def execute(self, statement: Any) -> None:
        self.written.append(statement.compile().params)

    async def commit(self) -> None:
        return None


async def test_the_heartbeat_outlives_its_database_and_says_so_once(
    notify_socket: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    database = FlakyDatabase(down=5)
    caplog.set_level(logging.WARNING, logger=heartbeat.__name__)
    task = asyncio.create_task(
        heartbeat.keep_beating(
            database,  # type: ignore[arg-type]
            "queue_manager",
            lambda: {"events_applied": 1},
            interval=0.01,
        )
    )
    for _ in range(500):
        if len(database.written) >= 2:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(database.written) >= 2, "the heartbeat stopped beating while the database was away"
    assert database.written[0]["service"] == "queue_manager"
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines  # one when the outage began, one when it ended
    assert "heartbeat failed" in lines[0] and "after 5 failed attempt(s)" in lines[1]
    states = received(notify_socket)
    assert states[0] == "READY=1"
    assert states.count("WATCHDOG=1") >= 7  # petted on every beat, the failed ones too


# ------------------------------------------------------------------ helpline supervise


@pytest.fixture
def fake_services(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Settings, list[int]]]:
    """SERVICES = (queue-manager, dialer) started as ``sleep`` processes with pid files."""
    settings = Settings(state_dir=tmp_path / "state")
    spawned: list[subprocess.Popen[bytes]] = []

    def start(settings: Settings, name: str) -> services.ServiceState:
        process = subprocess.Popen(["sleep", "60"])
        spawned.append(process)
        services._children[process.pid] = process
        path = services.pid_file(settings, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{process.pid}\n")
        return services.ServiceState(name, process.pid, True, services.log_file(settings, name))

    monkeypatch.setattr(services, "SERVICES", ("queue-manager", "dialer"))
    monkeypatch.setattr(services, "start", start)
    for name in services.SERVICES:
        start(settings, name)
    yield settings, [p.pid for p in spawned]
    for process in spawned:
        process.kill()
        process.wait()


def crash(settings: Settings, name: str) -> int:
    pid = services.state(settings, name).pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    services._children[pid].wait()
    return pid


def test_supervise_restarts_a_dead_service_with_backoff_and_says_so(
    fake_services: tuple[Settings, list[int]],
) -> None:
    settings, _ = fake_services
    now = [1000.0]
    said: list[str] = []
    watcher = supervisor.Supervisor(settings, say=said.append, clock=lambda: now[0])
    assert watcher.check() == []

    old = crash(settings, "dialer")
    assert watcher.check() == []  # seen dead: wait one backoff
    assert said[-1].startswith(f"dialer: pid {old} died")
    now[0] += supervisor.BACKOFF_INITIAL
    assert watcher.check() == ["dialer"]
    assert services.state(settings, "dialer").running
    assert f"(was pid {old}; restart 1)" in said[-1]

    crash(settings, "dialer")  # dies again at once: the wait doubles
    watcher.check()
    now[0] += supervisor.BACKOFF_INITIAL
    assert watcher.check() == []
    now[0] += supervisor.BACKOFF_INITIAL
    assert watcher.check() == ["dialer"]
    assert supervisor.read_restarts(settings)["dialer"]["count"] == 2
    assert services.state(settings, "queue-manager").running  # the other was left alone

    now[0] += supervisor.STABLE_AFTER  # lived long enough: the backoff resets
    watcher.check()
    assert watcher.record["dialer"].backoff == supervisor.BACKOFF_INITIAL


def test_supervise_never_restarts_a_service_that_was_stopped(
    fake_services: tuple[Settings, list[int]],
) -> None:
    settings, _ = fake_services
    now = [0.0]
    watcher = supervisor.Supervisor(settings, say=lambda _line: None, clock=lambda: now[0])
    assert services.stop(settings, "queue-manager", timeout=5)  # as `helpline down` does
    for _ in range(3):
        now[0] += supervisor.BACKOFF_MAX
        assert watcher.check() == []
    assert not services.state(settings, "queue-manager").running


async def test_the_liveness_file_ticks_while_the_loop_turns_and_goes_with_it(
    tmp_path: Path,
) -> None:
    path = liveness.liveness_file(tmp_path, "agi")
    ticking = asyncio.create_task(liveness.keep_alive(path, interval=0.01))
    for _ in range(100):
        await asyncio.sleep(0.01)
        if path.exists():
            break
    assert path.read_text().strip() == str(os.getpid())
    silent = liveness.stalled_for(path, os.getpid())
    assert silent is not None and silent < 1.0
    assert liveness.stalled_for(path, os.getpid() + 1) is None  # another process's file
    ticking.cancel()
    with pytest.raises(asyncio.CancelledError):
        await ticking
    assert not path.exists()  # stopped on purpose: nothing to judge


def test_supervise_kills_a_stalled_service_and_only_a_stalled_one(
    fake_services: tuple[Settings, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A FastAGI process whose liveness file it has not rewritten for ``agi_stall_seconds`` is
    killed (then restarted as any crash); a fresh file, or one of another pid (a process still
    starting), is not judged."""
    settings, _ = fake_services
    settings = settings.model_copy(update={"agi_stall_seconds": 2.0})
    monkeypatch.setattr(services, "SERVICES", ("agi", "dialer"))
    agi = services.start(settings, "agi")
    assert agi.pid is not None
    said: list[str] = []
    watcher = supervisor.Supervisor(settings, say=said.append)
    path = liveness.liveness_file(settings.state_dir, "agi")
    assert watcher.kill_stalled() == []  # no file yet: starting, not stalled

    path.write_text(f"{agi.pid + 1}\n")
    os.utime(path, (0, 0))
    assert watcher.kill_stalled() == []  # the file of a process before it

    liveness.tick(path)  # as the service's loop does (its pid: here the test's own)
    path.write_text(f"{agi.pid}\n")
    assert watcher.kill_stalled() == []  # fresh
    stamp = path.stat().st_mtime - 2.5
    os.utime(path, (stamp, stamp))
    assert watcher.kill_stalled() == ["agi"]
    services._children[agi.pid].wait()
    assert not services.state(settings, "agi").running
    assert said[-1].startswith(f"agi: pid {agi.pid} stalled") and "limit 2 s" in said[-1]
    assert services.state(settings, "dialer").running


# ------------------------------------------------------------------ systemd units


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / name)
    return parser


@pytest.mark.parametrize("service", services.SERVICES)
def test_every_service_has_a_unit_that_restarts_it(service: str) -> None:
    parsed = unit(f"helpline-{service}.service")
    assert parsed["Service"]["ExecStart"].split()[-1] == service
    assert parsed["Service"]["Restart"] == "on-failure"
    assert parsed["Unit"]["StartLimitIntervalSec"] == "0"
    if service == "agi":  # the liveness tick pets it; killed as `helpline supervise` would
        stall = Settings.model_fields["agi_stall_seconds"].default
        assert int(parsed["Service"]["WatchdogSec"]) == stall
        assert int(parsed["Service"]["WatchdogSec"]) >= 10 * liveness.TICK_SECONDS
    elif parsed["Service"]["Type"] == "notify":  # the heartbeat loop pets it
        assert int(parsed["Service"]["WatchdogSec"]) >= 3 * heartbeat.HEARTBEAT_SECONDS
    assert f"helpline-{service}.service" in unit("helpline.target")["Unit"]["Wants"].split()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    """The units as shipped, with /opt/helpline's venv pointed at this one (verify checks that
    ExecStart exists) and run as root (no `helpline` user here)."""
    venv = Path(sys.executable).parent.parent
    for path in UNITS.iterdir():
        text = path.read_text().replace("/opt/helpline/.venv", str(venv))
        text = text.replace("User=helpline", "User=root").replace("Group=helpline", "Group=root")
        (tmp_path / path.name).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", *sorted(str(p) for p in tmp_path.iterdir())],
        capture_output=True,
        text=True,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "notice"},
        check=False,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_database_unavailable_tells_an_outage_from_a_refused_statement() -> None:
    """Kept and retried (the database is away) versus refused for good (bad data)."""
    import asyncpg
    from sqlalchemy.exc import DBAPIError, IntegrityError

    from core.db.session import database_unavailable

    def wrapped(error: BaseException) -> DBAPIError:
        outer = DBAPIError("INSERT ...", {}, Exception("adapter"))
        outer.orig.__cause__ = error  # type: ignore[union-attr]
        return outer

    away = [
        ConnectionRefusedError(111, "refused"),
        TimeoutError(),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
    ]
    refused = [
        asyncpg.exceptions.UniqueViolationError("duplicate key"),
        asyncpg.exceptions.DataError("invalid input"),
        ValueError("bad event"),
    ]
    for error in away:
        assert database_unavailable(error) and database_unavailable(wrapped(error)), error
    for error in refused:
        assert not database_unavailable(error) and not database_unavailable(wrapped(error)), error
    assert not database_unavailable(IntegrityError("INSERT", {}, Exception("dup")))
