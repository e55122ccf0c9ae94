"""The agent desk's routes against a real PostgreSQL: the page and its files, filing from the
desk (idempotent under concurrent submits, bad input refused), wrap-up, the shift's counts,
the read-back request (AMI is a recording stand-in here; tests/integration/test_desk.py
drives the real Asterisk), and the screen-pop's history and callbacks."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.live import as_seen_by, screen_pop
from api.routers.pages import desk_labels
from api.schemas import DESCRIPTION_MAX
from core.config import Settings
from core.db.models import AuditLog, Call, CallbackRequest, CallWrapup, Complaint, User
from core.domain.calls import CallDisposition, WrapupCode
from core.protocols.ami import AMIMessage
from core.reference import Reference
from core.transport.ami_client import AMIActionError
from helpline.seed import seed_demo_users, seed_seats
from tests.api_app import api_client

Users = dict[str, list[dict[str, str]]]
CALLER = "9876543210"
WHAT_WHERE = {
    "department": "police",
    "category": "police.harassment",
    "district": "lucknow",
    "thana": "lucknow_hazratganj",
}


@dataclass
class RecordingAMI:
    """The API's AMI client as the read-back uses it: answers Getvar with ``peer``, records
    every action; ``refuse`` names an action Asterisk answers with an error."""

    peer: str = "PJSIP/agent0001-0000002a"
    refuse: str | None = None
    actions: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    fully_booted: asyncio.Event = field(default_factory=asyncio.Event)

    async def action(self, name: str, **fields: Any) -> AMIMessage:
        self.actions.append((name, fields))
        if name == self.refuse:
            raise AMIActionError(
                name, AMIMessage([("Response", "Error"), ("Message", "No such channel")])
            )
        if name == "Getvar":
            return AMIMessage([("Response", "Success"), ("Value", self.peer)])
        return AMIMessage([("Response", "Success")])


@pytest.fixture
async def seeded(
    db_settings: Settings, sessions: async_sessionmaker[AsyncSession], reference_data: Reference
) -> Users:
    async with sessions() as session:
        await seed_seats(session, 3)
        users = await seed_demo_users(session, db_settings, reference_data)
        await session.commit()
    return users


@pytest.fixture
def ami() -> RecordingAMI:
    fake = RecordingAMI()
    fake.connected.set()
    return fake


async def _client(settings: Settings, ami: RecordingAMI) -> AsyncIterator[httpx.AsyncClient]:
    async for http in api_client(settings, ami):
        yield http


@pytest.fixture
async def client(
    db_settings: Settings, seeded: Users, ami: RecordingAMI
) -> AsyncIterator[httpx.AsyncClient]:
    async for http in _client(db_settings, ami):
        yield http


async def bearer(client: httpx.AsyncClient, users: Users, role: str, index: int = 0) -> Any:
    user = users[role][index]
    response = await client.post(
        "/auth/token", data={"username": user["username"], "password": user["password"]}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def user_id(sessions: async_sessionmaker[AsyncSession], username: str) -> int:
    async with sessions() as session:
        return (
            await session.execute(select(User.id).where(User.username == username))
        ).scalar_one()


async def live_call(
    sessions: async_sessionmaker[AsyncSession],
    agent_id: int,
    uniqueid: str = "1733400000.1",
    *,
    seat: str = "agent0001",
    caller: str | None = CALLER,
    talk: int | None = None,
    ended: bool = False,
) -> None:
    """A citizen's call connected to ``seat``, handled by the agent ``agent_id``."""
    now = datetime.now(UTC)
    async with sessions() as session:
        session.add(
            Call(
                uniqueid=uniqueid,
                channel=f"PJSIP/trunk-{uniqueid.replace('.', '')}",
                caller_number=caller,
                started_at=now - timedelta(seconds=60),
                queue_joined_at=now - timedelta(seconds=30),
                agent_connected_at=now - timedelta(seconds=20),
                agent_seat=seat,
                agent_user_id=agent_id,
                talk_seconds=talk,
                ended_at=now if ended else None,
                disposition=CallDisposition.ANSWERED if ended else None,
            )
        )
        await session.commit()


