"""Witnesses of the pinned peer: panoramisk 1.4's AMI defects, shown on the same fake server.

panoramisk 1.4 is the peer of the benchmarks (``python -m bench ami``, docs/capacity.md) and
the reason the client exists; it is pinned in the dev extras and is not a dependency of the
helpline. Each test here asserts that a defect HAPPENS with it (DESIGN.md), next to the test of
ours in test_ami_regressions.py. If one fails, panoramisk fixed the defect: rejoice, and
update DESIGN.md and the benchmarks' peer notes; these tests are about the peer, not our code.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from panoramisk import Manager

from core.transport.fake_ami import FakeAMIServer
from tests.unit.test_ami_regressions import (
    INJECTED,
    SECRET,
    USER,
    _push_split,
    _swallow_first_originate,
    fake,
    until,
)

__all__ = ["fake"]  # the fake server fixture, shared with test_ami_regressions.py


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


async def test_handler_exception_closes_link_panoramisk(fake: FakeAMIServer, peer: Manager) -> None:
    def handler(manager: Manager, event: Any) -> None:
        raise RuntimeError("bug in a service handler")

    peer.register_event("UserEvent", handler)
    await fake.push_event("UserEvent", Uniqueid="1")
    # The defect: data_received raised, asyncio closed the transport, panoramisk reconnected.
    await until(lambda: fake.stats.disconnects >= 1)
    await until(lambda: fake.stats.connections >= 2)


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


async def test_crlf_injected_panoramisk(fake: FakeAMIServer, peer: Manager) -> None:
    peer.send_action({"Action": "Originate", "Channel": "PJSIP/1@trunk", "CallerID": INJECTED})
    # The defect: the value's CR/LF become a second action, chosen by whoever set CallerID.
    hangup = await asyncio.wait_for(fake.wait_for_action("Hangup"), 2)
    assert hangup["Channel"] == "PJSIP/victim"


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


async def test_action_hangs_when_down_panoramisk(fake: FakeAMIServer, peer: Manager) -> None:
    fake.pause_accepting()
    peer.reconnect_timeout = 1  # avoid a busy reconnect loop while the server is down
    await fake.drop_connections()
    await until(lambda: not peer._connected)  # it saw the link go
    future = peer.send_action({"Action": "QueueStatus"})
    # The defect: no error, no timeout; the caller waits forever.
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await future
    future.cancel()


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


async def test_devanagari_split_corrupted_panoramisk(fake: FakeAMIServer, peer: Manager) -> None:
    got: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    peer.register_event("Newchannel", lambda m, e: got.set_result(e["CallerIDName"]))
    await _push_split(fake)
    name = await asyncio.wait_for(got, 1)
    # The defect: each TCP chunk is decoded alone with errors="ignore": bytes are dropped.
    assert name != "रमेश कुमार"
    assert len(name.encode()) < len("रमेश कुमार".encode())
