"""The AGI handshake's refusal through the real Asterisk: a caller whose name carries a control
character (a TAB is legal inside a SIP display name, and Asterisk copies it into
``agi_calleridname``) gets the handshake refused by our parser, one warning in ``agi.log``,
and the dialplan's fallback: the caller still reaches an agent through the queue."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from helpline.sipp import AgentSeat, citizen_call
from tests.integration.test_walking_skeleton import agent_headers, seat_password, wait_call
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


async def test_a_caller_name_with_a_control_character_falls_back_to_the_queue(
    stack_settings: Settings,
    demo_users: Any,
    api: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    settings = stack_settings
    agi_log = settings.state_dir / "logs" / "agi.log"
    seat_name = "agent0004"
    headers = await agent_headers(api, demo_users, 0)
    password = await seat_password(db, seat_name)
    async with AgentSeat(settings, seat_name, password) as seat:
        login = await api.post("/agents/me/login", json={"seat": seat_name}, headers=headers)
        assert login.json()["state"] == "in_queue", login.text
        try:
            started = time.time()
            outcome = await citizen_call(
                settings, "", hold=10.0, caller_id="9876500004", caller_name="Ramesh\tKumar"
            )
            assert outcome.answered, outcome.errors
            await seat.wait_answered(1, within=5)
            call = await wait_call(db, started, disposition="answered")
        finally:
            await api.post("/agents/me/logout", headers=headers)
    assert call.ivr_fallback and not call.ivr_done
    assert call.agent_seat == seat_name

    def refused() -> bool:
        text = agi_log.read_text(encoding="utf-8", errors="replace")
        return "control character in the AGI handshake value of agi_calleridname" in text

    await wait_for(lambda: asyncio.to_thread(refused), 10, what="the refusal in agi.log")
