"""Issue 15, "no gaps in the record", on the real Asterisk: calls that end while the queue
manager is down are back-filled from Asterisk's own CEL (cel_pgsql into ``asterisk_cel``) when
it comes back, with their true times and dispositions -- not ended at the restart time, not
missing.

Call A is answered by a sipp agent while the queue manager runs; the queue manager is stopped
mid-conversation and A ends while it is down. Call B arrives while it is down, waits in the
queue behind A (one agent, busy) and hangs up: abandoned, never seen live.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.models import AsteriskCel, Call, ServiceHeartbeat
from helpline import services
from helpline.sipp import AgentSeat, citizen_call
from tests.integration.queue_support import seat_password, wait_queue_manager
from tests.integration.test_walking_skeleton import agent_headers
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

A_CALLER, B_CALLER = "9876500021", "9876500022"


async def call_of(
    db: async_sessionmaker[AsyncSession], caller: str, since: datetime
) -> Call | None:
    async with db() as session:
        return (
            await session.execute(
                select(Call)
                .where(Call.caller_number == caller, Call.started_at >= since)
                .order_by(Call.id.desc())
                .limit(1)
            )
        ).scalar_one_or_none()


async def test_calls_missed_while_the_queue_manager_was_down_are_backfilled_from_cel(
    stack_settings: Settings,
    demo_users: Any,
    api: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    settings = stack_settings
    await wait_queue_manager(db)
    headers = await agent_headers(api, demo_users, 1)
    password = await seat_password(db, "agent0002")
    since = datetime.now(UTC)
    async with AgentSeat(settings, "agent0002", password, answer_delay=0.5) as seat:
        login = await api.post("/agents/me/login", json={"seat": "agent0002"}, headers=headers)
        assert login.status_code == 200, login.text
        call_a = asyncio.create_task(
            citizen_call(settings, "11", hold=16.0, caller_id=A_CALLER, first_digit_delay=3.0)
        )
        await seat.wait_answered(1, within=25)

        async def a_connected() -> Call | None:
            call = await call_of(db, A_CALLER, since)
            return call if call is not None and call.agent_connected_at is not None else None

        await wait_for(a_connected, 10, what="call A seen answered by the queue manager")
        assert services.stop(settings, "queue-manager")
        stopped = datetime.now(UTC)

        # B while the queue manager is down: waits behind A and hangs up (abandoned).
        call_b = await citizen_call(
            settings, "11", hold=4.0, caller_id=B_CALLER, first_digit_delay=3.0
        )
        outcome_a = await call_a
        assert outcome_a.answered and call_b.answered, (outcome_a.errors, call_b.errors)
        assert (await call_of(db, B_CALLER, since)) is None  # nobody saw B

        async def cel_ends() -> bool:  # Asterisk recorded both, whatever we did
            # By linkedid: LINKEDID_END is written on whichever channel of the call ends last,
            # the agent's leg as often as the caller's, so its cid_num may be the seat's.
            callers = select(AsteriskCel.linkedid).where(
                AsteriskCel.eventtype == "CHAN_START",
                AsteriskCel.uniqueid == AsteriskCel.linkedid,
                AsteriskCel.cid_num.in_([A_CALLER, B_CALLER]),
            )
            async with db() as session:
                ends = await session.scalar(
                    select(func.count())
                    .select_from(AsteriskCel)
                    .where(
                        AsteriskCel.eventtype == "LINKEDID_END",
                        AsteriskCel.linkedid.in_(callers),
                    )
                )
            return ends == 2

        await wait_for(cel_ends, 10, what="both calls' end in asterisk_cel")
        await asyncio.sleep(2.0)  # so that "ended at the restart" could not pass for the truth
        restarted = datetime.now(UTC)
        services.start(settings, "queue-manager")
        await wait_queue_manager(db)
        await api.post("/agents/me/logout", headers=headers)

    async def both_complete() -> tuple[Call, Call] | None:
        a, b = await call_of(db, A_CALLER, since), await call_of(db, B_CALLER, since)
        if a is not None and b is not None and a.ended_at and b.ended_at:
            return a, b
        return None

    a, b = await wait_for(both_complete, 20, what="calls A and B complete again")
    assert a.disposition == "answered" and a.agent_seat == "agent0002"
    # Their true ends (Asterisk's clock; sipp's BYE a few ms before), not the restart time.
    assert a.ended_at is not None and stopped < a.ended_at < restarted - timedelta(seconds=1.5)
    assert a.talk_seconds is not None and 12 <= a.talk_seconds <= 20, a.talk_seconds
    assert b.disposition == "abandoned", b.disposition
    assert b.queue_joined_at is not None and b.agent_connected_at is None
    assert b.started_at > stopped and b.ended_at is not None
    assert b.ended_at < restarted - timedelta(seconds=1.5)
    assert b.answered_at is not None and b.dnis == settings.helpline_number

    async def counted() -> bool:
        async with db() as session:
            beat = (
                await session.execute(
                    select(ServiceHeartbeat.detail).where(
                        ServiceHeartbeat.service == "queue_manager"
                    )
                )
            ).scalar_one()
        return bool(beat.get("backfilled", 0) >= 2)

    await wait_for(counted, 15, what="the back-fill counted in the heartbeat")
