"""The dialer's operator side through the API: campaigns listed, paused and limited (by
supervisors and admins only, audited), a number put on the do-not-call list, the feedback
coverage report of a month, and the outbound figures in /metrics and /stats."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta

import httpx
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.models import AuditLog, DialerCampaign, DialerJob, DoNotCall, IvrSession
from core.db.session import create_engine
from core.domain.clock import helpline_day
from core.domain.dialing import Campaign, Pacing, RetryPolicy, Window
from core.reference import Reference
from lifecycle.reports import month_of, monthly_review, scorecard
from outbound_dialer.store import (
    DialRules,
    finish_attempt,
    make_feedback_jobs,
    mark_answered,
)
from tests.api_app import api_client
from tests.service.test_dialer_store import NOW, callbacks, claim_all, resolved, rules
from tests.service.test_routing import Users
from tests.service.test_transitions import TEHSIL_OFFICER, login, seeded

__all__ = ["seeded"]  # the fixture, used by name


@pytest.fixture(autouse=True)
async def empty(db_settings: Settings) -> None:
    engine = create_engine(db_settings, pool_size=1)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE dialer_campaigns SET paused = false, max_attempts = 3, "
                "max_concurrent = NULL, daily_limit = NULL"
            )
        )
    await engine.dispose()


@pytest.fixture
async def client(db_settings: Settings, seeded: Users) -> AsyncIterator[httpx.AsyncClient]:
    async for http in api_client(db_settings):
        yield http


async def test_campaigns_listed_and_changed_by_supervisors_only(
    client: httpx.AsyncClient, seeded: Users, sessions: async_sessionmaker[AsyncSession]
) -> None:
    supervisor = await login(client, seeded, "supervisor1")
    listed = await client.get("/campaigns", headers=supervisor)
    assert listed.status_code == 200, listed.text
    assert [c["name"] for c in listed.json()] == ["callback", "click", "feedback", "followup"]
    assert listed.json()[2]["max_attempts"] == 3

    agent = await login(client, seeded, "agent1")
    assert (await client.get("/campaigns", headers=agent)).status_code == 403
    body = {"paused": True}
    assert (await client.put("/campaigns/followup", json=body, headers=agent)).status_code == 403

    changed = await client.put(
        "/campaigns/followup",
        json={"paused": True, "max_concurrent": 20, "daily_limit": 5000},
        headers=supervisor,
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["paused"], changed.json()["max_concurrent"]) == (True, 20)
    lifted = await client.put(
        "/campaigns/followup", json={"daily_limit": None, "paused": False}, headers=supervisor
    )
    assert (lifted.json()["daily_limit"], lifted.json()["paused"]) == (None, False)
    assert lifted.json()["max_concurrent"] == 20  # not sent: unchanged
    assert (await client.put("/campaigns/nope", json={}, headers=supervisor)).status_code == 404
    bad = await client.put("/campaigns/feedback", json={"max_attempts": 0}, headers=supervisor)
    assert bad.status_code == 422
    async with sessions() as session:
        row = await session.get(DialerCampaign, Campaign.FOLLOWUP)
        actions = (
            await session.execute(
                select(AuditLog.action).where(AuditLog.entity == "campaign").order_by(AuditLog.id)
            )
        ).scalars()
        assert row is not None and row.max_concurrent == 20 and row.updated_by is not None
        assert list(actions) == ["campaign.update", "campaign.update"]


async def test_a_supervisor_adds_a_number_to_the_do_not_call_list(
    client: httpx.AsyncClient, seeded: Users, sessions: async_sessionmaker[AsyncSession]
) -> None:
    supervisor = await login(client, seeded, "supervisor1")
    body = {"number": "+91 98765 00077", "note": "asked in writing"}
    added = await client.post("/dnc", json=body, headers=supervisor)
    assert added.status_code == 201, added.text
    assert added.json() == {"number": "9876500077", "added": True}
    again = await client.post("/dnc", json=body, headers=supervisor)
    assert again.json()["added"] is False
    wrong = await client.post("/dnc", json={"number": "12345678901"}, headers=supervisor)
    assert wrong.status_code == 422
    async with sessions() as session:
        assert (await session.get(DoNotCall, "9876500077")) is not None


async def test_feedback_report_and_metrics(
    client: httpx.AsyncClient,
    seeded: Users,
    sessions: async_sessionmaker[AsyncSession],
    reference_data: Reference,
) -> None:
    """Three resolutions: one satisfied on the second attempt, one unreachable, one still to
    call; the report counts them, /metrics and /stats show today's outbound calls."""
    numbers = [await resolved(client, seeded) for _ in range(3)]
    dial = rules()
    async with sessions() as session:
        await make_feedback_jobs(session, NOW)
        await session.execute(text("UPDATE dialer_campaigns SET max_attempts = 2"))
        await session.commit()
    async with sessions() as session:  # the third waits: only two are due
        third = (
            await session.execute(select(DialerJob).order_by(DialerJob.id).offset(2).limit(1))
        ).scalar_one()
        third.not_before = NOW + timedelta(days=10)
        await session.commit()
    now = NOW
    first_round, _ = await claim_all(sessions, dial, now, frozenset({Campaign.FEEDBACK}))
    assert len(first_round) == 2
    async with sessions() as session:
        for claimed in first_round:
            await finish_attempt(session, claimed.attempt_id, now, dial, reference_data, reason=5)
        await session.commit()
    now += timedelta(minutes=31)
    second_round, _ = await claim_all(sessions, dial, now, frozenset({Campaign.FEEDBACK}))
    answered, missed = sorted(second_round, key=lambda c: c.job_id)
    async with sessions() as session:
        await mark_answered(session, answered.attempt_id, now)
        session.add(
            IvrSession(
                uniqueid=answered.attempt_id,
                lang="hi",
                started_at=now,
                path=[],
                prompts=[],
                detail={"result": "completed", "survey": "satisfied"},
            )
        )
        await session.commit()
    async with sessions() as session:
        await finish_attempt(session, answered.attempt_id, now, dial, reference_data, cause=16)
        await finish_attempt(session, missed.attempt_id, now, dial, reference_data, cause=19)
        await session.commit()

    supervisor = await login(client, seeded, "supervisor1")
    month = helpline_day(now).strftime("%Y-%m")
    report = await client.get(f"/reports/feedback?month={month}", headers=supervisor)
    assert report.status_code == 200, report.text
    got = report.json()
    assert got | {"month": month} == {
        "month": month,
        "resolved": 3,
        "called": 3,
        "not_callable": 0,
        "gave_feedback": 1,
        "attempts_histogram": {"2": 1},
        "unreachable": 1,
        "in_progress": 1,
        "stopped": 0,
        "satisfied": 1,
        "not_satisfied": 0,
        "satisfied_pct": 100.0,
        "coverage_pct": 33.3,
    }
    assert numbers[0] != numbers[1]
    # The answer feeds the resolving officer's scorecard and the monthly review.
    async with sessions() as session:
        card = await scorecard(session, TEHSIL_OFFICER, month_of(month, now))
        review = await monthly_review(
            session, month_of(month, now), metric="overdue", threshold=100
        )
    assert (card.feedback, card.satisfied) == (1, 1)
    assert card.as_dict(reference_data)["satisfaction_pct"] == 100.0
    assert review.total.as_dict()["satisfaction_pct"] == 100.0
    agent = await login(client, seeded, "agent1")
    assert (await client.get("/reports/feedback", headers=agent)).status_code == 403
    assert (
        await client.get("/reports/feedback?month=2026-13", headers=supervisor)
    ).status_code == 422


