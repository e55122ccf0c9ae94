"""Complaints filed with codes, routed to officers and stored with their history, against a
real PostgreSQL: routing by category and place, refusals per field, several complaints on one
call, who may file on a call, duplicates, the monthly cap, the reference lists, seeding."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.schemas import ComplaintIn
from api.services import auth, complaints, reference
from api.services.errors import TooMany
from core.config import Settings
from core.db.models import (
    AuditLog,
    Call,
    Complaint,
    ComplaintHistory,
    RefDistrict,
    ReferenceManifest,
    RefOfficer,
    RefThana,
    SmsOutbox,
    User,
)
from core.domain.clock import month_start
from core.domain.credentials import verify_password
from core.reference import Reference
from helpline.seed import credentials_file, seed_demo_users, seed_seats
from tests.api_app import api_client
from tests.statements import statements_sent, transactions_begun

Users = dict[str, list[dict[str, str]]]


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
async def client(db_settings: Settings, seeded: Users) -> AsyncIterator[httpx.AsyncClient]:
    async for http in api_client(db_settings):
        yield http


async def token(client: httpx.AsyncClient, users: Users, role: str, index: int = 0) -> Any:
    user = users[role][index]
    response = await client.post(
        "/auth/token", data={"username": user["username"], "password": user["password"]}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def connected_call(
    sessions: async_sessionmaker[AsyncSession], seat: str, uniqueid: str, caller: str
) -> None:
    now = datetime.now(UTC) + timedelta(seconds=1)
    async with sessions() as session:
        session.add(
            Call(
                uniqueid=uniqueid,
                caller_number=caller,
                dnis="1076",
                started_at=now,
                agent_seat=seat,
                agent_connected_at=now,
            )
        )
        await session.commit()


def complaint(description: str, category: str, district: str, **place: str) -> dict[str, str]:
    return {
        "description": description,
        "department": category.split(".", maxsplit=1)[0],
        "category": category,
        "district": district,
    } | place


async def history(sessions: async_sessionmaker[AsyncSession], number: str) -> list[tuple[Any, ...]]:
    async with sessions() as session:
        rows = await session.execute(
            select(
                ComplaintHistory.action,
                ComplaintHistory.actor_user_id,
                ComplaintHistory.from_status,
                ComplaintHistory.to_status,
                ComplaintHistory.from_officer,
                ComplaintHistory.to_officer,
                ComplaintHistory.note,
            )
            .join(Complaint, Complaint.id == ComplaintHistory.complaint_id)
            .where(Complaint.number == number)
            .order_by(ComplaintHistory.id)
        )
        return [tuple(row) for row in rows]


# ----------------------------------------------------------------------------- routing


HAZRATGANJ = {"thana": "lucknow_hazratganj"}


@pytest.mark.parametrize(
    ("category", "district", "place", "officer", "level"),
    [
        # police at the thana
        ("police.harassment", "lucknow", HAZRATGANJ, "police.thana.lucknow_hazratganj", "thana"),
        # revenue at the tehsil, given or known from the thana
        (
            "revenue.mutation",
            "lucknow",
            {"tehsil": "lucknow_sadar"},
            "revenue.tehsil.lucknow_sadar",
            "tehsil",
        ),
        ("revenue.mutation", "lucknow", HAZRATGANJ, "revenue.tehsil.lucknow_sadar", "tehsil"),
        # health at the district
        ("health.doctor_absent", "varanasi", {}, "health.district.varanasi", "district"),
        # upward when the place of the first level is not given: the district's head
        ("police.harassment", "lucknow", {}, "police.district.lucknow", "district"),
        ("revenue.mutation", "varanasi", {}, "revenue.district.varanasi", "district"),
    ],
)
async def test_filing_routes_to_the_responsible_officer(
    client: httpx.AsyncClient,
    seeded: Users,
    sessions: async_sessionmaker[AsyncSession],
    reference_data: Reference,
    category: str,
    district: str,
    place: dict[str, str],
    officer: str,
    level: str,
) -> None:
    headers = await token(client, seeded, "supervisor")
    body = complaint("सड़क पर अतिक्रमण है", category, district, **place) | {
        "caller_number": "9876543210"
    }
    response = await client.post("/complaints", json=body, headers=headers)
    assert response.status_code == 201, response.text
    created = response.json()
    post = reference_data.officers[officer]
    assert created["status"] == "assigned"
    assert created["assigned_officer"] == {
        "code": officer,
        "designation_en": post.designation_en,
        "designation_hi": post.designation_hi,
        "level": level,
    }
    assert created["level"] == level
    assert created["unroutable_reason"] is None
    assert (
        created["department"]["name_en"] == reference_data.departments[body["department"]].name_en
    )
    assert created["category"]["code"] == category
    assert created["district"]["name_hi"] == reference_data.districts[district].name_hi
    sla = reference_data.categories[category].sla_days
    due = datetime.fromisoformat(created["due_at"]) - datetime.fromisoformat(created["created_at"])
    assert due == timedelta(days=sla)
    supervisor_id = (await _user_ids(sessions, ["supervisor1"]))["supervisor1"]
    rows = await history(sessions, created["number"])
    assert [row[:6] for row in rows] == [
        ("register", supervisor_id, None, "registered", None, None),
        ("assign", None, "registered", "assigned", None, officer),
    ]
    # Passing over the first level is said in the assignment's note.
    assert (rows[1][6] is None) == (level == reference_data.categories[category].first_level)
    fetched = await client.get(f"/complaints/{created['number']}", headers=headers)
    # GET adds the history and resolution (lifecycle.transitions) to what POST answered.
    assert {key: fetched.json()[key] for key in created} == created


async def as_read(
    client: httpx.AsyncClient, answered: dict[str, Any], headers: dict[str, str]
) -> dict[str, Any]:
    """The fields of a filing's answer as ``GET /complaints/{number}`` shows them now."""
    fetched = await client.get(f"/complaints/{answered['number']}", headers=headers)
    assert fetched.status_code == 200, fetched.text
    return {key: fetched.json()[key] for key in answered}


