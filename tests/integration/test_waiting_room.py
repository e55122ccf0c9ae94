"""The waiting room and the seats' dial-out on the real Asterisk.

* A sipp citizen with no agent free waits in the queue, hears the waiting room's Hindi
  announcement (our prompts, from agi://…/waiting after Queue()'s timeout), presses 1 and a
  callback request appears with their place in line (their first join), and the IVR session
  holds what they heard.
* A sipp seat dialling an arbitrary mobile number is answered by the recorded refusal and hung
  up; no channel towards the trunk is ever made (AMI, as Asterisk reports every channel).

The dialplan is re-rendered for this module with a 15 s announcement interval (60 s by
default), then restored."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from asterisk_config import AsteriskInstance, SeatCredential
from core.config import Settings
from core.db.models import Call, CallbackRequest, QueueEvent, Seat
from core.db.session import create_engine, session_factory
from core.protocols.ami import AMIMessage
from core.transport.ami_client import AMIClient
from helpline.sipp import DtmfStep, citizen_call, seat_dial
from tests.integration.test_ivr_support import call_row, ivr_session, language_key_at, seconds
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

ANNOUNCE_EVERY = 15


async def _seats(settings: Settings) -> list[SeatCredential]:
    engine = create_engine(settings, pool_size=1)
    try:
        async with session_factory(engine)() as session:
            rows = (await session.scalars(select(Seat).order_by(Seat.name))).all()
    finally:
        await engine.dispose()
    return [SeatCredential(row.name, row.sip_password) for row in rows]


def _apply(settings: Settings) -> None:
    instance = AsteriskInstance(settings)
    instance.render(asyncio.run(_seats(settings)))
    instance.reload()


@pytest.fixture(scope="module")
def waiting_room(stack_settings: Settings) -> Iterator[Settings]:
    fast = stack_settings.model_copy(update={"waiting_announce_seconds": ANNOUNCE_EVERY})
    _apply(fast)
    try:
        yield fast
    finally:
        _apply(stack_settings)


async def test_a_waiting_caller_hears_hindi_position_presses_1_and_keeps_their_place(
    waiting_room: Settings, db: async_sessionmaker[AsyncSession]
) -> None:
    settings = waiting_room
    rendered = AsteriskInstance(settings).cli("dialplan show s@route-queue")
    assert f",{ANNOUNCE_EVERY},,,," in rendered, rendered
    # Into the queue (Hindi, new complaint); nobody answers. Queue() times out after 15 s (the
    # loop checks each second, a head caller's retry adds 2 s): the announcement starts by 18 s.
    # Key 1 comes 1 s after its first sentence ("you are next") could have ended.
    into_queue = seconds(settings, "transfer_agent")
    first_sentence = seconds(settings, "queue_next")
    steps = [
        DtmfStep("1", language_key_at(settings)),
        DtmfStep("1", seconds(settings, "press1_new_complaint") - 0.3),
        DtmfStep("1", into_queue + ANNOUNCE_EVERY + 3 + first_sentence + 1.0),
    ]
    since = datetime.now(UTC) - timedelta(seconds=1)
    outcome = await citizen_call(settings, steps, hold=25.0, caller_id="9800000013")
    assert outcome.answered, outcome.errors
    assert outcome.hangup_by == "remote", outcome.events  # confirmed, goodbye, then hung up
    session = await ivr_session(db, "9800000013", since)
    assert session.lang == "hi"
    assert session.outcome == "callback" and session.last_node == "waiting_room", session.detail
    visits = session.detail["waiting_room"]
    print(f"\nwaiting room visits: {visits}\nheard: {session.prompts}")
    first = visits[0]
    assert first["queue"] == "helpline" and first["position"] >= 1, visits
    # What the caller heard, in order: the IVR, then our Hindi announcement, then the promise.
    heard = session.prompts
    i = heard.index("transfer_agent")
    announced = heard[i + 1 :]
    # Nobody else waits in this test instance: "you are next" (a position otherwise).
    assert announced[0] == ("queue_next" if first["position"] == 1 else "queue_position_pre")
    assert announced[-2:] == ["waiting_callback_registered", "goodbye"], heard
    assert "1" in session.digits[2:]  # the third key
    call = await call_row(db, session.uniqueid, within=15, disposition="callback")
    assert call.queue_joined_at is not None
    async with db() as s:
        job = await s.scalar(
            select(CallbackRequest).where(CallbackRequest.uniqueid == session.uniqueid)
        )
    assert job is not None
    assert (job.caller_number, job.reason, job.status, job.queue, job.lang) == (
        "9800000013",
        "waiting",
        "pending",
        "helpline",
        "hi",
    )
    # Their place is when they joined the queue (the queue manager's record), not when they
    # asked: the dialer calls the oldest place first.
    assert abs((job.place_at - call.queue_joined_at).total_seconds()) < 0.01
    assert job.requested_at - job.place_at >= timedelta(seconds=ANNOUNCE_EVERY)
    assert session.detail["callback_id"] == job.id


async def test_key_1_on_hold_exits_the_queue_to_a_callback_at_the_callers_place(
    waiting_room: Settings, db: async_sessionmaker[AsyncSession]
) -> None:
    """Key 1 during the hold music, before any announcement: app_queue's ``context`` exit."""
    settings = waiting_room
    steps = [
        DtmfStep("1", language_key_at(settings)),
        DtmfStep("1", seconds(settings, "press1_new_complaint") - 0.3),
        DtmfStep("1", seconds(settings, "transfer_agent") + 5.0),  # 5 s into the hold music
    ]
    since = datetime.now(UTC) - timedelta(seconds=1)
    outcome = await citizen_call(settings, steps, hold=20.0, caller_id="9800000014")
    assert outcome.answered and outcome.hangup_by == "remote", (outcome.events, outcome.errors)
    session = await ivr_session(db, "9800000014", since)
    assert session.outcome == "callback", session.detail
    (visit,) = session.detail["waiting_room"]
    assert visit["key"] == "1" and visit["position"] >= 1
    heard = session.prompts
    assert heard[heard.index("transfer_agent") + 1 :] == ["waiting_callback_registered", "goodbye"]
    call = await call_row(db, session.uniqueid, within=15, disposition="callback")
    async with db() as s:
        job = await s.scalar(
            select(CallbackRequest).where(CallbackRequest.uniqueid == session.uniqueid)
        )
    assert job is not None and job.reason == "waiting" and call.queue_joined_at is not None
    assert abs((job.place_at - call.queue_joined_at).total_seconds()) < 0.01
    assert job.requested_at - job.place_at < timedelta(seconds=ANNOUNCE_EVERY)


