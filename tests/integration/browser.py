"""Headless Chromium for the integration tests of our pages (wallboard, review, worklist, the
desk and its in-page phone), driven over the DevTools protocol: a tab's JavaScript, real key
presses, screenshots kept as test artifacts, and the WebRTC phone's getStats() figures.

Screenshots go to ``$HELPLINE_TEST_ARTIFACTS/<test's folder>`` (default ``test-artifacts/``,
git-ignored)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import websockets

from asterisk_config.tls import spki_sha256, tls_files
from core.config import Settings
from tests.waiting import wait_for

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
ARTIFACTS = Path(os.environ.get("HELPLINE_TEST_ARTIFACTS", "test-artifacts"))

#: DevTools key events of named keys: (key, code, windows virtual key code).
KEYS = {
    "Enter": ("Enter", "Enter", 13),
    "Tab": ("Tab", "Tab", 9),
    "ArrowDown": ("ArrowDown", "ArrowDown", 40),
}
ALT, CTRL = 1, 2


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def webrtc_flags(settings: Settings) -> list[str]:
    """For the in-page phone: a fake microphone, no permission prompt, loopback ICE, autoplay,
    and the WSS certificate `helpline up` made pinned by its public key (/work/shared/WEBRTC.md)."""
    return [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        "--allow-loopback-in-peer-connection",
        "--autoplay-policy=no-user-gesture-required",
        f"--ignore-certificate-errors-spki-list={spki_sha256(tls_files(settings).cert)}",
        "--window-size=1366,768",
    ]


class Page:
    """One Chromium tab over the DevTools protocol: evaluate JavaScript, read the DOM, press
    keys as a keyboard does, take screenshots. (A button's access key presses it; an input's
    or a select's gives it the focus.)"""

    def __init__(self, socket: Any, artifacts: str = "pages") -> None:
        self.socket = socket
        self.ids = itertools.count(1)
        self.artifacts = ARTIFACTS / artifacts

    async def command(self, method: str, params: dict[str, Any]) -> Any:
        """One DevTools command's result (events arriving meanwhile are skipped)."""
        ident = next(self.ids)
        await self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            reply = json.loads(await self.socket.recv())
            if reply.get("id") == ident:
                return reply["result"]

    async def cdp(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """:meth:`command`, failing on a DevTools error."""
        ident = next(self.ids)
        await self.socket.send(json.dumps({"id": ident, "method": method, "params": params or {}}))
        while True:
            reply = json.loads(await self.socket.recv())
            if reply.get("id") == ident:
                assert "error" not in reply, reply
                return reply.get("result")

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

    async def viewport(self, width: int = 1366, height: int = 768) -> None:
        await self.cdp(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    async def press(self, name: str, modifiers: int = 0, times: int = 1) -> None:
        """A key as a keyboard sends it: a named key (:data:`KEYS`) or one character (a digit
        types it; Alt+letter reaches the page's keydown handlers, not an access key)."""
        if name in KEYS:
            key, code, vk = KEYS[name]
        else:
            key, vk = name, ord(name.upper())
            code = f"Key{name.upper()}" if name.isalpha() else f"Digit{name}"
        for _ in range(times):
            common = {"key": key, "code": code, "windowsVirtualKeyCode": vk, "modifiers": modifiers}
            down: dict[str, Any] = {"type": "rawKeyDown", **common}
            if name == "Enter":
                down |= {"type": "keyDown", "text": "\r"}
            elif len(name) == 1 and not modifiers:
                down |= {"type": "keyDown", "text": name}
            await self.cdp("Input.dispatchKeyEvent", down)
            await self.cdp("Input.dispatchKeyEvent", {"type": "keyUp", **common})

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
        self.artifacts.mkdir(parents=True, exist_ok=True)
        path = self.artifacts / f"{name}.png"
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


@contextlib.asynccontextmanager
async def chromium(
    url: str,
    profile: Path,
    page_path: str = "wallboard",
    flags: Sequence[str] = (),
    artifacts: str = "pages",
) -> AsyncIterator[Page]:
    """Chromium showing ``url``; yields its tab (the one whose address contains ``page_path``),
    whose screenshots go to ``ARTIFACTS/<artifacts>``. ``flags`` are added to
    :data:`CHROMIUM_FLAGS` (e.g. :func:`webrtc_flags` for the phone)."""
    binary = shutil.which("chromium")
    assert binary, "chromium is missing: scripts/system-deps.sh installs it"
    port = free_tcp_port()
    proc = await asyncio.create_subprocess_exec(
        binary,
        *CHROMIUM_FLAGS,
        *flags,
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

            async def pages() -> list[Any]:
                try:
                    targets = (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
                except httpx.TransportError:
                    targets = []
                return [t for t in targets if t.get("type") == "page" and page_path in t["url"]]

            found = await wait_for(pages, 30, what=f"Chromium's {page_path} page")
        async with websockets.connect(found[0]["webSocketDebuggerUrl"], max_size=None) as cdp:
            yield Page(cdp, artifacts)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(10):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()


# ---------------------------------------------------------------- the in-page phone's media


class PhoneMedia:
    """The in-page phone's RTCPeerConnection.getStats() figures, which the phone refreshes
    every second in a call (``phone.lastStats``: packets each way, codec, DTLS state, audio
    energy). ``phone`` is the JavaScript expression of the attached phone object."""

    def __init__(self, page: Page, phone: str = "window.HelplineDesk.phone") -> None:
        self.page = page
        self.phone = phone

    async def stats(self) -> dict[str, Any]:
        value = await self.page.evaluate(f"{self.phone} && {self.phone}.lastStats")
        return value or {}

    async def after(self, at: float) -> dict[str, Any]:
        """The figures taken after ``at`` (the page's clock, ms)."""

        async def fresh() -> dict[str, Any] | None:
            current = await self.stats()
            return current if current.get("at", 0) > at else None

        found = await wait_for(fresh, 5, interval=0.2, what="fresh getStats() figures")
        assert found is not None
        return found

    async def now_ms(self) -> float:
        return float(await self.page.evaluate("Date.now()"))

    async def window(self, seconds: float) -> tuple[dict[str, Any], dict[str, Any]]:
        """The figures at the start and the end of ``seconds`` (a measured window)."""
        first = await self.after(await self.now_ms())
        await asyncio.sleep(seconds)  # the window measured, not a wait for something
        return first, await self.after(await self.now_ms())

    async def flowing(self, seconds: float = 1.5, per_second: int = 25) -> dict[str, int]:
        """Packets each way over a window; fails unless both reach ``per_second``."""
        first, second = await self.window(seconds)
        moved = {way: int(second[way] - first[way]) for way in ("packetsReceived", "packetsSent")}
        assert min(moved.values()) >= per_second * seconds, (moved, first, second)
        return moved
