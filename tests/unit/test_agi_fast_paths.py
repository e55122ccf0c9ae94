"""The fast paths added for ``python -m bench agi`` give the same answers as the general ones.

Reply and command caches, the one-line reply path, the one-regex handshake split, and the
protocol-level behaviours of the transport that the stream version got from StreamReader
(bounded work on a flood, cancellation while waiting for a turn).
"""

from __future__ import annotations

import asyncio
import gc
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.protocols import agi
from core.protocols.agi import AGIReply, EnvironmentParser, ReplyParser, encode_command
from core.transport.fake_agi import FakeAsterisk, Rule, run_fake_call
from core.transport.fastagi import AGICall, AGIHangup, FastAGIServer, tune_gc_for_serving

REPLY_LINES = st.sampled_from(
    [
        b"200 result=1\n",
        b"200 result=0 endpos=16000\n",
        b"200 result=0 endpos=16000\r\n",
        b"200 result= (timeout)\n",
        b"200 result=1 (\xe0\xa4\xb0\xe0\xa4\xae\xe0\xa5\x87\xe0\xa4\xb6)\n",
        b"200 result=-1 endpos=x\n",
        b"200 result=\n",
        b"100 result=0 Trying...\n",
        b"HANGUP\n",
        b"510 Invalid or unknown command\n",
        b"511 Command Not Permitted on a dead channel or intercept routine\n",
        b"520-Invalid command syntax.  Proper usage follows:\n",
        b"520 End of proper usage.\n",
    ]
)


def _slow_path(lines: list[bytes]) -> list[object]:
    """Feed with a one-byte prefix first, so the parser's buffer path does all the work."""
    parser = ReplyParser()
    events: list[object] = []
    for line in lines:
        events += parser.feed(line[:1])
        events += parser.feed(line[1:])
    return events


@settings(max_examples=2000, deadline=None)
@given(st.lists(REPLY_LINES, max_size=8))
def test_one_line_fast_path_and_reply_cache_match_the_buffered_path(lines: list[bytes]) -> None:
    parser = ReplyParser()
    fast: list[object] = []
    for line in lines:
        fast += parser.feed(line)
    assert fast == _slow_path(lines)


def test_cached_replies_are_shared_read_only() -> None:
    first = ReplyParser().feed(b"200 result=0 endpos=16000\n")[0]
    second = ReplyParser().feed(b"200 result=0 endpos=16000\n")[0]
    assert isinstance(first, AGIReply) and first is second
    assert (first.code, first.result, first.endpos, first.data) == (200, "0", 16000, None)
    with pytest.raises(TypeError):
        first.fields["x"] = "y"  # type: ignore[index]
    with_data = ReplyParser().feed(b"200 result=1 (x)\n")[0]
    assert with_data is not ReplyParser().feed(b"200 result=1 (x)\n")[0]  # data: not cached


def test_caches_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agi, "_REPLIES", {})
    monkeypatch.setattr(agi, "_LINES", {})
    for n in range(agi._MAX_REPLIES + 50):
        ReplyParser().feed(f"200 result={n}\n".encode())
        assert encode_command("SET VARIABLE", "X", str(n)) == f"SET VARIABLE X {n}\n".encode()
    assert len(agi._REPLIES) == agi._MAX_REPLIES
    assert len(agi._LINES) <= agi._MAX_LINES


def test_command_cache_keeps_every_check() -> None:
    assert encode_command("SET VARIABLE", "X", "a b") == b'SET VARIABLE X "a b"\n'
    assert encode_command("SET VARIABLE", "X", "a b") == b'SET VARIABLE X "a b"\n'  # cached
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        encode_command("SET VARIABLE", "X", "a\nEXEC System x")
    with pytest.raises(TypeError):
        encode_command("SET VARIABLE", "X", 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        encode_command("SET VARIABLE", "X", ["unhashable"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="verb"):
        encode_command('ST"REAM')


@pytest.mark.parametrize(
    "handshake",
    [
        b"agi_a: 1\nagi_b:2\nagi_c:  3\nagi_d: x: y\nagi_e:\n\n",
        b" agi_a : 1\nagi_b: 2\n\n",  # spaces around the key: the line loop strips them
        b"agi x: 1\nagi_y: 2\n\n",
        "agi_calleridname: रमेश कुमार\nagi_a: 1\nagi_a: 2\n\n".encode(),
    ],
)
def test_handshake_regex_split_matches_the_line_loop(handshake: bytes) -> None:
    whole = EnvironmentParser().feed(handshake)
    bytewise = EnvironmentParser()
    env = None
    for i in range(len(handshake)):
        env = bytewise.feed(handshake[i : i + 1])
    assert whole is not None and env is not None
    assert dict(whole.variables) == dict(env.variables)


async def test_fake_calls_run_through_the_listener_protocol() -> None:
    """run_fake_call serves a socketpair with the same protocol object the listener uses."""

    async def script(call: AGICall) -> None:
        await call.answer()
        assert call._conn.transport.get_extra_info("socket") is not None

    result = await run_fake_call(script, FakeAsterisk([Rule("ANSWER")]))
    result.raise_for_error()


async def test_flood_after_hangup_is_not_buffered() -> None:
    """Nothing after a HANGUP can matter: the call stops reading instead of parsing a flood."""
    seen = asyncio.Event()
    release = asyncio.Event()
    outcome: list[object] = []

    async def script(call: AGICall) -> None:
        await call.answer()
        seen.set()
        await release.wait()
        try:
            await call.answer()
        except AGIHangup:
            outcome.append("hangup")
        outcome.append(call._parser.buffered)

    server = FastAGIServer({"ivr": script})
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    loop = asyncio.get_running_loop()
    serving = asyncio.create_task(server.serve_socket(ours))
    await loop.sock_sendall(theirs, FakeAsterisk([]).handshake())
    assert await loop.sock_recv(theirs, 100) == b"ANSWER\n"
    await loop.sock_sendall(theirs, b"200 result=0\n")
    await seen.wait()
    await loop.sock_sendall(theirs, b"HANGUP\n" + b"200 result=0 " + b"x" * 5000)
    for _ in range(20):
        try:
            theirs.send(b"y" * 65536)
        except BlockingIOError:
            break  # the server stopped reading: its socket buffer is full
        await asyncio.sleep(0.01)
    release.set()
    async with asyncio.timeout(5):
        await serving
    theirs.close()
    assert outcome[0] == "hangup" and isinstance(outcome[1], int) and outcome[1] <= 70_000


async def test_cancelled_while_waiting_for_a_turn_passes_it_on() -> None:
    results: list[object] = []

    async def script(call: AGICall) -> None:
        first = asyncio.create_task(call.get_variable("A"))
        second = asyncio.create_task(call.get_variable("B"))
        third = asyncio.create_task(call.get_variable("C"))
        await asyncio.sleep(0)
        second.cancel()
        results.extend(await asyncio.gather(first, second, third, return_exceptions=True))

    peer = FakeAsterisk(
        [Rule.variable("GET VARIABLE A", "1"), Rule.variable("GET VARIABLE C", "3")]
    )
    result = await run_fake_call(script, peer)
    result.raise_for_error()
    assert results[0] == "1" and isinstance(results[1], asyncio.CancelledError)
    assert results[2] == "3"
    assert peer.commands == ["GET VARIABLE A", "GET VARIABLE C"]


def test_tune_gc_for_serving() -> None:
    before = gc.get_threshold()
    try:
        tune_gc_for_serving(12_345)
        assert gc.get_threshold()[0] == 12_345 and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
