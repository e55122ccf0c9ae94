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
import resource
import signal
import sys
from typing import Any

from panoramisk.fast_agi import Application

from core.transport.fastagi import AGICall, FastAGIServer

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


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _serve(impl: str, handshake_timeout: float) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    if impl == "ours":
        server = FastAGIServer(
            {"ivr": ours_ivr}, port=0, backlog=4096, handshake_timeout=handshake_timeout
        )
        await server.start()
        port = server.port
        print(f"PORT {port}", flush=True)
        await stop.wait()
        await server.close(drain_timeout=1.0)
    else:
        app = Application(loop=loop)
        app.add_route("ivr", panoramisk_ivr)
        plain = await asyncio.start_server(app.handler, "127.0.0.1", 0, backlog=4096)
        print(f"PORT {plain.sockets[0].getsockname()[1]}", flush=True)
        await stop.wait()
        plain.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--impl", choices=("ours", "panoramisk"), required=True)
    parser.add_argument("--handshake-timeout", type=float, default=5.0)
    parser.add_argument("--profile", help="write cProfile stats of the whole run to this file")
    args = parser.parse_args(argv)
    _raise_fd_limit()
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            asyncio.run(_serve(args.impl, args.handshake_timeout))
        finally:
            profiler.disable()
            profiler.dump_stats(args.profile)
    else:
        asyncio.run(_serve(args.impl, args.handshake_timeout))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
