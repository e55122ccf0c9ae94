"""A real SIP call to 1076 becomes a stored complaint, through every real part.

sipp plays the citizen (from the trunk address 127.0.0.2, RFC 4733 DTMF) and the agent's
softphone (registered as agent0001); Asterisk 22 runs the dialplan, our FastAGI IVR and
app_queue; the queue manager records the call from AMI; the agent logs in and files the
complaint through the API; PostgreSQL is checked at the end. Then the fallback: the caller
still reaches the agent when the FastAGI server is down, and when it dies mid-call.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.models import AgentSession, Call, Complaint, IvrSession, QueueEvent, Seat, User
from helpline import services
from helpline.sipp import AgentSeat, citizen_call
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


async def agent_headers(api: httpx.AsyncClient, users: Any, index: int = 0) -> dict[str, str]:
    user = users["agent"][index]
    response = await api.post(
        "/auth/token", data={"username": user["username"], "password": user["password"]}
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def seat_password(db: async_sessionmaker[AsyncSession], seat: str) -> str:
    async with db() as session:
        row = await session.get(Seat, seat)
        assert row is not None
        return row.sip_password


async def wait_call(db: async_sessionmaker[AsyncSession], since: float, **want: Any) -> Call:
    """The newest call started after ``since`` once its row has every ``want``ed value."""

    async def newest_call() -> Call | None:
        async with db() as session:
            call = (
                await session.execute(
                    select(Call)
                    .where(Call.started_at >= _ts(since))
                    .order_by(Call.id.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
        if call is not None and all(getattr(call, k) == v for k, v in want.items()):
            return call
        return None

    return await wait_for(newest_call, 15, what=f"a call since {since} with {want}")


def _ts(epoch: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch - 1, UTC)


async def test_sip_call_through_ivr_and_queue_becomes_a_complaint(
    stack_settings: Settings,
    demo_users: Any,
    api: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    settings = stack_settings
    headers = await agent_headers(api, demo_users)
    password = await seat_password(db, "agent0001")
    async with AgentSeat(settings, "agent0001", password, answer_delay=0.5) as seat:
        login = await api.post("/agents/me/login", json={"seat": "agent0001"}, headers=headers)
        assert login.status_code == 200, login.text
        assert login.json()["state"] == "in_queue"

        started = time.time()
        # "1" during the welcome picks Hindi (typed ahead), the second "1" a new complaint.
        outcome = await citizen_call(
            settings, "11", hold=8.0, caller_id="9876543210", first_digit_delay=3.0
        )
        assert outcome.answered, outcome.errors
        await seat.wait_answered(1, within=5)

        call = await wait_call(db, started, disposition="answered")
        assert call.caller_number == "9876543210"
        assert call.dnis == settings.helpline_number
        assert call.ivr_done and not call.ivr_fallback
        assert call.ivr_path is not None and "key:1" in call.ivr_path, call.ivr_path
        assert call.ivr_lang == "hi"
        assert call.queue == settings.queue_name
        assert call.agent_seat == "agent0001"
        assert call.answered_at and call.queue_joined_at and call.agent_connected_at
        assert call.ended_at is not None

        # The agent records the complaint for the call just taken (the default call).
        body = {
            "description": "राशन कार्ड तीन महीने से नहीं बना।",
            "caller_name": "सीता देवी",
            "department": "food",
            "category": "food.ration_card",
            "district": "lucknow",
            "tehsil": "lucknow_sadar",
        }
        created = await api.post("/complaints", json=body, headers=headers)
        assert created.status_code == 201, created.text
        complaint = created.json()
        assert complaint["call_uniqueid"] == call.uniqueid
        again = await api.post("/complaints", json=body, headers=headers)
        assert again.status_code == 200 and again.json()["number"] == complaint["number"]
        fetched = await api.get(f"/complaints/{complaint['number']}", headers=headers)
        assert fetched.json()["description"] == body["description"]

        logout = await api.post("/agents/me/logout", headers=headers)
        assert logout.json()["state"] == "logged_out"

    async with db() as session:
        stored = (
            (await session.execute(select(Complaint).where(Complaint.call_id == call.id)))
            .scalars()
            .all()
        )
        assert len(stored) == 1 and stored[0].number == complaint["number"]
        author = await session.get(User, stored[0].created_by)
        assert author is not None and author.username == demo_users["agent"][0]["username"]
        assert call.agent_user_id == author.id
        sessions = (
            (await session.execute(select(AgentSession).where(AgentSession.user_id == author.id)))
            .scalars()
            .all()
        )
        assert sessions and sessions[-1].seat == "agent0001"
        assert sessions[-1].logged_out_at is not None
        events = set(
            (
                await session.execute(
                    select(QueueEvent.event).where(QueueEvent.uniqueid == call.uniqueid)
                )
            ).scalars()
        )
        assert {"QueueCallerJoin", "AgentCalled", "AgentConnect", "AgentComplete"} <= events


async def _agent_answers_despite(
    settings: Settings,
    db: async_sessionmaker[AsyncSession],
    api: httpx.AsyncClient,
    demo_users: Any,
    index: int,
    seat_name: str,
    during_call: Any,
) -> Call:
    headers = await agent_headers(api, demo_users, index)
    password = await seat_password(db, seat_name)
    async with AgentSeat(settings, seat_name, password) as seat:
        login = await api.post("/agents/me/login", json={"seat": seat_name}, headers=headers)
        assert login.json()["state"] == "in_queue", login.text
        try:
            started = time.time()
            call_task = asyncio.create_task(
                citizen_call(settings, "", hold=14.0, caller_id="9876500001")
            )
            await during_call()
            outcome = await call_task
            assert outcome.answered, outcome.errors
            await seat.wait_answered(1, within=5)
            return await wait_call(db, started, disposition="answered")
        finally:
            await api.post("/agents/me/logout", headers=headers)


async def test_fallback_to_queue_when_fastagi_is_down(
    stack_settings: Settings,
    demo_users: Any,
    api: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    services.stop(stack_settings, "agi")
    try:

        async def nothing() -> None:
            return None

        call = await _agent_answers_despite(
            stack_settings, db, api, demo_users, 1, "agent0002", nothing
        )
        assert call.ivr_fallback and not call.ivr_done
        assert call.agent_seat == "agent0002"
    finally:
        services.start(stack_settings, "agi")
        await _wait_agi(stack_settings)


async def test_fallback_to_queue_when_fastagi_dies_mid_call(
    stack_settings: Settings,
    demo_users: Any,
    api: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    since = time.time()

    async def ivr_has_the_call() -> bool:
        """The IVR writes the call's session row first thing, then plays the welcome."""
        async with db() as session:
            row = await session.scalar(
                select(IvrSession.id).where(IvrSession.started_at >= _ts(since)).limit(1)
            )
        return row is not None

    async def kill_during_welcome() -> None:
        await wait_for(ivr_has_the_call, 15, what="the IVR session of the call")
        services.kill(stack_settings, "agi")

    try:
        call = await _agent_answers_despite(
            stack_settings, db, api, demo_users, 2, "agent0003", kill_during_welcome
        )
        assert call.ivr_fallback and not call.ivr_done
        assert call.agent_seat == "agent0003"
    finally:
        services.start(stack_settings, "agi")
        await _wait_agi(stack_settings)


