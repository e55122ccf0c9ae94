"""Who may call what and see which complaints, against a real PostgreSQL: every route as every
role (and without a token) from the access table; officers scoped to their department and
jurisdiction over generated (officer, complaint) pairs; caller numbers masked per role and the
audited unmask."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api import policy
from api.app import create_app
from api.services import access, complaints
from api.services.errors import NotFound
from core.config import Settings
from core.db.models import AuditLog, Complaint, RefOfficer, User
from core.domain.complaints import SEQUENCE_START, complaint_number
from core.domain.staff import Role
from core.reference import Level, Officer, Reference
from helpline.seed import seed_demo_users, seed_seats
from tests.api_app import client_of, stand_in_ami

Users = dict[str, list[dict[str, str]]]

CALLER = "9876543210"


@pytest.fixture
async def seeded(
    db_settings: Settings, sessions: async_sessionmaker[AsyncSession], reference_data: Reference
) -> Users:
    async with sessions() as session:
        await seed_seats(session, 2)
        users = await seed_demo_users(session, db_settings, reference_data)
        await session.commit()
    return users


@pytest.fixture
async def app(db_settings: Settings, seeded: Users) -> AsyncIterator[FastAPI]:
    application = create_app(db_settings, ami=stand_in_ami())
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        yield http


def user_named(users: Users, role: str, officer: str | None = None) -> dict[str, str]:
    return next(u for u in users[role] if officer is None or u.get("officer") == officer)


async def bearer(client: httpx.AsyncClient, user: dict[str, str]) -> str:
    response = await client.post(
        "/auth/token", data={"username": user["username"], "password": user["password"]}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def file_complaint(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    """A police complaint at Hazratganj thana (Lucknow), as a supervisor files it by phone."""
    response = await client.post(
        "/complaints",
        json={
            "description": "FIR not registered",
            "department": "police",
            "category": "police.fir_not_registered",
            "district": "lucknow",
            "thana": "lucknow_hazratganj",
            "caller_number": CALLER,
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.text
    filed: dict[str, Any] = response.json()
    return filed


# ----------------------------------------------------------------------------- the matrix


async def websocket_close_code(app: FastAPI, path: str, token: str | None) -> int | None:
    """Open ``path`` on the ASGI app, leave at once; the close code the app sent, if any."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sent: list[dict[str, Any]] = []
    await inbox.put({"type": "websocket.connect"})
    await inbox.put({"type": "websocket.disconnect", "code": 1000})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": f"token={token}".encode() if token else b"",
        "headers": [(b"host", b"api")],
        "server": ("api", 80),
        "client": ("test", 1),
        "subprotocols": [],
    }
    await asyncio.wait_for(app(scope, inbox.get, send), timeout=30)
    assert sent and sent[0]["type"] == "websocket.accept", sent
    closes = [m["code"] for m in sent if m["type"] == "websocket.close"]
    return closes[0] if closes else None


def concrete(path: str, number: str) -> str:
    return (
        path.replace("/pages/desk/{name}", "/pages/desk/desk.js")
        .replace("{number}", number)
        .replace("{username}", "agent1")
        .replace("{name}", "agent0001")
        .replace("{uniqueid}", "1732870000.1")
    )


#: Query parameters a route needs to get past validation (so an allowed call is not a 422
#: only because of them; a 422 is still "allowed").
QUERIES: dict[str, dict[str, str]] = {
    "/calls": {"caller": CALLER},
    "/complaints/check": {"caller": CALLER, "category": "police.fir_not_registered"},
}


