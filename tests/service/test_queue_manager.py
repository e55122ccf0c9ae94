"""The queue manager against a real PostgreSQL and the fake AMI server: call records from
events (idempotent), agent intent applied to app_queue, and reconciliation after a reconnect."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.models import AgentSession, Call, QueueEvent, SeatStatus, User
from core.domain.credentials import hash_password
from core.domain.phone import RAW_CALLER_ID_LENGTH, TRUNCATED_MARK
from core.domain.queues import all_queues
from core.transport.ami_client import AMIClient
from core.transport.fake_ami import FakeAMIServer
from helpline.seed import seed_seats
from queue_manager.service import QueueManager
from tests import waiting

CALLER = "1732870000.11"


@dataclass
class Harness:
    fake: FakeAMIServer
    ami: AMIClient
    manager: QueueManager
    sessions: async_sessionmaker[AsyncSession]


@contextlib.asynccontextmanager
async def running_manager(
    db_settings: Settings, sessions: async_sessionmaker[AsyncSession], **ami_options: Any
) -> AsyncIterator[Harness]:
    """Three seats and an agent user; the queue manager running against the fake AMI server."""
    async with sessions() as session:
        await seed_seats(session, 3)
        session.add(
            User(username="a1", full_name="A", role="agent", password_hash=hash_password("x"))
        )
        await session.commit()
    async with FakeAMIServer(
        username="helpline_queue_manager", secret="s", queues=all_queues("helpline")
    ) as fake:
        options: dict[str, Any] = {
            "ping_interval": 0.5,
            "backoff_initial": 0.05,
            "backoff_max": 0.2,
            **ami_options,
        }
        ami = AMIClient("127.0.0.1", fake.port, "helpline_queue_manager", "s", **options)
        manager = QueueManager(db_settings, ami, sessions)
        async with ami:
            task = asyncio.create_task(manager.run())
            async with asyncio.timeout(5):
                await manager.reconciled.wait()
            try:
                yield Harness(fake, ami, manager, sessions)
            finally:
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task


@pytest.fixture
async def harness(
    db_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Harness]:
    async with running_manager(db_settings, sessions) as running:
        yield running


async def wait_for(condition_sql: str, sessions: async_sessionmaker[AsyncSession]) -> None:
    from tests import waiting

    async def holds() -> bool:
        async with sessions() as session:
            return bool((await session.execute(text(condition_sql))).scalar())

    await waiting.wait_for(holds, 5, interval=0.05, what=condition_sql)


CALL_EVENTS: list[tuple[str, dict[str, str]]] = [
    (
        "Newchannel",
        {
            "Channel": "PJSIP/trunk-00000001",
            "Uniqueid": CALLER,
            "Linkedid": CALLER,
            "Context": "from-trunk",
            "Exten": "1076",
            "CallerIDNum": "+919876543210",
            "CallerIDName": "रमेश कुमार",
            "Timestamp": "1732870000.100",
        },
    ),
    ("Newstate", {"Uniqueid": CALLER, "ChannelStateDesc": "Up", "Timestamp": "1732870000.200"}),
    ("VarSet", {"Uniqueid": CALLER, "Variable": "IVR_PATH", "Value": "welcome>main_menu>key:1"}),
    ("VarSet", {"Uniqueid": CALLER, "Variable": "IVR_LANG", "Value": "hi"}),
    ("VarSet", {"Uniqueid": CALLER, "Variable": "IVR_DONE", "Value": "1"}),
    (
        "QueueCallerJoin",
        {"Uniqueid": CALLER, "Queue": "helpline", "Position": "1", "Timestamp": "1732870010.000"},
    ),
    (
        "AgentCalled",
        {
            "Uniqueid": CALLER,
            "Queue": "helpline",
            "Interface": "Local/agent0001@seat-phones",
            "Timestamp": "1732870010.100",
        },
    ),
    (
        "AgentConnect",
        {
            "Uniqueid": CALLER,
            "Queue": "helpline",
            "Interface": "Local/agent0001@seat-phones",
            "HoldTime": "3",
            "Timestamp": "1732870013.000",
        },
    ),
    ("QueueCallerLeave", {"Uniqueid": CALLER, "Queue": "helpline", "Timestamp": "1732870013.000"}),
    (
        "AgentComplete",
        {
            "Uniqueid": CALLER,
            "Queue": "helpline",
            "Interface": "Local/agent0001@seat-phones",
            "Reason": "caller",
            "Timestamp": "1732870100.000",
        },
    ),
    (
        "Hangup",
        {
            "Channel": "PJSIP/trunk-00000001",
            "Uniqueid": CALLER,
            "Linkedid": CALLER,
            "Context": "from-trunk",
            "Cause": "16",
            "Timestamp": "1732870100.000",
        },
    ),
]


async def test_events_make_one_complete_call_record_even_when_duplicated(
    harness: Harness,
) -> None:
    for _ in range(2):  # every event twice: nothing may change the second time
        for name, fields in CALL_EVENTS:
            await harness.fake.push_event(name, fields)
    await wait_for(
        f"SELECT count(*) = 5 FROM queue_events WHERE uniqueid = '{CALLER}'", harness.sessions
    )
    await wait_for(
        f"SELECT disposition IS NOT NULL FROM calls WHERE uniqueid='{CALLER}'", harness.sessions
    )
    async with harness.sessions() as session:
        calls = (await session.execute(select(Call))).scalars().all()
        assert len(calls) == 1
        call = calls[0]
        assert call.caller_number == "9876543210" and call.caller_number_raw == "+919876543210"
        assert call.caller_name == "रमेश कुमार"
        assert call.dnis == "1076"
        assert (
            call.ivr_done and call.ivr_path == "welcome>main_menu>key:1" and call.ivr_lang == "hi"
        )
        assert call.queue == "helpline" and call.agent_seat == "agent0001"
        assert call.answered_at is not None and call.ended_at is not None
        assert call.queue_joined_at is not None and call.agent_connected_at is not None
        assert (call.agent_connected_at - call.queue_joined_at).total_seconds() == 3.0
        assert call.disposition == "answered" and call.hangup_cause == 16
        events = (await session.execute(select(QueueEvent.event))).scalars().all()
        assert sorted(events) == sorted(
            ["QueueCallerJoin", "AgentCalled", "AgentConnect", "QueueCallerLeave", "AgentComplete"]
        )


async def test_a_hangup_alone_still_leaves_a_record(harness: Harness) -> None:
    """We were disconnected when the call began: its Hangup still creates the row."""
    await harness.fake.push_event(
        "Hangup",
        {
            "Channel": "PJSIP/trunk-00000009",
            "Uniqueid": "1732870099.9",
            "Linkedid": "1732870099.9",
            "Context": "from-trunk",
            "Exten": "1076",
            "CallerIDNum": "09876500000",
            "Cause": "16",
        },
    )
    await wait_for(
        "SELECT count(*) = 1 FROM calls WHERE disposition = 'unanswered'", harness.sessions
    )


def raw_event(name: str, fields: dict[str, bytes]) -> bytes:
    """An AMI event as bytes, so a value can hold what no str encodes (invalid UTF-8)."""
    lines = [b"Event: " + name.encode()] + [k.encode() + b": " + v for k, v in fields.items()]
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def test_any_caller_id_keeps_the_call_record(harness: Harness) -> None:
    """10 KB of NUL, bare CR, invalid UTF-8 and Devanagari as CallerIDNum and CallerIDName:
    the call still gets its row and its queue events (a caller ID longer than the column
    used to lose both), and the caller counts as withheld."""
    hostile = b"+91\x00987\r65\xff\xfe43210" + "९८७".encode() + b"\xc3" + b"9\x01" * 5000
    uniqueid = b"1732870077.7"
    common = {"Uniqueid": uniqueid, "Linkedid": uniqueid, "CallerIDNum": hostile}
    await harness.fake.push_raw(
        raw_event(
            "Newchannel",
            common
            | {
                "Channel": b"PJSIP/trunk-00000077",
                "Context": b"from-trunk",
                "Exten": b"1076" * 3000,
                "CallerIDName": hostile,
                "Timestamp": b"1732870077.000",
            },
        )
    )
    await harness.fake.push_raw(
        raw_event(
            "QueueCallerJoin",
            common | {"Queue": b"helpline", "Position": b"1", "Timestamp": b"1732870080.000"},
        )
    )
    await harness.fake.push_raw(
        raw_event(
            "Hangup",
            common | {"Context": b"from-trunk", "Cause": b"16", "Timestamp": b"1732870090.000"},
        )
    )
    await wait_for(
        "SELECT disposition = 'abandoned' FROM calls WHERE uniqueid = '1732870077.7'",
        harness.sessions,
    )
    async with harness.sessions() as session:
        call = (await session.execute(select(Call))).scalar_one()
        payload = (await session.execute(select(QueueEvent.payload))).scalar_one()
    assert call.caller_number is None and call.queue_joined_at is not None
    raw = call.caller_number_raw
    assert raw is not None and len(raw) == RAW_CALLER_ID_LENGTH and raw.endswith(TRUNCATED_MARK)
    assert raw.startswith("+91\\x00987\\r65\ufffd\ufffd43210९८७\ufffd9\\x01")
    assert call.caller_name is not None and len(call.caller_name) == 200
    assert call.dnis is not None and len(call.dnis) == 32
    assert payload["CallerIDNum"].startswith("+91\\x00987")


async def test_agent_intent_is_applied_and_reapplied_after_a_reconnect(
    harness: Harness,
) -> None:
    async with harness.sessions() as session:
        user_id = (await session.execute(select(User.id))).scalar_one()
        session.add(AgentSession(user_id=user_id, seat="agent0002"))
        await session.execute(text("SELECT pg_notify('agent_intent', 'agent0002')"))
        await session.commit()
    async with asyncio.timeout(5):
        await harness.fake.wait_until(
            lambda: "Local/agent0002@seat-phones" in harness.fake.queues["helpline"]
        )
    await wait_for("SELECT in_queue FROM seat_status WHERE seat = 'agent0002'", harness.sessions)

    # Asterisk restarts: app_queue forgets its dynamic members; we put the agent back.
    harness.fake.queues["helpline"].clear()
    generation = harness.ami.generation
    await harness.fake.drop_connections()
    async with asyncio.timeout(5):
        await harness.fake.wait_until(
            lambda: "Local/agent0002@seat-phones" in harness.fake.queues["helpline"]
        )
    assert harness.ami.generation > generation

    # Logout: the member goes.
    async with harness.sessions() as session:
        row = (await session.execute(select(AgentSession))).scalar_one()
        row.logged_out_at = func.now()
        await session.execute(text("SELECT pg_notify('agent_intent', 'agent0002')"))
        await session.commit()
    async with asyncio.timeout(5):
        await harness.fake.wait_until(
            lambda: "Local/agent0002@seat-phones" not in harness.fake.queues["helpline"]
        )
    await wait_for(
        "SELECT NOT in_queue FROM seat_status WHERE seat = 'agent0002'", harness.sessions
    )
    async with harness.sessions() as session:
        status = await session.get(SeatStatus, "agent0002")
        assert status is not None and status.agent_session_id is None


async def test_a_logout_during_a_whole_queue_reconciliation_is_not_undone(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resync's QueueStatus taken while the agent was still a member must not be recorded
    after the logout's own (the seat stayed "in queue" until the next reconnect: a CI flake
    of the test above). The resync is held between its QueueStatus and its write while the
    agent logs out."""
    member = "Local/agent0002@seat-phones"
    async with harness.sessions() as session:
        user_id = (await session.execute(select(User.id))).scalar_one()
        agent = AgentSession(user_id=user_id, seat="agent0002")
        session.add(agent)
        await session.execute(text("SELECT pg_notify('agent_intent', 'agent0002')"))
        await session.commit()
    await wait_for("SELECT in_queue FROM seat_status WHERE seat = 'agent0002'", harness.sessions)

    held, release = asyncio.Event(), asyncio.Event()
    sync_waiting = harness.manager._sync_waiting

    async def held_sync_waiting(*args: Any) -> None:
        held.set()
        await release.wait()
        await sync_waiting(*args)

    monkeypatch.setattr(harness.manager, "_sync_waiting", held_sync_waiting)
    resync = asyncio.create_task(harness.manager.reconcile(harness.ami))
    async with asyncio.timeout(5):
        await held.wait()
    async with harness.sessions() as session:
        await session.execute(
            update(AgentSession).where(AgentSession.id == agent.id).values(logged_out_at=func.now())
        )
        await session.execute(text("SELECT pg_notify('agent_intent', 'agent0002')"))
        await session.commit()
    # Unserialised, the logout was applied and recorded here, under the held resync.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(1):
            await harness.fake.wait_until(lambda: member not in harness.fake.queues["helpline"])
            await wait_for(
                "SELECT NOT in_queue FROM seat_status WHERE seat = 'agent0002'", harness.sessions
            )
    release.set()
    await resync

    async with asyncio.timeout(5):
        await harness.fake.wait_until(lambda: member not in harness.fake.queues["helpline"])
    await wait_for(
        "SELECT NOT in_queue FROM seat_status WHERE seat = 'agent0002'", harness.sessions
    )
    assert "helpline" not in harness.manager.live.seat("agent0002").members


