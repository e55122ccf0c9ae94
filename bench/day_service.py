"""One of our services for ``python -m bench day``, in its own process, on a compressed clock.

``python -m bench.day_service --service ivr|queue_manager|dialer --config FILE`` builds the
service exactly as its ``serve()`` does (the same classes, pools and AMI/FastAGI transports),
except that the helpline's "now" is the bench's compressed day: ``base + (wall - wall0) x k``
(every process of a run gets the same three numbers, so they agree on the time). It prints
``READY`` once it serves; on SIGTERM it stops and writes its figures to ``--stats-file``:

* event-loop lag: a timer task sleeps 10 ms at a time and records how late it woke up (p50,
  p99, max): what any callback of this loop waited for the loop at that moment;
* database statements (SQLAlchemy ``before_cursor_execute`` on the service's engine; pool
  pre-pings are not statements and are not counted) and transactions committed;
* log records at WARNING and ERROR (the first few ERROR messages, to say what failed);
* the queue manager's and the dialer's AMI subscription drops (events lost: queue full).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event

from agi_scripts.ivr import IVRScript
from agi_scripts.service import POOL_SIZE as IVR_POOL_SIZE
from agi_scripts.service import build_server, create_ivr_engine
from agi_scripts.store import PostgresStore
from core.config import Settings
from core.db.session import create_engine, session_factory, warm_pool
from core.transport.ami_client import AMIClient
from core.transport.fastagi import tune_gc_for_serving
from ivr.menus import load_menus
from outbound_dialer.service import Dialer
from queue_manager.service import QueueManager

#: How often the lag probe wakes up.
PROBE_INTERVAL = 0.01


def compressed_clock(base: datetime, start: dict[str, float], k: float) -> Callable[[], datetime]:
    """The helpline's "now" in a day replayed ``k`` times faster than real time, from the wall
    time ``start["wall0"]`` (set when the bench says GO) on."""

    def now() -> datetime:
        return base + timedelta(seconds=(time.time() - start["wall0"]) * k)

    return now


async def wait_for_go(start: dict[str, float]) -> None:
    """``READY`` out, then ``GO <wall0>`` in: every process starts the day at the same instant."""
    print("READY", flush=True)
    line = await asyncio.to_thread(sys.stdin.readline)
    start["wall0"] = float(line.split()[1])


class LagProbe:
    """How late a 10 ms timer fires on this loop (seconds)."""

    def __init__(self) -> None:
        self.lags: list[float] = []

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(PROBE_INTERVAL)
            self.lags.append(max(0.0, loop.time() - start - PROBE_INTERVAL))

    def figures(self) -> dict[str, float | int]:
        if not self.lags:
            return {"samples": 0}
        ordered = sorted(self.lags)

        def pct(p: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 2)

        return {
            "samples": len(ordered),
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "max_ms": round(ordered[-1] * 1000, 2),
            "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
        }


class LogCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.warnings = 0
        self.errors = 0
        self.first_errors: list[str] = []
        self.first_warnings: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            self.errors += 1
            if len(self.first_errors) < 5:
                cause = ""
                if record.exc_info and record.exc_info[1] is not None:
                    exc = record.exc_info[1]
                    inner = exc.__cause__ or exc.__context__
                    cause = f" ({exc!r}; from {inner!r})"
                self.first_errors.append(f"{record.name}: {record.getMessage()}{cause}"[:400])
        else:
            self.warnings += 1
            if len(self.first_warnings) < 5:
                self.first_warnings.append(f"{record.name}: {record.getMessage()}"[:300])


async def serve(args: argparse.Namespace, config: dict[str, Any]) -> dict[str, Any]:
    settings = Settings(**config["settings"])
    start = {"wall0": time.time()}
    now = compressed_clock(datetime.fromisoformat(config["base"]), start, float(config["k"]))
    probe = LagProbe()
    logs = LogCounter()
    logging.getLogger().addHandler(logs)
    logging.getLogger().setLevel(logging.WARNING)
    if args.service == "ivr":  # as agi_scripts.service.serve() builds it
        engine = create_ivr_engine(settings)
    else:
        engine = create_engine(settings, pool_size=int(config.get("pool_size", 10)))
    counts = {"statements": 0, "commits": 0}

    def on_statement(*_: object) -> None:
        counts["statements"] += 1

    def on_commit(*_: object) -> None:
        counts["commits"] += 1

    event.listen(engine.sync_engine, "before_cursor_execute", on_statement)
    event.listen(engine.sync_engine, "commit", on_commit)
    sessions = session_factory(engine)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    extra: dict[str, Any] = {}
    probe_task = asyncio.create_task(probe.run())
    try:
        if args.service == "ivr":
            await warm_pool(engine, IVR_POOL_SIZE)
            store = PostgresStore(settings, sessions, clock=now)
            server = build_server(settings, {"ivr": IVRScript(load_menus(), store, settings, now)})
            await server.start()
            tune_gc_for_serving()
            await wait_for_go(start)
            await stop.wait()
            await server.close(10.0)
        else:
            name = "queue_manager" if args.service == "queue_manager" else "outbound_dialer"
            ami = AMIClient(
                settings.ami_host,
                settings.ami_port,
                settings.ami_username(name),
                settings.ami_secret(name),
                action_timeout=settings.ami_action_timeout,
                ping_interval=settings.ami_ping_interval,
                name=name,
            )
            if args.service == "queue_manager":
                manager = QueueManager(settings, ami, sessions)
                async with ami:
                    task = asyncio.create_task(manager.run())
                    await manager.reconciled.wait()
                    await wait_for_go(start)
                    await stop.wait()
                    extra["events_applied"] = manager.events_applied
                    extra["events_dropped"] = manager._events.dropped
                    task.cancel()
            else:
                reference = settings.load_reference()
                # Built after GO: its first pass must see the day's clock.
                await wait_for_go(start)
                dialer = Dialer(settings, ami, sessions, reference, clock=now)
                async with ami:
                    task = asyncio.create_task(dialer.run())
                    await stop.wait()
                    dialer.stop()
                    extra["totals"] = dict(dialer.totals)
                    extra["last_stop"] = dialer.last_stop
                    extra["events_dropped"] = dialer._events.dropped
                    task.cancel()
            extra["ami_connects"] = ami.generation
        extra["pool"] = engine.pool.status()
    finally:
        probe_task.cancel()
        await engine.dispose()
    return {
        "service": args.service,
        "loop_lag": probe.figures(),
        "statements": counts["statements"],
        "commits": counts["commits"],
        "log_warnings": logs.warnings,
        "log_errors": logs.errors,
        "first_errors": logs.first_errors,
        "first_warnings": logs.first_warnings,
        **extra,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--service", choices=("ivr", "queue_manager", "dialer"), required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--stats-file", required=True)
    args = parser.parse_args()
    stats = asyncio.run(serve(args, json.loads(Path(args.config).read_text())))
    Path(args.stats_file).write_text(json.dumps(stats))


if __name__ == "__main__":
    main()
