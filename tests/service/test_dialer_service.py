"""The dialer process's AMI side against the fake AMI (core.transport.fake_ami) and a real
PostgreSQL: one Originate per attempt with its ChannelId, OriginateResponse and Hangup
correlated to the attempt, a refused Originate failed at once, and after a crash the live
channels reconciled (CoreShowChannels) before anything is re-dialled."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.models import DialerAttempt, DialerJob
from core.db.session import create_engine
from core.domain.dialing import Campaign, JobState, Outcome
from core.protocols.ami import AMIMessage
from core.reference import Reference
from core.transport.ami_client import AMIClient
from core.transport.fake_ami import FakeAMIServer, FakeAMISession, Reply
from outbound_dialer.service import EVENT_LANES, Dialer
from outbound_dialer.store import ATTEMPT_PREFIX, ClaimPass, DialRules, claim_jobs
from tests.service.test_click_to_call import ami_event
from tests.service.test_dialer_store import NOW, callbacks, free_seats
from tests.statements import transactions_begun
from tests.waiting import wait_for

CALLBACKS = frozenset({Campaign.CALLBACK})


@pytest.fixture(autouse=True)
async def empty(db_settings: Settings) -> None:
    engine = create_engine(db_settings, pool_size=1)
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE dialer_campaigns SET paused = false, max_attempts = 3"))
    await engine.dispose()


class Running:
    def __init__(self, dialer: Dialer, fake: FakeAMIServer) -> None:
        self.dialer = dialer
        self.fake = fake

    def originates(self) -> list[AMIMessage]:
        return self.fake.actions_named("Originate")


async def attempts(sessions: async_sessionmaker[AsyncSession]) -> list[DialerAttempt]:
    async with sessions() as session:
        rows = await session.execute(select(DialerAttempt).order_by(DialerAttempt.started_at))
        return list(rows.scalars())


async def job_state(sessions: async_sessionmaker[AsyncSession], number: str) -> JobState:
    async with sessions() as session:
        state: JobState = (
            await session.execute(select(DialerJob.state).where(DialerJob.number == number))
        ).scalar_one()
        return state


@pytest.fixture
async def fake() -> AsyncIterator[FakeAMIServer]:
    async with FakeAMIServer(username="helpline_outbound_dialer", secret="s") as server:
        yield server


@asynccontextmanager
async def start(
    settings: Settings,
    fake: FakeAMIServer,
    sessions: async_sessionmaker[AsyncSession],
    reference: Reference,
) -> AsyncIterator[Running]:
    await free_seats(sessions, 5)  # callbacks are dialled only for free agents
    dial_settings = settings.model_copy(
        update={"dialer_poll_seconds": 0.05, "outbound_caller_id": "1600123456"}
    )
    ami = AMIClient("127.0.0.1", fake.port, "helpline_outbound_dialer", "s", ping_interval=1.0)
    dialer = Dialer(dial_settings, ami, sessions, reference, clock=lambda: NOW, campaigns=CALLBACKS)
    async with ami:
        task = asyncio.create_task(dialer.run())
        try:
            yield Running(dialer, fake)
        finally:
            dialer.stop()
            await asyncio.wait_for(task, 10)


async def test_originate_and_its_events_end_the_attempt(
    db_settings: Settings,
    fake: FakeAMIServer,
    sessions: async_sessionmaker[AsyncSession],
    reference_data: Reference,
) -> None:
    await callbacks(sessions, ["9876500001", "9876500002"])
    async with start(db_settings, fake, sessions, reference_data) as running:
        await wait_for(lambda: len(running.originates()) == 2, 10, what="two Originates")
        by_number = {str(a.number): a for a in await attempts(sessions)}
        first = [
            o for o in running.originates() if o.get("ChannelId") == by_number["9876500001"].id
        ]
        assert len(first) == 1
        sent = first[0]
        assert sent.get("Channel") == "PJSIP/9876500001@trunk"
        assert (sent.get("Context"), sent.get("Exten"), sent.get("Priority")) == (
            "outbound",
            "callback",
            "1",
        )
        assert sent.get("Async") == "true"
        assert sent.get("CallerID") == '"1076" <1600123456>'
        assert sent.get("Timeout") == "30000"

        busy, answered = by_number["9876500001"].id, by_number["9876500002"].id
        # A Hangup of some other channel is none of ours.
        await fake.push_event("Hangup", Uniqueid="1700000000.1", Cause="16")
        await fake.push_event("OriginateResponse", Response="Failure", Reason="5", Uniqueid=busy)
        await fake.push_event("Hangup", Uniqueid=busy, Cause="17")
        await fake.push_event(
            "OriginateResponse", Response="Success", Reason="4", Uniqueid=answered
        )
        await fake.push_event("Hangup", Uniqueid=answered, Cause="16")

        async def ended() -> str | None:
            done = all(a.ended_at is not None for a in await attempts(sessions))
            return "ended" if done else None

        settled: str | None = await wait_for(ended, 10, what="both attempts ended")
        assert settled == "ended"
        rows = {a.id: a for a in await attempts(sessions)}
        assert (rows[busy].outcome, rows[busy].hangup_cause, rows[busy].answered) == (
            Outcome.BUSY,
            17,
            False,
        )
        # Answered, and the script stored no result: hung up before its end.
        assert (rows[answered].outcome, rows[answered].answered) == (Outcome.HUNG_UP, True)
        assert await job_state(sessions, "9876500001") is JobState.PENDING
        # Retries are later: nothing more was dialled.
        assert len(running.originates()) == 2


async def test_one_attempts_events_in_order_different_attempts_side_by_side(
    db_settings: Settings,
    fake: FakeAMIServer,
    sessions: async_sessionmaker[AsyncSession],
    reference_data: Reference,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Events are applied in lanes: each attempt's in the order Asterisk sent them (an
    answer before its Hangup, or the outcome is wrong), up to EVENT_LANES attempts at once
    (one at a time, they bounded how fast the dialer freed its channels)."""
    applied: dict[str, list[str]] = {}
    busy = {"now": 0, "most": 0}
    rng = random.Random(1076)

    async def slow_apply(event: AMIMessage) -> None:
        busy["now"] += 1
        busy["most"] = max(busy["most"], busy["now"])
        await asyncio.sleep(rng.uniform(0, 0.02))  # a transaction's round trips
        applied.setdefault(event.get("Uniqueid") or "", []).append(event.name)
        busy["now"] -= 1

    ids = [f"{ATTEMPT_PREFIX}{n:032x}" for n in range(3 * EVENT_LANES)]
    names = ["DialEnd", "OriginateResponse", "Hangup"]
    async with start(db_settings, fake, sessions, reference_data) as running:
        monkeypatch.setattr(running.dialer, "apply_event", slow_apply)
        await wait_for(running.dialer.reconciled.is_set, 10, what="the dialer on AMI")
        await fake.push_event("Hangup", Uniqueid="1700000000.1", Cause="16")  # not ours
        for attempt in ids:  # each attempt's events back to back: they would overtake
            for name in names:
                await fake.push_event(name, Uniqueid=attempt, DialStatus="ANSWER")
        await wait_for(
            lambda: sum(map(len, applied.values())) == len(ids) * len(names),
            10,
            what="every event applied",
        )
    assert applied == {attempt: names for attempt in ids}
    assert 1 < busy["most"] <= EVENT_LANES


