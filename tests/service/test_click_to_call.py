"""Click-to-call through the dialer: an agent at a seat asks (``POST /complaints/{n}/call``),
the refusals are clear (409 not at a seat / outside the window / do-not-call, 429 budget
spent), the job is claimed ahead of every other under the same atomic limits (budget counted,
number cap, stale ones stopped), and its outcome follows the citizen's ``DialEnd``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta

import asyncpg
import httpx
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.live import screen_pop
from api.services import click
from api.services.errors import Conflict, Invalid, TooMany
from core.config import Settings
from core.db.channels import AGENT_CONNECT_CHANNEL
from core.db.models import (
    AgentSession,
    AuditLog,
    Call,
    Complaint,
    DialerAttempt,
    DialerBudget,
    DialerJob,
    DialerNumberDay,
    DoNotCall,
    User,
)
from core.db.queries import inbound_calls_today
from core.db.session import create_engine
from core.domain.clock import helpline_day
from core.domain.dialing import (
    Campaign,
    DncSource,
    JobState,
    Outcome,
    Pacing,
    RetryPolicy,
    Window,
)
from core.protocols.ami import AMIMessage
from core.reference import Reference
from core.transport.ami_client import AMIClient
from core.transport.fake_ami import FakeAMIServer
from outbound_dialer.service import Dialer
from outbound_dialer.store import (
    CLICK_STALE,
    DialRules,
    finish_attempt,
    mark_answered,
    record_dial_status,
)
from queue_manager.recorder import CallRecorder
from tests.api_app import api_client
from tests.service.test_dialer_store import NOW, callbacks, claim_all, rules
from tests.service.test_routing import Users
from tests.service.test_transitions import TEHSIL_OFFICER, file, login, seeded
from tests.waiting import wait_for

__all__ = ["seeded"]  # the fixture, used by name

BOTH = frozenset({Campaign.CLICK, Campaign.CALLBACK})


@pytest.fixture(autouse=True)
async def empty(db_settings: Settings) -> None:
    engine = create_engine(db_settings, pool_size=1)
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE dialer_campaigns SET paused = false, max_attempts = 3"))
        await conn.execute(
            text("UPDATE dialer_campaigns SET max_attempts = 1 WHERE name = 'click'")
        )
    await engine.dispose()


@pytest.fixture
def all_day(db_settings: Settings) -> Settings:
    """The window open all day, so the API's real clock is inside it whenever the test runs."""
    return db_settings.model_copy(
        update={"dialer_window_start": time(0, 0), "dialer_window_end": time(23, 59, 59)}
    )


@pytest.fixture
async def client(all_day: Settings, seeded: Users) -> AsyncIterator[httpx.AsyncClient]:
    async for http in api_client(all_day):
        yield http


async def user(sessions: async_sessionmaker[AsyncSession], name: str) -> User:
    async with sessions() as session:
        return (await session.execute(select(User).where(User.username == name))).scalar_one()


async def sit(sessions: async_sessionmaker[AsyncSession], name: str, seat: str) -> None:
    """``name`` is logged in at ``seat`` (what POST /agents/me/login records)."""
    who = await user(sessions, name)
    async with sessions() as session:
        session.add(AgentSession(user_id=who.id, seat=seat))
        await session.commit()


