"""The waiting room on PostgreSQL: the queue manager keeps a caller's place across the waiting
room's re-entries, positions and the re-entry point are ranked by that place, a callback is
stored once under concurrency (per call and per caller), and a visit lands in the call's IVR
session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agi_scripts.store import CallbackJob, PostgresStore, SessionRecord
from agi_scripts.waiting import WaitingScript
from core.config import Settings
from core.db.models import Call, CallbackRequest, IvrSession
from core.domain.calls import CallDisposition, IvrOutcome
from core.domain.phone import CallerNumber
from core.protocols.ami import AMIMessage
from core.transport.fake_agi import FakeAsterisk, run_fake_call
from queue_manager.recorder import CallRecorder
from tests.unit.test_waiting_room import Waiter

T0 = 1_765_000_000.0


@pytest.fixture
async def store(
    db_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[PostgresStore]:
    yield PostgresStore(db_settings, sessions)


def event(name: str, uniqueid: str, at: float, **fields: str) -> AMIMessage:
    headers = [("Event", name), ("Uniqueid", uniqueid), ("Timestamp", f"{at:.6f}")]
    return AMIMessage(headers + list(fields.items()))


async def apply(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, *events: AMIMessage
) -> Call:
    recorder = CallRecorder(settings)
    for e in events:
        async with sessions() as session:
            await recorder.apply(session, e)
            await session.commit()
    async with sessions() as session:
        row = await session.scalar(select(Call).where(Call.uniqueid == events[0].get("Uniqueid")))
    assert row is not None
    return row


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, UTC)


async def test_the_place_survives_the_waiting_rooms_reentries(
    db_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    u = "w.1"
    new = event(
        "Newchannel",
        u,
        T0,
        Channel="PJSIP/trunk-1",
        Linkedid=u,
        Context="from-trunk",
        Exten="1076",
        CallerIDNum="9876543210",
    )
    join = event("QueueCallerJoin", u, T0 + 10, Queue="helpline", Position="4")
    # At the head, Queue()'s timeout ends the turn with an Abandon and a Leave: an announcement.
    row = await apply(
        sessions,
        db_settings,
        new,
        join,
        event("QueueCallerAbandon", u, T0 + 70, Queue="helpline"),
        event("QueueCallerLeave", u, T0 + 70, Queue="helpline"),
    )
    assert row.queue_joined_at == at(10)
    assert row.queue_exited_at == at(70) and row.queue_entered_at == at(10)  # out of the list
    row = await apply(
        sessions, db_settings, new, event("QueueCallerJoin", u, T0 + 76, Queue="helpline")
    )
    assert row.queue_joined_at == at(10)  # the place is the first join
    assert row.queue_entered_at == at(76) and row.queue_left_at is None
    assert row.abandoned_at is None  # the announcement was no abandon
    # A duplicated older join changes nothing (GREATEST, COALESCE).
    row = await apply(sessions, db_settings, new, join)
    assert (row.queue_joined_at, row.queue_entered_at) == (at(10), at(76))
    row = await apply(
        sessions,
        db_settings,
        new,
        event("AgentConnect", u, T0 + 90, Queue="helpline", Interface="PJSIP/agent0001"),
        event("QueueCallerLeave", u, T0 + 90, Queue="helpline"),
        event("Hangup", u, T0 + 200, Channel="PJSIP/trunk-1", Linkedid=u, Context="from-trunk"),
    )
    assert row.queue_left_at == at(90) and row.disposition == CallDisposition.ANSWERED
    # A caller who hangs up while waiting left the line then, and abandoned it.
    v = "w.2"
    row = await apply(
        sessions,
        db_settings,
        event("Newchannel", v, T0, Channel="PJSIP/trunk-2", Linkedid=v, Context="from-trunk"),
        event("QueueCallerJoin", v, T0 + 5, Queue="helpline"),
        event("QueueCallerAbandon", v, T0 + 30, Queue="helpline"),
        event("QueueCallerLeave", v, T0 + 30, Queue="helpline"),
        event("Hangup", v, T0 + 30, Channel="PJSIP/trunk-2", Linkedid=v, Context="from-trunk"),
    )
    assert row.queue_left_at == at(30) and row.abandoned_at == at(30)
    assert row.disposition == CallDisposition.ABANDONED
    # A caller at the head whose turn ended for an announcement (an Abandon) and who then chose
    # a callback did not abandon: the helpline owes them a call.
    w = "w.3"
    await apply(
        sessions,
        db_settings,
        event("Newchannel", w, T0, Channel="PJSIP/trunk-3", Linkedid=w, Context="from-trunk"),
        event("QueueCallerJoin", w, T0 + 5, Queue="helpline"),
        event("QueueCallerAbandon", w, T0 + 20, Queue="helpline"),
        event("QueueCallerLeave", w, T0 + 20, Queue="helpline"),
    )
    async with sessions() as session:
        session.add(
            CallbackRequest(
                uniqueid=w, caller_number="9876500000", lang="hi", reason="waiting", place_at=at(5)
            )
        )
        await session.commit()
    row = await apply(
        sessions,
        db_settings,
        event("Hangup", w, T0 + 30, Channel="PJSIP/trunk-3", Linkedid=w, Context="from-trunk"),
    )
    assert row.disposition == CallDisposition.CALLBACK and row.abandoned_at is None
    assert row.queue_left_at == at(20)


async def add_call(
    sessions: async_sessionmaker[AsyncSession],
    uniqueid: str,
    joined: datetime,
    *,
    queue: str = "helpline",
    in_list: bool = True,
    **extra: object,
) -> None:
    async with sessions() as session:
        session.add(
            Call(
                uniqueid=uniqueid,
                queue=queue,
                queue_joined_at=joined,
                queue_entered_at=joined + timedelta(seconds=60),
                queue_exited_at=None if in_list else joined + timedelta(seconds=70),
                **extra,
            )
        )
        await session.commit()


async def test_position_and_reentry_are_ranked_by_place(
    store: PostgresStore, sessions: async_sessionmaker[AsyncSession]
) -> None:
    now = datetime.now(UTC)
    me = now - timedelta(minutes=5)
    await add_call(sessions, "a", me - timedelta(minutes=3))  # ahead, in the list
    await add_call(sessions, "b", me - timedelta(minutes=2), in_list=False)  # ahead, announcing
    await add_call(sessions, "c", me - timedelta(minutes=1))  # ahead
    await add_call(sessions, "me", me)
    await add_call(sessions, "d", me + timedelta(seconds=1))  # behind
    await add_call(sessions, "e", me - timedelta(minutes=4), queue="helpline-police")
    await add_call(sessions, "f", me - timedelta(minutes=4), ended_at=now)  # gone
    await add_call(sessions, "g", me - timedelta(minutes=4), queue_left_at=now)  # left the line
    for i in range(6):  # six answered in the last 15 minutes, one long ago
        await add_call(
            sessions,
            f"ok{i}",
            now - timedelta(minutes=10),
            agent_connected_at=now - timedelta(minutes=i + 1),
            queue_left_at=now - timedelta(minutes=i + 1),
        )
    await add_call(
        sessions, "old", now - timedelta(hours=1), agent_connected_at=now - timedelta(minutes=40)
    )
    f = await store.wait_figures("me", "helpline", None)
    assert (f.position, f.reentry, f.place_at) == (4, 3, me)
    assert f.connected_recently == 6
    assert f.estimated_wait_s == 4 * 900 // 6  # 10 minutes
    # Not recorded yet: the dialplan's clock stands in for the place.
    f = await store.wait_figures("new", "helpline", me - timedelta(seconds=90))
    assert (f.position, f.reentry, f.place_at) == (3, 2, None)
    f = await store.wait_figures("e", "helpline-police", None)
    assert (f.position, f.connected_recently, f.estimated_wait_s) == (1, 0, None)


async def test_a_callback_is_stored_once_under_concurrency(
    store: PostgresStore, sessions: async_sessionmaker[AsyncSession]
) -> None:
    place = datetime.now(UTC) - timedelta(minutes=7)
    caller = CallerNumber("9876543210")
    same_call = [
        CallbackJob("x.1", caller, "hi", "waiting", "waiting_room:helpline", place, "helpline")
    ] * 10
    # The same caller asking again from other calls folds into the pending request.
    other_calls = [
        CallbackJob(f"x.{i}", caller, "hi", "waiting", "w", place + timedelta(seconds=i), "q")
        for i in range(2, 12)
    ]
    ids = await asyncio.gather(*(store.add_callback(j) for j in same_call + other_calls))
    assert len(set(ids)) == 1
    async with sessions() as session:
        rows = (await session.scalars(select(CallbackRequest))).all()
    assert len(rows) == 1
    (row,) = rows
    assert row.id == ids[0] and row.status == "pending" and row.caller_number == caller
    # Whichever call won the race, its place is the place it asked with: minutes ago, not now.
    assert row.place_at <= place + timedelta(seconds=11) and row.queue in ("helpline", "q")


async def test_the_ivr_queue_full_path_stores_the_same_shape(
    store: PostgresStore, sessions: async_sessionmaker[AsyncSession]
) -> None:
    before = datetime.now(UTC)
    job = CallbackJob("y.1", CallerNumber("9123456789"), "en", "budget", "a>b", None, "helpline")
    request_id = await store.add_callback(job)
    async with sessions() as session:
        row = await session.get(CallbackRequest, request_id)
    assert row is not None and row.queue == "helpline"
    assert row.place_at >= before - timedelta(seconds=1)  # never queued: its place is now


async def test_a_visit_is_appended_to_the_calls_ivr_session(
    store: PostgresStore, sessions: async_sessionmaker[AsyncSession], db_settings: Settings
) -> None:
    place = datetime.now(UTC) - timedelta(minutes=2)
    await add_call(sessions, "1700000000.1", place)  # FakeAsterisk's uniqueid
    await store.save_session(
        SessionRecord(
            uniqueid="1700000000.1",
            caller_number=CallerNumber("9876543210"),
            caller_number_raw="9876543210",
            lang="hi",
            started_at=place - timedelta(seconds=30),
            prompts=["welcome", "transfer_agent"],
            digits="11",
            outcome=IvrOutcome.QUEUED,
            last_node="new_complaint",
        )
    )
    script = WaitingScript(store, db_settings)

    async def visit(waiter: Waiter, key: str = "") -> None:
        peer = FakeAsterisk(
            [waiter] * 30,
            script="waiting",
            args=("helpline", key, ""),
            env={"agi_callerid": "9876543210", "agi_language": "hi"},
        )
        result = await run_fake_call(script, peer, command_timeout=2.0, call_timeout=10.0)
        assert result.error is None and not peer.unexpected

    await visit(Waiter())
    await visit(Waiter(), key="1")
    async with sessions() as session:
        row = await session.scalar(select(IvrSession))
        count = await session.scalar(select(func.count()).select_from(CallbackRequest))
        job = await session.scalar(select(CallbackRequest))
    assert row is not None and job is not None and count == 1
    assert row.prompts == [
        "welcome",
        "transfer_agent",
        "queue_next",
        "waiting_callback_offer",
        "waiting_callback_registered",
        "goodbye",
    ]
    assert row.digits == "111"
    assert row.outcome == "callback" and row.last_node == "waiting_room"
    first, second = row.detail["waiting_room"]
    assert first["position"] == 1 and "key" not in first
    assert second["key"] == "1" and second["callback"] == job.id
    assert row.detail["callback_id"] == job.id and row.detail["callback_reason"] == "waiting"
    assert (job.place_at, job.reason, job.queue) == (place, "waiting", "helpline")