async def test_a_refused_originate_fails_at_once(
    db_settings: Settings,
    fake: FakeAMIServer,
    sessions: async_sessionmaker[AsyncSession],
    reference_data: Reference,
) -> None:
    def refuse(session: FakeAMISession, action: AMIMessage) -> Reply | None:
        if (action.get("Action") or "").lower() != "originate":
            return None
        return [
            {"Response": "Error", "ActionID": action.action_id or "", "Message": "Originate failed"}
        ]

    fake.handler = refuse
    await callbacks(sessions, ["9876500001"])
    async with start(db_settings, fake, sessions, reference_data) as running:
        await wait_for(lambda: len(running.originates()) == 1, 10, what="the Originate")

        async def failed() -> DialerAttempt | None:
            return next((a for a in await attempts(sessions) if a.outcome is Outcome.FAILED), None)

        found: DialerAttempt | None = await wait_for(failed, 10, what="the attempt failed")
        assert found is not None
        assert running.dialer.totals["refused"] == 1


async def test_a_number_of_no_dialable_shape_is_never_originated(
    db_settings: Settings,
    fake: FakeAMIServer,
    sessions: async_sessionmaker[AsyncSession],
    reference_data: Reference,
) -> None:
    # What the tables' CHECK lets through but the trunk must never see: toll-free and
    # service caller-ID series (core.domain.dialing.dialable decides for every Originate).
    await callbacks(sessions, ["1800180018", "1600110076", "9876500001"])
    async with start(db_settings, fake, sessions, reference_data) as running:
        await wait_for(lambda: len(running.originates()) == 1, 10, what="the one Originate")

        async def refused() -> list[DialerAttempt] | None:
            failed = [a for a in await attempts(sessions) if a.outcome is Outcome.FAILED]
            return failed if len(failed) == 2 else None

        await wait_for(refused, 10, what="both undialable attempts failed")
        assert [o.get("Channel") for o in running.originates()] == ["PJSIP/9876500001@trunk"]
        assert running.dialer.totals["refused"] == 2