async def test_an_agent_at_a_seat_calls_the_complaints_caller_through_the_dialer(
    client: httpx.AsyncClient,
    seeded: Users,
    sessions: async_sessionmaker[AsyncSession],
    all_day: Settings,
) -> None:
    complaint = await file(client, seeded)
    number = complaint["number"]
    agent = await login(client, seeded, "agent1")

    refused = await client.post(f"/complaints/{number}/call", headers=agent)
    assert refused.status_code == 409, refused.text
    assert "seat" in refused.text

    await sit(sessions, "agent1", "agent0001")
    queued = await client.post(f"/complaints/{number}/call", headers=agent)
    assert queued.status_code == 202, queued.text
    assert queued.json()["seat"] == "agent0001"
    again = await client.post(f"/complaints/{number}/call", headers=agent)
    assert again.status_code == 409 and "already" in again.text

    status = await client.get(f"/complaints/{number}/call", headers=agent)
    assert status.json()["state"] == "pending"
    officer = await login(client, seeded, TEHSIL_OFFICER)
    assert (await client.post(f"/complaints/{number}/call", headers=officer)).status_code == 403

    async with sessions() as session:
        job = (
            await session.execute(select(DialerJob).where(DialerJob.campaign == Campaign.CLICK))
        ).scalar_one()
        caller = (
            await session.execute(select(Complaint.caller_number).where(Complaint.number == number))
        ).scalar_one()
        audited = (
            await session.execute(select(AuditLog).where(AuditLog.action == "complaint.call"))
        ).scalar_one()
    assert (job.seat, job.number, job.state) == ("agent0001", caller, JobState.PENDING)
    assert audited.entity_id == number and audited.detail["job"] == job.id

    # The dialer claims it at once (ahead of an older callback), counted in the budget.
    await callbacks(sessions, ["9876500001"])
    now = datetime.now(UTC)
    async with sessions() as session:
        await session.execute(
            update(DialerJob)
            .where(DialerJob.campaign == Campaign.CALLBACK)
            .values(not_before=now - timedelta(hours=1))
        )
        await session.commit()
    window = Window(time(0, 0), time(23, 59, 59))
    pacing = Pacing(1, window, burst=1)
    one_call = DialRules(pacing, RetryPolicy(window=window), 10, 3)
    claimed, _ = await claim_all(sessions, one_call, now, BOTH)
    assert [(c.campaign, c.seat, c.complaint_number) for c in claimed] == [
        (Campaign.CLICK, "agent0001", number)
    ]
    async with sessions() as session:
        used = (
            await session.execute(
                select(DialerBudget.used).where(
                    DialerBudget.day == helpline_day(now), DialerBudget.scope == "all"
                )
            )
        ).scalar_one()
    assert used == 1
    # The budget is now spent: the next click is refused with 429 by the API...
    await sit(sessions, "supervisor1", "agent0002")
    other = (await file(client, seeded))["number"]
    supervisor = await login(client, seeded, "supervisor1")
    spent = all_day.model_copy(update={"daily_outbound_budget": 1, "dialer_burst": 0})
    async with sessions() as session:
        with pytest.raises(TooMany):
            await click.call_complaint(
                session, spent, await user(sessions, "supervisor1"), other, now
            )
    # ...but a supervisor at a seat may call under the real budget.
    ok = await client.post(f"/complaints/{other}/call", headers=supervisor)
    assert ok.status_code == 202, ok.text


async def test_refused_outside_the_window_on_dnc_and_for_a_wrong_number(
    client: httpx.AsyncClient,
    seeded: Users,
    sessions: async_sessionmaker[AsyncSession],
    db_settings: Settings,
) -> None:
    number = (await file(client, seeded))["number"]
    await sit(sessions, "agent1", "agent0001")
    agent = await user(sessions, "agent1")
    window = Window()
    evening = NOW.replace(hour=21, minute=30)
    assert not window.contains(evening)
    async with sessions() as session:
        with pytest.raises(Conflict, match="window"):
            await click.call_complaint(session, db_settings, agent, number, evening)
        caller = (
            await session.execute(select(Complaint.caller_number).where(Complaint.number == number))
        ).scalar_one()
        session.add(DoNotCall(number=caller, source=DncSource.SUPERVISOR))
        await session.commit()
    async with sessions() as session:
        with pytest.raises(Conflict, match="do-not-call"):
            await click.call_complaint(session, db_settings, agent, number, NOW)
    # An over-the-cap number: 429 at the API.
    async with sessions() as session:
        await session.execute(text("DELETE FROM dialer_dnc"))
        session.add(DialerNumberDay(number=caller, day=helpline_day(NOW), attempts=3))
        await session.commit()
    async with sessions() as session:
        with pytest.raises(TooMany, match="often"):
            await click.call_complaint(session, db_settings, agent, number, NOW)
    # A caller number that is not a mobile or landline (toll-free 1800 series) is refused.
    async with sessions() as session:
        await session.execute(
            update(Complaint).where(Complaint.number == number).values(caller_number="1800180018")
        )
        await session.commit()
    async with sessions() as session:
        with pytest.raises(Invalid):
            await click.call_complaint(session, db_settings, agent, number, NOW)