async def file_on(
    client: httpx.AsyncClient, headers: Any, uniqueid: str, text: str = "सड़क पर गड्ढे हैं"
) -> dict[str, Any]:
    response = await client.post(
        "/complaints",
        json={"description": text, "call_uniqueid": uniqueid} | WHAT_WHERE,
        headers=headers,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


# --------------------------------------------------------------------------- the page


async def test_the_desk_page_and_its_files_are_served_from_our_origin(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/desk")
    assert page.status_code == 200
    html = page.text
    assert 'type="module" src="/pages/desk/desk.js"' in html
    assert "http://" not in html and "https://" not in html  # nothing from a CDN
    assert '<section id="phone"' in html  # the WebRTC phone's slot
    assert desk_labels()["submit"]["hi"] in html  # Hindi first
    found = re.search(r'<script id="config"[^>]*>(.*?)</script>', html, re.S)
    assert found is not None
    config = json.loads(found[1])
    assert config["description_max"] == DESCRIPTION_MAX
    for name, media in (("desk.js", "javascript"), ("desk.css", "css"), ("labels.json", "json")):
        served = await client.get(f"/pages/desk/{name}")
        assert served.status_code == 200 and media in served.headers["content-type"], name
    assert (await client.get("/pages/desk/../app.py")).status_code == 404
    assert (await client.get("/pages/desk/secrets.env")).status_code == 404


# --------------------------------------------------------------------------- filing


async def test_five_concurrent_submits_of_one_form_file_one_complaint(
    client: httpx.AsyncClient, seeded: Users, sessions: async_sessionmaker[AsyncSession]
) -> None:
    agent = seeded["agent"][0]["username"]
    await live_call(sessions, await user_id(sessions, agent))
    headers = await bearer(client, seeded, "agent") | {"Idempotency-Key": "form-fill-7f3a"}
    body = {"description": "बिजली नहीं आ रही है", "call_uniqueid": "1733400000.1"} | WHAT_WHERE
    answers = await asyncio.gather(
        *(client.post("/complaints", json=body, headers=headers) for _ in range(5))
    )
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 200, 201], [
        a.text for a in answers
    ]
    assert len({a.json()["number"] for a in answers}) == 1
    async with sessions() as session:
        assert (await session.scalar(select(func.count()).select_from(Complaint))) == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"department": "ministry_of_magic"}, "department"),
        ({"district": "atlantis"}, "district"),
        ({"category": "health.doctor_absent"}, "category"),  # another department's category
        ({"thana": "varanasi_kotwali"}, "thana"),  # a thana of another district
    ],
)
async def test_unknown_or_mismatched_codes_are_refused_per_field(
    client: httpx.AsyncClient, seeded: Users, change: dict[str, str], field: str
) -> None:
    headers = await bearer(client, seeded, "supervisor")
    body = {"description": "शिकायत", "caller_number": CALLER} | WHAT_WHERE | change
    refused = await client.post("/complaints", json=body, headers=headers)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["loc"][-1] == field


