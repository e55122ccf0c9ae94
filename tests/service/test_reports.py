"""The accountability reports on a hand-built month (October 2026, IST) against a real
PostgreSQL: every figure of the CM's review and two officers' scorecards checked against a
count written out here; the CSV's shape; who may see what; the worklist's order; the demo data."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.schemas import ComplaintIn
from api.services import auth, complaints, reference
from core.config import Settings
from core.db.models import AcrBreach, Complaint, ComplaintHistory, SmsOutbox, User
from core.domain.clock import IST
from core.domain.complaints import ComplaintStatus
from core.domain.lifecycle import SYSTEM, Action, Actor
from core.domain.staff import Role
from core.reference import Reference
from helpline.demo_complaints import file_demo_complaints, move
from lifecycle import reports
from tests.api_app import api_client

POLICE_POST = "police.thana.lucknow_hazratganj"
HEALTH_POST = "health.district.varanasi"
#: Real "now" for the month arithmetic: after every row below.
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PASSWORD = "report-test-password"


def ist(month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=IST)


POLICE = {"department": "police", "category": "police.harassment", "district": "lucknow"}
HEALTH = {"department": "health", "category": "health.medicines", "district": "varanasi"}


async def _file(
    session: AsyncSession,
    settings: Settings,
    data: Reference,
    agent: User,
    index: int,
    where: dict[str, str],
    at: datetime,
) -> str:
    body = ComplaintIn(
        description=f"report test {index}",
        caller_number=f"98391{index:05d}",
        thana="lucknow_hazratganj" if where["district"] == "lucknow" else None,
        **where,
    )
    done = await complaints.register(session, settings, data, agent, body, f"r-{index}", now=at)
    return done.complaint.number


OFFICER = {
    POLICE_POST: Actor(Role.OFFICER, POLICE_POST, officer=POLICE_POST),
    HEALTH_POST: Actor(Role.OFFICER, HEALTH_POST, officer=HEALTH_POST),
}


@pytest.fixture
async def month_data(
    db_settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    reference_data: Reference,
) -> dict[str, str]:
    """October 2026 as written out in each test (c1..c10; see the comments)."""
    data = reference_data
    async with sessions() as session:
        users = {}
        for name, role in (
            ("agent1", "agent"),
            ("super1", "supervisor"),
            ("cm1", "cm_office"),
            (POLICE_POST, "officer"),
            (HEALTH_POST, "officer"),
        ):
            users[name] = await auth.create_user(
                session, username=name, full_name=name, role=role, password=PASSWORD
            )
        await session.flush()
        for post in (POLICE_POST, HEALTH_POST):
            await reference.link_officer(session, post, users[post].id)
        agent = users["agent1"]
        n: dict[str, str] = {}

        async def act(key: str, action: Action, at: datetime, actor: Actor = SYSTEM) -> None:
            note = "done" if action in (Action.RESOLVE, Action.REOPEN) else ""
            await move(session, data, n[key], action, actor, at, note=note)

        cop, doctor = OFFICER[POLICE_POST], OFFICER[HEALTH_POST]
        # c1: filed in September, still with the SHO at October's end (due 23 Sep: overdue);
        # resolved on 5 November.
        n["c1"] = await _file(session, db_settings, data, agent, 1, POLICE, ist(9, 20))
        # c2: resolved the next day (within its 3 days).
        n["c2"] = await _file(session, db_settings, data, agent, 2, POLICE, ist(10, 5))
        # c3: resolved on 15 Oct, due 13 Oct: late.
        n["c3"] = await _file(session, db_settings, data, agent, 3, POLICE, ist(10, 10))
        # c4: escalated on 23 Oct (the SHO's breach) to the Commissioner; due again 26 Oct.
        n["c4"] = await _file(session, db_settings, data, agent, 4, POLICE, ist(10, 20))
        # c5: health, filed 30 Oct, due 2 Nov: pending, not overdue.
        n["c5"] = await _file(session, db_settings, data, agent, 5, HEALTH, ist(10, 30))
        # c6: health, resolved 3 Oct in time, reopened 4 Oct (one level up), due 7 Oct.
        n["c6"] = await _file(session, db_settings, data, agent, 6, HEALTH, ist(10, 2))
        # c7: filed 31 Oct 20:00 IST (October), resolved 1 Nov 02:00 IST (November).
        n["c7"] = await _file(session, db_settings, data, agent, 7, POLICE, ist(10, 31, 20))
        # c8: filed in November: nothing in October; still with the SHO, overdue now.
        n["c8"] = await _file(session, db_settings, data, agent, 8, POLICE, ist(11, 3))
        # c9: filed in September, resolved 1 Oct 02:00 IST (October), due 28 Sep: late.
        n["c9"] = await _file(session, db_settings, data, agent, 9, POLICE, ist(9, 25))
        await act("c1", Action.RESOLVE, ist(11, 5), cop)
        await act("c2", Action.START, ist(10, 5, 12), cop)
        await act("c2", Action.RESOLVE, ist(10, 6), cop)
        await act("c3", Action.RESOLVE, ist(10, 15), cop)
        await act("c4", Action.ESCALATE, ist(10, 23, 12))
        await act("c6", Action.RESOLVE, ist(10, 3), doctor)
        await act("c6", Action.REOPEN, ist(10, 4))
        await act("c7", Action.RESOLVE, ist(11, 1, 2), cop)
        await act("c9", Action.RESOLVE, ist(10, 1, 2), cop)
        await session.commit()
    # c10: filed an hour ago, with the SHO: on the worklist after the overdue c8.
    async with sessions() as session:
        agent = (await session.execute(select(User).where(User.username == "agent1"))).scalar_one()
        n["c10"] = await _file(
            session, db_settings, data, agent, 10, POLICE, datetime.now(UTC) - timedelta(hours=1)
        )
    return n


async def test_monthly_review_counts_october_as_written_out(
    month_data: dict[str, str], sessions: async_sessionmaker[AsyncSession]
) -> None:
    october = reports.month_of("2026-10", NOW)
    assert october.start == ist(10, 1, 0) and october.as_of == ist(11, 1, 0)
    async with sessions() as session:
        review = await reports.monthly_review(session, october, metric="overdue", threshold=1)
    # received: c2 c3 c4 c5 c6 c7; resolved: c2 c3 c6 c9, in time c2 c6;
    # pending at the end: c1 c4 c5 c6 c7; overdue: c1 c4 c6.
    total = review.total.as_dict()
    assert total == {
        "received": 6,
        "resolved": 4,
        "resolved_within_sla": 2,
        "pending": 5,
        "overdue": 3,
        "sla_pct": 50.0,
        "satisfaction_pct": None,
    }
    police = review.departments["police"].as_dict()
    assert (police["received"], police["resolved"], police["resolved_within_sla"]) == (4, 3, 1)
    assert (police["pending"], police["overdue"], police["sla_pct"]) == (3, 2, 33.3)
    health = review.departments["health"].as_dict()
    assert (health["received"], health["resolved"], health["resolved_within_sla"]) == (2, 1, 1)
    assert (health["pending"], health["overdue"], health["sla_pct"]) == (2, 1, 100.0)
    assert set(review.departments) == {"police", "health"}
    assert review.districts["lucknow"] == review.departments["police"]
    assert review.districts["varanasi"] == review.departments["health"]
    # More than 1 overdue: police (2), not health (1).
    assert review.flagged() == ["police"]
    september = reports.month_of("2026-09", NOW)
    async with sessions() as session:
        earlier = await reports.monthly_review(session, september, metric="pending", threshold=1)
    # September: c1 and c9 received, nothing resolved, both pending and both overdue at its
    # end (due 23 Sep and 28 Sep).
    assert (earlier.total.received, earlier.total.resolved, earlier.total.pending) == (2, 0, 2)
    assert earlier.total.overdue == 2
    assert earlier.flagged() == ["police"]


async def test_scorecards_of_two_officers(
    month_data: dict[str, str], sessions: async_sessionmaker[AsyncSession]
) -> None:
    october = reports.month_of("2026-10", NOW)
    async with sessions() as session:
        cop = await reports.scorecard(session, POLICE_POST, october)
        doctor = await reports.scorecard(session, HEALTH_POST, october)
    # SHO: assigned c2 c3 c4 c7 in October; resolved c2 c3 c9, in time c2; breached c4;
    # holds c1 (overdue) and c7 at the month's end.
    assert (cop.assigned, cop.resolved, cop.resolved_within_sla) == (4, 3, 1)
    assert (cop.breached, cop.reopened, cop.pending, cop.overdue) == (1, 0, 2, 1)
    # CMO: assigned c5 c6; resolved c6 in time; c6 reopened; holds c5 (not overdue).
    assert (doctor.assigned, doctor.resolved, doctor.resolved_within_sla) == (2, 1, 1)
    assert (doctor.breached, doctor.reopened, doctor.pending, doctor.overdue) == (0, 1, 1, 0)


@pytest.fixture
async def client(db_settings: Settings, month_data: dict[str, str]) -> AsyncIterator[Any]:
    async for http in api_client(db_settings):
        yield http


async def _headers(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    reply = await client.post("/auth/token", data={"username": username, "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


async def test_monthly_review_api_json_csv_and_roles(client: httpx.AsyncClient) -> None:
    cm = await _headers(client, "cm1")
    reply = await client.get("/reports/monthly?month=2026-10&threshold=1", headers=cm)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["total"]["received"] == 6 and body["total"]["overdue"] == 3
    assert body["flagged_departments"] == ["police"]
    assert [d["code"] for d in body["departments"] if d["flagged"]] == ["police"]
    assert body["action_metric"] == "overdue" and body["action_threshold"] == 1
    # Default threshold (100 overdue): nobody flagged.
    default = (await client.get("/reports/monthly?month=2026-10", headers=cm)).json()
    assert default["flagged_departments"] == [] and default["action_threshold"] == 100

    csv_reply = await client.get("/reports/monthly?month=2026-10&format=csv", headers=cm)
    assert csv_reply.status_code == 200
    assert csv_reply.headers["content-type"].startswith("text/csv")
    assert (
        csv_reply.headers["content-disposition"]
        == 'attachment; filename="monthly-review-2026-10.csv"'
    )
    rows = list(csv.reader(io.StringIO(csv_reply.content.decode("utf-8"))))
    assert rows[0] == list(reports.CSV_COLUMNS)
    assert [row[0] for row in rows[1:]] == ["total"] + ["department"] * 2 + ["district"] * 2
    by_code = {(row[0], row[1]): dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    assert by_code[("total", "up")]["received"] == "6"
    assert by_code[("total", "up")]["satisfaction_pct"] == ""
    assert by_code[("district", "lucknow")]["name_hi"] == "लखनऊ"
    assert by_code[("department", "police")]["overdue"] == "2"

    for who in ("super1",):
        assert (
            await client.get("/reports/monthly", headers=await _headers(client, who))
        ).is_success
    for who in ("agent1", POLICE_POST):
        refused = await client.get("/reports/monthly", headers=await _headers(client, who))
        assert refused.status_code == 403
    assert (await client.get("/reports/monthly?month=2031-01", headers=cm)).status_code == 422
    assert (await client.get("/reports/monthly?month=2026-13", headers=cm)).status_code == 422
    assert (await client.get("/reports/monthly?month=oct", headers=cm)).status_code == 422


async def test_scorecard_api_an_officer_sees_only_their_own(client: httpx.AsyncClient) -> None:
    cop = await _headers(client, POLICE_POST)
    own = await client.get(f"/officers/{POLICE_POST}/scorecard?month=2026-10", headers=cop)
    assert own.status_code == 200, own.text
    card = own.json()
    assert (card["assigned"], card["resolved"], card["breached"]) == (4, 3, 1)
    assert card["satisfaction_pct"] is None and card["sla_pct"] == 33.3
    other = await client.get(f"/officers/{HEALTH_POST}/scorecard?month=2026-10", headers=cop)
    assert other.status_code == 403
    for who in ("super1", "cm1"):
        seen = await client.get(
            f"/officers/{HEALTH_POST}/scorecard?month=2026-10",
            headers=await _headers(client, who),
        )
        assert seen.status_code == 200 and seen.json()["reopened"] == 1
    agent = await _headers(client, "agent1")
    assert (
        await client.get(f"/officers/{POLICE_POST}/scorecard", headers=agent)
    ).status_code == 403
    missing = await client.get("/officers/nobody/scorecard", headers=await _headers(client, "cm1"))
    assert missing.status_code == 404


async def test_worklist_overdue_first_with_actions(
    client: httpx.AsyncClient, month_data: dict[str, str]
) -> None:
    cop = await _headers(client, POLICE_POST)
    reply = await client.get(f"/officers/{POLICE_POST}/worklist", headers=cop)
    assert reply.status_code == 200, reply.text
    items = reply.json()
    # The SHO holds c8 (filed 3 Nov, overdue) and c10 (filed an hour ago); c1 c2 c3 c7 c9 are
    # resolved, c4 went to the Commissioner.
    assert [item["number"] for item in items] == [month_data["c8"], month_data["c10"]]
    assert [item["overdue"] for item in items] == [True, False]
    actions = [a["action"] for a in items[0]["actions"]]
    assert actions == ["start", "resolve", "request_closure"]
    doctor = await _headers(client, HEALTH_POST)
    assert (
        await client.get(f"/officers/{POLICE_POST}/worklist", headers=doctor)
    ).status_code == 403


async def test_demo_complaints_cover_departments_districts_and_statuses_once(
    db_settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    reference_data: Reference,
) -> None:
    from helpline.seed import seed_demo_users

    async with sessions() as session:
        await seed_demo_users(session, db_settings, reference_data)
        await session.commit()
        filed = await file_demo_complaints(session, db_settings, reference_data)
        again = await file_demo_complaints(session, db_settings, reference_data)
    assert filed > 0 and again == 0
    async with sessions() as session:
        count, departments, districts = (
            await session.execute(
                select(
                    func.count(),
                    func.count(func.distinct(Complaint.department)),
                    func.count(func.distinct(Complaint.district)),
                )
            )
        ).one()
        statuses = set((await session.execute(select(Complaint.status).distinct())).scalars())
        overdue = (
            await session.execute(
                select(func.count()).where(
                    Complaint.due_at < func.now(),
                    Complaint.status.in_((ComplaintStatus.ASSIGNED, ComplaintStatus.IN_PROGRESS)),
                )
            )
        ).scalar_one()
        escalations = (
            await session.execute(select(func.count()).where(ComplaintHistory.action == "escalate"))
        ).scalar_one()
        breaches = (await session.execute(select(func.count()).select_from(AcrBreach))).scalar_one()
        texted = (await session.execute(select(func.count()).select_from(SmsOutbox))).scalar_one()
    assert count == filed and departments >= 5 and districts >= 6
    # The demo's escalations are real ones (in the ACR ledger), and its made-up numbers are
    # never texted.
    assert breaches == escalations and texted == 0
    # Every status a complaint can reach through the API (none is unroutable with the
    # shipped data, so none stays "registered").
    assert statuses == set(ComplaintStatus) - {ComplaintStatus.REGISTERED}
    assert overdue > 0 and escalations > 0