async def test_the_claim_stops_a_stale_click_and_one_over_the_number_cap(
    client: httpx.AsyncClient,
    seeded: Users,
    sessions: async_sessionmaker[AsyncSession],
    db_settings: Settings,
) -> None:
    await sit(sessions, "agent1", "agent0001")
    agent = await user(sessions, "agent1")
    first = (await file(client, seeded))["number"]
    second = (await file(client, seeded))["number"]
    async with sessions() as session:
        stale = await click.call_complaint(session, db_settings, agent, first, NOW)
        capped = await click.call_complaint(session, db_settings, agent, second, NOW)
        await session.commit()
    async with sessions() as session:
        await session.execute(
            update(DialerJob)
            .where(DialerJob.id == stale["job"])
            .values(not_before=NOW - CLICK_STALE - timedelta(seconds=1))
        )
        number = (
            await session.execute(select(DialerJob.number).where(DialerJob.id == capped["job"]))
        ).scalar_one()
        session.add(DialerNumberDay(number=number, day=helpline_day(NOW), attempts=3))
        await session.commit()
    claimed, state = await claim_all(sessions, rules(), NOW, BOTH)
    assert claimed == [] and state.stopped_jobs == 1
    async with sessions() as session:
        states = dict((await session.execute(select(DialerJob.id, DialerJob.state))).all())
    assert states == {stale["job"]: JobState.STOPPED, capped["job"]: JobState.STOPPED}


@pytest.mark.parametrize(
    ("seat_answers", "dial_status", "cause", "outcome", "state", "connected"),
    [
        (True, "ANSWER", 16, Outcome.COMPLETED, JobState.DONE, True),
        (True, "BUSY", 16, Outcome.BUSY, JobState.UNREACHABLE, False),
        (False, None, 19, Outcome.NO_ANSWER, JobState.UNREACHABLE, False),
    ],
)
async def test_the_outcome_follows_the_citizens_dial_end(
    client: httpx.AsyncClient,
    seeded: Users,
    sessions: async_sessionmaker[AsyncSession],
    db_settings: Settings,
    reference_data: Reference,
    seat_answers: bool,
    dial_status: str | None,
    cause: int,
    outcome: Outcome,
    state: JobState,
    connected: bool,
) -> None:
    await sit(sessions, "agent1", "agent0001")
    number = (await file(client, seeded))["number"]
    async with sessions() as session:
        await click.call_complaint(
            session, db_settings, await user(sessions, "agent1"), number, NOW
        )
        await session.commit()
    dial_rules = rules()
    [claimed], _ = await claim_all(sessions, dial_rules, NOW, BOTH)
    async with sessions() as session:
        if seat_answers:
            assert await mark_answered(session, claimed.attempt_id, NOW)
        if dial_status:
            assert await record_dial_status(session, claimed.attempt_id, dial_status, NOW)
        await session.commit()
    async with sessions() as session:
        answered = (
            await session.execute(
                select(DialerAttempt.answered).where(DialerAttempt.id == claimed.attempt_id)
            )
        ).scalar_one()
        # The seat answering is not a connected call; the citizen answering is.
        assert answered is connected
        done = await finish_attempt(
            session, claimed.attempt_id, NOW, dial_rules, reference_data, cause=cause
        )
        await session.commit()
    assert done is not None and (done.outcome, done.job_state) == (outcome, state)
    async with sessions() as session:
        active = (
            await session.execute(
                select(DialerBudget.active).where(
                    DialerBudget.day == helpline_day(NOW), DialerBudget.scope == "click"
                )
            )
        ).scalar_one()
    assert active == 0


