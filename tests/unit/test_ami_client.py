"""AMIClient against the loopback FakeAMIServer: login, actions, lists, timeouts, reconnect,
watchdog, fan-out, hooks, cancellation."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable

import pytest

from core.protocols.ami import AMIMessage
from core.transport.ami_client import (
    AMIActionError,
    AMIAuthError,
    AMIClient,
    AMIDeadLink,
    AMIDisconnected,
    AMISubscriptionClosed,
    AMITimeout,
    Subscription,
)
from core.transport.fake_ami import FakeAMIServer, FakeAMISession, Reply

USER, SECRET = "helpline_queue_manager", "s3cret"


def make_client(fake: FakeAMIServer, **kw: float | int | str) -> AMIClient:
    opts: dict[str, float | int | str] = {
        "action_timeout": 1.0,
        "ping_interval": 0.2,
        "connect_timeout": 1.0,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
        "boot_wait": 0.5,
    }
    opts.update(kw)
    return AMIClient("127.0.0.1", fake.port, USER, SECRET, **opts)  # type: ignore[arg-type]


@pytest.fixture
async def fake() -> AsyncIterator[FakeAMIServer]:
    async with FakeAMIServer(USER, SECRET) as server:
        yield server


@pytest.fixture
async def ami(fake: FakeAMIServer) -> AsyncIterator[AMIClient]:
    async with make_client(fake) as client:
        async with asyncio.timeout(2):
            await client.connected.wait()
        yield client


async def until(pred: Callable[[], bool]) -> None:
    """Poll client-side state (it has no event for every condition a test waits on)."""
    async with asyncio.timeout(2.0):
        while not pred():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


# ------------------------------------------------------------------ login and state


async def test_login_sets_state(fake: FakeAMIServer, ami: AMIClient) -> None:
    async with asyncio.timeout(1):
        await ami.fully_booted.wait()
    assert ami.generation == 1 and ami.server_version == "11.0.0"
    login = fake.actions_named("Login")[0]
    assert login["Username"] == USER and login["Events"] == "on"
    assert login.action_id is not None and login.action_id.endswith("-1")
    assert "connected" in repr(ami)


async def test_auth_failure_is_reported_and_backed_off(
    fake: FakeAMIServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = AMIClient("127.0.0.1", fake.port, USER, "wrong", backoff_initial=0.05, backoff_max=0.1)
    async with client:
        await until(lambda: client.stats.login_failures >= 2)
        assert not client.connected.is_set()
        assert isinstance(client.last_error, AMIAuthError)
        assert "Authentication failed" in str(client.last_error)
        await asyncio.sleep(0.3)
        # Backed off: a handful of attempts, not a tight loop.
        assert client.stats.connect_attempts <= 10
    assert any("refused" in r.getMessage() for r in caplog.records)


async def test_connection_refused_backs_off(fake: FakeAMIServer) -> None:
    fake.pause_accepting()
    client = make_client(fake)
    async with client:
        await asyncio.sleep(0.3)
        assert 2 <= client.stats.connect_attempts <= 40
        assert isinstance(client.last_error, OSError)
        await fake.resume_accepting()
        async with asyncio.timeout(2):
            await client.connected.wait()


def test_backoff_is_capped_with_jitter() -> None:
    client = AMIClient("h", 1, "u", "s", backoff_initial=0.5, backoff_max=30, rng=random.Random(1))
    delays = [client._backoff(n) for n in range(60)]
    assert all(0 < d <= 30 for d in delays)
    assert 0.25 <= delays[0] <= 0.5 and delays[-1] >= 15
    assert len({round(d, 6) for d in delays[10:]}) > 1  # jittered, not a fixed cap


async def test_greeting_missing_times_out_and_retries(fake: FakeAMIServer) -> None:
    fake.silent = True  # no greeting at all
    client = make_client(fake, connect_timeout=0.1)
    async with client:
        await until(lambda: client.stats.connect_attempts >= 2)
        assert isinstance(client.last_error, AMITimeout)
        fake.silent = False
        async with asyncio.timeout(2):
            await client.connected.wait()


# ------------------------------------------------------------------ actions


async def test_action_and_error(fake: FakeAMIServer, ami: AMIClient) -> None:
    resp = await ami.action("QueueAdd", Queue="helpline", Interface="PJSIP/agent0001")
    assert resp.message == "Added interface to queue"
    assert "PJSIP/agent0001" in fake.queues["helpline"]
    with pytest.raises(AMIActionError) as err:
        await ami.action("QueueAdd", {"Queue": "helpline", "Interface": "PJSIP/agent0001"})
    assert err.value.message == "Unable to add interface: Already there"
    assert err.value.response.is_error and err.value.action == "QueueAdd"
    with pytest.raises(AMIActionError, match="Invalid/unknown command"):
        await ami.action("NoSuchAction")
    assert ami.connected.is_set()


async def test_repeated_fields_and_kwargs(fake: FakeAMIServer, ami: AMIClient) -> None:
    await ami.action(
        "Originate",
        [("Channel", "PJSIP/9876543210@trunk"), ("Variable", "A=1"), ("Variable", "B=2")],
        Context="outbound",
        Priority=1,
    )
    sent = fake.actions_named("Originate")[0]
    assert sent.getall("Variable") == ["A=1", "B=2"]
    assert sent["Context"] == "outbound" and sent["Priority"] == "1"


async def test_action_list_queue_status(fake: FakeAMIServer, ami: AMIClient) -> None:
    for i in range(3):
        await ami.action("QueueAdd", Queue="helpline", Interface=f"PJSIP/agent000{i}")
    await ami.action("QueuePause", Queue="helpline", Interface="PJSIP/agent0001", Paused="true")
    fake.entries["helpline"].append(
        {"Channel": "PJSIP/trunk-1", "Uniqueid": "1.1", "CallerIDName": "रमेश कुमार"}
    )
    events = await ami.action_list("QueueStatus", Queue="helpline")
    assert [e.name for e in events] == [
        "QueueParams",
        "QueueMember",
        "QueueMember",
        "QueueMember",
        "QueueEntry",
    ]
    assert [e["Paused"] for e in events[1:4]] == ["0", "1", "0"]
    assert events[4]["CallerIDName"] == "रमेश कुमार"


async def test_action_list_core_show_channels(fake: FakeAMIServer, ami: AMIClient) -> None:
    assert await ami.action_list("CoreShowChannels") == []
    for i in range(50):
        fake.add_channel(Channel=f"PJSIP/trunk-{i:08x}", Uniqueid=f"1.{i}", CallerIDName="सीता")
    events = await ami.action_list("CoreShowChannels")
    assert len(events) == 50 and events[7]["Uniqueid"] == "1.7"
    assert events[7]["CallerIDName"] == "सीता"


async def test_command_output(ami: AMIClient) -> None:
    resp = await ami.action("Command", Command="core show version")
    assert resp.output[0].startswith("Asterisk 22")
    with pytest.raises(AMIActionError) as err:
        await ami.action("Command", Command="bogus")
    assert err.value.response.output[0].startswith("No such command")


async def test_injection_refused_before_sending(fake: FakeAMIServer, ami: AMIClient) -> None:
    before = len(fake.actions)
    with pytest.raises(ValueError):
        await ami.action("Originate", CallerID='"x" <1>\r\n\r\nAction: Hangup\r\nChannel: A')
    await ami.action("Ping")
    assert [a["Action"] for a in fake.actions[before:]] == ["Ping"]


async def test_action_timeout_and_late_response_ignored(fake: FakeAMIServer) -> None:
    hold = asyncio.Event()

    async def slow(session: FakeAMISession, action: AMIMessage) -> Reply | None:
        if action.get("Action") == "QueueStatus":
            await hold.wait()
        return None

    fake.handler = slow
    async with make_client(fake) as ami:
        await ami.connected.wait()
        started = time.monotonic()
        with pytest.raises(AMITimeout):
            await ami.action_list("QueueStatus", response_timeout=0.1)
        assert time.monotonic() - started < 0.5
        sub = ami.subscribe()
        hold.set()  # the late list arrives now: swallowed, not fanned out
        await ami.action("Ping")
        assert ami.connected.is_set() and ami.generation == 1
        assert sub.qsize() == 0


async def test_action_when_disconnected_fails_fast(fake: FakeAMIServer) -> None:
    client = make_client(fake)
    started = time.monotonic()
    with pytest.raises(AMIDisconnected):
        await client.action("Ping")  # never started
    async with client:
        await client.connected.wait()
        fake.pause_accepting()
        await fake.drop_connections()
        await until(lambda: not client.connected.is_set())
        with pytest.raises(AMIDisconnected):
            await client.action("QueueAdd", Queue="helpline", Interface="PJSIP/agent0001")
    assert time.monotonic() - started < 1.5


async def test_pending_actions_fail_on_disconnect_and_are_not_resent(
    fake: FakeAMIServer,
) -> None:
    fake.handler = lambda s, a: [] if a.get("Action") == "Originate" else None
    async with make_client(fake) as ami:
        await ami.connected.wait()
        task = asyncio.create_task(ami.action("Originate", Channel="PJSIP/9876543210@trunk"))
        await fake.wait_for_action("Originate")
        await fake.drop_connections()
        with pytest.raises(AMIDisconnected, match="not re-sent"):
            await task
        await until(lambda: ami.generation == 2)
        await ami.action("Ping")
        assert len(fake.actions_named("Originate")) == 1
        assert ami.stats.actions_failed_on_disconnect == 1


async def test_ping_watchdog_detects_dead_link(fake: FakeAMIServer) -> None:
    async with make_client(fake, ping_interval=0.05, ping_timeout=0.1) as ami:
        await ami.connected.wait()
        fake.silent = True
        started = time.monotonic()
        await until(lambda: not ami.connected.is_set())
        assert time.monotonic() - started < 0.6
        assert ami.stats.dead_links == 1
        assert isinstance(ami.last_error, AMIDeadLink)
        fake.silent = False
        await until(lambda: ami.generation == 2)


async def test_pings_are_sent_and_link_stays_up(fake: FakeAMIServer) -> None:
    async with make_client(fake, ping_interval=0.05) as ami:
        await ami.connected.wait()
        async with asyncio.timeout(2):
            await fake.wait_for_action("Ping", count=4)
        assert len(fake.actions_named("Ping")) >= 4
        assert ami.generation == 1 and ami.stats.dead_links == 0


# ------------------------------------------------------------------ events


async def test_subscription_filters(fake: FakeAMIServer, ami: AMIClient) -> None:
    by_name = ami.subscribe(filter="hangup")
    by_set = ami.subscribe(filter={"Newchannel", "Hangup"})
    by_pred = ami.subscribe(filter=lambda m: m.get("Uniqueid") == "2")
    everything = ami.subscribe()
    await fake.push_event("Newchannel", Uniqueid="1")
    await fake.push_event("Hangup", Uniqueid="2")
    await until(lambda: everything.qsize() == 2)
    assert [(await by_name.get())["Uniqueid"]] == ["2"]
    assert by_set.qsize() == 2 and by_pred.qsize() == 1
    first = everything.get_nowait()
    assert first is not None and first.name == "Newchannel"
    assert by_name.get_nowait() is None


def test_routes_by_name_follow_subscriptions_as_they_come_and_go() -> None:
    """_dispatch_all decides name filters once per name (sans-I/O: the client's read path only);
    a subscription made or closed between events, a predicate and a full queue still behave
    as when every filter was called per event, and invented names cannot grow the cache."""
    from core.protocols.ami import ActionTracker

    client = AMIClient("127.0.0.1", 5038, USER, SECRET, name="routes")
    tracker = ActionTracker()

    def event(name: str, uid: str) -> AMIMessage:
        return AMIMessage([("Event", name), ("Uniqueid", uid)])

    hangups = client.subscribe(filter=["HANGUP", "Newstate"])
    seen: list[str] = []
    pred = client.subscribe(filter=lambda m: seen.append(m.name) or m.name == "Newchannel")
    client._dispatch_all([event("Hangup", "1")], tracker)
    client._dispatch_all([event("Newchannel", "2")], tracker)
    late = client.subscribe(filter="hangup", maxsize=1)
    client._dispatch_all([event("hangup", "3")], tracker)
    client._dispatch_all([event("Hangup", "4")], tracker)  # late is full: dropped there
    hangups.close()
    client._dispatch_all([event("Hangup", "5")], tracker)
    assert [m["Uniqueid"] for m in list(hangups._items)] == ["1", "3", "4"]
    assert [m["Uniqueid"] for m in list(late._items)] == ["3"]
    assert late.dropped == 2 and late.needs_resync  # events 4 and 5
    assert [m["Uniqueid"] for m in list(pred._items)] == ["2"]
    assert seen == ["Hangup", "Newchannel", "hangup", "Hangup", "Hangup"]
    for i in range(3000):
        client._dispatch_all([event(f"Invented{i}", str(i))], tracker)
    assert len(client._routes) <= 1024
    assert client.stats.events == 3005


async def test_filter_exception_never_touches_link(fake: FakeAMIServer, ami: AMIClient) -> None:
    def bad(msg: AMIMessage) -> bool:
        raise RuntimeError("bug in a filter")

    broken = ami.subscribe(filter=bad)
    good = ami.subscribe()
    await fake.push_event("UserEvent", UserEvent="x")
    await until(lambda: good.qsize() == 1)
    assert broken.filter_errors == 1 and ami.connected.is_set()
    await ami.action("Ping")


async def test_slow_subscriber_never_blocks_reader(fake: FakeAMIServer, ami: AMIClient) -> None:
    slow = ami.subscribe(maxsize=10, name="slow")
    fast = ami.subscribe(maxsize=100_000)
    payload = {"Channel": "PJSIP/trunk", "CallerIDName": "रमेश कुमार", "Pad": "x" * 200}
    for i in range(2000):
        await fake.push_event("Newstate", payload, Uniqueid=str(i))
    await until(lambda: fast.qsize() == 2000)
    assert slow.qsize() == 10 and slow.dropped == 1990 and slow.needs_resync
    assert slow.ack_resync() and not slow.needs_resync
    assert fake.stats.writetimeout_drops == 0 and ami.generation == 1
    assert "slow" in repr(slow)


async def test_handler_exception_is_contained(fake: FakeAMIServer, ami: AMIClient) -> None:
    seen: list[str] = []

    async def handler(event: AMIMessage) -> None:
        if event["Uniqueid"] == "1":
            raise RuntimeError("service bug")
        seen.append(event["Uniqueid"])

    sub = ami.add_handler(handler, filter="Hangup")
    sync_seen: list[str] = []
    ami.add_handler(lambda e: sync_seen.append(e.name), filter="Hangup")
    for uid in ("1", "2", "3"):
        await fake.push_event("Hangup", Uniqueid=uid)
    await until(lambda: len(seen) == 2 and len(sync_seen) == 3)
    assert seen == ["2", "3"] and sub.handler_errors == 1
    assert ami.connected.is_set() and ami.generation == 1


async def test_handlers_registered_before_start(fake: FakeAMIServer) -> None:
    client = make_client(fake)
    got: list[str] = []
    client.add_handler(lambda e: got.append(e.name), filter="FullyBooted")
    async with client:
        await until(lambda: got == ["FullyBooted"])


async def test_subscription_resync_on_reconnect_and_close(fake: FakeAMIServer) -> None:
    async with make_client(fake) as ami:
        await ami.connected.wait()
        sub = ami.subscribe(filter="FullyBooted")
        await fake.drop_connections()
        await until(lambda: ami.generation == 2)
        assert sub.needs_resync and not ami.subscribe().needs_resync
        await until(lambda: sub.qsize() == 1)
        sub.close()
        sub.close()
        # Queued events remain readable after close, then iteration ends.
        assert [e.name async for e in sub] == ["FullyBooted"]
        with pytest.raises(AMISubscriptionClosed):
            await sub.get()


async def test_close_ends_iteration(fake: FakeAMIServer) -> None:
    async with make_client(fake) as ami:
        await ami.connected.wait()
        sub = ami.subscribe()

        async def consume() -> list[str]:
            return [e.name async for e in sub]

        task = asyncio.create_task(consume())
        await fake.push_event("Hangup", Uniqueid="9")
        await until(lambda: sub.delivered == 1)
    assert await task == ["Hangup"]
    with pytest.raises(RuntimeError):
        await ami.start()


def test_subscription_rejects_bad_size() -> None:
    with pytest.raises(ValueError):
        Subscription(0)


async def test_devanagari_split_across_tcp_reads(fake: FakeAMIServer, ami: AMIClient) -> None:
    sub = ami.subscribe(filter="Newchannel")
    data = "Event: Newchannel\r\nCallerIDName: रमेश कुमार\r\nUniqueid: 1.1\r\n\r\n".encode()
    cut = data.index("मे".encode()) + 1
    await fake.push_raw(data[:cut])
    await asyncio.sleep(0.05)
    await fake.push_raw(data[cut:])
    event = await asyncio.wait_for(sub.get(), 1)
    assert event["CallerIDName"] == "रमेश कुमार"


async def test_protocol_error_is_counted_and_link_survives(
    fake: FakeAMIServer, ami: AMIClient
) -> None:
    sub = ami.subscribe()
    await fake.push_raw(b"Event: Huge\r\nX: " + b"z" * 100_000 + b"\r\n\r\n")
    await fake.push_event("After")
    event = await asyncio.wait_for(sub.get(), 1)
    assert event.name == "After" and ami.stats.protocol_errors == 1
    await ami.action("Ping")


async def test_unsolicited_response_is_ignored(fake: FakeAMIServer, ami: AMIClient) -> None:
    await fake.push_raw(b"Response: Success\r\nActionID: stranger-1\r\n\r\n")
    await ami.action("Ping")
    assert ami.stats.unsolicited == 1


# ------------------------------------------------------------------ hooks and cancellation


async def test_on_connect_hooks_reconcile_after_every_login(fake: FakeAMIServer) -> None:
    runs: list[tuple[int, int, bool]] = []

    async def reconcile(client: AMIClient) -> None:
        members = await client.action_list("QueueStatus")
        runs.append((client.generation, len(members), client.fully_booted.is_set()))

    async def broken(client: AMIClient) -> None:
        raise RuntimeError("hook bug")

    client = make_client(fake)
    client.add_on_connect(broken)
    client.add_on_connect(reconcile)
    async with client:
        await until(lambda: len(runs) == 1)
        await fake.drop_connections()
        await until(lambda: len(runs) == 2)
    assert runs == [(1, 1, True), (2, 1, True)]
    assert client.stats.hook_errors == 2 and client.stats.disconnects == 2


async def test_hooks_run_without_fully_booted_after_boot_wait(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with FakeAMIServer(USER, SECRET, fully_booted=False) as fake:
        ran = asyncio.Event()

        async def hook(client: AMIClient) -> None:
            ran.set()

        client = make_client(fake, boot_wait=0.05)
        client.add_on_connect(hook)
        async with client:
            async with asyncio.timeout(1):
                await ran.wait()
            assert not client.fully_booted.is_set()
    assert any("FullyBooted" in r.getMessage() for r in caplog.records)


async def test_cancelled_caller_is_not_swallowed(fake: FakeAMIServer) -> None:
    fake.handler = lambda s, a: [] if a.get("Action") == "Originate" else None
    async with make_client(fake) as ami:
        await ami.connected.wait()
        task = asyncio.create_task(ami.action("Originate", Channel="PJSIP/1@trunk"))
        await fake.wait_for_action("Originate")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await ami.action("Ping")


async def test_run_under_a_task_group_is_cancellable(fake: FakeAMIServer) -> None:
    client = make_client(fake)
    task = asyncio.create_task(client.run())
    await asyncio.wait_for(client.connected.wait(), 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not client.connected.is_set()


async def test_close_during_cancellation_propagates(fake: FakeAMIServer) -> None:
    client = make_client(fake)
    await client.start()
    await asyncio.wait_for(client.connected.wait(), 2)

    async def closer() -> None:
        await client.close()

    task = asyncio.create_task(closer())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await client.close()


async def test_close_logs_off(fake: FakeAMIServer) -> None:
    async with make_client(fake) as ami:
        await ami.connected.wait()
    await fake.wait_for_action("Logoff")
    with pytest.raises(AMIDisconnected):
        await ami.action("Ping")


@pytest.fixture(autouse=True)
def _quiet_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="core.transport.ami_client")