async def test_outbound_figures_in_metrics_stats_and_campaigns(
    client: httpx.AsyncClient, seeded: Users, sessions: async_sessionmaker[AsyncSession]
) -> None:
    now = datetime.now(UTC)
    await callbacks(sessions, ["9876500001", "9876500002"])
    async with sessions() as session:
        await session.execute(update(DialerJob).values(not_before=now - timedelta(minutes=1)))
        await session.commit()
    window = Window(time(0, 0), time(23, 59))
    allday = DialRules(Pacing(1000, window, 1000), RetryPolicy(window=window), 100, 3)
    if not window.contains(now):  # the last minute of the IST day: nothing may be claimed
        pytest.skip("the one minute outside the all-day window")
    claimed, _ = await claim_all(sessions, allday, now)
    assert len(claimed) == 2
    async with sessions() as session:
        await mark_answered(session, claimed[0].attempt_id, now)
        await session.commit()
    metrics = (await client.get("/metrics")).text
    assert 'helpline_outbound_attempts_today{campaign="callback"} 2.0' in metrics
    assert 'helpline_outbound_attempts_today{campaign="all"} 2.0' in metrics
    assert 'helpline_outbound_connected_today{campaign="callback"} 1.0' in metrics
    assert 'helpline_outbound_channels_active{campaign="all"} 2.0' in metrics
    assert "helpline_outbound_budget_left_today 54998.0" in metrics
    assert 'helpline_budget_used_today{direction="outbound"} 2.0' in metrics
    assert "helpline_outbound_pace_allowed" in metrics
    supervisor = await login(client, seeded, "supervisor1")
    stats = (await client.get("/stats", headers=supervisor)).json()
    assert stats["outbound"]["used"] == 2
    # The wallboard's outbound figures (pushed on /ws/stats with the rest): the same numbers.
    live = stats["outbound_live"]
    pace = re.search(r"^helpline_outbound_pace_allowed (\S+)$", metrics, re.M)
    assert pace is not None
    assert {k: live[k] for k in ("attempts", "connected", "abandoned", "active")} == {
        "attempts": 2,
        "connected": 1,
        "abandoned": 0,
        "active": 2,
    }
    assert live["budget_left"] == 54998
    # Asked a moment after /metrics: the pacing may have let a call or two more through.
    assert 0 <= live["pace_allowed"] - int(float(pace.group(1))) <= 5
    assert live["campaigns"]["callback"] == {
        "attempts": 2,
        "connected": 1,
        "abandoned": 0,
        "active": 2,
    }
    listed = {c["name"]: c for c in (await client.get("/campaigns", headers=supervisor)).json()}
    assert listed["callback"]["today"] == {
        "attempts": 2,
        "connected": 1,
        "abandoned": 0,
        "active": 2,
    }
