"""Shared pieces of the benchmarks: the compiled load generator, the server process, /proc reads.

The server under test runs in its own process pinned to CPU 0 and the load generator to CPU 1
(the machine has two cores), so the server's CPU seconds (``/proc/<pid>/stat``) and RSS
(``/proc/<pid>/status``) are its own and the generator never competes with it for a core.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
LOADGEN_SOURCE = BENCH_DIR / "agi_loadgen.c"
SERVER_CPU = 0
GENERATOR_CPU = 1
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine(*, pinned: bool = True) -> dict[str, Any]:
    """What the figures were measured on (they mean little without it); ``pinned=False`` for
    a bench whose processes go where the kernel puts them."""
    cores = os.cpu_count() or 0
    shared = (
        f"{cores} cores shared by the server under test (pinned to CPU {SERVER_CPU}) and "
        f"the load generator (CPU {GENERATOR_CPU})"
        if pinned
        else f"{cores} cores shared by every process of the run (none pinned)"
    )
    return {
        "cores": cores,
        "python": sys.version.split()[0],
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "note": (
            f"{shared}; other work on the machine shows up in latencies more than in the "
            "server's CPU seconds"
        ),
    }


def _pin(pid: int, cpu: int) -> None:
    """Pin a child to one CPU right after it starts (the first milliseconds do not matter)."""
    if (os.cpu_count() or 1) > cpu:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, {cpu})


@contextlib.contextmanager
def loadgen_binary(source: Path = LOADGEN_SOURCE) -> Iterator[Path]:
    """Compile a load generator (``agi_loadgen.c`` unless told) with the system's gcc into a
    temporary directory."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise SystemExit("the benchmarks' load generators need gcc (apt-get install gcc)")
    with tempfile.TemporaryDirectory(prefix="helpline-bench-") as tmp:
        binary = Path(tmp) / source.stem
        subprocess.run(
            [cc, "-O2", "-Wall", "-o", str(binary), str(source)],
            check=True,
            capture_output=True,
        )
        yield binary


def free_port() -> int:
    """A TCP port free on loopback now (for a server a bench or test starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _stat_fields(proc: Path) -> list[str]:
    """``/proc/<pid>/stat`` after the command name: field 0 is the state, 11 and 12 the
    process's user and system ticks, 13 and 14 those of its children that ended."""
    return (proc / "stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = _stat_fields(Path(f"/proc/{pid}"))
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def postgres_cpu_seconds() -> float | None:
    """User + system CPU seconds of this machine's PostgreSQL server so far: every process
    named ``postgres`` (the postmaster, its backends and workers) plus its children that
    ended (the postmaster's ``cutime``/``cstime``), so a backend that exits between two
    readings is still counted. None where no PostgreSQL runs on this machine."""
    total, found = 0, False
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            proc = Path(entry.path)
            if (proc / "comm").read_text().strip() != "postgres":
                continue
            fields = _stat_fields(proc)
        except OSError:  # it ended meanwhile: its CPU is in the postmaster's cutime now
            continue
        found = True
        total += sum(int(f) for f in fields[11:15])
    return total / _CLK_TCK if found else None


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class ServerProcess:
    """``python -m bench.agi_server`` in its own process, pinned to CPU 0."""

    def __init__(self, impl: str, *, handshake_timeout: float = 5.0, gc: str = "tuned") -> None:
        self.impl = impl
        self._stats_dir = tempfile.TemporaryDirectory(prefix="helpline-bench-stats-")
        self.stats_file = Path(self._stats_dir.name) / "stats.json"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.agi_server",
                "--impl",
                impl,
                "--handshake-timeout",
                str(handshake_timeout),
                "--gc",
                gc,
                "--stats-file",
                str(self.stats_file),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # the robustness attack makes it log 1,000 warnings
            text=True,
        )
        _pin(self.proc.pid, SERVER_CPU)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError(f"{impl} server did not start: {line!r}")
        self.port = int(line.split()[1])
        self.pid = self.proc.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def fds(self) -> int:
        return open_fds(self.pid)

    def run_queue_wait(self) -> float:
        """Seconds this server has waited on a run queue (``/proc/<pid>/schedstat``): time it
        was ready to run but another process had its core (other developers' work)."""
        return int(Path(f"/proc/{self.pid}/schedstat").read_text().split()[1]) / 1e9

    def reset_gc_stats(self) -> None:
        """Count GC pauses from now on (read with :meth:`gc_stats` after :meth:`stop`)."""
        self.proc.send_signal(signal.SIGUSR1)

    def gc_stats(self) -> dict[str, Any] | None:
        try:
            stats: dict[str, Any] = json.loads(self.stats_file.read_text())
        except (OSError, ValueError):
            return None
        return stats

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_loadgen(
    binary: Path,
    port: int,
    *,
    sessions: int,
    concurrency: int,
    think_ms: tuple[int, int] = (0, 0),
    hold: Callable[[], None] | None = None,
    commands: int = 10,
    idle_timeout_ms: int = 10_000,
    deadline_ms: int = 120_000,
    seed: int = 1,
) -> dict[str, Any]:
    """Run the generator (pinned to CPU 1) to completion and return its JSON report.

    With ``hold``, every session parks at its first command until all are connected; ``hold()``
    is called then (to read the server's memory) and the sessions are released.
    """
    args = [
        str(binary),
        "--port",
        str(port),
        "--sessions",
        str(sessions),
        "--concurrency",
        str(concurrency),
        "--commands",
        str(commands),
        "--think-min",
        str(think_ms[0]),
        "--think-max",
        str(think_ms[1]),
        "--idle-timeout",
        str(idle_timeout_ms),
        "--deadline",
        str(deadline_ms),
        "--seed",
        str(seed),
    ]
    if hold is not None:
        args.append("--hold")
    proc = subprocess.Popen(
        args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    _pin(proc.pid, GENERATOR_CPU)
    assert proc.stdin is not None and proc.stdout is not None
    last = ""
    for raw in proc.stdout:
        line = raw.strip()
        if line == "HELD" and hold is not None:
            hold()
            proc.stdin.write("\n")
            proc.stdin.flush()
        elif line:
            last = line
    proc.wait(timeout=deadline_ms / 1000 + 30)
    if proc.returncode != 0 or not last.startswith("{"):
        raise RuntimeError(f"load generator failed (exit {proc.returncode}): {last!r}")
    report: dict[str, Any] = json.loads(last)
    return report


def ratio(ours: float, peer: float) -> float | None:
    return round(ours / peer, 3) if peer else None
