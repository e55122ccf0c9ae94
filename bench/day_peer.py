"""The day's AMI event path, ours against panoramisk 1.4, for ``python -m bench day``.

The bytes the emulated Asterisk sent during the day run are replayed, at the same wall-clock
pace, over loopback TCP (a :class:`FakeAMIServer` session) to one consumer process at a time:

* ours: ``AMIClient`` with the queue manager's subscription (``queue_manager.service.EVENTS``),
  a consumer task reading each event's name and ``Uniqueid``;
* panoramisk: ``Manager`` (login, ``register_event`` for the same event names), a callback
  reading the same two fields.

Each consumer also runs the day's lag probe (``bench.day_service.LagProbe``). Reported: events
delivered, CPU seconds from the first event to the end marker, loop lag. Neither writes to the
database: this isolates what the AMI client costs the queue manager at that compression.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from panoramisk.manager import Manager

from bench.common import REPO, ratio
from bench.day_service import LagProbe
from core.protocols.ami import encode_message
from core.transport.ami_client import AMIClient
from core.transport.fake_ami import FakeAMIServer
from queue_manager.service import EVENTS

USER, SECRET = "helpline_queue_manager", "bench-day-peer"
END = "BenchDayEnd"


async def consume(impl: str, port: int) -> dict[str, Any]:
    probe = LagProbe()
    probe_task = asyncio.create_task(probe.run())
    delivered = 0
    first: float | None = None
    done = asyncio.Event()

    def seen(name: str, uniqueid: str | None) -> None:
        nonlocal delivered, first
        if first is None:
            first = time.process_time()
        if name == END:
            done.set()
            return
        if name in EVENTS and (uniqueid is None or uniqueid):
            delivered += 1

    if impl == "ours":
        ami = AMIClient("127.0.0.1", port, USER, SECRET, name="peer-ours")
        sub = ami.subscribe(filter={*EVENTS, END}, name="queue_manager")
        async with ami:
            print("READY", flush=True)

            async def read() -> None:
                async for event in sub:
                    seen(event.name, event.get("Uniqueid"))

            reader = asyncio.create_task(read())
            await done.wait()
            reader.cancel()
            dropped = sub.dropped
    else:
        manager = Manager(
            loop=asyncio.get_running_loop(),
            host="127.0.0.1",
            port=port,
            username=USER,
            secret=SECRET,
            ping_delay=0,
        )

        def callback(_manager: Any, event: Any) -> None:
            seen(event.get("Event") or "", event.get("Uniqueid"))

        for name in (*EVENTS, END):
            manager.register_event(name, callback)
        await manager.connect()
        print("READY", flush=True)
        await done.wait()
        manager.close()
        dropped = 0
    cpu = time.process_time() - (first or time.process_time())
    probe_task.cancel()
    return {
        "delivered": delivered,
        "dropped": dropped,
        "cpu_s": round(cpu, 3),
        "loop_lag_ms": probe.figures(),
    }


async def replay(impl: str, stream: list[tuple[float, bytes]], workdir: Path) -> dict[str, Any]:
    fake = FakeAMIServer(username=USER, secret=SECRET, writetimeout=1.0)
    await fake.start()
    stats = workdir / f"peer-{impl}.json"
    proc = subprocess.Popen(  # noqa: ASYNC220 (started once, not awaited)
        [sys.executable, "-m", "bench.day_peer", "--impl", impl, "--port", str(fake.port),
         "--stats-file", str(stats)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.to_thread(proc.stdout.readline)
        if line.strip() != "READY":
            raise RuntimeError(f"peer consumer {impl} did not start: {line!r}")
        async with asyncio.timeout(10):
            await fake.wait_until(lambda: any(s.authenticated for s in fake.sessions))
        start = time.time()
        for offset, data in stream:
            delay = start + offset - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await fake.push_raw(data)
        await fake.push_raw(encode_message([("Event", END)]))
        await asyncio.to_thread(proc.wait, 120)
        result: dict[str, Any] = json.loads(stats.read_text())
        result["writetimeout_drops"] = fake.stats.writetimeout_drops
        return result
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        await fake.close()


def compare(stream: list[tuple[float, bytes]], workdir: Path) -> dict[str, Any]:
    ours = asyncio.run(replay("ours", stream, workdir))
    peer = asyncio.run(replay("panoramisk", stream, workdir))
    return {
        "ours": {"ami_event_path": ours, "events_sent": len(stream)},
        "peer": {"name": "panoramisk 1.4 Manager", "ami_event_path": peer},
        "ratio": {"cpu_s_ours_over_peer": ratio(ours["cpu_s"], peer["cpu_s"])},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--impl", choices=("ours", "panoramisk"), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stats-file", required=True)
    args = parser.parse_args()
    stats = asyncio.run(consume(args.impl, args.port))
    Path(args.stats_file).write_text(json.dumps(stats))


if __name__ == "__main__":
    main()