async def test_every_route_as_every_role_follows_the_table(
    app: FastAPI, client: httpx.AsyncClient, seeded: Users
) -> None:
    logins = {
        Role.AGENT: user_named(seeded, "agent"),
        Role.SUPERVISOR: user_named(seeded, "supervisor"),
        Role.OFFICER: user_named(seeded, "officer", "police.thana.lucknow_hazratganj"),
        Role.CM_OFFICE: user_named(seeded, "cm_office"),
        Role.ADMIN: user_named(seeded, "admin"),
    }
    tokens = {role: await bearer(client, user) for role, user in logins.items()}
    number = (await file_complaint(client, tokens[Role.SUPERVISOR]))["number"]
    checked = 0
    for (method, path), roles in sorted(policy.POLICY.items()):
        url = concrete(path, number)
        if method == "WS":
            assert roles is not None, "a WebSocket is never public"
            assert await websocket_close_code(app, url, None) == 4401, path
            for role, token in tokens.items():
                code = await websocket_close_code(app, url, token)
                expected = None if role in roles else 4403
                assert code == expected, (path, role, code)
                checked += 1
            continue
        callers: list[tuple[Role | None, str | None]] = [(None, None), *tokens.items()]
        for role, token in callers:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            kwargs: dict[str, Any] = {"headers": headers, "params": QUERIES.get(path, {})}
            if method in ("POST", "PUT") and path not in ("/auth/token",):
                kwargs["json"] = {}
            response = await client.request(method, url, **kwargs)
            status = response.status_code
            if roles is None:
                assert status not in (401, 403), (method, path, role, status)
            elif role is None:
                assert status == 401, (method, path, status, response.text)
            elif role in roles:
                assert status not in (401, 403), (method, path, role, status, response.text)
            else:
                assert status == 403, (method, path, role, status, response.text)
            # /health answers 503 by design here: no Asterisk in a service test.
            assert status < 500 or path == "/health", (method, path, role, status, response.text)
            if (method, path) == ("POST", "/auth/logout") and role is not None:
                assert status == 204
                tokens[role] = await bearer(client, logins[role])  # logout ended the old one
            checked += 1
    assert checked == sum(5 if m == "WS" else 6 for m, _ in policy.POLICY)


async def test_a_route_missing_from_the_table_is_refused_to_everyone(
    db_settings: Settings, seeded: Users
) -> None:
    application = create_app(db_settings, ami=stand_in_ami())

    @application.get("/unlisted")
    async def unlisted() -> dict[str, str]:
        return {"leaked": "yes"}

    async with client_of(application) as http:
        admin = await bearer(http, user_named(seeded, "admin"))
        for headers in ({}, {"Authorization": f"Bearer {admin}"}):
            response = await http.get("/unlisted", headers=headers)
            assert response.status_code == 403
            assert response.json()["detail"] == "no access policy for GET /unlisted"


# ----------------------------------------------------------------------------- masking