async def _user_ids(sessions: async_sessionmaker[AsyncSession], names: list[str]) -> dict[str, int]:
    async with sessions() as session:
        return await auth.user_ids(session, names)


async def test_a_complaint_no_rule_places_is_kept_with_the_reason(
    db_settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    seeded: Users,
    reference_data: Reference,
) -> None:
    """No health officer anywhere: the complaint is stored ``registered`` with the reason,
    for the review page, never silently unassigned."""
    without_health = Reference(
        **dict(reference_data)
        | {
            "officers": {
                code: officer
                for code, officer in reference_data.officers.items()
                if officer.department != "health"
            }
        }
    )
    async with sessions() as session:
        supervisor = (
            await session.execute(select(User).where(User.username == "supervisor1"))
        ).scalar_one()
        filed = await complaints.register(
            session,
            db_settings,
            without_health,
            supervisor,
            ComplaintIn(
                **complaint("दवा नहीं मिल रही", "health.medicines", "varanasi"),
                caller_number="9876543210",
            ),
        )
    assert filed.created
    assert filed.complaint.status == "registered"
    assert filed.complaint.assigned_officer is None and filed.complaint.level is None
    assert filed.complaint.unroutable_reason is not None
    assert "no health officer at district 'varanasi'" in filed.complaint.unroutable_reason
    rows = await history(sessions, filed.complaint.number)
    assert [(row[0], row[3], row[5], row[6]) for row in rows] == [
        ("register", "registered", None, filed.complaint.unroutable_reason)
    ]
    async with sessions() as session:  # the answer is what a later read shows
        read = await complaints.by_number(
            session, without_health, filed.complaint.number, viewer=supervisor
        )
    assert read == filed.complaint
    async with sessions() as session:
        routed = await complaints.register(
            session,
            db_settings,
            reference_data,
            supervisor,
            ComplaintIn(
                **complaint("बिजली नहीं", "power.no_supply", "varanasi"), caller_number="9123456780"
            ),
        )
        review = await complaints.latest(
            session, reference_data, viewer=supervisor, caller=None, limit=50, unroutable=True
        )
        everything = await complaints.latest(
            session, reference_data, viewer=supervisor, caller=None, limit=50
        )
    assert [c.number for c in review] == [filed.complaint.number]
    assert {c.number for c in everything} == {filed.complaint.number, routed.complaint.number}


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("department", {"department": "nope"}),
        ("category", {"category": "police.nope"}),
        ("category", {"category": "revenue.mutation"}),  # of another department
        ("district", {"district": "atlantis"}),
        ("tehsil", {"tehsil": "nowhere"}),
        ("tehsil", {"tehsil": "varanasi_sadar"}),  # in another district
        ("thana", {"thana": "nowhere"}),
        ("thana", {"thana": "agra_tajganj"}),  # in another district
    ],
)
async def test_unknown_or_mismatched_codes_are_refused_per_field(
    client: httpx.AsyncClient,
    seeded: Users,
    sessions: async_sessionmaker[AsyncSession],
    field: str,
    change: dict[str, str],
) -> None:
    headers = await token(client, seeded, "supervisor")
    body = complaint("x y z", "police.harassment", "lucknow") | {"caller_number": "9876543210"}
    response = await client.post("/complaints", json=body | change, headers=headers)
    assert response.status_code == 422, response.text
    [detail] = response.json()["errors"]
    assert detail["loc"] == ["body", field]
    assert change[field] in detail["msg"]
    async with sessions() as session:
        assert (await session.execute(select(func.count()).select_from(Complaint))).scalar() == 0


