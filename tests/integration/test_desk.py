"""The agent desk (/desk) in a real headless Chromium at 1366x768, driven by the keyboard over
the DevTools protocol, against the real Asterisk, with an external softphone (a sipp seat) and
no WebRTC phone in the page:

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
import base64
import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agi_scripts.readback import READBACK_PROMPTS
from asterisk_config.instance import AsteriskInstance
from core.config import Settings
from core.db.models import Call, CallbackRequest, CallWrapup, Complaint, ReadbackSession
from core.domain.queues import is_seat_channel
from helpline.cli import sounds_root
from helpline.sipp import AgentSeat, citizen_call
from ivr.numbers import NUMBER_FRAGMENT_IDS
from ivr.prompts import missing_prompts
from tests.integration.queue_support import (
    PASSWORD,
    logout_all,
    make_agents,
    seat_password,
    wait_queue_manager,
)
from tests.integration.test_wallboard import Page, chromium
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def test_every_prompt_the_readback_can_play_was_built_for_asterisk(
    stack_settings: Settings,
) -> None:
    """STREAM FILE of a missing file returns -1, which ends the read-back: none may be missing."""
    root = sounds_root(AsteriskInstance(stack_settings))
    assert missing_prompts(root, sorted(READBACK_PROMPTS | NUMBER_FRAGMENT_IDS)) == []


CALLER = "9876512012"
SEAT = "agent0231"
KEY_ARGS: dict[str, Any] = {"first_digit_delay": 1.0, "digit_gap": 2.5}
DESCRIPTION = "हज़रतगंज में रात को दबंग लोग दुकानदारों को धमका रहे हैं, पुलिस कार्रवाई करे।"
ARTIFACTS = Path(os.environ.get("HELPLINE_TEST_ARTIFACTS", "test-artifacts")) / "desk"

#: DevTools key events: (key, code, windows virtual key code).
KEYS = {
    "Enter": ("Enter", "Enter", 13),
    "Tab": ("Tab", "Tab", 9),
    "ArrowDown": ("ArrowDown", "ArrowDown", 40),
}
ALT, CTRL = 1, 2


class Desk(Page):
    """The desk's tab: DevTools commands besides Runtime.evaluate, keys, screenshots. (A
    button's access key presses it; an input's or a select's gives it the focus.)"""

    async def cdp(self, method: str, params: dict[str, Any] | None = None) -> Any:
        ident = next(self.ids)
        await self.socket.send(json.dumps({"id": ident, "method": method, "params": params or {}}))
        while True:
            reply = json.loads(await self.socket.recv())
            if reply.get("id") == ident:
                assert "error" not in reply, reply
                return reply.get("result")

    async def press(self, name: str, modifiers: int = 0, times: int = 1) -> None:
        key, code, vk = KEYS[name]
        for _ in range(times):
            down: dict[str, Any] = {
                "type": "rawKeyDown",
                "key": key,
                "code": code,
                "windowsVirtualKeyCode": vk,
                "modifiers": modifiers,
            }
            if name == "Enter":
                down |= {"type": "keyDown", "text": "\r"}
            await self.cdp("Input.dispatchKeyEvent", down)
            await self.cdp(
                "Input.dispatchKeyEvent",
                {
                    "type": "keyUp",
                    "key": key,
                    "code": code,
                    "windowsVirtualKeyCode": vk,
                    "modifiers": modifiers,
                },
            )

    async def access_key(self, letter: str) -> None:
        """Alt+letter: the element with that ``accesskey`` takes the focus (a button is
        pressed). Chromium matches access keys on a keyDown's unmodified text."""
        common = {
            "key": letter,
            "code": f"Key{letter.upper()}",
            "windowsVirtualKeyCode": ord(letter.upper()),
            "modifiers": ALT,
        }
        down = {"type": "keyDown", "text": letter, "unmodifiedText": letter, **common}
        await self.cdp("Input.dispatchKeyEvent", down)
        await self.cdp("Input.dispatchKeyEvent", {"type": "keyUp", **common})

    async def type(self, text: str) -> None:
        await self.cdp("Input.insertText", {"text": text})

    async def focused(self) -> str:
        return str(await self.evaluate("document.activeElement && document.activeElement.id"))

    async def screenshot(self, name: str) -> Path:
        shot = await self.cdp("Page.captureScreenshot", {"format": "png"})
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


async def choose(page: Desk, select_id: str, code: str) -> None:
    """On the focused <select>, press ArrowDown until ``code`` is chosen (as an agent would)."""
    assert await page.focused() == select_id
    options = await page.evaluate(
        f"[...document.getElementById({select_id!r}).options].map((o) => o.value)"
    )
    current = await page.evaluate(f"document.getElementById({select_id!r}).selectedIndex")
    await page.press("ArrowDown", times=options.index(code) - current)
    assert await page.evaluate(f"document.getElementById({select_id!r}).value") == code


