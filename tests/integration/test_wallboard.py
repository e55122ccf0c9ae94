"""The supervisors' wallboard in a real headless Chromium (Debian ``chromium``), driven over
the DevTools protocol: it shows the live numbers and changes, without a reload, when a citizen
calls into the queue, and draws the day's half-hour trend with /stats' figures."""

from __future__ import annotations

import asyncio
import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from helpline.sipp import citizen_call
from tests.integration.browser import Page, chromium
from tests.integration.queue_support import make_agents, stats

pytestmark = pytest.mark.integration

#: What the page draws of each half hour, read back from its SVG.
DRAWN = (
    "JSON.stringify([...document.querySelectorAll('#trend_calls g.bucket')].map(g => "
    "[g.dataset.offered, g.dataset.answered, g.dataset.abandoned, g.dataset.sl]))"
)


def drawn_figures(buckets: list[dict[str, Any]]) -> str:
    """``DRAWN`` as the page should give it for these buckets (JavaScript's String())."""

    def js(value: float | None) -> str:
        return "" if value is None else f"{value:g}"

    return json.dumps(
        [
            [str(b["offered"]), str(b["answered"]), str(b["abandoned"]), js(b["service_level"])]
            for b in buckets
        ],
        separators=(",", ":"),
    )


def nice_max(x: float) -> float:
    """wallboard.js's niceMax: the smallest 1, 2 or 5 × 10^k at or above x (at least 1)."""
    if not x > 1:
        return 1.0
    power = 10.0 ** math.floor(math.log10(x))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= x)


async def check_trend(page: Page, shown: dict[str, Any]) -> None:
    """One drawn half hour per bucket of the day so far, with /stats' figures; bar heights to
    scale; the "agents needed" line drawn when the buckets carry it."""
    buckets = shown["trend"]["buckets"]
    at = datetime.fromisoformat(shown["at"])
    day = datetime.fromisoformat(shown["day_start"])
    assert len(buckets) == int((at - day).total_seconds() // 1800) + 1
    assert shown["trend"]["bucket_seconds"] == 1800
    assert sum(b["offered"] for b in buckets) == shown["overall"]["offered"]
    assert await page.evaluate(DRAWN) == drawn_figures(buckets)
    top = max(b["offered"] for b in buckets)
    assert float(await page.evaluate("document.getElementById('trend_calls').dataset.max")) == (
        nice_max(top)
    )
    heights = await page.evaluate(
        "JSON.stringify([...document.querySelectorAll('#trend_calls rect.offered')]"
        ".map(r => Number(r.getAttribute('height'))))"
    )
    plot = float(await page.evaluate("document.getElementById('trend_calls').dataset.plotHeight"))
    expected = [plot * b["offered"] / nice_max(top) for b in buckets]
    assert json.loads(heights) == pytest.approx(expected, abs=1e-6)
    # Agents needed (Erlang C, wired in at merge): drawn against agents logged in when present.
    staffed = {
        **shown,
        "trend": {
            **shown["trend"],
            "buckets": [{**b, "agents_needed": i % 4 + 1} for i, b in enumerate(buckets)],
        },
    }
    needed = await page.evaluate(
        f"(render({json.dumps(staffed)}), JSON.stringify({{"
        "points: document.getElementById('trend_needed').getAttribute('points').split(' ').length,"
        "legend: !document.getElementById('needed_legend').hidden,"
        "needed: [...document.querySelectorAll('#trend_agents g.bucket')]"
        ".map(g => Number(g.dataset.needed))}))"
    )
    assert json.loads(needed) == {
        "points": len(buckets),
        "legend": True,
        "needed": [i % 4 + 1 for i in range(len(buckets))],
    }
    await page.viewport(1600, 1000)  # wide: the trend beside the tiles
    await page.screenshot("wallboard-trend")


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
        # The day's trend: the abandoned caller is in the current half hour, as drawn.
        shown = await stats(api, supervisor.headers)
        await page.wait_for(f"{DRAWN} === {json.dumps(drawn_figures(shown['trend']['buckets']))}")
        assert shown["trend"]["buckets"][-1]["abandoned"] >= 1
        await check_trend(page, shown)
