"""Regression tests for panoramisk's FastAGI defects (DESIGN.md), run against our code. That
each defect happens with ``panoramisk.fast_agi`` 1.4 is witnessed in
test_agi_peer_witnesses.py. Devanagari split across reads is covered in
test_fastagi_server.py: panoramisk's FastAGI side decodes whole buffers (its per-chunk
decoding defect is on the AMI side).
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from core.transport.fake_agi import FakeAsterisk
from core.transport.fastagi import AGICall, AGIHangup, FastAGIServer

ROOT = Path(__file__).resolve().parents[2]
TRUNCATED = b"agi_network: yes\nagi_network_script: ivr\nagi_chan"

# A server in a child process, so that a spinning event loop can be measured and killed.
SERVER = r"""
import asyncio, sys

async def main(kind: str) -> None:
    async def script(request):
        pass
    if kind == "panoramisk":
        from panoramisk.fast_agi import Application
        app = Application()
        app.add_route("ivr", script)
        server = await asyncio.start_server(app.handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
    else:
        from core.transport.fastagi import FastAGIServer
        server = FastAGIServer({"ivr": script}, port=0, handshake_timeout=30)
        await server.start()
        port = server.port
    print(port, flush=True)
    await asyncio.sleep(60)

asyncio.run(main(sys.argv[1]))
"""


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _cpu_while_truncated_peer_hangs(kind: str) -> float:
    """CPU seconds the server process burns in the 0.5 s after a truncated handshake."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SERVER, kind, cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(20):
            port = int(await proc.stdout.readline())
        cpu0 = _cpu_seconds(proc.pid)
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(TRUNCATED)
            sock.shutdown(socket.SHUT_WR)  # EOF before the empty line
            await asyncio.sleep(0.5)
            return _cpu_seconds(proc.pid) - cpu0
    finally:
        proc.kill()
        await proc.wait()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
async def test_truncated_handshake_costs_us_no_cpu() -> None:
    assert await _cpu_while_truncated_peer_hangs("ours") < 0.1


@asynccontextmanager
async def _stream_pair() -> AsyncIterator[tuple[Any, Any, Any, Any]]:
    ours, theirs = socket.socketpair()
    r1, w1 = await asyncio.open_connection(sock=ours)
    r2, w2 = await asyncio.open_connection(sock=theirs)
    try:
        yield r1, w1, r2, w2
    finally:
        for writer in (w1, w2):
            writer.close()
        for writer in (w1, w2):
            with suppress(OSError):
                await writer.wait_closed()


async def _asterisk_hangs_up_while_idle(reader: Any, writer: Any, send_env: bool) -> list[str]:
    """The caller hung up while the script was busy: Asterisk queued ``HANGUP``, then answers
    the next commands (``GET VARIABLE`` is allowed on a dead channel)."""
    if send_env:
        writer.write(FakeAsterisk([], script="ivr").handshake())
    received = []
    replies = [b"HANGUP\n200 result=1 (from-first-command)\n", b"200 result=1 (second)\n"]
    for reply in replies:
        line = await reader.readline()
        if not line:
            break
        received.append(line.decode().strip())
        writer.write(reply)
        await writer.drain()
    return received


async def test_hangup_is_not_taken_as_a_reply_by_us() -> None:
    outcome: list[object] = []

    async def script(call: AGICall) -> None:
        try:
            outcome.append(await call.get_variable("FIRST"))
        except AGIHangup:
            outcome.append("hangup")
        try:
            outcome.append(await call.get_variable("SECOND"))
        except AGIHangup:
            outcome.append("hangup")

    server = FastAGIServer({"ivr": script})
    async with _stream_pair() as (r1, w1, r2, w2), asyncio.TaskGroup() as group:
        group.create_task(server.serve_connection(r1, w1))
        asterisk = group.create_task(_asterisk_hangs_up_while_idle(r2, w2, send_env=True))
    assert outcome == ["hangup", "hangup"]
    assert asterisk.result() == ["GET VARIABLE FIRST"]  # nothing sent after the hang-up


async def test_route_with_query_string_reaches_our_script() -> None:
    seen: list[dict[str, str]] = []

    async def script(call: AGICall) -> None:
        seen.append(dict(call.query))

    server = FastAGIServer({"ivr/main": script})
    peer = FakeAsterisk([], script="ivr/main", query={"lang": "hi"})
    async with _stream_pair() as (r1, w1, r2, w2), asyncio.TaskGroup() as group:
        group.create_task(server.serve_connection(r1, w1))
        group.create_task(peer.serve(r2, w2))
    assert seen == [{"lang": "hi"}]


async def _cancel_mid_script(handler: Any, register: Any) -> asyncio.Task[None]:
    started = asyncio.Event()

    async def script(_call: Any) -> None:
        started.set()
        await asyncio.sleep(30)

    register(script)
    async with _stream_pair() as (r1, w1, r2, w2):
        peer = asyncio.create_task(FakeAsterisk([], script="ivr").serve(r2, w2))
        task: asyncio.Task[None] = asyncio.create_task(handler(r1, w1))
        async with asyncio.timeout(5):
            await started.wait()
        task.cancel()
        await asyncio.wait([task], timeout=2)  # observes the outcome without re-raising it
        assert task.done()
        await peer
    return task


async def test_cancellation_propagates_from_our_server() -> None:
    routes: dict[str, Any] = {}
    server = FastAGIServer(routes)
    task = await _cancel_mid_script(server.serve_connection, lambda s: routes.update(ivr=s))
    assert task.cancelled()
