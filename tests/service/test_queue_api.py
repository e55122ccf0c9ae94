"""The queue manager and the API together, in one process, on a real PostgreSQL and the fake
AMI server: pause with reasons and skills applied to app_queue, seat state idempotent under
duplicated and reordered member events, live stats, seats grown and shrunk (409 when busy),
seat credentials for admins only, Prometheus metrics."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from asterisk_config.render import SeatCredential
from core.config import Settings
from core.db.models import SeatStatus
from core.domain.credentials import sip_ha1
from core.domain.queues import all_queues
from core.protocols.ami import AMIMessage
from core.transport.ami_client import AMIClient
from core.transport.fake_ami import FakeAMIServer, FakeAMISession
from helpline.seed import seed_demo_users, seed_seats
from queue_manager.service import QueueManager
from tests.api_app import stand_in_ami

QUEUES = all_queues("helpline")


@dataclass
class Stack:
    fake: FakeAMIServer
    manager: QueueManager
    http: httpx.AsyncClient
    users: dict[str, list[dict[str, str]]]
    sessions: async_sessionmaker[AsyncSession]
    applied: list[int] = field(default_factory=list)

    async def headers(self, role: str, index: int = 0) -> dict[str, str]:
        user = self.users[role][index]
        response = await self.http.post(
            "/auth/token", data={"username": user["username"], "password": user["password"]}
        )
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}


def queue_penalty(session: FakeAMISession, action: AMIMessage) -> list[dict[str, str]] | None:
    """The fake has no QueuePenalty; app_queue's answer is enough here."""
    if (action.get("Action") or "").lower() != "queuepenalty":
        return None
    for queue, members in session.server.queues.items():
        member = members.get(action.get("Interface") or "")
        if action.get("Queue") not in (None, queue):
            continue
        if member is not None:
            member.penalty = int(action.get("Penalty") or 0)
    return [{"Response": "Success", "ActionID": action.action_id or "", "Message": "ok"}]


