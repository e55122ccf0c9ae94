"""The fast paths added for ``python -m bench agi`` give the same answers as the general ones.

Reply and command caches, the one-line reply path, the whole-handshake path and its variables
read on demand, the server's one deadline heap, and the protocol-level behaviours of the
transport that the stream version got from StreamReader (bounded work on a flood, cancellation
while waiting for a turn).
"""

from __future__ import annotations

import asyncio
import gc
import socket
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.protocols import agi
from core.protocols.agi import AGIReply, EnvironmentParser, ReplyParser, encode_command
from core.transport.fake_agi import FakeAsterisk, Rule, run_fake_call
from core.transport.fastagi import (
    AGICall,
    AGIConnectionError,
    AGIHangup,
    FastAGIServer,
    _Deadlines,
    tune_gc_for_serving,
)

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
def test_handshake_whole_feed_matches_the_line_loop(handshake: bytes) -> None:
    whole = EnvironmentParser().feed(handshake)
    bytewise = EnvironmentParser()
    env = None
    for i in range(len(handshake)):
        env = bytewise.feed(handshake[i : i + 1])
    assert whole is not None and env is not None
    assert dict(whole.variables) == dict(env.variables)


# Pieces of handshake lines, chosen to hit every rule of the fast path: keys with and without
# "agi_", blanks before and after ":", values holding ": ", CRs, Devanagari, non-ASCII blanks.
_ENV_PIECES = st.sampled_from(
    [
        "agi_",
        "agi",
        "_",
        "a",
        "x1",
        ":",
        ": ",
        " ",
        "\t",
        "\r",
        "\x1c",
        "\xa0",
        "\u2003",
        "रमेश",
        "?",
        "=",
        "&",
        "%E0%A4%95",
        "/",
        "network_script",
        "arg_1",
        "arg_2",
        "request",
        "callerid",
        "agi://h:4573/",
    ]
)
_ENV_TEXT = st.lists(_ENV_PIECES, max_size=5).map("".join)
_ENV_KEY = st.sampled_from(
    ["network_script", "request", "arg_1", "arg_2", "arg_3", "callerid", "x", "a b", "a:b", "é"]
)
_ENV_SEP = st.sampled_from([": ", ": ", ": ", ":", ":  ", " :", "\t: ", ": \r", "\xa0:"])
_ENV_VALUE = st.one_of(_ENV_TEXT, st.text("ab1:/?=&%रमेश", max_size=10))
_GOOD_LINE = st.builds(lambda k, sep, v: f"agi_{k}{sep}{v}", _ENV_KEY, _ENV_SEP, _ENV_VALUE)
_ENV_LINE = st.one_of(*[_GOOD_LINE] * 8, _ENV_TEXT)


def _bytewise(handshake: bytes) -> object:
    """The line loop's answer: a one-byte feed consumes the first line before the rest arrives."""
    parser = EnvironmentParser()
    try:
        for i in range(len(handshake)):
            env = parser.feed(handshake[i : i + 1])
            if env is not None:
                return env
        parser.feed_eof()
    except agi.AGIProtocolError:
        return "error"
    return None


@settings(max_examples=3000, deadline=None)
@given(st.lists(_ENV_LINE, min_size=1, max_size=8), st.lists(_ENV_LINE, max_size=4))
def test_handshake_fast_path_matches_the_line_loop(lines: list[str], probes: list[str]) -> None:
    """Whole handshakes (the fast path when every line qualifies) give what the line loop gives,
    and the variables looked up in the text agree with the dict for any key."""
    handshake = ("\n".join(lines) + "\n\n").encode()
    try:
        whole: object = EnvironmentParser().feed(handshake)
    except agi.AGIProtocolError:
        whole = "error"
    slow = _bytewise(handshake)
    if not isinstance(slow, agi.AGIEnvironment):
        assert whole == slow
        return
    assert isinstance(whole, agi.AGIEnvironment)
    assert list(whole.variables.items()) == list(slow.variables.items())
    assert (whole.script, whole.query_items, whole.args) == (
        slow.script,
        slow.query_items,
        slow.args,
    )
    assert dict(whole.query) == dict(slow.query)
    fresh = EnvironmentParser().feed(handshake)  # looked up before anything builds the dict
    assert fresh is not None
    for key in [*slow.variables, *probes, *(f"agi_{p}" for p in probes), "", "a:b", "x\ny"]:
        assert fresh.variables.get(key) == slow.variables.get(key)
        assert (key in fresh.variables) == (key in slow.variables)
        assert fresh.variables.get(key, "-") == slow.variables.get(key, "-")
    assert len(fresh.variables) == len(slow.variables)