async def test_the_dialer_rings_the_seat_first_then_dials_the_citizen(
    client: httpx.AsyncClient,
    seeded: Users,
    sessions: async_sessionmaker[AsyncSession],
    db_settings: Settings,
    reference_data: Reference,
) -> None:
    """Against the fake AMI: one Originate of the seat's phones into ``[outbound] click`` with
    the trunk dial string for the dialplan; the seat answering, the citizen's ``DialEnd``
    ANSWER and the Hangup end the attempt as completed; the seat's Local half is ignored."""
    await sit(sessions, "agent1", "agent0001")
    number = (await file(client, seeded))["number"]
    async with sessions() as session:
        await click.call_complaint(
            session, db_settings, await user(sessions, "agent1"), number, NOW
        )
        await session.commit()
    settings = db_settings.model_copy(
        update={"dialer_poll_seconds": 0.05, "outbound_caller_id": "1600123456"}
    )
    pops: list[str] = []
    listener = await asyncpg.connect(db_settings.database_url.replace("+asyncpg", "", 1))
    await listener.add_listener(AGENT_CONNECT_CHANNEL, lambda *args: pops.append(args[-1]))
    async with FakeAMIServer(username="helpline_outbound_dialer", secret="s") as fake:
        ami = AMIClient("127.0.0.1", fake.port, "helpline_outbound_dialer", "s", ping_interval=1)
        dialer = Dialer(settings, ami, sessions, reference_data, clock=lambda: NOW, campaigns=BOTH)
        async with ami:
            task = asyncio.create_task(dialer.run())
            try:
                await wait_for(
                    lambda: len(fake.actions_named("Originate")) == 1, 10, what="the Originate"
                )
                [sent] = fake.actions_named("Originate")
                async with sessions() as session:
                    attempt = (await session.execute(select(DialerAttempt))).scalar_one()
                assert sent.get("ChannelId") == attempt.id
                assert sent.get("Channel") == "Local/agent0001@seat-phones"
                assert (sent.get("Context"), sent.get("Exten")) == ("outbound", "click")
                # The seat sees whom it is about to call; the citizen sees the helpline.
                assert sent.get("CallerID") == f'"Complaint {number}" <{attempt.number}>'
                variables = sent.getall("Variable")
                assert f"DIALER_TRUNK=PJSIP/{attempt.number}@trunk" in variables
                assert "DIALER_CALLER_ID=1600123456" in variables
                assert f"DIALER_COMPLAINT={number}" in variables

                await fake.push_event(
                    "OriginateResponse", Response="Success", Reason="4", Uniqueid=attempt.id
                )
                # The seat answered: the desk's screen-pop is asked for, as on AgentConnect.
                await wait_for(lambda: pops, 10, what="the agent_connect NOTIFY")
                assert [json.loads(p) for p in pops] == [
                    {"seat": "agent0001", "uniqueid": attempt.id}
                ]
                await fake.push_event("DialEnd", Uniqueid=attempt.id, DialStatus="ANSWER")
                await fake.push_event("Hangup", Uniqueid=f"{attempt.id};2", Cause="16")
                await fake.push_event("Hangup", Uniqueid=attempt.id, Cause="16")

                async def ended() -> DialerAttempt | None:
                    async with sessions() as session:
                        row = (await session.execute(select(DialerAttempt))).scalar_one()
                    return row if row.ended_at is not None else None

                done: DialerAttempt | None = await wait_for(ended, 10, what="the attempt ended")
            finally:
                dialer.stop()
                await asyncio.wait_for(task, 10)
                await listener.close()
    assert done is not None
    assert (done.outcome, done.answered, done.dial_status) == (Outcome.COMPLETED, True, "ANSWER")
    async with sessions() as session:
        state = (await session.execute(select(DialerJob.state))).scalar_one()
    assert state is JobState.DONE