@pytest.mark.parametrize(
    ("description", "ok"),
    [
        ("", False),
        ("   \n  ", False),  # blank
        ("अब", False),  # two characters: under the minimum
        ("ठीक", True),  # three code points, as the desk counts them
        ("क" * DESCRIPTION_MAX, True),
        ("क" * (DESCRIPTION_MAX + 1), False),
        ("कि" * (DESCRIPTION_MAX // 2) + "क", False),  # a matra is a character of its own
    ],
)
async def test_the_description_limits_count_code_points(
    client: httpx.AsyncClient, seeded: Users, description: str, ok: bool
) -> None:
    headers = await bearer(client, seeded, "supervisor")
    body = {"description": description, "caller_number": CALLER} | WHAT_WHERE
    answer = await client.post("/complaints", json=body, headers=headers)
    assert answer.status_code == (201 if ok else 422), answer.text[:300]


async def test_a_caller_over_the_monthly_cap_is_refused_with_429(
    db_settings: Settings, seeded: Users, ami: RecordingAMI
) -> None:
    capped = db_settings.model_copy(update={"complaints_per_caller_month": 1})
    async for client in _client(capped, ami):
        headers = await bearer(client, seeded, "supervisor")
        body = {"description": "पहली शिकायत", "caller_number": CALLER} | WHAT_WHERE
        assert (await client.post("/complaints", json=body, headers=headers)).status_code == 201
        check = await client.get(
            "/complaints/check",
            params={"caller": CALLER, "category": WHAT_WHERE["category"]},
            headers=headers,
        )
        assert check.json()["complaints_this_month"] == 1 and check.json()["monthly_cap"] == 1
        refused = await client.post(
            "/complaints", json=body | {"description": "दूसरी शिकायत"}, headers=headers
        )
        assert refused.status_code == 429 and "this month" in refused.json()["detail"]


# --------------------------------------------------------------------------- wrap-up, shift


async def test_wrap_up_is_stored_apart_from_the_disposition_and_correctable(
    client: httpx.AsyncClient, seeded: Users, sessions: async_sessionmaker[AsyncSession]
) -> None:
    agent_id = await user_id(sessions, seeded["agent"][0]["username"])
    await live_call(sessions, agent_id, ended=True)
    headers = await bearer(client, seeded, "agent")
    url = "/calls/1733400000.1/wrapup"
    first = await client.put(url, json={"code": "wrong_number"}, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["code"] == "wrong_number" and first.json()["disposition"] == "answered"
    fixed = await client.put(
        url, json={"code": "other", "note": "कॉलर ने गलत विभाग बताया"}, headers=headers
    )
    assert fixed.status_code == 200 and fixed.json()["note"] == "कॉलर ने गलत विभाग बताया"
    async with sessions() as session:
        rows = (await session.execute(select(CallWrapup))).scalars().all()
        assert [(r.code, r.user_id) for r in rows] == [(WrapupCode.OTHER, agent_id)]
        call = (await session.execute(select(Call))).scalar_one()
        assert call.disposition == CallDisposition.ANSWERED  # the queue manager's, untouched
        audits = await session.scalar(
            select(func.count()).where(AuditLog.action == "call_wrapped_up")
        )
        assert audits == 2
    # Every code the desk offers is accepted; anything else is a 422.
    for code in WrapupCode:
        assert (await client.put(url, json={"code": code}, headers=headers)).status_code == 200
    assert (await client.put(url, json={"code": "hung_up"}, headers=headers)).status_code == 422
    # Another agent may not wrap up this call; an unknown call is a 404.
    other = await bearer(client, seeded, "agent", 1)
    assert (await client.put(url, json={"code": "other"}, headers=other)).status_code == 403
    missing = await client.put("/calls/1.2/wrapup", json={"code": "other"}, headers=headers)
    assert missing.status_code == 404


async def test_the_shift_counts_are_the_agents_own_and_today_s(
    client: httpx.AsyncClient, seeded: Users, sessions: async_sessionmaker[AsyncSession]
) -> None:
    agent_id = await user_id(sessions, seeded["agent"][0]["username"])
    other_id = await user_id(sessions, seeded["agent"][1]["username"])
    headers = await bearer(client, seeded, "agent")
    empty = (await client.get("/agents/me/shift", headers=headers)).json()
    assert (empty["calls_answered"], empty["complaints_filed"]) == (0, 0)
    assert empty["average_handle_seconds"] is None
    await live_call(sessions, agent_id, "1733400000.1", talk=100, ended=True)
    await live_call(sessions, agent_id, "1733400000.2", talk=200, ended=True)
    await live_call(sessions, agent_id, "1733400000.3")  # on the line now
    await live_call(sessions, other_id, "1733400000.4", seat="agent0002", talk=999, ended=True)
    await file_on(client, headers, "1733400000.3")
    shift = (await client.get("/agents/me/shift", headers=headers)).json()
    assert shift["calls_answered"] == 3
    assert shift["complaints_filed"] == 1
    assert shift["average_handle_seconds"] == pytest.approx(150 + 5)  # talk + queue wrap-up


# --------------------------------------------------------------------------- read-back


async def test_read_back_redirects_both_legs_with_one_redirect(
    client: httpx.AsyncClient,
    seeded: Users,
    sessions: async_sessionmaker[AsyncSession],
    ami: RecordingAMI,
) -> None:
    await live_call(sessions, await user_id(sessions, seeded["agent"][0]["username"]))
    headers = await bearer(client, seeded, "agent")
    number = (await file_on(client, headers, "1733400000.1"))["number"]
    answer = await client.post(
        "/calls/1733400000.1/readback",
        json={"complaint": number, "then": "hangup"},
        headers=headers,
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["agent_channel"] == ami.peer
    names = [name for name, _ in ami.actions]
    assert names == ["Getvar", "Setvar", "Setvar", "Setvar", "Redirect"]
    setvars = {f["Variable"]: f["Value"] for name, f in ami.actions if name == "Setvar"}
    assert setvars == {
        "READBACK_COMPLAINT": number,
        "READBACK_THEN": "hangup",
        "READBACK_PEER": ami.peer,
    }
    redirect = ami.actions[-1][1]
    assert redirect["Channel"] == "PJSIP/trunk-17334000001"
    assert (redirect["Context"], redirect["ExtraChannel"], redirect["ExtraContext"]) == (
        "readback",
        ami.peer,
        "readback-agent",
    )
    async with sessions() as session:
        assert (
            await session.scalar(
                select(func.count()).where(AuditLog.action == "complaint_read_back")
            )
            == 1
        )


async def test_read_back_refusals(
    client: httpx.AsyncClient,
    seeded: Users,
    sessions: async_sessionmaker[AsyncSession],
    ami: RecordingAMI,
) -> None:
    agent_id = await user_id(sessions, seeded["agent"][0]["username"])
    await live_call(sessions, agent_id, "1733400000.1")
    await live_call(sessions, agent_id, "1733400000.2")
    await live_call(sessions, agent_id, "1733400000.3", ended=True)
    headers = await bearer(client, seeded, "agent")
    number = (await file_on(client, headers, "1733400000.1"))["number"]
    ended_number = (await file_on(client, headers, "1733400000.3"))["number"]

    async def read(uniqueid: str, complaint: str, who: Any = headers) -> httpx.Response:
        return await client.post(
            f"/calls/{uniqueid}/readback", json={"complaint": complaint}, headers=who
        )

    # A complaint of another call, an ended call, another agent, nothing that exists.
    assert (await read("1733400000.2", number)).status_code == 409
    assert (await read("1733400000.3", ended_number)).status_code == 409
    assert (
        await read("1733400000.1", number, await bearer(client, seeded, "agent", 1))
    ).status_code == 403
    assert (await read("1733400000.9", number)).status_code == 404
    assert (await read("1733400000.1", "1000000000")).status_code == 404
    assert (await read("1733400000.1", "12345")).status_code == 422
    assert ami.actions == []  # none of those reached Asterisk
    # The caller bridged to some other channel than the call's seat: refused before any change.
    ami.peer = "PJSIP/agent0002-00000001"
    conflict = await read("1733400000.1", number)
    assert conflict.status_code == 409 and "agent0001" in conflict.json()["detail"]
    assert [name for name, _ in ami.actions] == ["Getvar"]
    # Asterisk refusing the redirect (the caller hung up meanwhile) is a 409, not a 500.
    ami.peer, ami.refuse = "PJSIP/agent0001-00000003", "Redirect"
    assert (await read("1733400000.1", number)).status_code == 409
    # No AMI link: the agent is told to read it out.
    ami.connected.clear()
    assert "yourself" in (await read("1733400000.1", number)).json()["detail"]


# --------------------------------------------------------------------------- screen-pop


async def test_the_screen_pop_has_history_with_officers_and_pending_callbacks(
    seeded: Users,
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    reference_data: Reference,
) -> None:
    agent_id = await user_id(sessions, seeded["agent"][0]["username"])
    # A caller of its own: callback_requests is not emptied between tests.
    caller = "9812300077"
    await live_call(sessions, agent_id, "1733400000.1", caller=caller)
    headers = await bearer(client, seeded, "agent")
    earlier = await file_on(client, headers, "1733400000.1", "पहले की शिकायत")
    async with sessions() as session:
        session.add(
            CallbackRequest(
                uniqueid="desk-test-callback", caller_number=caller, lang="hi", reason="wait"
            )
        )
        await session.commit()
    await live_call(sessions, agent_id, "1733400000.2", caller=caller)
    async with sessions() as session:
        pop = await screen_pop(session, "1733400000.2", reference_data)
    assert pop is not None and pop["caller_number"] == caller
    [previous] = pop["previous_complaints"]
    assert previous["number"] == earlier["number"] and previous["status"] == earlier["status"]
    assert previous["officer"]["code"] == earlier["assigned_officer"]["code"]
    assert previous["category_hi"]
    assert [c["reason"] for c in pop["pending_callbacks"]] == ["wait"]
    assert as_seen_by(pop, "agent")["caller_number"] == caller
    assert as_seen_by(pop, "officer")["caller_number"] == "98XXXXX077"
