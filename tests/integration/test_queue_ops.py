"""Operating the queue on the real Asterisk: seats grown 500 → 1000 while a call is up (the
call survives, a new seat logs in), the agent's screen-pop and the supervisors' push over
WebSockets, and an Asterisk restart after which the agents are back with their pauses."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from asterisk_config.instance import AsteriskInstance
from core.config import Settings
from core.db.models import Call
from helpline.sipp import AgentSeat, citizen_call
from tests.integration.queue_support import (
    login,
    logout_all,
    make_agents,
    seat_password,
    stats,
    wait_queue_manager,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

KEYS = "11"  # Hindi, then new complaint (type-ahead; see test_queue_load)
KEY_ARGS: dict[str, Any] = {"first_digit_delay": 1.0, "digit_gap": 2.5}


async def admin_headers(api: httpx.AsyncClient, demo_users: Any) -> dict[str, str]:
    user = demo_users["admin"][0]
    response = await api.post(
        "/auth/token", data={"username": user["username"], "password": user["password"]}
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_seats_grow_to_1000_while_a_call_is_up(
    stack_settings: Settings,
    demo_users: Any,
    api: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    settings = stack_settings
    admin = await admin_headers(api, demo_users)
    await wait_queue_manager(db)
    first, newcomer = await make_agents(db, api, "q5ops", 2)
    async with AgentSeat(
        settings, "agent0201", await seat_password(db, "agent0201"), workdir=tmp_path
    ) as phone:
        await login(api, first, "agent0201")
        try:
            call = asyncio.create_task(
                citizen_call(settings, KEYS, hold=25.0, caller_id="9876520001", **KEY_ARGS)
            )
            await phone.wait_answered(1, within=20)
            t0 = time.monotonic()
            grown = await api.put("/seats/count", json={"count": 1000}, headers=admin)
            took = time.monotonic() - t0
            assert grown.status_code == 200, grown.text
            body = grown.json()
            assert body["count"] == 1000 and body["applied"] is True, body
            reload = body["reload_seconds"]
            print(f"\n500 -> 1000 seats: {took:.2f} s (render + PJSIP reload {reload:.2f} s)")
            outcome = await call
            # Not dropped: the citizen hung up at the end of the hold, Asterisk sent no BYE.
            assert outcome.hangup_by == "citizen", outcome.events
            assert outcome.duration is not None and outcome.duration >= 25.0
            assert phone.calls_answered == 1

            # A new seat: its credentials (admin only) register a softphone that logs in.
            creds = await api.get("/seats/agent1000/credentials", headers=admin)
            assert creds.status_code == 200, creds.text
            forbidden = await api.get("/seats/agent1000/credentials", headers=first.headers)
            assert forbidden.status_code == 403
            async with AgentSeat(
                settings, "agent1000", creds.json()["password"], workdir=tmp_path
            ) as new_phone:
                await login(api, newcomer, "agent1000")
                refused = await api.put("/seats/count", json={"count": 500}, headers=admin)
                assert refused.status_code == 409 and "agent1000" in refused.text
                await logout_all(api, [first])  # only the new seat takes calls now
                outcome = await citizen_call(
                    settings, KEYS, hold=12.0, caller_id="9876520002", **KEY_ARGS
                )
                assert outcome.answered
                await new_phone.wait_answered(1, within=10)
        finally:
            await logout_all(api, [first, newcomer])
    shrunk = await api.put("/seats/count", json={"count": 500}, headers=admin)
    assert shrunk.status_code == 200 and shrunk.json()["applied"], shrunk.text


async def test_screen_pop_and_live_stats_are_pushed(
    stack_settings: Settings,
    api: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    settings = stack_settings
    await wait_queue_manager(db)
    (agent,) = await make_agents(db, api, "q5pop", 1)
    (supervisor,) = await make_agents(db, api, "q5popsup", 1, role="supervisor")
    caller = "9876530003"
    # A complaint this caller filed earlier (the agent is not on a call: filed by number).
    earlier = await api.post(
        "/complaints",
        json={
            "description": "सड़क पर पानी भरा है",
            "caller_number": caller,
            "department": "urban_dev",
            "category": "urban_dev.drain",
            "district": "lucknow",
        },
        headers=agent.headers,
    )
    assert earlier.status_code == 201, earlier.text
    ws_base = f"ws://{settings.api_host}:{settings.api_port}"
    token = agent.headers["Authorization"].removeprefix("Bearer ")
    sup_token = supervisor.headers["Authorization"].removeprefix("Bearer ")
    async with AgentSeat(
        settings, "agent0202", await seat_password(db, "agent0202"), workdir=tmp_path
    ) as phone:
        await login(api, agent, "agent0202")
        try:
            async with (
                websockets.connect(f"{ws_base}/ws/agent?token={token}") as pops,
                websockets.connect(f"{ws_base}/ws/stats?token={sup_token}") as board,
            ):
                hello = json.loads(await pops.recv())
                assert hello["type"] == "hello" and hello["seat"] == "agent0202"
                first = json.loads(await board.recv())
                waiting_before = first["overall"]["calls_waiting"]
                # The IVR knows this caller's open complaint: "2" skips its status read-out.
                call = asyncio.create_task(
                    citizen_call(settings, "121", hold=12.0, caller_id=caller, **KEY_ARGS)
                )
                # The push: the supervisor sees the caller waiting or being answered.
                offered_before = first["overall"]["offered"]
                async with asyncio.timeout(20):
                    while True:
                        update = json.loads(await board.recv())
                        if update["overall"]["offered"] > offered_before:
                            stats_seen_at = datetime.now(UTC)
                            break
                pop = json.loads(await asyncio.wait_for(pops.recv(), 20))
                pop_seen_at = datetime.now(UTC)
                assert pop["type"] == "screen_pop"
                assert pop["caller_number"] == caller and pop["ivr_lang"] == "hi"
                assert "own_complaints" in (pop["ivr_path"] or ""), pop
                assert [c["number"] for c in pop["previous_complaints"]] == [
                    earlier.json()["number"]
                ]
                outcome = await call
                assert outcome.answered and phone.calls_answered == 1
                assert waiting_before >= 0
                # Within 1 s of the AMI event (its own Timestamp, stored on the call row).
                async with db() as session:
                    row = (
                        await session.execute(select(Call).where(Call.caller_number == caller))
                    ).scalar_one()
                assert row.queue_joined_at is not None and row.agent_connected_at is not None
                stats_delay = (stats_seen_at - row.queue_joined_at).total_seconds()
                pop_delay = (pop_seen_at - row.agent_connected_at).total_seconds()
                print(f"\npush delays: stats {stats_delay:.3f} s, screen-pop {pop_delay:.3f} s")
                assert stats_delay < 1.0 and pop_delay < 1.0
        finally:
            await logout_all(api, [agent])
    bad = websockets.connect(f"{ws_base}/ws/stats?token=nonsense")
    async with bad as socket:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await socket.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_asterisk_restart_agents_back_in_the_queue_with_their_pauses(
    stack_settings: Settings,
    api: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    settings = stack_settings
    await wait_queue_manager(db)
    agents = await make_agents(db, api, "q5restart", 3)
    (supervisor,) = await make_agents(db, api, "q5restartsup", 1, role="supervisor")
    seats = ["agent0211", "agent0212", "agent0213"]
    try:
        for agent, seat in zip(agents, seats, strict=True):
            await login(api, agent, seat)
        paused = await api.post(
            "/agents/me/pause", json={"reason": "break"}, headers=agents[0].headers
        )
        assert paused.json()["pause_reason"] == "break", paused.text
        meeting = await api.post(
            "/agents/me/pause", json={"reason": "meeting"}, headers=agents[1].headers
        )
        assert meeting.json()["pause_reason"] == "meeting", meeting.text
        instance = AsteriskInstance(settings)
        t0 = time.monotonic()
        await asyncio.to_thread(instance.stop)
        await asyncio.to_thread(instance.start)
        # app_queue starts empty (persistentmembers = no); the queue manager puts them back.

        async def members_back() -> str | None:
            shown = await asyncio.to_thread(instance.cli, "queue show helpline")
            back = all(seat in shown for seat in seats) and shown.count("paused") >= 2
            return shown if back else None

        shown = await wait_for(members_back, 40, interval=0.5, what="the seats back in app_queue")
        print(f"\nAsterisk restart to agents back in the queue: {time.monotonic() - t0:.1f} s")
        lines = {seat: next(ln for ln in shown.splitlines() if seat in ln) for seat in seats}
        assert "paused:break" in lines["agent0211"], lines
        assert "paused:meeting" in lines["agent0212"], lines
        assert "paused" not in lines["agent0213"], lines
        police = await asyncio.to_thread(instance.cli, "queue show helpline-police")
        assert all(seat in police for seat in seats)

        async def pauses_counted() -> bool:
            board = await stats(api, supervisor.headers)
            reasons = board["overall"]["agents"]["paused_by_reason"]
            return bool(reasons["break"] >= 1 and reasons["meeting"] >= 1)

        await wait_for(pauses_counted, 20, interval=0.5, what="both pause reasons in /stats")
        state = (await api.get("/agents/me", headers=agents[0].headers)).json()
        assert state["state"] == "in_queue" and state["pause_reason"] == "break"
    finally:
        await logout_all(api, agents)