def ami_event(name: str, uniqueid: str, **fields: str) -> AMIMessage:
    return AMIMessage([("Event", name), ("Uniqueid", uniqueid), *fields.items()])


async def recorded(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, *events: AMIMessage
) -> None:
    recorder = CallRecorder(settings)
    for e in events:
        async with sessions() as session:
            await recorder.apply(session, e)
            await session.commit()


async def test_the_screen_pop_says_why_the_dialer_called(
    client: httpx.AsyncClient,
    seeded: Users,
    sessions: async_sessionmaker[AsyncSession],
    db_settings: Settings,
    reference_data: Reference,
) -> None:
    """The queue manager records the dialer's channels (by the attempt id), with the citizen's
    number from the attempt; the screen-pop reads why they were called: a callback's reason
    and place in line, or the complaint an agent clicked; neither counts as an inbound call."""
    await sit(sessions, "agent1", "agent0001")
    number = (await file(client, seeded))["number"]
    async with sessions() as session:
        await click.call_complaint(
            session, db_settings, await user(sessions, "agent1"), number, NOW
        )
        await session.commit()
    await callbacks(sessions, ["9876500001"])
    claimed, _ = await claim_all(sessions, rules(), NOW, BOTH)
    by_campaign = {c.campaign: c for c in claimed}
    callback, clicked = by_campaign[Campaign.CALLBACK], by_campaign[Campaign.CLICK]
    async with sessions() as session:
        before = await inbound_calls_today(session, datetime.now(UTC))
    await recorded(
        sessions,
        db_settings,
        # The callback's channel, answered, in the queue, connected to a seat.
        ami_event(
            "Newchannel",
            callback.attempt_id,
            Channel="PJSIP/trunk-00000001",
            # Created on the trunk endpoint: its context, as a citizen's own call.
            Context="from-trunk",
            Linkedid=callback.attempt_id,
            CallerIDNum="1600110076",
        ),
        ami_event("QueueCallerJoin", callback.attempt_id, Queue="helpline", Position="1"),
        ami_event(
            "AgentConnect",
            callback.attempt_id,
            Queue="helpline",
            Interface="Local/agent0002@seat-phones",
            HoldTime="1",
        ),
        # The click-to-call's Local channel (and its other half, not a call of its own).
        ami_event(
            "Newchannel",
            clicked.attempt_id,
            Channel="Local/agent0001@seat-phones-00000001;1",
            Context="outbound",
            CallerIDNum=clicked.number,
        ),
        ami_event("Newchannel", f"{clicked.attempt_id};2", Context="seat-phones"),
        # Not an attempt: no row.
        ami_event("Newchannel", "dialer-0000", Context="outbound"),
    )
    async with sessions() as session:
        rows = {c.uniqueid: c for c in (await session.execute(select(Call))).scalars().all()}
        assert set(rows) == {callback.attempt_id, clicked.attempt_id}
        assert rows[callback.attempt_id].caller_number == "9876500001"
        assert rows[callback.attempt_id].dialer_attempt_id == callback.attempt_id
        assert await inbound_calls_today(session, datetime.now(UTC)) == before

        pop = await screen_pop(session, callback.attempt_id, reference_data)
        assert pop is not None and pop["seat"] == "agent0002"
        assert pop["outbound"]["campaign"] == "callback"
        assert pop["outbound"]["callback"]["reason"] == "asked"
        assert pop["outbound"]["callback"]["place_at"] is not None

        pop = await screen_pop(session, clicked.attempt_id, reference_data)
        assert pop is not None and pop["caller_number"] == clicked.number
        assert pop["outbound"]["campaign"] == "click"
        assert pop["outbound"]["complaint"]["number"] == number
        assert pop["outbound"]["requested_by"] == "agent1"
