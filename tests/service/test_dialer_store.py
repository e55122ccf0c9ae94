"""The dialer's database side against a real PostgreSQL: feedback jobs made once per
resolution, claims that reserve the budget, the channel cap and the per-number cap atomically
(three claimers on their own connections never pass a small budget nor dial a job twice),
outcomes moving jobs on, and a feedback answer reaching the complaint through the lifecycle."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.models import (
    CallbackRequest,
    Complaint,
    ComplaintHistory,
    DialerAttempt,
    DialerBudget,
    DialerJob,
    IvrSession,
    Seat,
    SeatStatus,
)
from core.db.queries import free_agents
from core.db.session import create_engine, session_factory
from core.domain.calls import CallbackStatus
from core.domain.clock import IST, helpline_day
from core.domain.complaints import ComplaintStatus
from core.domain.dialing import (
    Campaign,
    DncSource,
    JobState,
    Outcome,
    Pacing,
    RetryPolicy,
    SurveyResult,
)
from core.reference import Reference
from outbound_dialer.store import (
    Claimed,
    ClaimPass,
    DialRules,
    add_dnc,
    claim_jobs,
    finish_attempt,
    make_callback_jobs,
    make_feedback_jobs,
    make_followup_jobs,
    mark_abandoned,
    mark_answered,
    settle_callback_requests,
)
from tests.api_app import api_client
from tests.service.test_routing import Users
from tests.service.test_transitions import TEHSIL_OFFICER, act, file, login, seeded
from tests.statements import plan_of, rows_examined, statements_sent

__all__ = ["seeded"]  # the fixture, used by name

#: Tomorrow 10:00 IST: inside the window, after every complaint the test files.
NOW = (datetime.now(UTC).astimezone(IST) + timedelta(days=1)).replace(
    hour=10, minute=0, second=0, microsecond=0
)
CALLBACKS = frozenset({Campaign.CALLBACK})


def rules(budget: int = 1000, channels: int = 100, per_number: int = 3) -> DialRules:
    pacing = Pacing(budget, burst=budget)
    return DialRules(pacing, RetryPolicy(window=pacing.window), channels, per_number)


@pytest.fixture(autouse=True)
async def empty(db_settings: Settings) -> None:
    engine = create_engine(db_settings, pool_size=1)
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE dialer_campaigns SET paused = false, max_attempts = 3"))
    await engine.dispose()


@pytest.fixture
async def client(db_settings: Settings, seeded: Users) -> AsyncIterator[httpx.AsyncClient]:
    async for http in api_client(db_settings):
        yield http


async def resolved(client: httpx.AsyncClient, users: Users) -> str:
    number: str = (await file(client, users))["number"]
    officer = await login(client, users, TEHSIL_OFFICER)
    done = await act(client, officer, number, "resolve", note="नामांतरण आदेश पारित")
    assert done.status_code == 200, done.text
    return number


async def callbacks(sessions: async_sessionmaker[AsyncSession], numbers: list[str]) -> None:
    """Callback jobs (the simplest subject: no complaint needed) for ``numbers``."""
    async with sessions() as session:
        for index, number in enumerate(numbers):
            # One pending request per caller number (the waiting room's rule): a repeated
            # number's earlier requests count as already called back.
            repeated = number in numbers[index + 1 :]
            request = CallbackRequest(
                uniqueid=f"cb-{index}",
                caller_number=number,
                lang="hi",
                reason="asked",
                status=CallbackStatus.CALLED if repeated else CallbackStatus.PENDING,
            )
            session.add(request)
            await session.flush()
            session.add(
                DialerJob(
                    campaign=Campaign.CALLBACK,
                    callback_request_id=request.id,
                    dedupe_key="callback",
                    number=number,
                    not_before=NOW - timedelta(hours=1),
                )
            )
        await session.commit()


async def claim_all(
    sessions: async_sessionmaker[AsyncSession],
    dial_rules: DialRules,
    now: datetime,
    campaigns: frozenset[Campaign] = CALLBACKS,
    *,
    callback_cap: int | None = None,
    most: int = 1,
) -> tuple[list[Claimed], ClaimPass]:
    """Claim until the claim stops, ``most`` jobs a batch."""
    claimed: list[Claimed] = []
    state = ClaimPass()
    async with sessions() as session:
        while got := await claim_jobs(
            session,
            dial_rules,
            now,
            "t",
            state,
            campaigns=campaigns,
            callback_cap=callback_cap,
            most=most,
        ):
            claimed.extend(got)
    return claimed, state


async def scalar(sessions: async_sessionmaker[AsyncSession], query: Any) -> Any:
    async with sessions() as session:
        return (await session.execute(query)).scalar_one_or_none()


async def test_a_claim_reads_a_few_jobs_however_many_are_pending(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The follow-ups of every open complaint are pending jobs (tens of thousands): the claim
    takes the first due ones in its order through ``ix_dialer_jobs_claim``, with the facts that
    stop a job read for those jobs alone. It sorted every pending job on every claim (50 ms at
    20,000), and the facts read per pending job would have been three look-ups each. And a
    claim is six statements whether it takes one job or sixteen: the jobs with their facts,
    the two budget rows, the numbers' day, the attempts, the jobs' new state (BEGIN and COMMIT
    are not statements here); one job was ten statements, then six, sixteen were 96. The
    day's first claim makes the day's budget rows: two statements more for each."""
    async with sessions() as session:
        await session.execute(
            text(
                "INSERT INTO callback_requests (uniqueid, caller_number, lang, reason, status)"
                " SELECT 'many-' || g, '98' || lpad(g::text, 8, '0'), 'hi', 'asked', 'pending'"
                " FROM generate_series(1, 5000) AS g"
            )
        )
        await session.execute(
            text(
                "INSERT INTO dialer_jobs (campaign, callback_request_id, dedupe_key, number,"
                " not_before)"
                " SELECT 'callback', id, 'callback', caller_number,"
                "        CAST(:now AS timestamptz) - interval '1 hour' + id * interval '1 second'"
                " FROM callback_requests"
            ),
            {"now": NOW},
        )
        await session.execute(text("ANALYZE dialer_jobs"))
        await session.commit()
    engine = sessions.kw["bind"]
    with statements_sent(engine) as sent:
        async with sessions() as session:
            (claimed,) = await claim_jobs(
                session, rules(), NOW, "t", ClaimPass(), campaigns=CALLBACKS
            )
    assert claimed.number == "9800000001"
    assert len(sent) == 10, [statement for statement, _ in sent]
    for most, numbers in ((1, ["9800000002"]), (16, [f"98{n:08d}" for n in range(3, 19)])):
        with statements_sent(engine) as sent:
            async with sessions() as session:
                batch = await claim_jobs(
                    session, rules(), NOW, "t", ClaimPass(), campaigns=CALLBACKS, most=most
                )
        assert [c.number for c in batch] == numbers
        assert len(sent) == 6, [statement for statement, _ in sent]
        async with sessions() as session:
            plan = await plan_of(session, *sent[0])
            await session.rollback()
        assert rows_examined(plan, "dialer_jobs") <= most + 10, plan
    async with sessions() as session:
        attempts = await session.scalar(select(func.count()).select_from(DialerAttempt))
        budget = await session.get(DialerBudget, (helpline_day(NOW), "all"))
    assert attempts == 18 and budget is not None and (budget.used, budget.active) == (18, 18)


