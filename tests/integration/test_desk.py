"""The agent desk (/desk) in a real headless Chromium at 1366x768, driven by the keyboard over
the DevTools protocol, against the real Asterisk, with an external softphone (a sipp seat) and
the page's own WebRTC phone turned off ("phone in this page"; it never registers):

a sipp citizen dials 1076 and presses through the IVR; the seat answers; the desk shows the
screen-pop with the caller's earlier complaint and pending callback; the agent files the
complaint with the keyboard while the page's first POST answer is lost (retried: one
complaint); "read back, then back to me" sends the caller's channel through the ``readback``
FastAGI script (its session stores the 20 digits spoken) and bridges it back to the same
agent's leg without a new ring; "read back, then end" reads it again and hangs both up;
wrap-up and the status look-up work by keyboard. A screenshot of each step is kept in
``$HELPLINE_TEST_ARTIFACTS/desk`` (default ``test-artifacts/desk``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agi_scripts.readback import READBACK_PROMPTS
from asterisk_config.instance import AsteriskInstance
from core.config import Settings
from core.db.models import Complaint
from core.domain.queues import webrtc_endpoint
from helpline.cli import sounds_root
from helpline.sipp import AgentSeat, citizen_call
from ivr.numbers import NUMBER_FRAGMENT_IDS
from ivr.prompts import missing_prompts
from tests.integration.browser import chromium
from tests.integration.desk_support import (
    DESCRIPTION,
    IVR_KEYS,
    KEY_ARGS,
    bridged_back,
    complaints_of_call,
    file_complaint,
    fill_complaint,
    fits_the_screen,
    readbacks,
    seed_history,
    sign_in,
    sit,
    wrap_up,
)
from tests.integration.queue_support import (
    logout_all,
    make_agents,
    seat_password,
    wait_queue_manager,
)

pytestmark = pytest.mark.integration


def test_every_prompt_the_readback_can_play_was_built_for_asterisk(
    stack_settings: Settings,
) -> None:
    """STREAM FILE of a missing file returns -1, which ends the read-back: none may be missing."""
    root = sounds_root(AsteriskInstance(stack_settings))
    assert missing_prompts(root, sorted(READBACK_PROMPTS | NUMBER_FRAGMENT_IDS)) == []


CALLER = "9876512012"
SEAT = "agent0231"


async def test_a_call_worked_from_the_desk_by_keyboard_with_an_external_softphone(
    stack_settings: Settings,
    api: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    settings = stack_settings
    await wait_queue_manager(db)
    (agent,) = await make_agents(db, api, "q12desk", 1)
    # This caller's history: an earlier complaint and a callback request still pending.
    earlier = await seed_history(api, db, agent, CALLER, callback="itest-desk-cb")
    departments = (await api.get("/reference/departments", headers=agent.headers)).json()
    assert any(d["code"] == "police" for d in departments)

    base = f"http://{settings.api_host}:{settings.api_port}"
    phone = AgentSeat(settings, SEAT, await seat_password(db, SEAT), workdir=tmp_path)
    # The desk without its phone ("phone in this page" off): the seat's external softphone
    # (sipp) takes the call.
    async with (
        phone,
        chromium(f"{base}/desk", tmp_path / "chromium", "desk", artifacts="desk") as page,
    ):
        await page.viewport()
        try:
            # ---- sign in, sit at the seat, pause and resume: keyboard only
            await page.wait_for("document.activeElement.id === 'username'")
            assert await page.evaluate("document.documentElement.lang") == "hi"
            await sign_in(page, agent)
            await page.evaluate("document.getElementById('use-phone').click()")
            await page.evaluate("document.getElementById('seat').focus()")
            await sit(page, SEAT)
            # Signed in: the form is gone from view, and the desk fits 1366x768 unscrolled.
            assert await page.evaluate("document.getElementById('sign-in').offsetParent") is None
            await fits_the_screen(page)
            assert await page.evaluate("document.getElementById('phone').childElementCount") == 0
            web = await asyncio.to_thread(
                AsteriskInstance(settings).cli, f"pjsip show aor {webrtc_endpoint(SEAT)}"
            )
            assert "transport=ws" not in web, "the page registered the seat's WebRTC phone"
            await page.screenshot("01-signed-in-at-seat")
            await page.access_key("p")  # a button's access key presses it
            await page.wait_for("document.getElementById('agent-state').dataset.state === 'paused'")
            assert await page.focused() == "resume"
            await page.screenshot("02-paused")
            await page.press("Enter")
            await page.wait_for(
                "document.getElementById('agent-state').dataset.state === 'in_queue'"
            )
            state = (await api.get("/agents/me", headers=agent.headers)).json()
            assert state["seat"] == SEAT and state["paused"] is False

            # ---- a citizen calls: Hindi, skip the open-complaint read-out, new complaint
            call = asyncio.create_task(
                citizen_call(
                    settings, IVR_KEYS, hold=150.0, caller_id=CALLER, workdir=tmp_path, **KEY_ARGS
                )
            )
            await phone.wait_answered(1, within=40)
            await page.wait_for("Number(document.body.dataset.pops || 0) >= 1", 20)
            assert await page.text("pop-number") == CALLER
            assert await page.text("pop-lang") == "हिन्दी"
            assert "own_complaints" in await page.text("pop-path")
            history = await page.evaluate(
                "[...document.querySelectorAll('#history tr')].map((tr) => tr.dataset.number)"
            )
            assert history == [earlier]
            assert await page.evaluate("document.querySelectorAll('#callbacks li').length") == 1
            await page.screenshot("03-screen-pop")
            uniqueid = await page.evaluate("window.HelplineDesk.call.uniqueid")

            # ---- the complaint, by keyboard; the first POST's answer is lost on the way back
            await page.evaluate(
                "window.HelplineDesk.dropResponse = (path, o) => path === '/complaints'"
                " && o.method === 'POST' && !window.dropped && (window.dropped = true)"
            )
            await fill_complaint(page)
            await page.screenshot("04-form-filled")
            number = await file_complaint(page)
            assert await page.evaluate("window.dropped") is True
            assert int(await page.evaluate("document.body.dataset.retries")) >= 1
            filed = await complaints_of_call(db, uniqueid)
            assert filed == [number], "a lost answer, retried: still one complaint"
            detail = (await api.get(f"/complaints/{number}", headers=agent.headers)).json()
            assert detail["thana"]["code"] == "lucknow_hazratganj"
            assert detail["description"] == DESCRIPTION
            assert await page.focused() == "readback-return"
            # Filed: no duplicate warning about the complaint just filed.
            assert await page.evaluate("document.getElementById('duplicate').hidden") is True
            await page.screenshot("05-filed")

            # ---- read back, then back to the same agent
            await page.press("Enter")
            await page.wait_for("document.getElementById('readback-state').textContent !== ''")
            assert await page.text("readback-state") in (
                "कॉलर को संख्या सुनाई जा रही है…",
                "सुनाई गई अंक: –",
            ) or (await page.text("readback-state")).startswith("सुनाई गई अंक")
            await page.wait_for(
                "document.getElementById('readback-state').dataset.outcome === 'completed'", 90
            )
            (first,) = await readbacks(db, uniqueid)
            assert first.digits_spoken == number * 2 and first.then_action == "return"
            assert first.lang == "hi" and first.outcome == "completed"
            assert "month_" in " ".join(first.prompts)
            await page.screenshot("06-read-back")
            await bridged_back(settings, uniqueid, SEAT)
            assert phone.calls_answered == 1, "the same leg, no new ring"
            assert not call.done()

            # ---- read back again, then end the call
            await page.wait_for("!document.getElementById('readback-hangup').disabled")
            await page.evaluate("document.getElementById('readback-hangup').focus()")
            await page.press("Enter")
            outcome = await asyncio.wait_for(call, 120)
            assert outcome.hangup_by == "remote", outcome.events
            second = (await readbacks(db, uniqueid))[-1]
            assert second.then_action == "hangup" and second.digits_spoken == number * 2
            assert second.outcome == "completed"

            # ---- wrap-up and status look-up
            await wrap_up(page, db, uniqueid, "संख्या दो बार सुनाई")
            await page.screenshot("07-wrapped-up")
            await page.access_key("f")
            await page.type(number)
            await page.press("Enter")
            await page.wait_for(
                f"!!document.querySelector('#lookup-result dl[data-number=\"{number}\"]')"
            )
            assert (
                await page.evaluate(
                    "document.querySelector('#lookup-result dd[data-k=status]').textContent"
                )
                == "आवंटित"
            )
            await page.wait_for(
                "Number(document.getElementById('shift-filed').textContent) >= 2", 40
            )
            # English toggle, no reload.
            await page.access_key("l")
            await page.wait_for("document.documentElement.lang === 'en'")
            assert await page.evaluate("document.getElementById('submit').textContent") == (
                "File complaint"
            )
            assert await page.text("wrapup-state") == "Saved: Complaint filed"
            assert (
                await page.evaluate(
                    "document.querySelector('#lookup-result dd[data-k=status]').textContent"
                )
                == "assigned"
            )
            assert await page.evaluate("document.documentElement.scrollHeight") == 768
            await page.screenshot("08-looked-up-english")
        finally:
            await logout_all(api, [agent])
    async with db() as session:
        assert (
            await session.scalar(select(func.count()).where(Complaint.caller_number == CALLER)) == 2
        )
    for step in ("01-signed-in-at-seat", "03-screen-pop", "05-filed", "06-read-back"):
        assert (page.artifacts / f"{step}.png").stat().st_size > 10_000, step