async def _joins(db: async_sessionmaker[AsyncSession], uniqueid: str) -> list[QueueEvent]:
    async with db() as s:
        rows = await s.scalars(
            select(QueueEvent)
            .where(QueueEvent.uniqueid == uniqueid, QueueEvent.event.like("QueueCaller%"))
            .order_by(QueueEvent.event_time, QueueEvent.id)
        )
        return list(rows)


async def test_an_announcement_costs_no_place_in_line(
    waiting_room: Settings, db: async_sessionmaker[AsyncSession]
) -> None:
    """A joins, then B; A leaves app_queue's list for its announcement and comes back while B
    is in it: A re-enters ahead of B (position 1), not at the end of the line (where Queue()
    without a position would put A)."""
    settings = waiting_room
    steps = [
        DtmfStep("1", language_key_at(settings)),
        DtmfStep("1", seconds(settings, "press1_new_complaint") - 0.3),
    ]
    # Long enough for A's first announcement and re-entry, then a little.
    hold = seconds(settings, "transfer_agent") + ANNOUNCE_EVERY + 3 + 20
    since = datetime.now(UTC) - timedelta(seconds=1)
    a_call = asyncio.create_task(citizen_call(settings, steps, hold=hold, caller_id="9800000015"))

    async def a_joined() -> Call | None:
        async with db() as s:
            return await s.scalar(
                select(Call).where(
                    Call.caller_number == "9800000015",
                    Call.started_at >= since,
                    Call.queue_joined_at.is_not(None),
                )
            )

    # B starts when A is in the queue: B's own IVR (~17 s) puts B in line before A's first
    # announcement (15 s + its prompts) ends, and B's first timeout comes after A is back.
    a_row: Call = await wait_for(a_joined, 60, interval=0.1, what="A in the queue")
    b_out = await citizen_call(settings, steps, hold=hold - 10, caller_id="9800000016")
    a_out = await a_call
    assert a_out.answered and b_out.answered, (a_out.errors, b_out.errors)
    b_session = await ivr_session(db, "9800000016", since)
    a_session = await ivr_session(db, "9800000015", since)
    a_events = await _joins(db, a_row.uniqueid)
    b_events = await _joins(db, b_session.uniqueid)
    a_joins = [e for e in a_events if e.event == "QueueCallerJoin"]
    b_first_join = next(e for e in b_events if e.event == "QueueCallerJoin")
    b_first_leave = next((e for e in b_events if e.event == "QueueCallerLeave"), None)
    print(f"\nA: {[(e.event, e.event_time, e.payload.get('Position')) for e in a_events]}")
    print(f"B: {[(e.event, e.event_time, e.payload.get('Position')) for e in b_events]}")
    assert len(a_joins) >= 2, a_events
    rejoin = a_joins[1]
    # The premise: B was in app_queue's list when A came back (B may even have joined while A
    # was out of it, at the head of an empty list).
    assert b_first_join.event_time < rejoin.event_time, (b_first_join, rejoin)
    assert b_first_leave is None or rejoin.event_time < b_first_leave.event_time
    assert rejoin.payload["Position"] == "1", a_events  # A's place, not the end of the line
    if b_first_leave is not None:  # and B was behind A from then on
        assert b_first_leave.payload["Position"] == "2", b_events
    first_visit = a_session.detail["waiting_room"][0]
    assert (first_visit["position"], first_visit["reentry"]) == (1, 1)