async def test_feedback_jobs_one_per_resolution(
    client: httpx.AsyncClient, seeded: Users, sessions: async_sessionmaker[AsyncSession]
) -> None:
    number = await resolved(client, seeded)
    await file(client, seeded)  # open: no feedback job
    async with sessions() as session:
        assert await make_feedback_jobs(session, NOW) == 1
        assert await make_feedback_jobs(session, NOW) == 0
        await session.commit()
    # Reopened and resolved again: a second resolution, a second job.
    agent = await login(client, seeded, "agent1")
    assert (await act(client, agent, number, "reopen", note="फिर से")).status_code == 200
    async with sessions() as session:  # the district officer resolves it (no demo login)
        complaint = (
            await session.execute(select(Complaint).where(Complaint.number == number))
        ).scalar_one()
        complaint.status = ComplaintStatus.RESOLVED
        session.add(
            ComplaintHistory(
                complaint_id=complaint.id,
                action="resolve",
                from_status="reopened",
                to_status="resolved",
                note="हो गया",
            )
        )
        await session.commit()
    async with sessions() as session:
        assert await make_feedback_jobs(session, NOW) == 1
        await session.commit()
    keys = await scalar(sessions, select(func.count(func.distinct(DialerJob.dedupe_key))))
    assert keys == 2