async def test_caller_numbers_are_masked_for_officers_and_the_cm_office_and_unmasking_is_audited(
    client: httpx.AsyncClient, seeded: Users, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tokens = {
        "agent": await bearer(client, user_named(seeded, "agent")),
        "supervisor": await bearer(client, user_named(seeded, "supervisor")),
        "admin": await bearer(client, user_named(seeded, "admin")),
        "officer": await bearer(
            client, user_named(seeded, "officer", "police.thana.lucknow_hazratganj")
        ),
        "cm_office": await bearer(client, user_named(seeded, "cm_office")),
        "elsewhere": await bearer(
            client, user_named(seeded, "officer", "health.district.varanasi")
        ),
    }
    filed = await file_complaint(client, tokens["supervisor"])
    number = filed["number"]
    assert filed["caller_number"] == CALLER
    assert filed["assigned_officer"]["code"] == "police.thana.lucknow_hazratganj"
    for name, token in tokens.items():
        headers = {"Authorization": f"Bearer {token}"}
        one = await client.get(f"/complaints/{number}", headers=headers)
        listed = await client.get("/complaints", headers=headers)
        if name == "elsewhere":
            assert one.status_code == 404 and listed.json() == []
            continue
        assert one.status_code == 200, (name, one.text)
        shown = "98XXXXX210" if name in ("officer", "cm_office") else CALLER
        assert one.json()["caller_number"] == shown, name
        assert [c["caller_number"] for c in listed.json()] == [shown], name

    async def unmasked() -> int:
        async with sessions() as session:
            query = select(func.count()).where(AuditLog.action == "caller_number_unmasked")
            return (await session.execute(query)).scalar_one()

    reason = {"reason": "calling the citizen about the site visit"}
    # No reason, or a blank one: refused before anything is read, and not audited.
    for body in (None, {}, {"reason": "   x      "}, {"reason": ""}):
        refused = await client.post(
            f"/complaints/{number}/unmask",
            headers={"Authorization": f"Bearer {tokens['officer']}"},
            json=body,
        )
        assert refused.status_code == 422, (body, refused.text)
        assert CALLER not in refused.text
    assert await unmasked() == 0
    for attempt, name in enumerate(("officer", "cm_office", "officer"), start=1):
        response = await client.post(
            f"/complaints/{number}/unmask",
            headers={"Authorization": f"Bearer {tokens[name]}"},
            json=reason,
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"number": number, "caller_number": CALLER}
        assert await unmasked() == attempt  # every unmask, not once per user
    async with sessions() as session:
        row = (
            await session.execute(
                select(AuditLog, User.username)
                .join(User, User.id == AuditLog.actor_user_id)
                .where(AuditLog.action == "caller_number_unmasked")
                .order_by(AuditLog.id.desc())
                .limit(1)
            )
        ).one()
    assert row[1] == "police.thana.lucknow_hazratganj"
    assert (row[0].entity, row[0].detail) == (
        "complaint",
        {"number": number, "role": "officer", "reason": reason["reason"]},
    )
    # Out of scope: not found (and not audited); roles that see numbers have nothing to unmask.
    outside = await client.post(
        f"/complaints/{number}/unmask",
        headers={"Authorization": f"Bearer {tokens['elsewhere']}"},
        json=reason,
    )
    assert outside.status_code == 404
    agent = await client.post(
        f"/complaints/{number}/unmask",
        headers={"Authorization": f"Bearer {tokens['agent']}"},
        json=reason,
    )
    assert agent.status_code == 403
    assert await unmasked() == 3


# ----------------------------------------------------------------------------- officer scope

LEVELS = (Level.THANA, Level.TEHSIL, Level.DISTRICT, Level.DIVISION, Level.STATE)


def in_jurisdiction(reference: Reference, post: Officer | None, complaint: Complaint) -> bool:
    """The rule, written out over the reference data (independently of the SQL)."""
    if post is None:
        return False
    if complaint.assigned_officer == post.code:
        return True
    if complaint.department != post.department or complaint.district is None:
        return False
    if post.level is Level.THANA:
        return complaint.thana == post.place
    if post.level is Level.TEHSIL:
        thana = reference.thanas.get(complaint.thana or "")
        return complaint.tehsil == post.place or (thana is not None and thana.tehsil == post.place)
    if post.level is Level.DISTRICT:
        return complaint.district == post.place
    if post.level is Level.DIVISION:
        return reference.districts[complaint.district].division == post.place
    return post.level is Level.STATE


class Generator:
    """Complaints placed in and around officers' jurisdictions, from a seeded RNG."""

    def __init__(self, reference: Reference, seed: int) -> None:
        self.reference = reference
        self.rng = random.Random(seed)

    def place_in_district(self, district: str) -> tuple[str, str | None, str | None]:
        """(district, tehsil, thana), consistent; a thana may come without its tehsil."""
        tehsil = self.rng.choice([None, *(t.code for t in self.reference.tehsils_of(district))])
        thanas = [
            t.code
            for t in self.reference.thanas_of(district)
            if tehsil is None or t.tehsil in (None, tehsil)
        ]
        thana = self.rng.choice([None, *thanas])
        return district, tehsil, thana

    def place_within(self, post: Officer) -> tuple[str, str | None, str | None]:
        ref = self.reference
        if post.level is Level.THANA:
            thana = ref.thanas[post.place]
            return thana.district, self.rng.choice([None, thana.tehsil]), thana.code
        if post.level is Level.TEHSIL:
            tehsil = ref.tehsils[post.place]
            thanas = [t.code for t in ref.thanas_of(tehsil.district) if t.tehsil == tehsil.code]
            if thanas and self.rng.random() < 0.5:  # the thana says which tehsil it is in
                return tehsil.district, None, self.rng.choice(thanas)
            return tehsil.district, tehsil.code, None
        if post.level is Level.DISTRICT:
            return self.place_in_district(post.place)
        if post.level is Level.DIVISION:
            district = self.rng.choice(ref.districts_of(post.place))
            return self.place_in_district(district.code)
        return self.place_in_district(self.rng.choice(list(ref.districts)))

    def place_near(self, post: Officer) -> tuple[str, str | None, str | None]:
        """Somewhere in the post's district or division (often just outside the post)."""
        district = self.place_within(post)[0]
        if self.rng.random() < 0.3:
            division = self.reference.districts[district].division
            district = self.rng.choice(self.reference.districts_of(division)).code
        return self.place_in_district(district)

    def other_department(self, department: str | None) -> str:
        return self.rng.choice([d for d in self.reference.departments if d != department])


async def test_officers_read_list_and_act_only_within_their_jurisdiction(
    sessions: async_sessionmaker[AsyncSession], reference_data: Reference
) -> None:
    ref = reference_data
    gen = Generator(ref, seed=1076)
    posts: list[Officer] = []
    for level in LEVELS:
        candidates = sorted(
            (o for o in ref.officers.values() if o.level is level and o.department),
            key=lambda o: o.code,
        )
        posts += gen.rng.sample(candidates, min(4, len(candidates)))
    # Two posts sharing a department and a place at different levels, to catch a level mix-up.
    police_district = ref.officer_at("police", Level.DISTRICT, "lucknow")
    police_thana = ref.officer_at("police", Level.THANA, "lucknow_hazratganj")
    posts += [o for o in (police_district, police_thana) if o is not None and o not in posts]

    places: list[tuple[str, str, tuple[str, str | None, str | None], str | None]] = []
    for post in posts:
        assert post.department is not None
        for _ in range(3):
            places.append((post.department, "within", gen.place_within(post), None))
        places.append((post.department, "near", gen.place_near(post), None))
        other = gen.other_department(post.department)
        places.append((other, "other department", gen.place_within(post), None))
        # Assigned to the post although placed elsewhere (an escalation, a reassignment).
        elsewhere = gen.place_in_district(gen.rng.choice(list(ref.districts)))
        places.append((gen.other_department(None), "assigned", elsewhere, post.code))
    for _ in range(20):
        district = gen.rng.choice(list(ref.districts))
        places.append((gen.other_department(None), "random", gen.place_in_district(district), None))

    now = datetime.now(UTC)
    async with sessions() as session:
        author = User(username="filer", full_name="Filer", role="supervisor", password_hash="x")
        others = [
            User(username=f"staff_{role}", full_name=role, role=role, password_hash="x")
            for role in (Role.AGENT, Role.SUPERVISOR, Role.CM_OFFICE, Role.ADMIN)
        ]
        officers = [
            User(username=f"officer_{i}", full_name=p.code, role="officer", password_hash="x")
            for i, p in enumerate(posts)
        ]
        postless = User(username="no_post", full_name="No post", role="officer", password_hash="x")
        session.add_all([author, *others, *officers, postless])
        await session.flush()
        for user, post in zip(officers, posts, strict=True):
            await session.execute(
                update(RefOfficer).where(RefOfficer.code == post.code).values(user_id=user.id)
            )
        for i, (department, _, (district, tehsil, thana), assigned) in enumerate(places):
            session.add(
                Complaint(
                    number=complaint_number(SEQUENCE_START + i),
                    caller_number=f"9{i:09d}",
                    description="generated",
                    created_by=author.id,
                    created_at=now - timedelta(minutes=i),
                    due_at=now + timedelta(days=3),
                    department=department,
                    category=ref.categories_of(department)[0].code,
                    district=district,
                    tehsil=tehsil,
                    thana=thana,
                    assigned_officer=assigned,
                )
            )
        await session.commit()

    checked = allowed = 0
    crossings: list[tuple[str, str, str]] = []
    async with sessions() as session:
        stored = list((await session.execute(select(Complaint).order_by(Complaint.id))).scalars())
        assert len(stored) == len(places)
        viewers: list[tuple[User, Officer | None]] = [
            *zip(officers, posts, strict=True),
            (postless, None),
        ]
        for user, post in viewers:
            expected = {c.number for c in stored if in_jurisdiction(ref, post, c)}
            listed = await complaints.latest(session, ref, viewer=user, caller=None, limit=500)
            assert {c.number for c in listed} == expected, post
            assert all(c.caller_number and "XXXXX" in c.caller_number for c in listed)
            for complaint, (_, kind, _, _) in zip(stored, places, strict=True):
                inside = complaint.number in expected
                try:
                    await complaints.by_number(session, ref, complaint.number, viewer=user)
                    read = True
                except NotFound:
                    read = False
                acts = await access.can_act_on(session, user, complaint)
                reads = await access.can_read_complaint(session, user, complaint)
                if not inside and (read or acts or reads):
                    crossings.append((user.username, complaint.number, kind))
                assert read == acts == reads == inside, (post, complaint.number, kind)
                checked += 1
                allowed += inside
        for user in others:  # not limited by place
            listed = await complaints.latest(session, ref, viewer=user, caller=None, limit=500)
            assert len(listed) == len(stored)
            assert access.complaint_scope(user) is None
    assert crossings == []
    print(f"{checked} (officer, complaint) pairs, {allowed} in scope, 0 crossings")
    assert checked >= 1000
    # Both answers are well represented, so neither half of the rule goes untested.
    assert allowed >= 100 and checked - allowed >= 500
