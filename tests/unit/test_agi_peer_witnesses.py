"""Witnesses of the pinned peer: panoramisk 1.4's FastAGI defects, shown on the same peers.

panoramisk 1.4 is the peer of the benchmarks (``python -m bench agi``, docs/capacity.md) and
the reason the server exists; it is pinned in the dev extras and is not a dependency of the
helpline. Each test here asserts that a defect HAPPENS with it (DESIGN.md), next to the test of
ours in test_agi_panoramisk_defects.py. If one fails, a new panoramisk fixed the defect: good
news, re-check whether we still need our own code; these tests are about the peer.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from core.transport.fake_agi import FakeAsterisk
from tests.unit.test_agi_panoramisk_defects import (
    _asterisk_hangs_up_while_idle,
    _cancel_mid_script,
    _cpu_while_truncated_peer_hangs,
    _stream_pair,
)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
async def test_truncated_handshake_spins_panoramisk() -> None:
    """Shows the defect: ``read()`` at EOF returns b"" without yielding, forever."""
    assert await _cpu_while_truncated_peer_hangs("panoramisk") > 0.2  # ~0.5 s when idle


async def test_hangup_desynchronises_panoramisk() -> None:
    """Shows the defect: HANGUP is returned as the reply, so each later command gets the reply
    meant for the one before it (SECOND reads FIRST's value)."""
    from panoramisk.fast_agi import Request

    async with _stream_pair() as (r1, w1, r2, w2):
        asterisk = asyncio.create_task(_asterisk_hangs_up_while_idle(r2, w2, send_env=False))
        request = Request(app=None, headers={}, reader=r1, writer=w1)
        first = await request.send_command("GET VARIABLE FIRST")
        second = await request.send_command("GET VARIABLE SECOND")
        await asterisk
    assert first.get("error") == "AGIResultHangup"
    assert second["result"] == ("1", "from-first-command")  # desynchronised


async def test_route_with_query_string_misses_panoramisk(caplog: pytest.LogCaptureFixture) -> None:
    """Shows the defect: panoramisk looks up ``agi_network_script`` verbatim, query included."""
    from panoramisk.fast_agi import Application

    seen: list[object] = []

    async def script(request: Any) -> None:
        seen.append(request)

    app = Application()
    app.add_route("ivr/main", script)
    peer = FakeAsterisk([], script="ivr/main", query={"lang": "hi"})
    async with _stream_pair() as (r1, w1, r2, w2), asyncio.TaskGroup() as group:
        group.create_task(app.handler(r1, w1))
        group.create_task(peer.serve(r2, w2))
    assert seen == []
    assert 'No route for the request "ivr/main?lang=hi"' in caplog.text


async def test_cancellation_swallowed_by_panoramisk() -> None:
    """Shows the defect: ``except BaseException`` around the route eats CancelledError, so a
    TaskGroup or server shutdown cannot stop a call."""
    from panoramisk.fast_agi import Application

    app = Application()
    task = await _cancel_mid_script(app.handler, lambda s: app.add_route("ivr", s))
    assert not task.cancelled()
