"""The API against a real PostgreSQL: login, seats, complaints stored exactly once, call history.

AMI is an in-process stand-in here (queue_manager's confirmations are written straight to
``seat_status``); tests/integration drives the same API through the real Asterisk.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from api.deps import websocket_user
from core.config import Settings
from core.db.channels import STATS_CHANNEL
from core.db.models import AgentSession, Call, Complaint, SeatStatus
from core.domain.complaints import is_valid_complaint_number
from helpline.seed import seed_demo_users, seed_seats
from tests.api_app import api_client, stand_in_ami

#: What a complaint is about and where: a thana police complaint in Lucknow.
WHAT_WHERE = {
    "department": "police",
    "category": "police.harassment",
    "district": "lucknow",
    "thana": "lucknow_hazratganj",
}


@pytest.fixture
async def seeded(
    db_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> dict[str, list[dict[str, str]]]:
    async with sessions() as session:
        await seed_seats(session, 5)
        users = await seed_demo_users(session, db_settings)
        await session.commit()
    return users


@pytest.fixture
async def client(db_settings: Settings, seeded: Any) -> AsyncIterator[httpx.AsyncClient]:
    async for http in api_client(db_settings):
        yield http


async def token(client: httpx.AsyncClient, users: Any, role: str, index: int = 0) -> dict[str, str]:
    user = users[role][index]
    response = await client.post(
        "/auth/token", data={"username": user["username"], "password": user["password"]}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def confirm_seats(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Play queue_manager: mark every open agent session's seat as in the queue, then NOTIFY
    (after the commit, as the queue manager does) so a waiting login answers."""
    async with sessions() as session:
        for row in (
            await session.execute(select(AgentSession).where(AgentSession.logged_out_at.is_(None)))
        ).scalars():
            await session.merge(SeatStatus(seat=row.seat, in_queue=True, agent_session_id=row.id))
        await session.commit()
        await session.execute(text("SELECT pg_notify(:c, '')"), {"c": STATS_CHANNEL})
        await session.commit()


async def connected_call(
    sessions: async_sessionmaker[AsyncSession],
    seat: str,
    uniqueid: str = "1732870000.1",
    caller_number: str | None = "9876543210",
) -> None:
    now = datetime.now(UTC) + timedelta(seconds=1)
    async with sessions() as session:
        session.add(
            Call(
                uniqueid=uniqueid,
                caller_number=caller_number,
                caller_name="रमेश कुमार",
                dnis="1076",
                started_at=now,
                agent_seat=seat,
                agent_connected_at=now,
            )
        )
        await session.commit()