async def test_a_seat_dialling_a_mobile_number_is_refused_and_nothing_reaches_the_trunk(
    stack_settings: Settings,
) -> None:
    settings = stack_settings
    seat = (await _seats(settings))[-1]
    channels: list[AMIMessage] = []
    async with AMIClient(
        settings.ami_host,
        settings.ami_port,
        settings.ami_username("outbound_dialer"),
        settings.ami_secret("outbound_dialer"),
    ) as ami:
        events = ami.subscribe(filter={"Newchannel", "DialBegin", "Hangup"}, name="itest")
        async with asyncio.timeout(10):
            await ami.connected.wait()

        async def collect() -> None:
            while True:
                channels.append(await events.get())

        collector = asyncio.create_task(collect())
        try:
            outcome = await seat_dial(settings, seat.name, seat.password, "9876543210", hold=20)

            def hung_up() -> bool:
                return any(
                    e.name == "Hangup" and (e.get("Channel") or "").startswith(f"PJSIP/{seat.name}")
                    for e in channels
                )

            await wait_for(hung_up, 10, what="the seat's channel hung up (AMI)")
        finally:
            collector.cancel()
    assert outcome.answered, (outcome.events, outcome.errors)  # by the refusal, not a citizen
    assert outcome.hangup_by == "remote", outcome.events
    refusal = seconds(settings, "outbound_refused")
    assert outcome.duration is not None and refusal - 0.5 <= outcome.duration <= refusal + 5
    names = [(e.name, e.get("Channel") or "") for e in channels]
    mine = [n for n in names if n[1].startswith(f"PJSIP/{seat.name}")]
    assert ("Newchannel", mine[0][1]) in mine, names
    assert not any(ch.startswith("PJSIP/trunk") for _, ch in names), names
    assert not any(name == "DialBegin" for name, _ in names), names