def test_handshake_fast_path_is_taken_and_reads_lazily() -> None:
    handshake = (
        "agi_network_script: ivr/main?lang=hi&lang=en\nagi_request: agi://h:4573/ivr/main\n"
        "agi_callerid: 9198\nagi_calleridname: रमेश कुमार (x:y)\nagi_arg_1: a b\nagi_arg_2:\n"
        "agi_accountcode: \nagi_callerid: 9199\n\n"
    ).encode()
    env = EnvironmentParser().feed(handshake)
    assert env is not None and type(env.variables).__name__ == "_HandshakeVariables"
    assert (env.script, dict(env.query), env.args) == ("ivr/main", {"lang": "hi"}, ("a b", ""))
    assert env.caller_id == "9199"  # a repeated key keeps its last value
    assert env.caller_name == "रमेश कुमार (x:y)" and env.get("accountcode", "x") == ""
    assert env.variables.get("agi_nothing") is None and "agi_nothing" not in env.variables
    with pytest.raises(KeyError):
        env.variables["agi_nothing"]
    assert env == _bytewise(handshake)
    assert len(env.variables) == 7
    for odd in (b"agi_a: 1\r\nagi_b: 2\n\n", b"agi_a : 1\n\n", b"agi_a: 1\n\nX", b"b: 1\n\n"):
        assert type(EnvironmentParser().feed(odd).variables).__name__ == "mappingproxy"  # type: ignore[union-attr]


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


async def test_cancelling_the_command_in_flight_refuses_the_one_queued_behind_it() -> None:
    """A cancelled wait is noticed without a callback per command; a queued command must not
    wait for the late reply (it would be taken for its own): it fails at once."""
    results: list[object] = []
    waited: list[float] = []

    async def script(call: AGICall) -> None:
        first = asyncio.create_task(call.get_variable("A"))
        await asyncio.sleep(0.05)  # sent; its reply is 1 s away
        second = asyncio.create_task(call.get_variable("B"))
        await asyncio.sleep(0)  # queued behind the first
        loop = asyncio.get_running_loop()
        started = loop.time()
        first.cancel()
        results.extend(await asyncio.gather(first, second, return_exceptions=True))
        waited.append(loop.time() - started)
        with pytest.raises(AGIConnectionError, match="cancelled"):
            await call.answer()

    peer = FakeAsterisk([Rule("GET VARIABLE A", "200 result=1 (1)", delay=1.0)])
    result = await run_fake_call(script, peer)
    result.raise_for_error()
    assert isinstance(results[0], asyncio.CancelledError)
    assert isinstance(results[1], AGIConnectionError) and "cancelled" in str(results[1])
    assert waited[0] < 0.5 and peer.commands == ["GET VARIABLE A"]


async def test_deadlines_come_due_in_order_and_cancelled_entries_do_not_pile_up() -> None:
    fired: list[object] = []

    class Conn:
        def __init__(self, name: object) -> None:
            self.name = name

        def _on_timer(self) -> None:
            fired.append(self.name)

    deadlines = _Deadlines(asyncio.get_running_loop())
    now = deadlines.clock()
    deadlines.add(now + 0.02, cast(Any, Conn("a")))
    deadlines.add(now + 0.01, cast(Any, Conn("b")))
    deadlines.cancel(deadlines.add(now + 0.03, cast(Any, Conn("c"))))
    await asyncio.sleep(0.3)
    assert fired == ["b", "a"]  # in order (up to _TICK apart); the cancelled one never
    entries = [deadlines.add(now + 100, cast(Any, Conn(n))) for n in range(2000)]
    for entry in entries[:-1]:
        deadlines.cancel(entry)
    assert len(deadlines._heap) <= 600  # rebuilt as cancelled entries became most of it
    deadlines.cancel(entries[-1])
    assert not deadlines._heap and deadlines._timer is None  # nothing live: no loop timer
    assert fired == ["b", "a"]


def test_tune_gc_for_serving() -> None:
    before = gc.get_threshold()
    try:
        tune_gc_for_serving(12_345)
        assert gc.get_threshold()[0] == 12_345 and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