async def test_health_reports_each_part(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["database"]["ok"] is True
    assert body["ami"]["ok"] is False
    client.ami.connected.set()  # type: ignore[attr-defined]
    client.ami.fully_booted.set()  # type: ignore[attr-defined]
    assert (await client.get("/health")).json()["ami"]["ok"] is True


async def test_login_rejects_wrong_password(client: httpx.AsyncClient, seeded: Any) -> None:
    response = await client.post(
        "/auth/token", data={"username": seeded["agent"][0]["username"], "password": "nope"}
    )
    assert response.status_code == 401
    assert (await client.get("/agents/me")).status_code == 401
    bad = {"Authorization": "Bearer not-a-token"}
    assert (await client.get("/agents/me", headers=bad)).status_code == 401


async def test_officer_cannot_sit_at_a_seat(client: httpx.AsyncClient, seeded: Any) -> None:
    headers = await token(client, seeded, "officer")
    response = await client.post("/agents/me/login", json={"seat": "agent0001"}, headers=headers)
    assert response.status_code == 403


async def test_seat_login_waits_for_queue_confirmation(
    client: httpx.AsyncClient, seeded: Any, sessions: async_sessionmaker[AsyncSession]
) -> None:
    headers = await token(client, seeded, "agent")
    login = asyncio.create_task(
        client.post("/agents/me/login", json={"seat": "agent0001"}, headers=headers)
    )
    from tests.waiting import wait_for

    async def intent_stored() -> bool:  # the login wrote the agent's session and now waits
        async with sessions() as session:
            seat = AgentSession.seat == "agent0001"
            return bool(await session.scalar(select(func.count()).where(seat)))

    await wait_for(intent_stored, 5, interval=0.05)
    assert not login.done()
    await confirm_seats(sessions)
    response = await login
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "in_queue"
    # The same seat again is idempotent; another seat needs a logout first.
    again = await client.post("/agents/me/login", json={"seat": "agent0001"}, headers=headers)
    assert again.json()["state"] == "in_queue"
    other = await client.post("/agents/me/login", json={"seat": "agent0002"}, headers=headers)
    assert other.status_code == 409


async def test_a_seat_holds_one_agent(
    client: httpx.AsyncClient, seeded: Any, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first = await token(client, seeded, "agent", 0)
    second = await token(client, seeded, "agent", 1)
    await confirm_seats(sessions)
    assert (
        await client.post("/agents/me/login", json={"seat": "agent0003"}, headers=first)
    ).status_code == 200
    taken = await client.post("/agents/me/login", json={"seat": "agent0003"}, headers=second)
    assert taken.status_code == 409
    unknown = await client.post("/agents/me/login", json={"seat": "agent0999"}, headers=second)
    assert unknown.status_code == 404
    malformed = await client.post("/agents/me/login", json={"seat": "x; drop"}, headers=second)
    assert malformed.status_code == 422


async def test_complaint_on_current_call_is_stored_exactly_once(
    client: httpx.AsyncClient, seeded: Any, sessions: async_sessionmaker[AsyncSession]
) -> None:
    headers = await token(client, seeded, "agent")
    await client.post("/agents/me/login", json={"seat": "agent0001"}, headers=headers)
    await connected_call(sessions, "agent0001")
    body = {"description": "गाँव में हैंडपंप खराब है, पानी नहीं मिल रहा।"} | WHAT_WHERE
    results = await asyncio.gather(
        *(client.post("/complaints", json=body, headers=headers) for _ in range(5))
    )
    statuses = sorted(r.status_code for r in results)
    assert statuses.count(201) == 1 and statuses.count(200) == 4, statuses
    numbers = {r.json()["number"] for r in results}
    assert len(numbers) == 1
    number = numbers.pop()
    assert is_valid_complaint_number(number)
    created = next(r for r in results if r.status_code == 201).json()
    assert created["call_uniqueid"] == "1732870000.1"
    assert created["caller_number"] == "9876543210"
    assert created["caller_name"] == "रमेश कुमार"
    async with sessions() as session:
        assert (await session.execute(select(func.count()).select_from(Complaint))).scalar() == 1
    fetched = await client.get(f"/complaints/{number}", headers=headers)
    assert fetched.status_code == 200 and fetched.json()["description"] == body["description"]


async def test_idempotency_key_replays_and_refuses_reuse(
    client: httpx.AsyncClient, seeded: Any
) -> None:
    headers = await token(client, seeded, "agent") | {"Idempotency-Key": "desk-42"}
    body = {"description": "Street light broken", "caller_number": "+91 98765 43210"} | WHAT_WHERE
    first = await client.post("/complaints", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert first.json()["caller_number"] == "9876543210"
    replay = await client.post("/complaints", json=body, headers=headers)
    assert replay.status_code == 200 and replay.json()["number"] == first.json()["number"]
    reuse = await client.post(
        "/complaints", json=body | {"description": "Something else"}, headers=headers
    )
    assert reuse.status_code == 422


async def test_a_withheld_callers_number_told_to_the_agent_is_stored(
    client: httpx.AsyncClient, seeded: Any, sessions: async_sessionmaker[AsyncSession]
) -> None:
    headers = await token(client, seeded, "agent")
    await client.post("/agents/me/login", json={"seat": "agent0001"}, headers=headers)
    await connected_call(sessions, "agent0001", "1732870000.5", caller_number=None)
    body = {"description": "नाली टूटी है", "caller_number": "0522-223 4567"} | WHAT_WHERE
    created = await client.post("/complaints", json=body, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["call_uniqueid"] == "1732870000.5"
    assert created.json()["caller_number"] == "5222234567"
    found = await client.get("/complaints", params={"caller": "+915222234567"}, headers=headers)
    assert [c["number"] for c in found.json()] == [created.json()["number"]]
    # A call whose number is known keeps it: the agent cannot file it under another number.
    await connected_call(sessions, "agent0001", "1732870000.6")
    other = await client.post(
        "/complaints", json=body | {"call_uniqueid": "1732870000.6"}, headers=headers
    )
    assert other.status_code == 201 and other.json()["caller_number"] == "9876543210"
    for wrong in ("anonymous", "12", "+14155550100"):
        refused = await client.get("/complaints", params={"caller": wrong}, headers=headers)
        assert refused.status_code == 422, wrong


async def test_complaint_needs_a_call_or_a_caller(client: httpx.AsyncClient, seeded: Any) -> None:
    headers = await token(client, seeded, "agent")
    response = await client.post(
        "/complaints", json={"description": "no call"} | WHAT_WHERE, headers=headers
    )
    assert response.status_code == 409
    assert "no current call" in response.json()["detail"]
    bad_number = await client.post(
        "/complaints",
        json={"description": "x y z", "caller_number": "12"} | WHAT_WHERE,
        headers=headers,
    )
    assert bad_number.status_code == 422
    unknown_call = await client.post(
        "/complaints",
        json={"description": "x y z", "call_uniqueid": "nope"} | WHAT_WHERE,
        headers=headers,
    )
    assert unknown_call.status_code == 404


async def test_complaint_lookup_checks_the_number(client: httpx.AsyncClient, seeded: Any) -> None:
    headers = await token(client, seeded, "officer")
    assert (await client.get("/complaints/1234567891", headers=headers)).status_code == 422
    assert (await client.get("/complaints/1000000009", headers=headers)).status_code == 404


async def test_calls_by_caller_in_any_format(
    client: httpx.AsyncClient, seeded: Any, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await connected_call(sessions, "agent0002", "1732870000.7")
    headers = await token(client, seeded, "supervisor")
    for caller in ("9876543210", "+919876543210", "09876543210"):
        response = await client.get("/calls", params={"caller": caller}, headers=headers)
        assert [c["uniqueid"] for c in response.json()] == ["1732870000.7"]
    assert (
        await client.get("/calls", params={"caller": "abc"}, headers=headers)
    ).status_code == 422


async def test_openapi_is_served(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    for path in ("/health", "/auth/token", "/agents/me/login", "/complaints", "/calls"):
        assert path in spec["paths"]


async def test_limits_out_of_range_are_refused_not_clamped(
    client: httpx.AsyncClient, seeded: Any
) -> None:
    headers = await token(client, seeded, "supervisor")
    for path, params in (("/calls", {"caller": "9876543210"}), ("/complaints", {})):
        for limit in (0, 501):
            response = await client.get(path, params=params | {"limit": limit}, headers=headers)
            assert response.status_code == 422, (path, limit, response.text)
        assert (
            await client.get(path, params=params | {"limit": 500}, headers=headers)
        ).status_code == 200
    spec = (await client.get("/openapi.json")).json()
    for path in ("/calls", "/complaints"):
        limit = next(p for p in spec["paths"][path]["get"]["parameters"] if p["name"] == "limit")
        assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 500)


async def test_service_refusals_keep_their_status_and_body(
    client: httpx.AsyncClient, seeded: Any
) -> None:
    supervisor = await token(client, seeded, "supervisor")
    agent = await token(client, seeded, "agent")
    missing = await client.put("/agents/nobody/routing", json={"penalty": 1}, headers=supervisor)
    assert (missing.status_code, missing.json()["detail"]) == (404, "no user nobody")
    not_seated = await client.post("/agents/me/pause", json={"reason": "break"}, headers=agent)
    assert (not_seated.status_code, not_seated.json()["detail"]) == (
        409,
        "not logged in at a seat; log in first",
    )
    expired = await client.get("/agents/me", headers={"Authorization": "Bearer nope"})
    assert expired.json() == {
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "detail": "invalid or expired token",
    }
    assert expired.headers["content-type"] == "application/problem+json"
    assert expired.headers["www-authenticate"] == "Bearer"
    forbidden = await client.get("/stats", headers=agent)
    assert (forbidden.status_code, forbidden.json()["detail"]) == (
        403,
        "needs role: supervisor, cm_office, admin",
    )


class StubWebSocket:
    """Just what the WebSocket authentication touches: the app's sessions and close()."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.closed: tuple[int, str] | None = None

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


async def test_websockets_authenticate_through_the_same_path(
    db_settings: Settings, seeded: Any, client: httpx.AsyncClient
) -> None:
    app = create_app(db_settings, ami=stand_in_ami())
    agent_token = (await token(client, seeded, "agent"))["Authorization"].removeprefix("Bearer ")
    async with app.router.lifespan_context(app):
        cases = (
            (None, ("agent",), (4401, "token required (?token=)")),
            ("nonsense", ("agent",), (4401, "invalid or expired token")),
            (agent_token, ("supervisor", "admin"), (4403, "needs role: supervisor, admin")),
        )
        for given, roles, closed in cases:
            socket = StubWebSocket(app)
            assert await websocket_user(socket, given, roles) is None  # type: ignore[arg-type]
            assert socket.closed == closed
        socket = StubWebSocket(app)
        user = await websocket_user(socket, agent_token, ("agent",))  # type: ignore[arg-type]
        assert user is not None and user.username == seeded["agent"][0]["username"]
        assert socket.closed is None
