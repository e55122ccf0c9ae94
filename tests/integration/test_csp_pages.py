"""The pages under their Content-Security-Policy (issue 16): /wallboard, /review, /worklist,
/desk, /docs and /redoc load, run their scripts (from files: the CSP allows no inline script) and
draw their data in a real headless Chromium, and Chromium reports not one CSP violation (an
inline script injected afterwards, as a control, is blocked and reported). The API runs under
uvicorn (tests/api_server.py) on a test database; no Asterisk is needed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from helpline.seed import seed_demo_users, seed_seats
from tests.api_server import running_api
from tests.integration.browser import chromium

pytestmark = pytest.mark.integration

#: A control: an inline script, which the CSP must block (and report).
INLINE = (
    "document.head.appendChild(Object.assign(document.createElement('script'),"
    " {textContent: 'window.__inline = 1'})); 0"
)


async def send(page: Any, method: str, params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """One DevTools command's reply (result or error), and the CSP console entries that
    arrived before it."""
    ident = next(page.ids)
    await page.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
    entries: list[str] = []
    while True:
        message = json.loads(await page.socket.recv())
        if message.get("method") == "Log.entryAdded":
            text = message["params"]["entry"].get("text", "")
            if "Content Security Policy" in text or "Content-Security-Policy" in text:
                entries.append(text)
        if message.get("id") == ident:
            return message, entries


async def wait_ready(page: Any, ready: str) -> None:
    """Until ``ready`` holds in the page (errors while it is still loading count as not yet)."""

    async with asyncio.timeout(30):
        while True:
            reply, _ = await send(
                page, "Runtime.evaluate", {"expression": ready, "returnByValue": True}
            )
            if reply.get("result", {}).get("result", {}).get("value"):
                return
            await asyncio.sleep(0.1)  # the poll interval, not a guess at a duration


async def csp_reports(page: Any) -> list[str]:
    """Chromium's console entries about the CSP so far: ``Log.enable`` replays every entry
    the tab logged since it opened (load time included); the evaluate after it flushes them."""
    _, entries = await send(page, "Log.enable", {})
    _, more = await send(page, "Runtime.evaluate", {"expression": "1"})
    await send(page, "Log.disable", {})
    return entries + more


async def test_pages_run_under_the_csp_without_violations(
    db_settings: Settings, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    async with sessions() as session:
        await seed_seats(session, 2)
        users = await seed_demo_users(session, db_settings)
        await session.commit()
    with running_api(db_settings) as (port, _pid):
        base = f"http://127.0.0.1:{port}"
        tokens: dict[str, str] = {}
        async with httpx.AsyncClient(base_url=base) as http:
            for role in ("supervisor", "cm_office", "officer"):
                user = users[role][0]
                reply = await http.post(
                    "/auth/token",
                    data={"username": user["username"], "password": user["password"]},
                )
                assert reply.status_code == 200, reply.text
                tokens[role] = reply.json()["access_token"]
            csp = (await http.get("/wallboard")).headers["content-security-policy"]
            assert "script-src 'self';" in csp
            # The desk phone may reach Asterisk's WSS listener, and nothing else off the API.
            assert f"connect-src 'self' {db_settings.wss_url};" in csp
        shown = "!document.getElementById('{}').hidden"
        pages = [
            ("wallboard", f"/wallboard#token={tokens['supervisor']}", shown.format("board")),
            ("review", f"/review#token={tokens['cm_office']}", shown.format("content")),
            ("worklist", f"/worklist#token={tokens['officer']}", shown.format("content")),
            ("docs", "/docs", "!!document.querySelector('.swagger-ui .info')"),
            ("redoc", "/redoc", "!!document.querySelector('.api-content')"),
            # The agent desk, its modules and the phone's SIP library (before sign-in).
            ("desk", "/desk", "!!window.HelplinePhone && !!window.JsSIP"),
        ]
        report: dict[str, list[str]] = {}
        for name, path, ready in pages:
            async with chromium(base + path, tmp_path / f"chromium-{name}", name) as page:
                await wait_ready(page, f"document.readyState === 'complete' && ({ready})")
                report[name] = await csp_reports(page)
                # The control: the same watch sees an inline script blocked.
                await send(page, "Runtime.evaluate", {"expression": INLINE})
                await wait_ready(page, "window.__inline === undefined")
                control = await csp_reports(page)
                assert len(control) == len(report[name]) + 1, (name, control)
        print({name: len(found) for name, found in report.items()})
        assert report == {name: [] for name, _, _ in pages}