async def test_codes_are_required(client: httpx.AsyncClient, seeded: Users) -> None:
    headers = await token(client, seeded, "supervisor")
    response = await client.post(
        "/complaints", json={"description": "x y z", "caller_number": "9876543210"}, headers=headers
    )
    assert response.status_code == 422
    missing = {tuple(error["loc"]) for error in response.json()["errors"]}
    assert missing == {("body", "department"), ("body", "category"), ("body", "district")}


# ----------------------------------------------------------------------------- one call


async def test_a_call_carries_several_complaints_each_stored_once(
    client: httpx.AsyncClient, seeded: Users, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A caller with two problems: two complaints on one call, each with its own text, each
    stored once however many times (and however concurrently) the desk sends it."""
    headers = await token(client, seeded, "agent")
    await client.post("/agents/me/login", json={"seat": "agent0001"}, headers=headers)
    await connected_call(sessions, "agent0001", "1732871000.1", "9876543210")
    water = complaint("हैंडपंप खराब है", "urban_dev.water_supply", "lucknow")
    police = complaint("पड़ोसी धमका रहा है", "police.harassment", "lucknow", thana="lucknow_chowk")
    results = await asyncio.gather(
        *(client.post("/complaints", json=body, headers=headers) for body in [water, police] * 5)
    )
    assert sorted(r.status_code for r in results) == [200] * 8 + [201] * 2, [
        r.text for r in results
    ]
    by_text = {r.json()["description"]: r.json()["number"] for r in results}
    assert set(by_text) == {water["description"], police["description"]}
    assert len(set(by_text.values())) == 2
    for r in results:  # every answer is the complaint that was asked for
        assert by_text[r.json()["description"]] == r.json()["number"]
        assert r.json()["call_uniqueid"] == "1732871000.1"
        # The filing's answer is built from what it wrote, a replay's from a read: both are
        # what a later read of the complaint shows (its author, call, routing and names).
        assert await as_read(client, r.json(), headers) == r.json()
    async with sessions() as session:
        stored = (await session.execute(select(func.count()).select_from(Complaint))).scalar()
        assert stored == 2
        assert (
            await session.execute(select(func.count()).select_from(ComplaintHistory))
        ).scalar() == 4


async def test_only_the_agent_who_handled_the_call_may_file_on_it(
    client: httpx.AsyncClient, seeded: Users, sessions: async_sessionmaker[AsyncSession]
) -> None:
    handler = await token(client, seeded, "agent", 0)
    other = await token(client, seeded, "agent", 1)
    await client.post("/agents/me/login", json={"seat": "agent0001"}, headers=handler)
    await client.post("/agents/me/login", json={"seat": "agent0002"}, headers=other)
    await connected_call(sessions, "agent0001", "1732871000.2", "9876543210")
    body = complaint("नाली टूटी है", "urban_dev.drain", "lucknow") | {"call_uniqueid": "1732871000.2"}
    refused = await client.post("/complaints", json=body, headers=other)
    assert refused.status_code == 403, refused.text
    assert "1732871000.2" in refused.json()["detail"]
    filed = await client.post("/complaints", json=body, headers=handler)
    assert filed.status_code == 201, filed.text
    # A supervisor may file on any call (a second problem the agent forgot).
    supervisor = await token(client, seeded, "supervisor")
    second = body | {"description": "स्ट्रीट लाइट खराब"}
    assert (await client.post("/complaints", json=second, headers=supervisor)).status_code == 201
    async with sessions() as session:
        assert (await session.execute(select(func.count()).select_from(Complaint))).scalar() == 2


# ----------------------------------------------------------------------------- misuse


async def test_an_open_complaint_of_the_same_caller_and_category_is_flagged_and_linked(
    client: httpx.AsyncClient, seeded: Users, sessions: async_sessionmaker[AsyncSession]
) -> None:
    headers = await token(client, seeded, "supervisor")
    caller = {"caller_number": "9876543210"}
    check = {"caller": "09876543210", "category": "police.harassment"}
    before = await client.get("/complaints/check", params=check, headers=headers)
    assert before.json() == {
        "possible_duplicate_of": None,
        "complaints_this_month": 0,
        "monthly_cap": 10,
    }
    first = await client.post(
        "/complaints",
        json=complaint("धमकी मिल रही है", "police.harassment", "lucknow") | caller,
        headers=headers,
    )
    assert first.json()["possible_duplicate_of"] is None
    warned = await client.get("/complaints/check", params=check, headers=headers)
    assert warned.json()["possible_duplicate_of"] == first.json()["number"]
    assert warned.json()["complaints_this_month"] == 1
    # The agent may still file it: it is linked to the open one.
    again = await client.post(
        "/complaints",
        json=complaint("फिर से धमकी", "police.harassment", "lucknow") | caller,
        headers=headers,
    )
    assert again.status_code == 201
    assert again.json()["possible_duplicate_of"] == first.json()["number"]
    assert await as_read(client, again.json(), headers) == again.json()
    # Another category, or another caller, is no duplicate.
    other = await client.post(
        "/complaints",
        json=complaint("बिजली नहीं", "power.no_supply", "lucknow") | caller,
        headers=headers,
    )
    assert other.json()["possible_duplicate_of"] is None
    async with sessions() as session:
        rows = await session.execute(select(Complaint.number, Complaint.duplicate_of))
        links = {number: duplicate_of for number, duplicate_of in rows}
        first_id = (
            await session.execute(
                select(Complaint.id).where(Complaint.number == first.json()["number"])
            )
        ).scalar_one()
        assert links[again.json()["number"]] == first_id
        # A closed complaint is not open: nothing to duplicate any more.
        await session.execute(update(Complaint).values(status="closed"))
        await session.commit()
    closed = await client.get("/complaints/check", params=check, headers=headers)
    assert closed.json()["possible_duplicate_of"] is None
    listed = await client.get("/complaints", params={"caller": "9876543210"}, headers=headers)
    assert {c["number"]: c["possible_duplicate_of"] for c in listed.json()}[
        again.json()["number"]
    ] == first.json()["number"]
    unknown = await client.get(
        "/complaints/check", params=check | {"category": "nope.x"}, headers=headers
    )
    assert unknown.status_code == 422


async def test_the_monthly_cap_per_caller_answers_429(
    db_settings: Settings, seeded: Users, sessions: async_sessionmaker[AsyncSession]
) -> None:
    capped = db_settings.model_copy(update={"complaints_per_caller_month": 2})
    async for client in api_client(capped):
        headers = await token(client, seeded, "supervisor")
        caller = {"caller_number": "9876543210"}
        for text_ in ("पहली शिकायत", "दूसरी शिकायत"):
            filed = await client.post(
                "/complaints",
                json=complaint(text_, "power.no_supply", "lucknow") | caller,
                headers=headers,
            )
            assert filed.status_code == 201
        refused = await client.post(
            "/complaints",
            json=complaint("तीसरी शिकायत", "power.meter", "lucknow") | caller,
            headers=headers,
        )
        assert refused.status_code == 429
        assert "2 complaints this month" in refused.json()["detail"]
        # Another caller is not affected.
        assert (
            await client.post(
                "/complaints",
                json=complaint("तीसरी शिकायत", "power.meter", "lucknow")
                | {"caller_number": "9123456780"},
                headers=headers,
            )
        ).status_code == 201
        # Complaints of last month do not count.
        async with sessions() as session:
            await session.execute(
                update(Complaint)
                .where(Complaint.caller_number == "9876543210")
                .values(created_at=month_start() - timedelta(minutes=1))
            )
            await session.commit()
        allowed = await client.post(
            "/complaints",
            json=complaint("तीसरी शिकायत", "power.meter", "lucknow") | caller,
            headers=headers,
        )
        assert allowed.status_code == 201, allowed.text


async def test_the_cap_holds_under_concurrent_filings(
    db_settings: Settings,
    seeded: Users,
    sessions: async_sessionmaker[AsyncSession],
    reference_data: Reference,
) -> None:
    capped = db_settings.model_copy(update={"complaints_per_caller_month": 3})
    async with sessions() as session:
        supervisor = (
            await session.execute(select(User).where(User.username == "supervisor1"))
        ).scalar_one()

    async def file(index: int) -> bool:
        body = ComplaintIn(
            **complaint(f"शिकायत {index}", "power.no_supply", "lucknow"),
            caller_number="9876543210",
        )
        async with sessions() as session:
            try:
                await complaints.register(session, capped, reference_data, supervisor, body)
            except TooMany:
                return False
            return True

    outcomes = await asyncio.gather(*(file(i) for i in range(6)))
    assert sorted(outcomes) == [False] * 3 + [True] * 3
    async with sessions() as session:
        stored = await session.execute(select(Complaint.duplicate_of).order_by(Complaint.id))
        # Serialised per caller: each later one is linked to the one before it.
        links = list(stored.scalars())
        assert links[0] is None and None not in links[1:]


# ----------------------------------------------------------------------------- reference


async def test_reference_lists_for_signed_in_staff(
    client: httpx.AsyncClient, seeded: Users, reference_data: Reference
) -> None:
    assert (await client.get("/reference/departments")).status_code == 401
    headers = await token(client, seeded, "officer")
    departments = await client.get("/reference/departments", headers=headers)
    assert departments.status_code == 200
    assert departments.headers["Cache-Control"] == "private, max-age=3600"
    assert departments.headers["ETag"] == f'"{reference_data.digest}"'
    police = next(d for d in departments.json() if d["code"] == "police")
    harassment = next(c for c in police["categories"] if c["code"] == "police.harassment")
    assert harassment["sla_days"] == reference_data.categories["police.harassment"].sla_days
    assert harassment["name_hi"] == reference_data.categories["police.harassment"].name_hi
    assert len(departments.json()) == len(reference_data.departments)
    districts = await client.get(
        "/reference/districts", headers=await token(client, seeded, "cm_office")
    )
    assert districts.status_code == 200
    lucknow = next(d for d in districts.json() if d["code"] == "lucknow")
    assert lucknow["division"]["code"] == "lucknow"
    assert "lucknow_sadar" in {t["code"] for t in lucknow["tehsils"]}
    hazratganj = next(t for t in lucknow["thanas"] if t["code"] == "lucknow_hazratganj")
    assert hazratganj["tehsil"] == "lucknow_sadar"
    assert len(districts.json()) == len(reference_data.districts)


async def test_seeding_the_reference_twice_changes_nothing(
    sessions: async_sessionmaker[AsyncSession], seeded: Users, reference_data: Reference
) -> None:
    async def snapshot() -> tuple[Any, ...]:
        async with sessions() as session:
            return (
                (await session.execute(select(func.count()).select_from(RefOfficer))).scalar(),
                (await session.execute(select(func.count()).select_from(RefThana))).scalar(),
                (await session.execute(select(func.count()).select_from(RefDistrict))).scalar(),
                set(
                    await session.execute(
                        select(RefOfficer.code, RefOfficer.user_id).where(
                            RefOfficer.user_id.is_not(None)
                        )
                    )
                ),
                (await session.execute(select(ReferenceManifest.seeded_at))).scalar_one(),
            )

    before = await snapshot()
    assert before[:3] == (
        len(reference_data.officers),
        len(reference_data.thanas),
        len(reference_data.districts),
    )
    async with sessions() as session:
        again = await reference.seed(session, reference_data)
        await session.commit()
    assert not again.changed and again.rows == {}
    assert await snapshot() == before
    # A new data set (another digest) is upserted: no duplicate rows, the links stay.
    async with sessions() as session:
        await session.execute(update(ReferenceManifest).values(digest="older"))
        await session.commit()
        upserted = await reference.seed(session, reference_data)
        await session.commit()
    assert upserted.changed and upserted.rows["officers"] == len(reference_data.officers)
    after = await snapshot()
    assert after[:4] == before[:4] and after[4] > before[4]


# ----------------------------------------------------------------------------- demo users


async def test_demo_officers_are_linked_to_their_posts(
    seeded: Users, sessions: async_sessionmaker[AsyncSession], reference_data: Reference
) -> None:
    officers = seeded["officer"]
    assert len({o["department"] for o in officers}) >= 2
    assert len({o["district"] for o in officers}) >= 2
    for entry in officers:
        post = reference_data.officers[entry["officer"]]
        assert (entry["department"], entry["designation"]) == (
            post.department,
            post.designation_en,
        )
    [cm_office] = seeded["cm_office"]
    async with sessions() as session:
        rows = await session.execute(
            select(RefOfficer.code, User.username).join(User, User.id == RefOfficer.user_id)
        )
        linked = {code: username for code, username in rows}
    assert linked == {entry["officer"]: entry["username"] for entry in [*officers, cm_office]}


async def test_demo_credentials_are_written_again_when_the_file_is_gone(
    db_settings: Settings, sessions: async_sessionmaker[AsyncSession], seeded: Users
) -> None:
    path = credentials_file(db_settings)
    again = await _seed_users(db_settings, sessions)
    assert again == seeded  # the file was there: passwords kept
    path.unlink()
    rewritten = await _seed_users(db_settings, sessions)
    assert json.loads(path.read_text()) == rewritten
    assert rewritten.keys() == seeded.keys()
    old = {e["username"]: e["password"] for users in seeded.values() for e in users}
    new = {e["username"]: e["password"] for users in rewritten.values() for e in users}
    assert new.keys() == old.keys()
    async with sessions() as session:
        rows = await session.execute(select(User.username, User.password_hash))
        stored = {username: password_hash for username, password_hash in rows}
        assert (await session.execute(select(func.count()).select_from(User))).scalar() == len(new)
    for username, password in new.items():
        assert password != old[username]
        assert verify_password(password, stored[username])
        assert not verify_password(old[username], stored[username])


async def _seed_users(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> Users:
    async with sessions() as session:
        users = await seed_demo_users(session, settings)
        await session.commit()
    return users


async def test_history_actions_are_checked_by_the_schema(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """complaint_history refuses an action or status that is not one of the enums'."""
    async with sessions() as session:
        with pytest.raises(Exception, match="ck_complaint_history_action"):
            await session.execute(
                text(
                    "INSERT INTO complaint_history (complaint_id, action, to_status) "
                    "VALUES (1, 'teleport', 'registered')"
                )
            )


async def test_complaint_reads_run_no_transaction_and_a_filing_does(
    client: httpx.AsyncClient, seeded: Users, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read routes marked ``reads_only`` (api.deps) send their statements, the token
    check's included, without BEGIN and ROLLBACK: two round trips of four saved per read. A
    filing still runs in one transaction."""
    headers = await token(client, seeded, "supervisor")
    body = complaint("डॉक्टर अस्पताल में नहीं हैं", "health.doctor_absent", "varanasi")
    filed = await client.post(
        "/complaints", json=body | {"caller_number": "9876543210"}, headers=headers
    )
    assert filed.status_code == 201, filed.text
    begun = transactions_begun(monkeypatch)
    number = filed.json()["number"]
    read = await client.get(f"/complaints/{number}", headers=headers)
    listed = await client.get("/complaints", params={"caller": "9876543210"}, headers=headers)
    assert read.status_code == 200 and listed.status_code == 200
    assert [c["number"] for c in listed.json()] == [number]
    assert begun == []
    again = await client.post(
        "/complaints", json=body | {"caller_number": "9876543211"}, headers=headers
    )
    assert again.status_code == 201, again.text
    assert begun == ["BEGIN"]


async def test_a_filing_is_five_statements_and_its_writes_are_one(
    client: httpx.AsyncClient,
    db_settings: Settings,
    seeded: Users,
    sessions: async_sessionmaker[AsyncSession],
    reference_data: Reference,
) -> None:
    """A keyed filing by a user with no seat: the current call's lookup, the caller's lock
    with the replay lookup, the month's count with the number, then the complaint with its
    history row, "registered" SMS and audit record in one statement, then the routing's. Its
    replay is two statements and writes nothing. An agent's filing on the call at their seat
    is five statements too. (BEGIN and COMMIT are not statements here.)"""
    async with sessions() as session:
        supervisor = (
            await session.execute(select(User).where(User.username == "supervisor1"))
        ).scalar_one()
    body = ComplaintIn(
        **complaint("सड़क पर गड्ढा", "police.harassment", "lucknow", thana="lucknow_hazratganj"),
        caller_number="9876543210",
    )
    engine = sessions.kw["bind"]
    with statements_sent(engine) as sent:
        async with sessions() as session:
            filed = await complaints.register(
                session, db_settings, reference_data, supervisor, body, "five-statements"
            )
    assert filed.created and filed.complaint.status == "assigned"
    assert len(sent) == 5, [statement for statement, _ in sent]
    writes = sent[3][0]
    for table in ("complaints", "complaint_history", "sms_outbox", "audit_log"):
        assert f"INSERT INTO {table} " in writes, table
    async with sessions() as session:
        complaint_id = (
            await session.execute(
                select(Complaint.id).where(Complaint.number == filed.complaint.number)
            )
        ).scalar_one()
        audited = (
            await session.execute(
                select(AuditLog.action, AuditLog.entity_id, AuditLog.actor_user_id).where(
                    AuditLog.entity == "complaint"
                )
            )
        ).all()
        texted = (
            await session.execute(
                select(SmsOutbox.kind)
                .where(SmsOutbox.complaint_number == filed.complaint.number)
                .order_by(SmsOutbox.id)
            )
        ).scalars()
        assert audited == [("complaint_created", str(complaint_id), supervisor.id)]
        assert list(texted) == ["registered", "assigned"]
    assert [row[0] for row in await history(sessions, filed.complaint.number)] == [
        "register",
        "assign",
    ]

    with statements_sent(engine) as sent:
        async with sessions() as session:
            again = await complaints.register(
                session, db_settings, reference_data, supervisor, body, "five-statements"
            )
    assert not again.created and again.complaint == filed.complaint
    assert len(sent) == 2, [statement for statement, _ in sent]

    await client.post(
        "/agents/me/login", json={"seat": "agent0001"}, headers=await token(client, seeded, "agent")
    )
    await connected_call(sessions, "agent0001", "1732871000.2", "9123456780")
    async with sessions() as session:
        agent = (
            await session.execute(
                select(User).where(User.username == seeded["agent"][0]["username"])
            )
        ).scalar_one()
    on_call = ComplaintIn(**complaint("हैंडपंप खराब है", "urban_dev.water_supply", "lucknow"))
    with statements_sent(engine) as sent:
        async with sessions() as session:
            taken = await complaints.register(session, db_settings, reference_data, agent, on_call)
    assert taken.created and taken.complaint.call_uniqueid == "1732871000.2"
    assert taken.complaint.caller_number == "9123456780"
    assert len(sent) == 5, [statement for statement, _ in sent]
