"""The FastAGI server under test, in its own process so its CPU and memory can be read alone.

``python -m bench.agi_server --impl ours|panoramisk`` listens on 127.0.0.1 (an ephemeral port),
prints ``PORT <n>`` and serves the benchmark IVR until SIGTERM. Both implementations run on the
stdlib asyncio event loop (no uvloop), so the comparison is of the protocol layers alone.

The IVR is the same ten commands for both, in the shape of ``agi_scripts/ivr.py``: answer, set
the language, two prompts, a one-digit menu, then the four variables the dialplan reads.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import uvloop
from panoramisk.fast_agi import Application

from core.fds import raise_fd_limit
from core.transport.fastagi import AGICall, FastAGIServer, tune_gc_for_serving

#: Commands in one benchmark session (the load generator expects exactly this many).
SESSION_COMMANDS = 10


async def ours_ivr(call: AGICall) -> None:
    """The benchmark IVR on our :class:`AGICall` (convenience methods, as real scripts use)."""
    await call.answer()
    await call.set_variable("CHANNEL(language)", "hi")
    await call.set_variable("IVR_CALLER", call.caller_id)
    digits = await call.stream_file("helpline/welcome", "0123456789*#")
    digits = digits or await call.stream_file("helpline/press1_new_complaint", "0123456789*#")
    digits, _ = await call.get_data("helpline/press0_agent", 5000, 1)
    await call.set_variable("IVR_PATH", f"welcome>main_menu>key:{digits}>queue")
    await call.set_variable("IVR_LANG", "hi")
    await call.set_variable("IVR_ROUTE", "queue")
    await call.set_variable("IVR_DONE", "1")


async def panoramisk_ivr(request: Any) -> None:
    """The same ten commands through panoramisk's ``Request.send_command``."""
    send = request.send_command
    caller = request.headers.get("agi_callerid", "")
    await send("ANSWER")
    await send('SET VARIABLE "CHANNEL(language)" "hi"')
    await send(f'SET VARIABLE IVR_CALLER "{caller}"')
    await send('STREAM FILE helpline/welcome "0123456789*#"')
    await send('STREAM FILE helpline/press1_new_complaint "0123456789*#"')
    reply = await send("GET DATA helpline/press0_agent 5000 1")
    digits = reply.get("result", ("", ""))[0] if isinstance(reply, dict) else ""
    await send(f'SET VARIABLE IVR_PATH "welcome>main_menu>key:{digits}>queue"')
    await send('SET VARIABLE IVR_LANG "hi"')
    await send('SET VARIABLE IVR_ROUTE "queue"')
    await send('SET VARIABLE IVR_DONE "1"')


class GCPauses:
    """Cyclic-GC pauses per generation (``gc.callbacks``), so a latency spike can be told apart
    from a collection. ``SIGUSR1`` resets the counts (the bench sends it when the measured part
    starts); they are written to ``--stats-file`` at exit."""

    def __init__(self) -> None:
        self._started = 0.0
        self.reset()

    def reset(self) -> None:
        self.count = [0, 0, 0]
        self.total_s = [0.0, 0.0, 0.0]
        self.max_s = [0.0, 0.0, 0.0]
        self.over_1ms = 0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        generation = info["generation"]
        self.count[generation] += 1
        self.total_s[generation] += pause
        self.max_s[generation] = max(self.max_s[generation], pause)
        self.over_1ms += pause > 0.001

    def report(self) -> dict[str, Any]:
        return {
            "collections": self.count,
            "total_ms": [round(t * 1000, 2) for t in self.total_s],
            "max_ms": [round(t * 1000, 2) for t in self.max_s],
            "pauses_over_1ms": self.over_1ms,
            "threshold": list(gc.get_threshold()),
            "frozen_objects": gc.get_freeze_count(),
        }


