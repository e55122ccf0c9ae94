"""Issue 12's main flow: a whole call worked from the desk (/desk) with its own WebRTC phone,
in headless Chromium (fake microphone, the WSS certificate pinned) at 1366x768, by keyboard,
against the real Asterisk.

A sipp citizen dials 1076 and presses through the IVR; the desk's in-page phone rings and the
agent answers it from the page (Alt+A); the screen-pop shows the caller's earlier complaint;
the agent files the complaint with the keyboard; "read back, then back to me" (Enter on the
focused button) sends the caller through the ``readback`` FastAGI script (its session stores
the 20 digits spoken) and bridges the caller back to the same in-page phone: the same WebRTC
leg, no new ring, media flowing again (packets counted from the page's getStats()); wrap-up
stores the disposition; the agent hangs up (Alt+E); seat logout unregisters the phone.
A screenshot of each step is kept in ``$HELPLINE_TEST_ARTIFACTS/desk-webrtc`` (default
``test-artifacts/desk-webrtc``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from asterisk_config.instance import AsteriskInstance
from core.config import Settings
from core.domain.queues import webrtc_endpoint
from helpline.sipp import CallOutcome, citizen_call
from tests.integration.browser import ALT, PhoneMedia, chromium, webrtc_flags
from tests.integration.desk_support import (
    IVR_KEYS,
    KEY_ARGS,
    bridged_back,
    complaints_of_call,
    file_complaint,
    fill_complaint,
    fits_the_screen,
    readbacks,
    seed_history,
    sign_in_and_sit,
    wrap_up,
)
from tests.integration.queue_support import logout_all, make_agents, wait_queue_manager
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

CALLER = "9876512312"
SEAT = "agent0312"
PHONE = "document.getElementById('phone')"


async def test_a_call_worked_from_the_desk_with_its_own_phone_by_keyboard(
    stack_settings: Settings,
    api: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    settings = stack_settings
    asterisk = AsteriskInstance(settings)
    web = webrtc_endpoint(SEAT)
    await wait_queue_manager(db)
    (agent,) = await make_agents(db, api, "q12web", 1)
    earlier = await seed_history(api, db, agent, CALLER)

    async def contacts() -> str:
        return await asyncio.to_thread(asterisk.cli, f"pjsip show aor {web}")

    base = f"http://{settings.api_host}:{settings.api_port}"
    async with chromium(
        f"{base}/desk",
        tmp_path / "chromium",
        "desk",
        webrtc_flags(settings),
        artifacts="desk-webrtc",
    ) as page:
        await page.viewport()
        media = PhoneMedia(page)
        try:
            # ---- sign in and sit at the seat: the desk attaches its phone, which registers
            await page.wait_for("document.activeElement.id === 'username'")
            assert await page.evaluate(f"{PHONE}.childElementCount") == 0  # no seat, no phone
            await sign_in_and_sit(page, agent, SEAT)
            await page.wait_for(f"{PHONE}.dataset.state === 'registered'", 30)
            assert "फ़ोन तैयार" in await page.evaluate(f"{PHONE}.textContent")
            assert "transport=ws" in await contacts()
            await fits_the_screen(page)
            await page.screenshot("01-seated-phone-registered")

            # ---- a citizen calls (Hindi, skip the read-out of open complaints, new complaint);
            # sipp sends back what it hears, so the page's audio returns to it through Asterisk
            call = asyncio.create_task(
                citizen_call(
                    settings,
                    IVR_KEYS,
                    hold=150.0,
                    caller_id=CALLER,
                    workdir=tmp_path,
                    rtp_echo=True,
                    **KEY_ARGS,
                )
            )
            await page.wait_for(f"{PHONE}.dataset.state === 'ringing'", 60)
            assert await page.evaluate(f"{PHONE}.dataset.peer") == CALLER
            await page.screenshot("02-ringing")
            await page.press("a", ALT)  # answer, from the page
            await page.wait_for(f"{PHONE}.dataset.state === 'in_call'")
            assert await page.evaluate("window.HelplineDesk.phone.calls") == 1

            # ---- the screen-pop: the caller, the IVR's path, the earlier complaint
            await page.wait_for("Number(document.body.dataset.pops || 0) >= 1", 20)
            assert await page.text("pop-number") == CALLER
            assert await page.text("pop-lang") == "हिन्दी"
            history = await page.evaluate(
                "[...document.querySelectorAll('#history tr')].map((tr) => tr.dataset.number)"
            )
            assert history == [earlier]
            uniqueid = await page.evaluate("window.HelplineDesk.call.uniqueid")
            await media.flowing(2.0)
            stats = await media.stats()
            assert stats["dtlsState"] == "connected" and stats["codec"] in (
                "audio/opus",
                "audio/PCMU",
            ), stats
            await fits_the_screen(page)  # the phone in a call (its keypad shown) fits too
            await page.screenshot("03-answered-screen-pop")

            # ---- the complaint, by keyboard
            await fill_complaint(page)
            await page.screenshot("04-form-filled")
            number = await file_complaint(page)
            assert await complaints_of_call(db, uniqueid) == [number]
            assert await page.focused() == "readback-return"
            assert await page.evaluate(f"{PHONE}.dataset.state") == "in_call"
            await page.screenshot("05-filed")

            # ---- read back, then back to me: the caller hears the number, the agent's WebRTC
            # leg waits, then the caller is bridged back to that same leg
            await page.press("Enter")
            await page.wait_for(
                "document.getElementById('readback-state').dataset.outcome === 'completed'", 90
            )
            (session,) = await readbacks(db, uniqueid)
            assert session.digits_spoken == number * 2 and session.then_action == "return"
            assert session.lang == "hi" and session.outcome == "completed"
            leg = await bridged_back(settings, uniqueid, SEAT)
            assert leg.startswith(f"PJSIP/{web}-"), leg  # the page's leg, not the softphone's
            await media.flowing(1.5)  # the caller's echo reaches the page again
            assert await page.evaluate("window.HelplineDesk.phone.calls") == 1, "no new ring"
            assert await page.evaluate(f"{PHONE}.dataset.state") == "in_call"
            assert not call.done()
            await page.screenshot("06-read-back-bridged")

            # ---- wrap-up, then hang up from the page
            await wrap_up(page, db, uniqueid, "संख्या सुनाई, कॉलर वापस जुड़ा")
            await page.screenshot("07-wrapped-up")
            await page.press("e", ALT)
            outcome: CallOutcome = await asyncio.wait_for(call, 30)
            assert outcome.answered and outcome.hangup_by == "remote", outcome.events
            await page.wait_for(f"{PHONE}.dataset.state === 'registered'")

            # ---- the phone's labels follow the desk's language toggle
            await page.access_key("l")
            await page.wait_for("document.documentElement.lang === 'en'")
            assert "phone ready" in await page.evaluate(f"{PHONE}.textContent")
            await page.screenshot("08-english")

            # ---- seat logout: the desk detaches the phone, which unregisters the seat
            await page.evaluate("document.getElementById('seat-logout').focus()")
            await page.press("Enter")
            await page.wait_for(
                "document.getElementById('agent-state').dataset.state === 'logged_out'"
            )
            await page.wait_for(f"{PHONE}.childElementCount === 0")

            async def unregistered() -> bool:
                return "transport=ws" not in await contacts()

            assert await page.evaluate("window.HelplineDesk.phone") is None
            await wait_for(unregistered, 10, what=f"{web} unregistered")
        finally:
            await logout_all(api, [agent])
    for step in ("01-seated-phone-registered", "02-ringing", "03-answered-screen-pop", "05-filed"):
        assert (page.artifacts / f"{step}.png").stat().st_size > 10_000, step
