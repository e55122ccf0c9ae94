"""The supervisors' wallboard in a real headless Chromium (Debian ``chromium``), driven over
the DevTools protocol: it shows the live numbers and changes, without a reload, when a citizen
calls into the queue."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from helpline.sipp import citizen_call
from tests.integration.queue_support import make_agents, stats
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Page:
    """One Chromium tab over the DevTools protocol: evaluate JavaScript, read the DOM."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.ids = itertools.count(1)

    async def command(self, method: str, params: dict[str, Any]) -> Any:
        """One DevTools command's result (events arriving meanwhile are skipped)."""
        ident = next(self.ids)
        await self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            reply = json.loads(await self.socket.recv())
            if reply.get("id") == ident:
                return reply["result"]

    async def evaluate(self, expression: str) -> Any:
        result = await self.command(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}
        )
        return result["result"].get("value")

    async def text(self, element_id: str) -> str:
        value = await self.evaluate(f"document.getElementById({element_id!r}).textContent")
        return str(value)

    async def wait_for(self, expression: str, within: float = 20.0) -> None:
        async def holds() -> object:
            return await self.evaluate(expression)

        await wait_for(holds, within, interval=0.1, what=expression)


@contextlib.asynccontextmanager
async def chromium(url: str, profile: Path, page_path: str = "wallboard") -> AsyncIterator[Page]:
    """Chromium showing ``url``; yields its tab (the one whose address contains ``page_path``)."""
    binary = shutil.which("chromium")
    assert binary, "chromium is missing: scripts/system-deps.sh installs it"
    port = free_tcp_port()
    proc = await asyncio.create_subprocess_exec(
        binary,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        f"--remote-debugging-port={port}",
        url,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        async with httpx.AsyncClient() as http:

            async def wallboard_pages() -> list[Any]:
                try:
                    targets = (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
                except httpx.TransportError:
                    targets = []
                return [t for t in targets if t.get("type") == "page" and page_path in t["url"]]

            pages = await wait_for(wallboard_pages, 30, what=f"Chromium's {page_path} page")
        async with websockets.connect(pages[0]["webSocketDebuggerUrl"], max_size=None) as cdp:
            yield Page(cdp)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(10):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()


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
        before = (await stats(api, supervisor.headers))["overall"]
        assert int(await page.text("offered")) == before["offered"]
        assert int(await page.text("calls_waiting")) == before["calls_waiting"]
        assert await page.text("outbound") == f"0 / {settings.daily_outbound_budget}"
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
