"""One regression test per panoramisk 1.4 AMI defect (docs: shared DESIGN.md), run against our
code, and where it can be, the defect demonstrated against ``panoramisk.Manager`` on the same
fake server, bounded in time.

A ``*_panoramisk`` test asserts that the defect HAPPENS with panoramisk. If one fails, panoramisk
fixed it: rejoice, and update DESIGN.md and the benchmarks' peer notes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from panoramisk import Manager

from core.protocols.ami import AMIMessage, AMIParser
from core.transport.ami_client import AMIClient, AMIDisconnected
from core.transport.fake_ami import FakeAMIServer

USER, SECRET = "helpline_test", "s3cret"
HINDI_EVENT = "Event: Newchannel\r\nCallerIDName: रमेश कुमार\r\nUniqueid: 1.1\r\n\r\n".encode()
INJECTED = '"x" <1>\r\n\r\nAction: Hangup\r\nChannel: PJSIP/victim'


@pytest.fixture
async def fake() -> AsyncIterator[FakeAMIServer]:
    async with FakeAMIServer(USER, SECRET) as server:
        yield server


@pytest.fixture
async def ours(fake: FakeAMIServer) -> AsyncIterator[AMIClient]:
    client = AMIClient(
        "127.0.0.1",
        fake.port,
        USER,
        SECRET,
        action_timeout=1.0,
        ping_interval=0.1,
        backoff_initial=0.01,
        backoff_max=0.05,
    )
    async with client:
        await asyncio.wait_for(client.connected.wait(), 2)
        yield client


@pytest.fixture
async def peer(fake: FakeAMIServer) -> AsyncIterator[Manager]:
    """A logged-in panoramisk Manager on the fake, torn down without leaking transports."""
    manager = Manager(
        host="127.0.0.1",
        port=fake.port,
        username=USER,
        secret=SECRET,
        ping_delay=60,
        ping_interval=60,
        reconnect_timeout=0,
        loop=asyncio.get_running_loop(),
    )
    manager.connect()
    async with asyncio.timeout(2):
        await fake.wait_until(lambda: fake.stats.logins >= 1)
        while not manager.authenticated:  # noqa: ASYNC110 - panoramisk has no event for it
            await asyncio.sleep(0.005)
    yield manager
    manager.connect = lambda *a, **k: None  # stop its reconnect loop before closing
    manager.close()
    await fake.drop_connections()
    await asyncio.sleep(0.01)


async def until(pred: Callable[[], bool]) -> None:
    """Poll client-side state (it has no event for every condition a test waits on)."""
    async with asyncio.timeout(2.0):
        while not pred():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


# ---------------------------------------------------------------- 1. handler exception


async def test_handler_exception_keeps_link_ours(fake: FakeAMIServer, ours: AMIClient) -> None:
    seen: list[str] = []

    def handler(event: AMIMessage) -> None:
        seen.append(event["Uniqueid"])
        raise RuntimeError("bug in a service handler")

    ours.add_handler(handler, filter="UserEvent")
    await fake.push_event("UserEvent", Uniqueid="1")
    await fake.push_event("UserEvent", Uniqueid="2")
    await until(lambda: len(seen) == 2)
    await ours.action("Ping")
    assert fake.stats.connections == 1 and ours.generation == 1


async def test_handler_exception_closes_link_panoramisk(fake: FakeAMIServer, peer: Manager) -> None:
    def handler(manager: Manager, event: Any) -> None:
        raise RuntimeError("bug in a service handler")

    peer.register_event("UserEvent", handler)
    await fake.push_event("UserEvent", Uniqueid="1")
    # The defect: data_received raised, asyncio closed the transport, panoramisk reconnected.
    await until(lambda: fake.stats.disconnects >= 1)
    await until(lambda: fake.stats.connections >= 2)


# ---------------------------------------------------------------- 2. replay after reconnect


def _swallow_first_originate(fake: FakeAMIServer) -> None:
    """The first Originate gets no answer (the link dies before Asterisk answers)."""

    def handler(session: Any, action: AMIMessage) -> list[Any] | None:
        if action.get("Action") == "Originate" and len(fake.actions_named("Originate")) == 1:
            return []
        return None

    fake.handler = handler


async def test_no_replay_after_reconnect_ours(fake: FakeAMIServer, ours: AMIClient) -> None:
    _swallow_first_originate(fake)
    task = asyncio.create_task(ours.action("Originate", Channel="PJSIP/9876543210@trunk"))
    await fake.wait_for_action("Originate")
    await fake.drop_connections()
    with pytest.raises(AMIDisconnected):
        await task
    await until(lambda: ours.generation == 2)
    await ours.action("Ping")
    await asyncio.sleep(0.1)
    assert len(fake.actions_named("Originate")) == 1  # the citizen is dialled once


async def test_replay_after_reconnect_panoramisk(fake: FakeAMIServer, peer: Manager) -> None:
    _swallow_first_originate(fake)
    future = peer.send_action(
        {"Action": "Originate", "Channel": "PJSIP/9876543210@trunk", "Async": "true"}
    )
    first = await asyncio.wait_for(fake.wait_for_action("Originate"), 2)
    await fake.drop_connections()
    # The defect: after re-login + FullyBooted, panoramisk sends the same Originate again.
    second = await asyncio.wait_for(fake.wait_for_action("Originate", count=2), 3)
    assert first.action_id == second.action_id
    assert len(fake.actions_named("Originate")) == 2  # the citizen's phone rings twice
    # (panoramisk then even crashes on the answer: KeyError 'async' in Action.multi.)
    future.cancel()


# ---------------------------------------------------------------- 3. CR/LF escaping


async def test_crlf_refused_ours(fake: FakeAMIServer, ours: AMIClient) -> None:
    with pytest.raises(ValueError):
        await ours.action("Originate", Channel="PJSIP/1@trunk", CallerID=INJECTED)
    await ours.action("Ping")
    assert fake.actions_named("Originate") == [] and fake.actions_named("Hangup") == []


async def test_crlf_injected_panoramisk(fake: FakeAMIServer, peer: Manager) -> None:
    peer.send_action({"Action": "Originate", "Channel": "PJSIP/1@trunk", "CallerID": INJECTED})
    # The defect: the value's CR/LF become a second action, chosen by whoever set CallerID.
    hangup = await asyncio.wait_for(fake.wait_for_action("Hangup"), 2)
    assert hangup["Channel"] == "PJSIP/victim"


# ---------------------------------------------------------------- 4. pings never checked


async def test_dead_link_detected_ours(fake: FakeAMIServer, ours: AMIClient) -> None:
    fake.silent = True
    started = time.monotonic()
    await until(lambda: not ours.connected.is_set())
    assert time.monotonic() - started < 1.0
    fake.silent = False
    await until(lambda: ours.generation == 2)


async def test_dead_link_unnoticed_panoramisk(fake: FakeAMIServer) -> None:
    # ping_interval is int() in panoramisk: 1 s is its fastest watchdog.
    manager = Manager(
        host="127.0.0.1",
        port=fake.port,
        username=USER,
        secret=SECRET,
        ping_delay=1,
        ping_interval=1,
        reconnect_timeout=0,
        loop=asyncio.get_running_loop(),
    )
    manager.connect()
    try:
        await asyncio.wait_for(fake.wait_until(lambda: fake.stats.logins >= 1), 2)
        fake.silent = True
        await asyncio.wait_for(fake.wait_for_action("Ping", count=2), 3)
        # The defect: two pings unanswered, yet panoramisk still thinks it is connected and
        # has not reconnected; actions would go into a dead link.
        assert manager._connected and fake.stats.connections == 1
        assert fake.stats.disconnects == 0
    finally:
        manager.connect = lambda *a, **k: None
        manager.close()
        await fake.drop_connections()
        await asyncio.sleep(0.01)


# ---------------------------------------------------------------- 5. actions hang when down


async def test_action_fails_fast_when_down_ours(fake: FakeAMIServer, ours: AMIClient) -> None:
    fake.pause_accepting()
    await fake.drop_connections()
    await until(lambda: not ours.connected.is_set())
    started = time.monotonic()
    with pytest.raises(AMIDisconnected):
        await ours.action("QueueStatus")
    assert time.monotonic() - started < 0.05


async def test_action_hangs_when_down_panoramisk(fake: FakeAMIServer, peer: Manager) -> None:
    fake.pause_accepting()
    peer.reconnect_timeout = 1  # avoid a busy reconnect loop while the server is down
    await fake.drop_connections()
    await asyncio.sleep(0.05)
    future = peer.send_action({"Action": "QueueStatus"})
    # The defect: no error, no timeout; the caller waits forever.
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await future
    future.cancel()


# ---------------------------------------------------------------- 6. QueueAdd hangs


async def test_queue_add_returns_ours(fake: FakeAMIServer, ours: AMIClient) -> None:
    resp = await asyncio.wait_for(
        ours.action("QueueAdd", Queue="helpline", Interface="PJSIP/agent0001"), 1
    )
    assert resp.message == "Added interface to queue"


async def test_queue_add_hangs_panoramisk(fake: FakeAMIServer, peer: Manager) -> None:
    future = peer.send_action(
        {"Action": "QueueAdd", "Queue": "helpline", "Interface": "PJSIP/agent0001"}
    )
    await asyncio.wait_for(fake.wait_for_action("QueueAdd"), 2)
    assert "PJSIP/agent0001" in fake.queues["helpline"]  # Asterisk did it and answered...
    # The defect: "Added interface to queue" matches panoramisk's "is a list" text heuristic,
    # so it waits for list events that never come.
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await future
    future.cancel()


# ---------------------------------------------------------------- 7. per-chunk decoding


async def _push_split(fake: FakeAMIServer) -> None:
    cut = HINDI_EVENT.index("मे".encode()) + 1  # inside a 3-byte Devanagari letter
    await fake.push_raw(HINDI_EVENT[:cut])
    await asyncio.sleep(0.05)
    await fake.push_raw(HINDI_EVENT[cut:])


async def test_devanagari_split_ours(fake: FakeAMIServer, ours: AMIClient) -> None:
    sub = ours.subscribe(filter="Newchannel")
    await _push_split(fake)
    event = await asyncio.wait_for(sub.get(), 1)
    assert event["CallerIDName"] == "रमेश कुमार"


async def test_devanagari_split_corrupted_panoramisk(fake: FakeAMIServer, peer: Manager) -> None:
    got: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    peer.register_event("Newchannel", lambda m, e: got.set_result(e["CallerIDName"]))
    await _push_split(fake)
    name = await asyncio.wait_for(got, 1)
    # The defect: each TCP chunk is decoded alone with errors="ignore": bytes are dropped.
    assert name != "रमेश कुमार"
    assert len(name.encode()) < len("रमेश कुमार".encode())


def test_devanagari_split_parser_level() -> None:
    """The same split, sans-I/O, at every byte of the name."""
    name = "रमेश कुमार".encode()
    start = HINDI_EVENT.index(name)
    for cut in range(start, start + len(name)):
        parser = AMIParser(expect_greeting=False)
        parser.feed(HINDI_EVENT[:cut])
        parser.feed(HINDI_EVENT[cut:])
        msg = parser.next_event()
        assert isinstance(msg, AMIMessage) and msg["CallerIDName"] == "रमेश कुमार"