async def test_lost_events_are_rebuilt_by_a_resync_from_asterisk(
    db_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A burst larger than the subscription drops events (here the caller's Hangup); the queue
    manager resyncs from CoreShowChannels instead of keeping the call open for ever."""
    async with running_manager(db_settings, sessions, event_queue_size=8) as h:
        name, fields = CALL_EVENTS[0]
        await h.fake.push_event(name, fields)
        await wait_for(f"SELECT count(*) = 1 FROM calls WHERE uniqueid = '{CALLER}'", h.sessions)
        burst = b"".join(
            raw_event("Newstate", {"Uniqueid": f"1732870001.{i}".encode(), "ChannelState": b"4"})
            for i in range(40)
        ) + raw_event("Hangup", {"Uniqueid": CALLER.encode(), "Cause": b"16"})
        assert h.manager.resyncs == 0
        await h.fake.push_raw(burst)  # one read: 41 events into a queue of 8
        await wait_for(
            f"SELECT ended_at IS NOT NULL FROM calls WHERE uniqueid = '{CALLER}'", h.sessions
        )
        assert h.manager.resyncs == 1
        assert h.manager.heartbeat_detail()["events_dropped"] >= 30


class DatabaseAway:
    """A session factory that fails as an unreachable PostgreSQL does while ``away`` is set."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self.away = False
        self.refused = 0

    def __call__(self) -> AsyncSession:
        if self.away:
            self.refused += 1
            raise ConnectionRefusedError(111, "Connection refused (the test's outage)")
        return self.sessions()


async def test_events_wait_for_the_database_and_are_recorded_when_it_returns(
    db_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """While PostgreSQL is away, a whole call's events are kept and recorded in order when it
    is back: the call answered, at its own times, not a Hangup-only "unanswered" row (what
    dropping the events that failed, then resyncing, left)."""
    database = DatabaseAway(sessions)
    async with running_manager(db_settings, database) as h:  # type: ignore[arg-type]
        database.away = True
        for name, fields in CALL_EVENTS:
            await h.fake.push_event(name, fields)
        await waiting.wait_for(lambda: database.refused >= 3, 5, what="events tried, refused")
        async with sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Call)) == 0
        database.away = False
        await wait_for(
            f"SELECT disposition = 'answered' FROM calls WHERE uniqueid = '{CALLER}'", sessions
        )
        async with sessions() as session:
            call = (await session.execute(select(Call))).scalar_one()
            assert call.queue_joined_at is not None and call.agent_seat == "agent0001"
            assert call.ended_at == datetime.fromtimestamp(1732870100, UTC)
            assert await session.scalar(select(func.count()).select_from(QueueEvent)) == 5
        assert h.manager.resyncs == 0  # nothing was lost, so nothing to rebuild


async def test_an_intent_that_met_a_database_outage_is_applied_when_it_returns(
    db_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """An agent's login signalled while the queue manager cannot reach PostgreSQL (its LISTEN
    link still up: a blip, a connection the server had just closed) puts the agent in the
    queue once the database answers, with no further signal or reconnect."""
    database = DatabaseAway(sessions)
    async with running_manager(db_settings, database) as h:  # type: ignore[arg-type]
        async with sessions() as session:
            user_id = (await session.execute(select(User.id))).scalar_one()
            session.add(AgentSession(user_id=user_id, seat="agent0002"))
            await session.commit()
        database.away = True
        refused = database.refused
        async with sessions() as session:
            await session.execute(text("SELECT pg_notify('agent_intent', 'agent0002')"))
            await session.commit()
        await asyncio.sleep(1.5)  # the intent is tried, refused, tried again
        assert database.refused > refused
        assert "Local/agent0002@seat-phones" not in h.fake.queues["helpline"]
        database.away = False
        async with asyncio.timeout(10):
            await h.fake.wait_until(
                lambda: "Local/agent0002@seat-phones" in h.fake.queues["helpline"]
            )


async def test_a_resync_waits_until_the_backlog_of_events_is_worked_off(
    db_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Events dropped while a backlog remains: the resync runs once the backlog is down to a
    tenth of the subscription, not beside it (a resync while events are still dropped rebuilds
    a state that is wrong again, and takes the time the consumer needs to catch up)."""
    database = DatabaseAway(sessions)
    async with running_manager(db_settings, database, event_queue_size=1000) as h:  # type: ignore[arg-type]
        backlog_at_resync: list[int] = []
        reconcile = h.manager.reconcile

        async def recording(ami: AMIClient) -> None:
            backlog_at_resync.append(h.manager._events.qsize())
            await reconcile(ami)

        h.manager.reconcile = recording  # type: ignore[method-assign,assignment]
        database.away = True
        await h.fake.push_event(*CALL_EVENTS[0])  # the batch that waits for the database
        await waiting.wait_for(lambda: database.refused >= 1, 5, what="a batch refused")
        burst = b"".join(
            raw_event("Newstate", {"Uniqueid": f"1732870002.{i}".encode(), "ChannelState": b"4"})
            for i in range(1500)
        )
        await h.fake.push_raw(burst)  # 1,000 queued behind the waiting batch, 500 dropped
        await waiting.wait_for(lambda: h.manager._events.qsize() == 1000, 5, what="a backlog")
        database.away = False
        await waiting.wait_for(lambda: h.manager.resyncs == 1, 10, what="the resync")
        assert h.manager.heartbeat_detail()["events_dropped"] >= 500
        assert backlog_at_resync and backlog_at_resync[0] <= 100