async def test_busy_then_unsatisfied_reopens_and_escalates(
    client: httpx.AsyncClient,
    seeded: Users,
    sessions: async_sessionmaker[AsyncSession],
    reference_data: Reference,
) -> None:
    number = await resolved(client, seeded)
    dial = rules()
    async with sessions() as session:
        await make_feedback_jobs(session, NOW)
        await session.commit()
    feedback = frozenset({Campaign.FEEDBACK})
    [first], _ = await claim_all(sessions, dial, NOW, feedback)
    assert (first.campaign, first.complaint_number, first.attempt_no) == (
        Campaign.FEEDBACK,
        number,
        1,
    )
    assert (await claim_all(sessions, dial, NOW, feedback))[0] == []  # dialing: not again
    # An attempt's end is two statements: the attempt with its job and facts, then both ended
    # and the channel given back in one UPDATE (four when the ORM flushed the attempt and the
    # job, three when the channel was a statement of its own).
    with statements_sent(sessions.kw["bind"]) as sent:
        async with sessions() as session:
            done = await finish_attempt(
                session, first.attempt_id, NOW, dial, reference_data, reason=5
            )
            await session.commit()
    assert len(sent) == 2, [statement for statement, _ in sent]
    assert done is not None
    assert (done.outcome, done.job_state) == (Outcome.BUSY, JobState.PENDING)
    assert done.retry_at == NOW + timedelta(minutes=30)
    async with sessions() as session:  # a late Hangup changes nothing but the cause
        again = await finish_attempt(session, first.attempt_id, NOW, dial, reference_data, cause=17)
        await session.commit()
    assert again is None
    assert await channels_in_use(sessions) == {"all": 0, "feedback": 0}

    later = NOW + timedelta(minutes=31)
    [second], _ = await claim_all(sessions, dial, later, feedback)
    assert second.attempt_no == 2
    async with sessions() as session:
        assert await mark_answered(session, second.attempt_id, later)
        session.add(
            IvrSession(
                uniqueid=second.attempt_id,
                lang="hi",
                started_at=later,
                path=[],
                prompts=[],
                detail={"result": "completed", "survey": "unsatisfied"},
            )
        )
        await session.commit()
    async with sessions() as session:
        done = await finish_attempt(
            session, second.attempt_id, later, dial, reference_data, cause=16
        )
        await session.commit()
    assert done is not None
    assert (done.outcome, done.job_state, done.survey) == (
        Outcome.COMPLETED,
        JobState.DONE,
        SurveyResult.UNSATISFIED,
    )
    # The survey is written after the end, the channel last, in its own statement.
    assert await channels_in_use(sessions) == {"all": 0, "feedback": 0}
    complaint = await scalar(sessions, select(Complaint).where(Complaint.number == number))
    assert (complaint.status, complaint.level, complaint.reopen_count) == (
        "reopened",
        "district",
        1,
    )


