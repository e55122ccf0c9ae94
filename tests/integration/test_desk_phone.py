"""The desk's in-page phone on the real Asterisk, in headless Chromium with fake media devices:
the desk (/desk, signed in with a token, the agent already at the seat) registers the seat over
WSS (TLS pinned to the certificate `helpline up` made), a sipp citizen dials 1076 and waits in
the queue, the page rings and is answered by keyboard, media flows both ways (packets counted
from the page's getStats()), hold shows in app_queue's member state, mute silences the agent,
DTMF reaches Asterisk, and the agent hangs up. Then the same seat with an external SIP
softphone (sipp over UDP) still answers a queued call. Screenshots of each step are kept in
``$HELPLINE_TEST_ARTIFACTS/desk-phone`` (default ``test-artifacts/desk-phone``). The whole
call worked from the desk with this phone: test_desk_webrtc.py."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from asterisk_config.instance import AsteriskInstance
from core.config import Settings
from core.db.models import Call
from helpline.sipp import AgentSeat, CallOutcome, citizen_call
from tests.integration.browser import ALT, PhoneMedia, chromium, webrtc_flags
from tests.integration.queue_support import login as sit_at
from tests.integration.queue_support import (
    logout_all,
    make_agents,
    seat_password,
    wait_queue_manager,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

SEAT = "agent0302"
PHONE_STATE = "document.getElementById('phone').dataset.state"


async def last_call(db: async_sessionmaker[AsyncSession], caller: str) -> Call | None:
    async with db() as session:
        call = (
            await session.execute(
                select(Call).where(Call.caller_number == caller).order_by(Call.id.desc()).limit(1)
            )
        ).scalar_one_or_none()
    return call if call is not None and call.disposition is not None else None


def member_status(asterisk: AsteriskInstance, queue: str) -> str:
    """The seat's line of ``queue show``: app_queue's own view of the member's state."""
    out = asterisk.cli(f"queue show {queue}")
    line = next((ln for ln in out.splitlines() if f"Local/{SEAT}@" in ln), "")
    return line.strip()


