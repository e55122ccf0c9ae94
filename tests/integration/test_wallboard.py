"""The supervisors' wallboard in a real headless Chromium (Debian ``chromium``), driven over
the DevTools protocol: it shows the live numbers and changes, without a reload, when a citizen
calls into the queue."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from helpline.sipp import citizen_call
from tests.integration.browser import chromium
from tests.integration.queue_support import make_agents, stats

pytestmark = pytest.mark.integration


async def test_wallboard_shows_live_numbers_and_changes_when_a_call_arrives(
    stack_settings: Settings,
    api: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    settings = stack_settings
    (supervisor,) = await make_agents(db, api, "q5wall", 1, role="supervisor")
    token = supervisor.headers["Authorization"].removeprefix("Bearer ")
    page_html = await api.get("/wallboard")
    assert page_html.status_code == 200 and "/pages/wallboard.js" in page_html.text
    assert "WebSocket" in (await api.get("/pages/wallboard.js")).text
    url = f"http://{settings.api_host}:{settings.api_port}/wallboard#token={token}"
    async with chromium(url, tmp_path / "chromium-profile") as page:
        await page.wait_for("Number(document.body.dataset.updates || 0) >= 1")
        shown = await stats(api, supervisor.headers)
        before = shown["overall"]
        assert int(await page.text("offered")) == before["offered"]
        assert int(await page.text("calls_waiting")) == before["calls_waiting"]
        # Today's outbound calls (earlier tests' dialer calls count) against the day's budget.
        outbound = shown["outbound"]
        assert outbound["budget"] == settings.daily_outbound_budget
        assert await page.text("outbound") == f"{outbound['used']} / {outbound['budget']}"
        # The dialer's live figures, pushed with the rest (the same source as /metrics).
        live = shown["outbound_live"]
        calls = f"{live['attempts']} / {live['connected']} / {live['abandoned']}"
        assert await page.text("outbound_calls") == calls
        assert await page.text("outbound_left") == str(live["budget_left"])
        assert await page.text("outbound_active") == str(live["active"])
        assert int(await page.text("outbound_pace")) >= 0
        updates = int(await page.evaluate("Number(document.body.dataset.updates)"))

        # A citizen calls; nobody is logged in, so the caller waits in the queue.
        call = asyncio.create_task(
            citizen_call(
                settings,
                "11",
                hold=10.0,
                caller_id="9876550005",
                first_digit_delay=1.0,
                digit_gap=2.5,
                workdir=tmp_path,
            )
        )
        await page.wait_for(
            f"Number(document.getElementById('offered').textContent) === {before['offered'] + 1}"
        )
        waiting = int(await page.text("calls_waiting"))
        assert waiting == before["calls_waiting"] + 1
        helpline_row = await page.evaluate(
            "document.querySelector('tr[data-queue=\"helpline\"]').textContent"
        )
        assert helpline_row.startswith("helpline")
        outcome = await call
        assert outcome.hangup_by == "citizen"
        # The caller gave up: the board counts an abandoned call, still without a reload.
        await page.wait_for(
            "Number(document.getElementById('abandoned').textContent) === "
            f"{before['abandoned'] + 1}"
        )
        assert int(await page.evaluate("Number(document.body.dataset.updates)")) > updates
        assert await page.evaluate("performance.getEntriesByType('navigation').length") == 1