async def test_after_a_crash_live_channels_are_reconciled_before_any_redial(
    db_settings: Settings,
    fake: FakeAMIServer,
    sessions: async_sessionmaker[AsyncSession],
    reference_data: Reference,
) -> None:
    """A dialer died with two attempts open: one still on the line (its channel is live),
    one whose channel is gone. The next dialer ends the gone one as lost (to retry later)
    and leaves the live one alone: no Originate for either."""
    await callbacks(sessions, ["9876500001", "9876500002"])
    earlier = NOW - timedelta(minutes=2)
    rules = DialRules.from_settings(db_settings)
    async with sessions() as session:
        state = ClaimPass()
        crashed = [
            claimed
            for _ in range(2)
            for claimed in await claim_jobs(
                session, rules, earlier, "crashed:1", state, campaigns=CALLBACKS
            )
        ]
    live, gone = crashed
    fake.add_channel(Channel="PJSIP/trunk-00000001", Uniqueid=live.attempt_id)
    async with start(db_settings, fake, sessions, reference_data) as running:
        await wait_for(running.dialer.reconciled.is_set, 10, what="reconciled")
        await fake.wait_for_action("CoreShowChannels")
        rows = {a.id: a for a in await attempts(sessions)}
        assert rows[gone.attempt_id].outcome is Outcome.LOST
        assert rows[live.attempt_id].ended_at is None
        assert await job_state(sessions, str(live.number)) is JobState.DIALING
        assert await job_state(sessions, str(gone.number)) is JobState.PENDING
        await wait_for(lambda: running.dialer.last_stop is not None, 10, what="a claim pass")
        assert running.originates() == []


async def test_an_event_of_one_statement_runs_outside_a_transaction(
    db_settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    reference_data: Reference,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OriginateResponse, DialEnd and QueueCallerAbandon are one statement each, sent in
    autocommit: no BEGIN and no COMMIT, two of three round trips. The Hangup that ends the
    attempt still reads and writes in one transaction."""
    await callbacks(sessions, ["9876500001"])
    async with sessions() as session:
        [claimed] = await claim_jobs(
            session,
            DialRules.from_settings(db_settings),
            NOW,
            "t",
            ClaimPass(),
            campaigns=CALLBACKS,
        )
    ami = AMIClient("127.0.0.1", 9, "helpline_outbound_dialer", "s")  # never connected
    dialer = Dialer(db_settings, ami, sessions, reference_data, clock=lambda: NOW)
    begun = transactions_begun(monkeypatch)
    attempt = claimed.attempt_id
    for event in (
        ami_event("OriginateResponse", attempt, Response="Success", Reason="4"),
        ami_event("DialEnd", attempt, DialStatus="ANSWER"),  # a click-to-call's: no change here
        ami_event("QueueCallerAbandon", attempt, Queue="helpline"),
    ):
        await dialer.apply_event(event)
    assert begun == []
    [row] = await attempts(sessions)
    assert (row.answered, row.abandoned, row.ended_at) == (True, True, None)
    begun.clear()  # the read above was one
    await dialer.apply_event(ami_event("Hangup", attempt, Cause="16"))
    assert begun == ["BEGIN"]
    [row] = await attempts(sessions)
    assert (row.outcome, row.ended_at) == (Outcome.ABANDONED, NOW)