async def test_the_page_phone_answers_a_queued_citizen_with_media_hold_mute_dtmf(
    stack_settings: Settings,
    api: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    settings = stack_settings
    asterisk = AsteriskInstance(settings)
    await wait_queue_manager(db)
    (agent,) = await make_agents(db, api, "deskphone", 1)
    token = agent.headers["Authorization"].removeprefix("Bearer ")
    dtmf_log = f"dtmf-{os.getpid()}"
    await asyncio.to_thread(asterisk.cli, f"logger add channel {dtmf_log} dtmf")
    base = f"http://{settings.api_host}:{settings.api_port}"
    try:
        await sit_at(api, agent, SEAT)
        async with chromium(
            f"{base}/desk#token={token}",
            tmp_path / "chromium",
            "/desk",
            webrtc_flags(settings),
            artifacts="desk-phone",
        ) as page:
            media = PhoneMedia(page)
            await page.wait_for(f"{PHONE_STATE} === 'registered'")
            contacts = await asyncio.to_thread(asterisk.cli, f"pjsip show aor {SEAT}-web")
            assert "transport=ws" in contacts, contacts
            assert "Not in use" in member_status(asterisk, settings.queue_name)
            await page.screenshot("1-registered")

            caller = "9876540302"
            call = asyncio.create_task(
                citizen_call(
                    settings,
                    "11",
                    hold=60.0,
                    caller_id=caller,
                    first_digit_delay=1.0,
                    digit_gap=2.5,
                    workdir=tmp_path,
                    rtp_echo=True,
                )
            )
            await page.wait_for(f"{PHONE_STATE} === 'ringing'", within=40)
            assert await page.evaluate("document.getElementById('phone').dataset.peer") == caller
            await page.screenshot("2-ringing")
            await page.press("a", ALT)
            await page.wait_for(f"{PHONE_STATE} === 'in_call'")
            await page.screenshot("3-in-call")

            # Media both ways: what the page sends comes back through Asterisk and the citizen.
            first, second = await media.window(2.0)
            assert second["dtlsState"] == "connected"
            assert second["packetsSent"] - first["packetsSent"] >= 50, (first, second)
            assert second["packetsReceived"] - first["packetsReceived"] >= 50, (first, second)
            assert second["codec"] in ("audio/opus", "audio/PCMU"), second
            energy_talking = second["inboundAudioEnergy"] - first["inboundAudioEnergy"]

            # Mute: the agent's audio stops reaching the citizen (the echo falls silent).
            await page.press("m", ALT)
            await page.wait_for("document.getElementById('phone').dataset.muted === 'true'")
            await asyncio.sleep(0.5)  # the echo of audio sent before the mute drains
            first, second = await media.window(2.0)
            energy_muted = second["inboundAudioEnergy"] - first["inboundAudioEnergy"]
            await page.screenshot("4-muted")
            await page.press("m", ALT)
            await page.wait_for("document.getElementById('phone').dataset.muted === undefined")

            assert energy_talking > 100 * energy_muted + 1e-6, (energy_talking, energy_muted)
            assert second["packetsSent"] - first["packetsSent"] >= 50  # silence is still sent

            # Hold: Asterisk stops sending to the page (it answered the sendonly offer) while
            # the page's own audio still flows; resume brings the citizen back.
            await page.press("h", ALT)
            await page.wait_for(f"{PHONE_STATE} === 'on_hold'")
            await asyncio.sleep(0.5)  # packets already on their way drain
            first, second = await media.window(1.5)
            await page.screenshot("5-on-hold")
            assert second["packetsReceived"] - first["packetsReceived"] <= 2, (first, second)
            assert second["packetsSent"] - first["packetsSent"] >= 40, (first, second)
            assert "(in call)" in member_status(asterisk, settings.queue_name)
            await page.press("h", ALT)
            await page.wait_for(f"{PHONE_STATE} === 'in_call'")
            first, second = await media.window(1.5)
            assert second["packetsReceived"] - first["packetsReceived"] >= 40, (first, second)

            # DTMF from the keyboard reaches Asterisk on the seat's WebRTC channel.
            for digit in "42":
                await page.press(digit)
            await page.wait_for("window.HelplineDesk.phone.dtmfSent === '42'")
            log = asterisk.host_path(f"{asterisk.dirs.log}/{dtmf_log}")

            def dtmf_seen() -> list[str]:
                text = log.read_text(errors="replace") if log.exists() else ""
                found = re.findall(rf"DTMF end '(\d)' received on PJSIP/{SEAT}-web-", text)
                return found if len(found) >= 2 else []

            digits = await wait_for(dtmf_seen, 10, what="DTMF in Asterisk's log")
            assert "".join(digits) == "42", digits

            # Hang up from the page: the citizen hears the BYE.
            await page.press("e", ALT)
            outcome: CallOutcome = await asyncio.wait_for(call, 30)
            assert outcome.answered and outcome.hangup_by == "remote", outcome.events
            await page.wait_for(f"{PHONE_STATE} === 'registered'")
            await page.screenshot("6-hung-up")
        record = await wait_for(lambda: last_call(db, caller), 10, what="the call's record")
        assert record.disposition == "answered" and record.agent_seat == SEAT
    finally:
        await logout_all(api, [agent])
        await asyncio.to_thread(asterisk.cli, f"logger remove channel {dtmf_log}")


async def test_the_same_seat_still_answers_on_an_external_softphone(
    stack_settings: Settings,
    api: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    """No page open: the seat's UDP endpoint (a sipp softphone) takes the queued call through
    the same member interface."""
    settings = stack_settings
    await wait_queue_manager(db)
    (agent,) = await make_agents(db, api, "deskphone-ext", 1)
    password = await seat_password(db, SEAT)
    try:
        async with AgentSeat(settings, SEAT, password, workdir=tmp_path) as phone:
            await sit_at(api, agent, SEAT)
            caller = "9876540303"
            outcome = await citizen_call(
                settings,
                "11",
                hold=6.0,
                caller_id=caller,
                first_digit_delay=1.0,
                digit_gap=2.5,
                workdir=tmp_path,
            )
            assert outcome.answered and outcome.hangup_by == "citizen", outcome.events
            assert phone.calls_answered == 1
        record = await wait_for(lambda: last_call(db, caller), 10, what="the call's record")
        assert record.disposition == "answered" and record.agent_seat == SEAT
    finally:
        await logout_all(api, [agent])