FLOOR_COMMANDS = (
    b"ANSWER\n",
    b"SET VARIABLE CHANNEL(language) hi\n",
    b"SET VARIABLE IVR_CALLER 919800000001\n",
    b'STREAM FILE helpline/welcome "0123456789*#"\n',
    b'STREAM FILE helpline/press1_new_complaint "0123456789*#"\n',
    b"GET DATA helpline/press0_agent 5000 1\n",
    b"SET VARIABLE IVR_PATH welcome>main_menu>key:1>queue\n",
    b"SET VARIABLE IVR_LANG hi\n",
    b"SET VARIABLE IVR_ROUTE queue\n",
    b"SET VARIABLE IVR_DONE 1\n",
)


class FloorProtocol(asyncio.Protocol):
    """``--impl floor``: the least a stdlib-asyncio FastAGI server can do per session.

    Not a server anyone should run: no parsing (any bytes count as the reply), no deadlines, no
    errors. It keeps what any coroutine-scripted server must pay: a protocol per connection, one
    task per call, one future per command and a ``transport.write``. Its CPU per session is the
    floor that ours and panoramisk's are measured against.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[bytes] | None = None
        self.handshake = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.max_size = 64 * 1024  # type: ignore[attr-defined]  # as ours (no mmap per read)

    def data_received(self, data: bytes) -> None:
        if self.waiter is not None:
            if not self.waiter.done():
                self.waiter.set_result(data)
            return
        self.handshake += data
        if b"\n\n" in self.handshake:
            self.waiter = asyncio.get_running_loop().create_future()
            self.waiter.set_result(b"")
            asyncio.get_running_loop().create_task(self.run())

    async def run(self) -> None:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        for command in FLOOR_COMMANDS:
            self.waiter = loop.create_future()
            self.transport.write(command)
            await self.waiter
        self.transport.close()


async def _serve(impl: str, handshake_timeout: float, gc_mode: str, pauses: GCPauses) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, pauses.reset)
    if impl == "ours":
        server = FastAGIServer(
            {"ivr": ours_ivr}, port=0, backlog=4096, handshake_timeout=handshake_timeout
        )
        await server.start()
        port = server.port
        if gc_mode == "tuned":
            tune_gc_for_serving()
        print(f"PORT {port}", flush=True)
        await stop.wait()
        await server.close(drain_timeout=1.0)
    elif impl == "floor":
        floor = await loop.create_server(FloorProtocol, "127.0.0.1", 0, backlog=4096)
        if gc_mode == "tuned":
            tune_gc_for_serving()
        print(f"PORT {floor.sockets[0].getsockname()[1]}", flush=True)
        await stop.wait()
        floor.close()
    else:
        app = Application(loop=loop)
        app.add_route("ivr", panoramisk_ivr)
        plain = await asyncio.start_server(app.handler, "127.0.0.1", 0, backlog=4096)
        if gc_mode == "tuned":
            tune_gc_for_serving()
        print(f"PORT {plain.sockets[0].getsockname()[1]}", flush=True)
        await stop.wait()
        plain.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--impl", choices=("ours", "panoramisk", "floor"), required=True)
    parser.add_argument("--handshake-timeout", type=float, default=5.0)
    parser.add_argument(
        "--gc",
        choices=("tuned", "default"),
        default="tuned",
        help="tuned (default): tune_gc_for_serving() after start-up, as agi_scripts/service.py "
        "does in production; applied to both implementations alike",
    )
    parser.add_argument("--profile", help="write cProfile stats of the whole run to this file")
    parser.add_argument("--stats-file", help="write GC pauses (since SIGUSR1) here at exit")
    args = parser.parse_args(argv)
    raise_fd_limit()
    if os.environ.get("BENCH_EVENT_LOOP") == "uvloop":
        # The extra row of docs/capacity.md: every server (ours, peer, floor) on uvloop.
        uvloop.install()
    pauses = GCPauses()
    gc.callbacks.append(pauses)
    try:
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            try:
                asyncio.run(_serve(args.impl, args.handshake_timeout, args.gc, pauses))
            finally:
                profiler.disable()
                profiler.dump_stats(args.profile)
        else:
            asyncio.run(_serve(args.impl, args.handshake_timeout, args.gc, pauses))
    finally:
        if args.stats_file:
            Path(args.stats_file).write_text(json.dumps(pauses.report()))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
