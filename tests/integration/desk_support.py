"""Steps of the desk's integration tests (test_desk.py with an external softphone,
test_desk_webrtc.py with the in-page phone), shared rather than copied: an agent's keyboard
on the desk's forms, the caller's history seeded through the API, and what Asterisk and the
database hold afterwards."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from asterisk_config.instance import AsteriskInstance
from core.config import Settings
from core.db.models import Call, CallbackRequest, CallWrapup, Complaint, ReadbackSession
from core.domain.queues import is_seat_channel
from tests.integration.browser import CTRL, Page
from tests.integration.queue_support import PASSWORD, Agent
from tests.waiting import wait_for

#: A citizen's keys: Hindi, skip the read-out of open complaints, a new complaint.
IVR_KEYS = "121"
KEY_ARGS: dict[str, Any] = {"first_digit_delay": 1.0, "digit_gap": 2.5}
DESCRIPTION = "हज़रतगंज में रात को दबंग लोग दुकानदारों को धमका रहे हैं, पुलिस कार्रवाई करे।"


async def seed_history(
    api: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
    agent: Agent,
    caller: str,
    *,
    callback: str | None = None,
) -> str:
    """An earlier complaint of ``caller`` (filed through the API; its number is returned) and,
    with ``callback`` (a unique id), a callback request of theirs still pending."""
    earlier = await api.post(
        "/complaints",
        json={
            "description": "नाली जाम है",
            "caller_number": caller,
            "department": "urban_dev",
            "category": "urban_dev.drain",
            "district": "lucknow",
        },
        headers=agent.headers,
    )
    assert earlier.status_code == 201, earlier.text
    if callback is not None:
        async with db() as session:
            session.add(
                CallbackRequest(uniqueid=callback, caller_number=caller, lang="hi", reason="wait")
            )
            await session.commit()
    return str(earlier.json()["number"])


async def sign_in(page: Page, agent: Agent) -> None:
    """Keyboard only: user name, Tab, password, Enter; the focus lands on the seat's field."""
    await page.wait_for("document.activeElement.id === 'username'")
    await page.type(agent.username)
    await page.press("Tab")
    await page.type(PASSWORD)
    await page.press("Enter")
    await page.wait_for("document.body.dataset.ready === '1'")
    assert await page.focused() == "seat"


async def sit(page: Page, seat: str) -> None:
    """The seat typed into the focused seat field, Enter; until in the queue."""
    assert await page.focused() == "seat"
    await page.type(seat)
    await page.press("Enter")
    await page.wait_for("document.getElementById('agent-state').dataset.state === 'in_queue'", 30)


async def sign_in_and_sit(page: Page, agent: Agent, seat: str) -> None:
    await sign_in(page, agent)
    await sit(page, seat)


async def fits_the_screen(page: Page) -> None:
    """1366x768 with nothing scrolled: neither the page nor any of the desk's panels."""
    size = await page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
    )
    assert size == [1366, 768], size
    overflowing = await page.evaluate(
        "[...document.querySelectorAll('main > section')]"
        ".filter((s) => s.scrollHeight > s.clientHeight + 1 || s.scrollWidth > s.clientWidth + 1)"
        ".map((s) => s.id)"
    )
    assert overflowing == [], f"panels that scroll: {overflowing}"


async def choose(page: Page, select_id: str, code: str) -> None:
    """On the focused <select>, press ArrowDown until ``code`` is chosen (as an agent would)."""
    assert await page.focused() == select_id
    options = await page.evaluate(
        f"[...document.getElementById({select_id!r}).options].map((o) => o.value)"
    )
    current = await page.evaluate(f"document.getElementById({select_id!r}).selectedIndex")
    await page.press("ArrowDown", times=options.index(code) - current)
    assert await page.evaluate(f"document.getElementById({select_id!r}).value") == code


async def fill_complaint(page: Page, description: str = DESCRIPTION) -> None:
    """Police → harassment, Lucknow → (tehsil not known) → Hazratganj thana, the description:
    by access keys, Tab and arrow keys; waits for the duplicate check's answer."""
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
    await page.type(description)
    assert int(await page.text("count")) == len(description)
    await page.wait_for("!document.getElementById('duplicate').hidden")


async def file_complaint(page: Page) -> str:
    """Ctrl+Enter from the description; the number the desk shows."""
    await page.press("Enter", modifiers=CTRL)
    await page.wait_for("!document.getElementById('filed').hidden", 30)
    return await page.text("filed-number")


async def complaints_of_call(db: async_sessionmaker[AsyncSession], uniqueid: str) -> list[str]:
    async with db() as session:
        rows = await session.execute(
            select(Complaint.number)
            .join(Call, Call.id == Complaint.call_id)
            .where(Call.uniqueid == uniqueid)
        )
        return list(rows.scalars())


async def readbacks(db: async_sessionmaker[AsyncSession], uniqueid: str) -> list[ReadbackSession]:
    async with db() as session:
        rows = await session.execute(
            select(ReadbackSession)
            .where(ReadbackSession.uniqueid == uniqueid)
            .order_by(ReadbackSession.started_at)
        )
        return list(rows.scalars())


async def bridged_back(settings: Settings, uniqueid: str, seat: str, *, within: float = 20) -> str:
    """The caller's channel in ``Bridge(<the agent's leg>,x)`` after a read-back, the leg a
    channel of ``seat``: returns that leg's name."""
    instance = AsteriskInstance(settings)

    async def found() -> str | None:
        shown = await asyncio.to_thread(instance.cli, "core show channels concise")
        for line in shown.splitlines():
            fields = line.split("!")
            if (
                fields[-1:] == [uniqueid]
                and len(fields) > 6
                and fields[5] == "Bridge"
                and is_seat_channel(fields[6].split(",")[0], seat)
            ):
                return fields[6].split(",")[0]
        return None

    leg: str = await wait_for(found, within, what="the caller bridged back to the agent's leg")
    return leg


async def wrap_up(
    page: Page, db: async_sessionmaker[AsyncSession], uniqueid: str, note: str
) -> None:
    """Alt+W (the code the desk chose after filing: complaint filed), Tab, a note, Enter; the
    wrap-up is stored on the call and the call's own disposition left to the queue manager."""
    await page.access_key("w")
    assert await page.evaluate("document.getElementById('wrapup-code').value") == (
        "complaint_filed"
    )
    await page.press("Tab")
    await page.type(note)
    await page.press("Enter")
    await page.wait_for(
        "document.getElementById('wrapup-state').dataset.code === 'complaint_filed'"
    )
    async with db() as session:
        wrapup = (
            await session.execute(select(CallWrapup).join(Call).where(Call.uniqueid == uniqueid))
        ).scalar_one()
        assert wrapup.code == "complaint_filed" and wrapup.note == note
        disposition = await session.scalar(
            select(Call.disposition).where(Call.uniqueid == uniqueid)
        )
    assert disposition in (None, "answered")  # the queue manager's, not overwritten