@pytest.fixture
async def stack(
    db_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Stack]:
    async with sessions() as session:
        await seed_seats(session, 5)
        users = await seed_demo_users(session, db_settings)
        await session.execute(text("DELETE FROM seat_config_state"))
        await session.commit()
    applied: list[int] = []

    def apply_config(seats: Sequence[SeatCredential]) -> None:
        applied.append(len(seats))

    async with FakeAMIServer(
        username="helpline_queue_manager", secret="s", queues=QUEUES, handler=queue_penalty
    ) as fake:
        ami = AMIClient(
            "127.0.0.1",
            fake.port,
            "helpline_queue_manager",
            "s",
            ping_interval=0.5,
            backoff_initial=0.05,
            backoff_max=0.2,
        )
        manager = QueueManager(db_settings, ami, sessions, apply_config=apply_config)
        api_ami = stand_in_ami()
        app = create_app(db_settings, ami=api_ami)
        async with ami, app.router.lifespan_context(app):
            task = asyncio.create_task(manager.run())
            async with asyncio.timeout(5):
                await manager.reconciled.wait()
            transport = httpx.ASGITransport(app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
                try:
                    yield Stack(fake, manager, http, users, sessions, applied)
                finally:
                    task.cancel()
                    with pytest.raises(asyncio.CancelledError):
                        await task


async def test_pause_reasons_and_skills_reach_app_queue(stack: Stack) -> None:
    agent = await stack.headers("agent")
    login = await stack.http.post("/agents/me/login", json={"seat": "agent0002"}, headers=agent)
    assert login.json()["state"] == "in_queue", login.text
    # Every queue: the main one at the agent's penalty, skill queues higher (no such skill).
    members = {q: stack.fake.queues[q].get("Local/agent0002@seat-phones") for q in QUEUES}
    assert all(members.values())
    assert {q: m.penalty for q, m in members.items() if m} == {
        "helpline": 0,
        "helpline-police": 10,
        "helpline-health": 10,
    }

    paused = await stack.http.post("/agents/me/pause", json={"reason": "training"}, headers=agent)
    assert paused.status_code == 200, paused.text
    assert paused.json()["paused"] and paused.json()["pause_reason"] == "training"
    assert all(m.paused and m.paused_reason == "training" for m in members.values() if m)
    bad = await stack.http.post("/agents/me/pause", json={"reason": "lunch"}, headers=agent)
    assert bad.status_code == 422

    supervisor = await stack.headers("supervisor")
    username = stack.users["agent"][0]["username"]
    routed = await stack.http.put(
        f"/agents/{username}/routing", json={"skills": ["police"], "penalty": 1}, headers=supervisor
    )
    assert routed.status_code == 200, routed.text
    async with asyncio.timeout(5):
        await stack.fake.wait_until(
            lambda: (
                (
                    stack.fake.queues["helpline-police"]["Local/agent0002@seat-phones"].penalty,
                    stack.fake.queues["helpline-health"]["Local/agent0002@seat-phones"].penalty,
                )
                == (1, 11)
            )
        )
    forbidden = await stack.http.put(
        f"/agents/{username}/routing", json={"penalty": 0}, headers=agent
    )
    assert forbidden.status_code == 403

    stats = (await stack.http.get("/stats", headers=supervisor)).json()
    assert stats["overall"]["agents"]["logged_in"] == 1
    assert stats["overall"]["agents"]["paused_by_reason"]["training"] == 1
    assert stats["queues"]["helpline-police"]["agents"]["paused"] == 1

    # Asterisk restarts: members are gone; the reconnect puts the agent back, still paused.
    for members_of_queue in stack.fake.queues.values():
        members_of_queue.clear()
    stack.manager.reconciled.clear()
    await stack.fake.drop_connections()
    async with asyncio.timeout(5):
        await stack.manager.reconciled.wait()
    member = stack.fake.queues["helpline"]["Local/agent0002@seat-phones"]
    assert member.paused and member.paused_reason == "training"

    resumed = await stack.http.post("/agents/me/unpause", headers=agent)
    assert resumed.json()["paused"] is False
    assert not stack.fake.queues["helpline-health"]["Local/agent0002@seat-phones"].paused


def member_event(name: str, paused: bool, reason: str, stamp: str) -> dict[str, str]:
    return {
        "Queue": "helpline",
        "MemberName": "agent0003",
        "Interface": "Local/agent0003@seat-phones",
        "StateInterface": "hint:agent0003@seat-hints",
        "Penalty": "0",
        "Status": "1",
        "Paused": "1" if paused else "0",
        "PausedReason": reason,
        "InCall": "0",
        "Timestamp": stamp,
    }


async def seat_row(stack: Stack, seat: str) -> SeatStatus | None:
    async with stack.sessions() as session:
        return await session.get(SeatStatus, seat)


async def test_member_and_agent_events_are_idempotent_and_order_safe(stack: Stack) -> None:
    fake = stack.fake
    newer = member_event("QueueMemberPause", True, "meeting", "1900000010.0")
    older = member_event("QueueMemberPause", False, "", "1900000005.0")
    await fake.push_event("QueueMemberAdded", member_event("", False, "", "1900000001.0"))
    await fake.push_event("QueueMemberPause", newer)
    await fake.push_event("QueueMemberPause", older)  # reordered: older, must not win
    await fake.push_event("QueueMemberPause", newer)  # duplicated
    call = {
        "Queue": "helpline",
        "Interface": "Local/agent0003@seat-phones",
        "Uniqueid": "1900000020.5",
    }
    await fake.push_event("AgentComplete", {**call, "TalkTime": "9", "Timestamp": "1900000030.0"})
    await fake.push_event("AgentConnect", {**call, "HoldTime": "2", "Timestamp": "1900000021.0"})
    await fake.push_event("Ping", {})  # nothing: just lets the events above drain
    from tests.waiting import wait_for

    async def call_ended() -> Any:
        row = await seat_row(stack, "agent0003")
        return row if row is not None and row.last_call_ended_at is not None else None

    row = await wait_for(call_ended, 5, interval=0.05)
    assert row.paused and row.pause_reason == "meeting" and row.in_queue
    # The late AgentConnect of a completed call does not leave the seat "on a call".
    assert row.current_call_uniqueid is None
    assert row.queues == ["helpline"]


async def test_seats_grow_and_shrink_but_never_under_an_agent(stack: Stack) -> None:
    admin = await stack.headers("admin")
    supervisor = await stack.headers("supervisor")
    grown = await stack.http.put("/seats/count", json={"count": 12}, headers=admin)
    assert grown.status_code == 200, grown.text
    assert grown.json()["count"] == 12 and grown.json()["applied"] is True
    assert stack.applied[-1] == 12
    creds = await stack.http.get("/seats/agent0012/credentials", headers=admin)
    assert creds.status_code == 200 and len(creds.json()["password"]) >= 16
    assert (
        await stack.http.get("/seats/agent0012/credentials", headers=supervisor)
    ).status_code == 403
    assert (
        await stack.http.put("/seats/count", json={"count": 3}, headers=supervisor)
    ).status_code == 403
    for not_a_count in (0, True, "500", 12.5):
        assert (
            await stack.http.put("/seats/count", json={"count": not_a_count}, headers=admin)
        ).status_code == 422, not_a_count

    agent = await stack.headers("agent")
    await stack.http.post("/agents/me/login", json={"seat": "agent0010"}, headers=agent)
    refused = await stack.http.put("/seats/count", json={"count": 4}, headers=admin)
    assert refused.status_code == 409 and "agent0010" in refused.json()["detail"]
    assert (await stack.http.get("/seats", headers=admin)).json()["count"] == 12
    await stack.http.post("/agents/me/logout", headers=agent)
    shrunk = await stack.http.put("/seats/count", json={"count": 4}, headers=admin)
    assert shrunk.json() | {"applied_at": None, "reload_seconds": None} == {
        "count": 4,
        "applied": True,
        "applied_count": 4,
        "applied_at": None,
        "reload_seconds": None,
        "error": None,
    }
    assert (await stack.http.get("/seats/agent0010/credentials", headers=admin)).status_code == 404
    relogin = await stack.http.post("/agents/me/login", json={"seat": "agent0010"}, headers=agent)
    assert relogin.status_code == 404


async def test_stats_and_metrics_count_a_call(stack: Stack) -> None:
    fake = stack.fake
    uid = "1900001000.1"
    base: dict[str, Any] = {"Uniqueid": uid, "Linkedid": uid, "Channel": "PJSIP/trunk-1"}
    now = time.time()
    await fake.push_event(
        "Newchannel",
        {
            **base,
            "Context": "from-trunk",
            "Exten": "1076",
            "CallerIDNum": "9876500011",
            "Timestamp": f"{now:.6f}",
        },
    )
    await fake.push_event(
        "QueueCallerJoin", {**base, "Queue": "helpline", "Timestamp": f"{now + 1:.6f}"}
    )
    supervisor = await stack.headers("supervisor")

    async def overall() -> dict[str, Any]:
        body: dict[str, Any] = (await stack.http.get("/stats", headers=supervisor)).json()
        return body

    from tests.waiting import wait_for

    async def one_waiting() -> bool:
        return bool((await overall())["overall"]["calls_waiting"] == 1)

    await wait_for(one_waiting, 5, interval=0.05)
    member = {"Queue": "helpline", "Interface": "Local/agent0001@seat-phones"}
    await fake.push_event(
        "AgentConnect", {**base, **member, "HoldTime": "25", "Timestamp": f"{now + 26:.6f}"}
    )
    await fake.push_event(
        "QueueCallerLeave", {**base, "Queue": "helpline", "Timestamp": f"{now + 26:.6f}"}
    )
    await fake.push_event(
        "AgentComplete", {**base, **member, "TalkTime": "10", "Timestamp": f"{now + 36:.6f}"}
    )
    await fake.push_event(
        "Hangup", {**base, "Context": "from-trunk", "Timestamp": f"{now + 36:.6f}"}
    )

    async def call_answered() -> dict[str, Any] | None:
        stats = await overall()
        done = stats["overall"]["answered"] == 1 and stats["overall"]["aht_seconds"] is not None
        return stats if done else None

    stats = await wait_for(call_answered, 5, interval=0.05)
    o = stats["overall"]
    assert (o["offered"], o["answered"], o["abandoned"], o["answered_within_sl"]) == (1, 1, 0, 0)
    assert o["asa_seconds"] == 25.0 and o["aht_seconds"] == 15.0 and o["calls_waiting"] == 0
    assert stats["queues"]["helpline"]["offered"] == 1
    assert stats["inbound"]["used"] == 1 and stats["outbound"]["used"] == 0
    metrics = await stack.http.get("/metrics")
    assert metrics.status_code == 200
    assert 'helpline_calls_answered_today{queue="all"} 1.0' in metrics.text
    assert (await stack.http.get("/stats")).status_code == 401


async def test_phone_settings_for_the_seat_the_agent_sits_at(stack: Stack) -> None:
    """GET /agents/me/phone: only while at a seat; the WebRTC endpoint's own digest (never the
    seat's password, and not the digest that registers its SIP endpoint); audited."""
    agent = await stack.headers("agent")
    before = await stack.http.get("/agents/me/phone", headers=agent)
    assert before.status_code == 409, before.text
    login = await stack.http.post("/agents/me/login", json={"seat": "agent0004"}, headers=agent)
    assert login.json()["state"] == "in_queue", login.text
    phone = await stack.http.get("/agents/me/phone", headers=agent)
    assert phone.status_code == 200, phone.text
    body = phone.json()
    async with stack.sessions() as session:
        password = (
            await session.execute(text("SELECT sip_password FROM seats WHERE name = 'agent0004'"))
        ).scalar_one()
        audited = (
            await session.execute(
                text(
                    "SELECT count(*) FROM audit_log WHERE action = 'phone_settings_read' "
                    "AND entity_id = 'agent0004'"
                )
            )
        ).scalar_one()
    port = stack.manager.settings.wss_port
    assert body == {
        "seat": "agent0004",
        "wss_url": f"wss://127.0.0.1:{port}/ws",
        "sip_uri": "sip:agent0004-web@127.0.0.1",
        "authorization_user": "agent0004-web",
        "realm": "helpline",
        "ha1": sip_ha1("agent0004-web", "helpline", password),
        "display_name": "agent0004",
        "echo_test": "600",
    }
    assert password not in phone.text
    assert body["ha1"] != sip_ha1("agent0004", "helpline", password)
    assert audited == 1
    officer = await stack.headers("officer")
    assert (await stack.http.get("/agents/me/phone", headers=officer)).status_code == 403
    assert (await stack.http.get("/agents/me/phone")).status_code == 401
    await stack.http.post("/agents/me/logout", headers=agent)
    assert (await stack.http.get("/agents/me/phone", headers=agent)).status_code == 409


async def test_the_desk_loads_the_phone_and_its_scripts_are_served_from_here(stack: Stack) -> None:
    page = await stack.http.get("/desk")
    assert page.status_code == 200
    # JsSIP (a classic script) and the phone before the desk's module, all from our origin.
    scripts = re.findall(r'<script (?:type="module" )?src="([^"]+)"', page.text)
    assert scripts == ["/pages/vendor/jssip.min.js", "/pages/phone.js", "/pages/desk/desk.js"]
    assert "https://" not in page.text
    assert (await stack.http.get("/phone")).status_code == 404  # no page of its own
    script = await stack.http.get("/pages/phone.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith(
        "text/javascript"
    )
    assert "export function attach(el, seat" in script.text and "getStats" in script.text
    bundle = await stack.http.get("/pages/vendor/jssip.min.js")
    # `make deps` bundles it (scripts/web-deps.sh); the suite runs after `make deps`.
    assert bundle.status_code == 200, bundle.text
    assert "var JsSIP=" in bundle.text[:40] and "WebSocketInterface" in bundle.text