async def readbacks(db: async_sessionmaker[AsyncSession], uniqueid: str) -> list[ReadbackSession]:
    async with db() as session:
        rows = await session.execute(
            select(ReadbackSession)
            .where(ReadbackSession.uniqueid == uniqueid)
            .order_by(ReadbackSession.started_at)
        )
        return list(rows.scalars())


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
    earlier = await api.post(
        "/complaints",
        json={
            "description": "नाली जाम है",
            "caller_number": CALLER,
            "department": "urban_dev",
            "category": "urban_dev.drain",
            "district": "lucknow",
        },
        headers=agent.headers,
    )
    assert earlier.status_code == 201, earlier.text
    async with db() as session:
        session.add(
            CallbackRequest(
                uniqueid="itest-desk-cb", caller_number=CALLER, lang="hi", reason="wait"
            )
        )
        await session.commit()
    departments = (await api.get("/reference/departments", headers=agent.headers)).json()
    assert any(d["code"] == "police" for d in departments)

    base = f"http://{settings.api_host}:{settings.api_port}"
    phone = AgentSeat(settings, SEAT, await seat_password(db, SEAT), workdir=tmp_path)
    async with phone, chromium(f"{base}/desk", tmp_path / "chromium", "desk") as tab:
        page = Desk(tab.socket)
        await page.cdp(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1366, "height": 768, "deviceScaleFactor": 1, "mobile": False},
        )
        try:
            # ---- sign in, sit at the seat, pause and resume: keyboard only
            await page.wait_for("document.activeElement.id === 'username'")
            assert await page.evaluate("document.documentElement.lang") == "hi"
            await page.type(agent.username)
            await page.press("Tab")
            await page.type(PASSWORD)
            await page.press("Enter")
            await page.wait_for("document.body.dataset.ready === '1'")
            assert await page.focused() == "seat"
            # Signed in: the form is gone from view, and the desk fits 1366x768 unscrolled.
            assert await page.evaluate("document.getElementById('sign-in').offsetParent") is None
            assert await page.evaluate(
                "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
            ) == [1366, 768]
            await page.type(SEAT)
            await page.press("Enter")
            await page.wait_for(
                "document.getElementById('agent-state').dataset.state === 'in_queue'", 30
            )
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
                    settings, "121", hold=150.0, caller_id=CALLER, workdir=tmp_path, **KEY_ARGS
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
            assert history == [earlier.json()["number"]]
            assert await page.evaluate("document.querySelectorAll('#callbacks li').length") == 1
            await page.screenshot("03-screen-pop")
            uniqueid = await page.evaluate("window.HelplineDesk.call.uniqueid")

            # ---- the complaint, by keyboard; the first POST's answer is lost on the way back
            await page.evaluate(
                "window.HelplineDesk.dropResponse = (path, o) => path === '/complaints'"
                " && o.method === 'POST' && !window.dropped && (window.dropped = true)"
            )
            await page.access_key("v")
            await choose(page, "department", "police")
            await page.press("Tab")
            await choose(page, "category", "police.harassment")
            await page.press("Tab")
            await choose(page, "district", "lucknow")
            await page.press("Tab")  # tehsil: not known
            await page.press("Tab")
            await choose(page, "thana", "lucknow_hazratganj")
            await page.access_key("d")
            assert await page.focused() == "description"
            await page.type(DESCRIPTION)
            assert int(await page.text("count")) == len(DESCRIPTION)
            await page.wait_for("!document.getElementById('duplicate').hidden")
            await page.screenshot("04-form-filled")
            await page.press("Enter", modifiers=CTRL)
            await page.wait_for("!document.getElementById('filed').hidden", 30)
            number = await page.text("filed-number")
            assert await page.evaluate("window.dropped") is True
            assert int(await page.evaluate("document.body.dataset.retries")) >= 1
            async with db() as session:
                filed = (
                    (
                        await session.execute(
                            select(Complaint.number)
                            .join(Call, Call.id == Complaint.call_id)
                            .where(Call.uniqueid == uniqueid)
                        )
                    )
                    .scalars()
                    .all()
                )
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
            instance = AsteriskInstance(settings)

            async def bridged_back() -> str | None:
                shown = await asyncio.to_thread(instance.cli, "core show channels concise")
                for line in shown.splitlines():
                    # The caller's channel in Bridge(<the agent's leg>,x), a channel of the seat.
                    fields = line.split("!")
                    if (
                        fields[-1:] == [uniqueid]
                        and len(fields) > 6
                        and fields[5] == "Bridge"
                        and is_seat_channel(fields[6].split(",")[0], SEAT)
                    ):
                        return line
                return None

            await wait_for(bridged_back, 20, what="the caller bridged back to the agent's leg")
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
            await page.access_key("w")
            assert await page.evaluate("document.getElementById('wrapup-code').value") == (
                "complaint_filed"
            )
            await page.press("Tab")
            await page.type("संख्या दो बार सुनाई")
            await page.press("Enter")
            await page.wait_for(
                "document.getElementById('wrapup-state').dataset.code === 'complaint_filed'"
            )
            async with db() as session:
                wrapup = (
                    await session.execute(
                        select(CallWrapup).join(Call).where(Call.uniqueid == uniqueid)
                    )
                ).scalar_one()
                assert wrapup.code == "complaint_filed" and wrapup.note == "संख्या दो बार सुनाई"
                disposition = await session.scalar(
                    select(Call.disposition).where(Call.uniqueid == uniqueid)
                )
            assert disposition in (None, "answered")  # the queue manager's, not overwritten
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
        assert (ARTIFACTS / f"{step}.png").stat().st_size > 10_000, step
