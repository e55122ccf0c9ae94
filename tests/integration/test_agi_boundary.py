"""The AGI handshake's boundary through the real Asterisk: a caller whose name carries a
control character (a TAB is legal inside a SIP display name, and Asterisk copies it into
``agi_calleridname``) keeps the IVR -- the value is the carrier's, kept as sent and encoded
wherever it is used -- and reaches an agent with the IVR done, not through the fallback; the
stored name holds the TAB escaped, and no log line is broken by it. (Keys a real Asterisk
never sends, duplicated or injected, are refused: tests/unit/test_agi_protocol.py.)"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.models import IvrSession
from helpline.sipp import AgentSeat, citizen_call
from tests.integration.test_walking_skeleton import agent_headers, seat_password, wait_call

pytestmark = pytest.mark.integration


async def test_a_caller_name_with_a_control_character_keeps_the_ivr(
    stack_settings: Settings,
    demo_users: Any,
    api: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    settings = stack_settings
    seat_name = "agent0004"
    headers = await agent_headers(api, demo_users, 0)
    password = await seat_password(db, seat_name)
    async with AgentSeat(settings, seat_name, password) as seat:
        login = await api.post("/agents/me/login", json={"seat": seat_name}, headers=headers)
        assert login.json()["state"] == "in_queue", login.text
        try:
            started = time.time()
            outcome = await citizen_call(
                settings,
                "11",
                hold=8.0,
                caller_id="9876500004",
                caller_name="Ramesh\tKumar",
                first_digit_delay=3.0,
            )
            assert outcome.answered, outcome.errors
            await seat.wait_answered(1, within=5)
            call = await wait_call(db, started, disposition="answered")
        finally:
            await api.post("/agents/me/logout", headers=headers)
    assert call.ivr_done and not call.ivr_fallback, (call.ivr_done, call.ivr_fallback)
    assert call.agent_seat == seat_name
    assert call.caller_name == "Ramesh\\tKumar"  # escaped by safe_text, as stored
    async with db() as session:
        ivr = await session.scalar(select(IvrSession).where(IvrSession.uniqueid == call.uniqueid))
    assert ivr is not None and ivr.outcome == "queued"
    for name in ("agi", "queue-manager"):
        text = (settings.state_dir / "logs" / f"{name}.log").read_text(errors="replace")
        assert "Ramesh\tKumar" not in text  # no raw control character reaches a log line
