"""One regression test per panoramisk 1.4 AMI defect (docs: shared DESIGN.md), run against our
code on the fake server. That each defect happens with panoramisk is witnessed in
test_ami_peer_witnesses.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

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
    # A replay would go out on the new link before this Ping, so its answer is the wait.
    await ours.action("Ping")
    assert len(fake.actions_named("Originate")) == 1  # the citizen is dialled once


# ---------------------------------------------------------------- 3. CR/LF escaping


async def test_crlf_refused_ours(fake: FakeAMIServer, ours: AMIClient) -> None:
    with pytest.raises(ValueError):
        await ours.action("Originate", Channel="PJSIP/1@trunk", CallerID=INJECTED)
    await ours.action("Ping")
    assert fake.actions_named("Originate") == [] and fake.actions_named("Hangup") == []


# ---------------------------------------------------------------- 4. pings never checked


async def test_dead_link_detected_ours(fake: FakeAMIServer, ours: AMIClient) -> None:
    fake.silent = True
    started = time.monotonic()
    await until(lambda: not ours.connected.is_set())
    assert time.monotonic() - started < 1.0
    fake.silent = False
    await until(lambda: ours.generation == 2)


# ---------------------------------------------------------------- 5. actions hang when down


async def test_action_fails_fast_when_down_ours(fake: FakeAMIServer, ours: AMIClient) -> None:
    fake.pause_accepting()
    await fake.drop_connections()
    await until(lambda: not ours.connected.is_set())
    started = time.monotonic()
    with pytest.raises(AMIDisconnected):
        await ours.action("QueueStatus")
    assert time.monotonic() - started < 0.05


# ---------------------------------------------------------------- 6. QueueAdd hangs


async def test_queue_add_returns_ours(fake: FakeAMIServer, ours: AMIClient) -> None:
    resp = await asyncio.wait_for(
        ours.action("QueueAdd", Queue="helpline", Interface="PJSIP/agent0001"), 1
    )
    assert resp.message == "Added interface to queue"


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