async def channels_in_use(sessions: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    """The dialer's channels in use now, by budget scope ('all' and each campaign's)."""
    async with sessions() as session:
        rows = await session.execute(select(DialerBudget.scope, DialerBudget.active))
        return {scope: active for scope, active in rows}


async def test_unreachable_after_the_cap_is_on_the_history(
    client: httpx.AsyncClient,
    seeded: Users,
    sessions: async_sessionmaker[AsyncSession],
    reference_data: Reference,
) -> None:
    number = await resolved(client, seeded)
    dial = rules()
    async with sessions() as session:
        await make_feedback_jobs(session, NOW)
        await session.execute(text("UPDATE dialer_campaigns SET max_attempts = 2"))
        await session.commit()
    now = NOW
    for attempt in (1, 2):
        [claimed], _ = await claim_all(sessions, dial, now, frozenset({Campaign.FEEDBACK}))
        assert claimed.attempt_no == attempt
        async with sessions() as session:
            done = await finish_attempt(
                session, claimed.attempt_id, now, dial, reference_data, reason=3
            )
            await session.commit()
        assert done is not None and done.outcome is Outcome.NO_ANSWER
        now += timedelta(hours=3, minutes=1)
    assert done is not None and done.job_state is JobState.UNREACHABLE
    note = await scalar(
        sessions,
        select(ComplaintHistory.note)
        .join(Complaint, Complaint.id == ComplaintHistory.complaint_id)
        .where(Complaint.number == number, ComplaintHistory.action == "feedback_unreachable"),
    )
    assert note == "feedback call: citizen not reached in 2 attempt(s), the last no answer"


@pytest.mark.parametrize("most", [1, 4], ids=["one", "batch"])
async def test_three_claimers_never_pass_the_budget_nor_dial_a_job_twice(
    db_settings: Settings, sessions: async_sessionmaker[AsyncSession], most: int
) -> None:
    await callbacks(sessions, [f"98765{n:05d}" for n in range(40)])
    dial = rules(budget=17, channels=1000)

    async def claimer() -> list[Claimed]:
        engine = create_engine(db_settings, pool_size=1)
        try:
            return (await claim_all(session_factory(engine), dial, NOW, most=most))[0]
        finally:
            await engine.dispose()

    results = await asyncio.gather(claimer(), claimer(), claimer())
    claimed = [c for result in results for c in result]
    assert len(claimed) == 17
    assert len({c.job_id for c in claimed}) == 17
    used = await scalar(sessions, select(DialerBudget.used).where(DialerBudget.scope == "all"))
    assert used == 17
    assert await scalar(sessions, select(func.count()).select_from(DialerAttempt)) == 17


async def test_a_batch_gives_back_what_its_left_out_jobs_took(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """One batch meets every bound at once: the 'all' row gives five calls, the callbacks'
    cap (three free agents) three, and the first number has had its one attempt today. The
    calls taken and then not dialled are given back on both rows, in the same transaction,
    so each row counts exactly the attempts made; the number's job waits for tomorrow, its
    twin (the same number, later in line) stays due, and the callbacks sit out the pass."""
    numbers = ["9876500001", "9876500001", "9876500002", "9876500003", "9876500004", "9876500005"]
    await callbacks(sessions, numbers)
    async with sessions() as session:
        await session.execute(
            text("INSERT INTO dialer_number_day (number, day, attempts) VALUES (:n, :d, 1)"),
            {"n": "9876500001", "d": helpline_day(NOW)},
        )
        await session.commit()
    state = ClaimPass()
    async with sessions() as session:
        claimed = await claim_jobs(
            session,
            rules(per_number=1),
            NOW,
            "t",
            state,
            campaigns=CALLBACKS,
            callback_cap=3,
            most=6,
        )
    assert [c.number for c in claimed] == ["9876500002", "9876500003"]
    assert state.skipped_campaigns == {Campaign.CALLBACK} and state.deferred == 1
    async with sessions() as session:
        rows = {
            row.scope: (row.used, row.active)
            for row in (await session.execute(select(DialerBudget))).scalars()
        }
        jobs = (
            await session.execute(
                select(DialerJob.number, DialerJob.state, DialerJob.not_before).order_by(
                    DialerJob.id
                )
            )
        ).all()
    assert rows == {"all": (2, 2), "callback": (2, 2)}
    tomorrow = (NOW + timedelta(days=1)).replace(hour=9)
    assert [(job.state, job.not_before == tomorrow) for job in jobs[:2]] == [
        (JobState.PENDING, True),  # the number's cap: tomorrow
        (JobState.PENDING, False),  # its twin: not in this batch, still due
    ]
    assert [job.state for job in jobs[2:]] == [JobState.DIALING] * 2 + [JobState.PENDING] * 2


@pytest.mark.parametrize("most", [1, 4], ids=["one", "batch"])
async def test_channel_cap_and_number_cap_and_dnc(
    sessions: async_sessionmaker[AsyncSession], reference_data: Reference, most: int
) -> None:
    await callbacks(sessions, ["9876500001"] * 4 + ["9876500002", "9876500003", "9876500004"])
    async with sessions() as session:
        await add_dnc(session, "9876500004", DncSource.SUPERVISOR, None, "asked by letter")
        await session.commit()
    # Channels: 2 at once.
    claimed, state = await claim_all(sessions, rules(channels=2), NOW, most=most)
    assert len(claimed) == 2 and state.stopped == "budget or channels (all campaigns)"
    dial = rules()
    async with sessions() as session:
        for c in claimed:
            await finish_attempt(session, c.attempt_id, NOW, dial, reference_data, reason=3)
        await session.commit()
    more, state = await claim_all(sessions, dial, NOW, most=most)
    # 3 attempts a day for 9876500001 (the fourth job waits for tomorrow), the DNC one stopped.
    numbers = [c.number for c in claimed + more]
    assert numbers.count("9876500001") == 3
    assert "9876500004" not in numbers
    assert state.deferred == 1
    stopped = await scalar(
        sessions, select(DialerJob.state).where(DialerJob.number == "9876500004")
    )
    assert stopped == JobState.STOPPED
    waiting = await scalar(
        sessions,
        select(DialerJob.not_before).where(
            DialerJob.number == "9876500001", DialerJob.attempts == 0
        ),
    )
    assert waiting == (NOW + timedelta(days=1)).replace(hour=9)


async def test_nothing_is_claimed_outside_the_window(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await callbacks(sessions, ["9876500001"])
    claimed, state = await claim_all(sessions, rules(), NOW.replace(hour=21, minute=30))
    assert claimed == [] and state.stopped == "outside the window"


async def test_followup_jobs_per_period_and_status_the_newest_only(
    client: httpx.AsyncClient, seeded: Users, sessions: async_sessionmaker[AsyncSession]
) -> None:
    number = (await file(client, seeded))["number"]
    every = timedelta(days=3)
    async with sessions() as session:
        assert await make_followup_jobs(session, NOW, every) == 0  # not 3 days old yet
        assert await make_followup_jobs(session, NOW + timedelta(days=3), every) == 1
        assert await make_followup_jobs(session, NOW + timedelta(days=4), every) == 0
        assert await make_followup_jobs(session, NOW + timedelta(days=6), every) == 1
        await session.commit()
        rows = (
            await session.execute(
                select(DialerJob.dedupe_key, DialerJob.state)
                .join(Complaint, Complaint.id == DialerJob.complaint_id)
                .where(Complaint.number == number)
                .order_by(DialerJob.id)
            )
        ).all()
    assert [(key, str(state)) for key, state in rows] == [
        ("assigned:1", "stopped"),
        ("assigned:2", "pending"),
    ]


async def free_seats(sessions: async_sessionmaker[AsyncSession], count: int) -> None:
    """``count`` agents in the queue, not paused, not on a call (as the queue manager records)."""
    async with sessions() as session:
        for n in range(1, count + 1):
            session.add(Seat(name=f"agent{n:04d}", sip_password="x" * 16))
        await session.flush()
        for n in range(1, count + 1):
            session.add(SeatStatus(seat=f"agent{n:04d}", in_queue=True, device_status=1))
        await session.commit()


@pytest.mark.parametrize("most", [1, 4], ids=["one", "batch"])
async def test_callbacks_in_their_place_in_line_only_for_free_agents(
    sessions: async_sessionmaker[AsyncSession], reference_data: Reference, most: int
) -> None:
    # Asked in the order 1, 2, 3; but their places in line (when they joined the queue, the
    # waiting room's press 1) are 2, 3, 1: the place is kept, not the moment of asking.
    places = (2, 0, 1)
    async with sessions() as session:
        for n in range(3):
            session.add(
                CallbackRequest(
                    uniqueid=f"cb-{n}",
                    caller_number=f"98765000{n + 1:02d}",
                    lang="hi",
                    reason="wait",
                    requested_at=NOW - timedelta(hours=1) + timedelta(minutes=n),
                    place_at=NOW - timedelta(hours=2) + timedelta(minutes=places[n]),
                )
            )
        await session.commit()
        assert await make_callback_jobs(session) == 3
        assert await make_callback_jobs(session) == 0
        await session.commit()
        assert await free_agents(session, NOW) == 0
    dial = rules()
    none, state = await claim_all(sessions, dial, NOW, callback_cap=0, most=most)
    assert none == [] and Campaign.CALLBACK in state.skipped_campaigns
    await free_seats(sessions, 1)
    async with sessions() as session:
        assert await free_agents(session, NOW) == 1
    # One agent: one call.
    [first], _ = await claim_all(sessions, dial, NOW, callback_cap=1, most=most)
    assert first.number == "9876500002"
    async with sessions() as session:
        await finish_attempt(session, first.attempt_id, NOW, dial, reference_data, reason=5)
        await session.commit()
    later, _ = await claim_all(sessions, dial, NOW, callback_cap=2, most=most)
    assert [c.number for c in later] == ["9876500003", "9876500001"]  # their places in line


@pytest.mark.parametrize("most", [1, 4], ids=["one", "batch"])
async def test_no_call_within_72_hours_of_an_abandoned_one(
    sessions: async_sessionmaker[AsyncSession], reference_data: Reference, most: int
) -> None:
    await callbacks(sessions, ["9876500001", "9876500001"])
    dial = rules()
    first, _ = await claim_all(sessions, dial, NOW, callback_cap=1, most=most)
    [claimed] = first
    async with sessions() as session:
        assert await mark_answered(session, claimed.attempt_id, NOW)
        assert await mark_abandoned(session, claimed.attempt_id, NOW)
        done = await finish_attempt(
            session, claimed.attempt_id, NOW, dial, reference_data, cause=16
        )
        await session.commit()
    assert done is not None and done.outcome is Outcome.ABANDONED
    later = NOW + timedelta(hours=3)
    again, _ = await claim_all(sessions, dial, later, callback_cap=5, most=most)
    assert again == []
    waiting = await scalar(
        sessions, select(DialerJob.not_before).where(DialerJob.state == JobState.PENDING)
    )
    assert waiting == NOW + timedelta(hours=72)


async def test_a_callback_request_is_settled_when_its_job_ends_and_the_caller_may_ask_again(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    numbers = ["9876500011", "9876500012", "9876500013", "9876500014"]
    await callbacks(sessions, numbers)
    ended = {
        "9876500011": JobState.DONE,
        "9876500012": JobState.UNREACHABLE,
        "9876500013": JobState.STOPPED,
    }  # 9876500014's job is still pending
    async with sessions() as session:
        for number, state in ended.items():
            await session.execute(
                update(DialerJob).where(DialerJob.number == number).values(state=state)
            )
        assert await settle_callback_requests(session) == 3
        assert await settle_callback_requests(session) == 0  # idempotent
        await session.commit()
        rows = await session.execute(select(CallbackRequest.caller_number, CallbackRequest.status))
        statuses = {number: status for number, status in rows}
    assert statuses == {
        "9876500011": CallbackStatus.CALLED,
        "9876500012": CallbackStatus.UNREACHABLE,
        "9876500013": CallbackStatus.STOPPED,
        "9876500014": CallbackStatus.PENDING,
    }
    async with sessions() as session:  # called back: the same citizen may ask again
        session.add(
            CallbackRequest(uniqueid="again", caller_number="9876500011", lang="hi", reason="asked")
        )
        await session.commit()
