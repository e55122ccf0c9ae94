"""Skills through the real Asterisk: with emergencies routed to a priority position in the
skill queue (``HELPLINE_IVR_EMERGENCY_ROUTE=priority_queue``), a caller who presses 4 (police)
is answered by the free agent with the police skill, not by the free agent without it; the call
record names the police queue and that seat."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.models import Call
from helpline import services
from helpline.sipp import AgentSeat, citizen_call
from tests.integration.queue_support import login as sit_at
from tests.integration.queue_support import (
    logout_all,
    make_agents,
    seat_password,
    wait_queue_manager,
)
from tests.integration.test_ivr_support import wait_agi
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def priority_queue_route(stack_settings: Settings) -> Iterator[Settings]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HELPLINE_IVR_EMERGENCY_ROUTE", "priority_queue")
        services.stop(stack_settings, "agi")
        services.start(stack_settings, "agi")
        wait_agi(stack_settings)
        try:
            yield stack_settings
        finally:
            env.delenv("HELPLINE_IVR_EMERGENCY_ROUTE")
            services.stop(stack_settings, "agi")
            services.start(stack_settings, "agi")
            wait_agi(stack_settings)


async def test_police_caller_reaches_the_police_skilled_agent_first(
    priority_queue_route: Settings,
    db: async_sessionmaker[AsyncSession],
    api: httpx.AsyncClient,
) -> None:
    settings = priority_queue_route
    await wait_queue_manager(db)
    general, police = await make_agents(db, api, "skill", 2)
    (supervisor,) = await make_agents(db, api, "skillsup", 1, role="supervisor")
    routing = await api.put(
        f"/agents/{police.username}/routing",
        json={"skills": ["police"]},
        headers=supervisor.headers,
    )
    assert routing.status_code == 200, routing.text
    assert "police" in routing.json()["skills"]
    seats = {general.username: "agent0301", police.username: "agent0302"}
    phones = {
        name: AgentSeat(settings, seat, await seat_password(db, seat))
        for name, seat in seats.items()
    }
    try:
        async with (
            phones[general.username] as general_phone,
            phones[police.username] as police_phone,
        ):
            await sit_at(api, general, seats[general.username])
            await sit_at(api, police, seats[police.username])
            started = time.time()
            outcome = await citizen_call(
                settings, "4", hold=4.0, caller_id="9876500044", first_digit_delay=2.0
            )
            assert outcome.answered, outcome.errors
            await police_phone.wait_answered(1, within=10)
            assert general_phone.calls_offered == 0, "the unskilled agent was rung first"
    finally:
        await logout_all(api, [general, police])

    async def call_ended() -> Call | None:
        async with db() as session:
            call = (
                await session.execute(
                    select(Call)
                    .where(Call.started_at >= datetime.fromtimestamp(started - 1, UTC))
                    .where(Call.caller_number == "9876500044")
                )
            ).scalar_one_or_none()
        return call if call is not None and call.disposition is not None else None

    call = await wait_for(call_ended, 15, what="the police call's record with its disposition")
    assert call.queue == f"{settings.queue_name}-police"
    assert call.agent_seat == seats[police.username]
    assert call.disposition == "answered"
    assert call.ivr_path is not None and "police" in call.ivr_path, call.ivr_path