async def _wait_agi(settings: Settings) -> None:
    async def accepts() -> bool:
        try:
            _, writer = await asyncio.open_connection(settings.agi_host, settings.agi_port)
        except OSError:
            return False
        writer.close()
        await writer.wait_closed()
        return True

    await wait_for(accepts, 15, what="the FastAGI service accepting connections")


async def test_the_sla_worker_runs_and_health_shows_its_heartbeat(
    stack_settings: Settings, api: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    """``helpline up`` starts the lifecycle worker with the other services; /health lists its
    heartbeat, and an SMS queued with a complaint change is delivered by it."""
    from core.db.models import SmsOutbox
    from core.domain.notifications import SmsKind, SmsStatus
    from core.domain.phone import CallerNumber
    from lifecycle.notifications import Enqueued, enqueue

    assert "sla" in services.SERVICES
    worker = services.state(stack_settings, "sla")
    assert worker.running, worker

    async def heartbeat() -> dict[str, Any] | None:
        beats: dict[str, dict[str, Any]] = (await api.get("/health")).json()["heartbeats"]
        return beats.get("sla")

    beat = await wait_for(heartbeat, 15, what="the sla worker's heartbeat in /health")
    assert beat["pid"] == worker.pid
    assert beat["age_seconds"] < 15

    async with db() as session:
        queued = await enqueue(
            session,
            kind=SmsKind.REGISTERED,
            complaint_number="1000000014",
            caller_number=CallerNumber("9876543210"),
            params={"days": "7"},
            dedupe_key=f"itest-{time.time()}",
        )
        await session.commit()
    assert queued is Enqueued.QUEUED

    async def sent() -> bool:
        async with db() as session:
            statuses = list(
                (
                    await session.execute(
                        select(SmsOutbox.status).where(SmsOutbox.complaint_number == "1000000014")
                    )
                ).scalars()
            )
            return bool(statuses) and all(status is SmsStatus.SENT for status in statuses)

    await wait_for(sent, 15, what="the SMS sent by the sla worker")
