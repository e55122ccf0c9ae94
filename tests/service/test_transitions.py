"""Complaint actions through the API and the SLA pass with the ACR ledger, against a real
PostgreSQL: each action's happy path and its 409/403/422, the history and SMS rows each
transition writes, and the pass run once, twice, late, in two processes at once, with the
clock stepping back, and from the command line."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.models import AcrBreach, Complaint, ComplaintHistory, SmsOutbox, User
from core.db.session import create_engine, session_factory
from core.domain.complaints import complaint_number
from core.domain.lifecycle import Action, Actor, Transition, apply
from core.domain.staff import Role
from core.reference import Reference
from lifecycle.sla import SlaSchedule, run_pass
from lifecycle.sms_providers import provider_from_settings
from lifecycle.transitions import TransitionRefused, lock_complaint, store, view_of
from lifecycle.worker import LifecycleWorker
from tests.api_app import api_client
from tests.service.test_routing import Users, complaint, seeded, token

__all__ = ["seeded"]  # the fixture, used by name

TEHSIL_OFFICER = "revenue.tehsil.lucknow_sadar"
DISTRICT_OFFICER = "revenue.district.lucknow"
DIVISION_OFFICER = "revenue.division.lucknow"
#: revenue.mutation: 7 days, ladder tehsil > district > division > state > cm_office.
MUTATION = complaint("दाखिल-ख़ारिज लंबित है", "revenue.mutation", "lucknow", tehsil="lucknow_sadar")
SLA = timedelta(days=7)
_callers = count(9876500001)


@pytest.fixture(autouse=True)
async def empty_outbox(db_settings: Settings) -> None:
    engine = create_engine(db_settings, pool_size=1)
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE sms_outbox, acr_breaches RESTART IDENTITY"))
    await engine.dispose()


@pytest.fixture
async def client(db_settings: Settings, seeded: Users) -> AsyncIterator[httpx.AsyncClient]:
    async for http in api_client(db_settings):
        yield http


async def login(client: httpx.AsyncClient, users: Users, username: str) -> dict[str, str]:
    for role, entries in users.items():
        for index, entry in enumerate(entries):
            if entry["username"] == username:
                headers: dict[str, str] = await token(client, users, role, index)
                return headers
    raise AssertionError(f"no demo user {username}")


async def file(client: httpx.AsyncClient, users: Users) -> dict[str, Any]:
    """A revenue.mutation complaint for a fresh caller, routed to the Sadar SDM."""
    headers = await login(client, users, "supervisor1")
    body = MUTATION | {"caller_number": str(next(_callers))}
    response = await client.post("/complaints", json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert created["assigned_officer"]["code"] == TEHSIL_OFFICER
    return created


async def act(
    client: httpx.AsyncClient, headers: dict[str, str], number: str, action: str, **body: str
) -> httpx.Response:
    return await client.post(
        f"/complaints/{number}/transitions", json={"action": action, **body}, headers=headers
    )


async def sms(sessions: async_sessionmaker[AsyncSession], number: str) -> list[tuple[str, str]]:
    async with sessions() as session:
        rows = await session.execute(
            select(SmsOutbox.kind, SmsOutbox.dedupe_key)
            .where(SmsOutbox.complaint_number == number)
            .order_by(SmsOutbox.id)
        )
        return [(str(kind), key) for kind, key in rows]


async def stored(sessions: async_sessionmaker[AsyncSession], number: str) -> Complaint:
    async with sessions() as session:
        found = (
            await session.execute(select(Complaint).where(Complaint.number == number))
        ).scalar_one()
        return found


async def breaches(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[Any, ...]]:
    async with sessions() as session:
        rows = await session.execute(
            select(
                Complaint.number,
                AcrBreach.officer_id,
                AcrBreach.level,
                AcrBreach.due_at,
                AcrBreach.breached_at,
            )
            .join(Complaint, Complaint.id == AcrBreach.complaint_id)
            .order_by(AcrBreach.id)
        )
        return [tuple(row) for row in rows]


async def escalations(sessions: async_sessionmaker[AsyncSession], number: str) -> list[Any]:
    async with sessions() as session:
        rows = await session.execute(
            select(ComplaintHistory.from_officer, ComplaintHistory.to_officer)
            .join(Complaint, Complaint.id == ComplaintHistory.complaint_id)
            .where(Complaint.number == number, ComplaintHistory.action == "escalate")
            .order_by(ComplaintHistory.id)
        )
        return [tuple(row) for row in rows]


async def shift_back(
    sessions: async_sessionmaker[AsyncSession], number: str, by: timedelta
) -> None:
    """As if the complaint had been filed ``by`` earlier: its times and its history's."""
    async with sessions() as session:
        complaint_id = (
            await session.execute(
                update(Complaint)
                .where(Complaint.number == number)
                .values(created_at=Complaint.created_at - by, due_at=Complaint.due_at - by)
                .returning(Complaint.id)
            )
        ).scalar_one()
        await session.execute(
            update(ComplaintHistory)
            .where(ComplaintHistory.complaint_id == complaint_id)
            .values(at=ComplaintHistory.at - by)
        )
        await session.commit()


# ----------------------------------------------------------------------------- actions


async def test_filing_queues_the_registered_and_assigned_sms(
    client: httpx.AsyncClient, seeded: Users, sessions: async_sessionmaker[AsyncSession]
) -> None:
    created = await file(client, seeded)
    detail = (
        await client.get(
            f"/complaints/{created['number']}", headers=await login(client, seeded, "agent1")
        )
    ).json()
    assign_row = (await _history_ids(sessions, created["number"]))[1]
    assert await sms(sessions, created["number"]) == [
        ("registered", "register"),
        ("assigned", str(assign_row)),
    ]
    assert [entry["action"] for entry in detail["history"]] == ["register", "assign"]
    assert detail["history"][1]["to_officer"] == TEHSIL_OFFICER
    assert detail["history"][1]["actor"] is None  # the helpline routed it
    assert detail["resolution_text"] is None


async def _history_ids(sessions: async_sessionmaker[AsyncSession], number: str) -> list[int]:
    async with sessions() as session:
        rows = await session.execute(
            select(ComplaintHistory.id)
            .join(Complaint, Complaint.id == ComplaintHistory.complaint_id)
            .where(Complaint.number == number)
            .order_by(ComplaintHistory.id)
        )
        return list(rows.scalars())


async def test_start_resolve_reopen_with_history_and_sms(
    client: httpx.AsyncClient,
    seeded: Users,
    sessions: async_sessionmaker[AsyncSession],
    reference_data: Reference,
) -> None:
    number = (await file(client, seeded))["number"]
    officer = await login(client, seeded, TEHSIL_OFFICER)
    agent = await login(client, seeded, "agent1")

    # An agent may not start or resolve it: only the officer holding the post.
    refused = await act(client, agent, number, "start")
    assert refused.status_code == 403, refused.text
    assert TEHSIL_OFFICER in refused.json()["detail"]
    # An officer of another department and district: outside their scope, the complaint is
    # not found for them at all (a 403 would tell them the number exists).
    other = await login(client, seeded, "health.district.varanasi")
    assert (await act(client, other, number, "start")).status_code == 404

    started = await act(client, officer, number, "start")
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "in_progress"
    # Starting twice is illegal, with the reason.
    again = await act(client, officer, number, "start")
    assert again.status_code == 409
    assert "cannot start a complaint that is in_progress" in again.json()["detail"]

    # A resolve needs a note: 422; then stored as the resolution.
    no_note = await act(client, officer, number, "resolve", note="  ")
    assert no_note.status_code == 422
    assert no_note.json()["detail"] == "resolve needs a note"
    resolved = await act(client, officer, number, "resolve", note="नामांतरण आदेश पारित")
    assert resolved.status_code == 200, resolved.text
    body = resolved.json()
    assert (body["status"], body["resolution_text"]) == ("resolved", "नामांतरण आदेश पारित")
    row = await stored(sessions, number)
    assert row.resolved_at is not None and row.resolution_text == "नामांतरण आदेश पारित"
    async with sessions() as session:
        officer_user = (
            await session.execute(select(User.id).where(User.username == TEHSIL_OFFICER))
        ).scalar_one()
    assert row.resolved_by == officer_user

    # The citizen is not satisfied: the agent reopens it, one level up, reopen count 1.
    assert (await act(client, agent, number, "reopen")).status_code == 422
    reopened = await act(client, agent, number, "reopen", note="कोई कार्रवाई नहीं हुई")
    assert reopened.status_code == 200, reopened.text
    body = reopened.json()
    assert (body["status"], body["reopen_count"], body["level"]) == ("reopened", 1, "district")
    assert body["assigned_officer"]["code"] == DISTRICT_OFFICER
    assert body["assigned_officer"]["designation_en"] == (
        reference_data.officers[DISTRICT_OFFICER].designation_en
    )
    # The old officer no longer holds it.
    assert (await act(client, officer, number, "start")).status_code == 403

    history = body["history"]
    assert [(h["action"], h["from_status"], h["to_status"], h["actor"]) for h in history] == [
        ("register", None, "registered", "supervisor1"),
        ("assign", "registered", "assigned", None),
        ("start", "assigned", "in_progress", TEHSIL_OFFICER),
        ("resolve", "in_progress", "resolved", TEHSIL_OFFICER),
        ("reopen", "resolved", "reopened", "agent1"),
    ]
    assert (history[4]["from_officer"], history[4]["to_officer"]) == (
        TEHSIL_OFFICER,
        DISTRICT_OFFICER,
    )
    assert history[3]["note"] == "नामांतरण आदेश पारित"
    ids = await _history_ids(sessions, number)
    # SMS: registered, assigned, resolved, assigned again (reopen, one level up); none for start.
    assert await sms(sessions, number) == [
        ("registered", "register"),
        ("assigned", str(ids[1])),
        ("resolved", str(ids[3])),
        ("assigned", str(ids[4])),
    ]
    # Nothing overdue: no breach in the ledger.
    assert await breaches(sessions) == []


async def test_closure_duplicate_and_refusals(
    client: httpx.AsyncClient, seeded: Users, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first = (await file(client, seeded))["number"]
    number = (await file(client, seeded))["number"]
    officer = await login(client, seeded, TEHSIL_OFFICER)
    agent = await login(client, seeded, "agent1")
    supervisor = await login(client, seeded, "supervisor1")

    # approve_closure before any request is illegal.
    early = await act(client, supervisor, number, "approve_closure")
    assert early.status_code == 409
    assert "allowed:" in early.json()["detail"]

    requested = await act(client, officer, number, "request_closure", note="मामला न्यायालय में")
    assert requested.status_code == 200, requested.text
    assert requested.json()["status"] == "closure_requested"
    assert (await act(client, agent, number, "approve_closure")).status_code == 403
    approved = await act(client, supervisor, number, "approve_closure")
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "closed"
    assert (await act(client, officer, number, "resolve", note="x")).status_code == 409

    # reject_duplicate needs the number of the original (422), then links it.
    third = (await file(client, seeded))["number"]
    assert (await act(client, officer, third, "reject_duplicate", note="वही")).status_code == 422
    rejected = await act(
        client, officer, third, "reject_duplicate", note="वही शिकायत", duplicate_of=first
    )
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "rejected_duplicate"
    assert rejected.json()["possible_duplicate_of"] == first

    # Unknown action 422, unknown complaint 404, malformed number 422.
    assert (await act(client, supervisor, first, "teleport")).status_code == 422
    assert (
        await act(client, supervisor, complaint_number(999_999_999), "start")
    ).status_code == 404
    assert (await act(client, supervisor, "12", "start")).status_code == 422
    # Only closure rows and nothing else changed the SMS: no SMS for closure or rejection.
    assert [kind for kind, _ in await sms(sessions, number)] == ["registered", "assigned"]


async def test_reassign_and_the_breach_of_an_overdue_one(
    client: httpx.AsyncClient, seeded: Users, sessions: async_sessionmaker[AsyncSession]
) -> None:
    number = (await file(client, seeded))["number"]
    supervisor = await login(client, seeded, "supervisor1")
    officer = await login(client, seeded, TEHSIL_OFFICER)
    # reassign: supervisors only, with an officer, to a fitting post.
    assert (
        await act(client, officer, number, "reassign", note="x", officer=DISTRICT_OFFICER)
    ).status_code == 403
    assert (await act(client, supervisor, number, "reassign", note="x")).status_code == 422
    wrong = await act(
        client, supervisor, number, "reassign", note="x", officer="health.district.varanasi"
    )
    assert wrong.status_code == 422
    assert "not an officer of revenue" in wrong.json()["detail"]

    # Overdue when reassigned (filed 8 days ago): the breach goes to the late officer's ACR
    # ledger.
    await shift_back(sessions, number, timedelta(days=8))
    due = (await stored(sessions, number)).due_at
    moved = await act(
        client, supervisor, number, "reassign", note="गलत तहसील", officer=DISTRICT_OFFICER
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["assigned_officer"]["code"] == DISTRICT_OFFICER
    ledger = await breaches(sessions)
    assert [(n, o, lv, d) for n, o, lv, d, _ in ledger] == [(number, TEHSIL_OFFICER, "tehsil", due)]
    assert [kind for kind, _ in await sms(sessions, number)] == [
        "registered",
        "assigned",
        "assigned",
    ]


# ----------------------------------------------------------------------------- the SLA pass


async def test_sla_pass_escalates_once_and_is_idempotent(
    client: httpx.AsyncClient,
    seeded: Users,
    sessions: async_sessionmaker[AsyncSession],
    reference_data: Reference,
) -> None:
    number = (await file(client, seeded))["number"]
    resolved = (await file(client, seeded))["number"]
    officer = await login(client, seeded, TEHSIL_OFFICER)
    assert (await act(client, officer, resolved, "resolve", note="हो गया")).status_code == 200
    due = (await stored(sessions, number)).due_at
    created = due - SLA

    # Before it is due: nothing.
    early = await run_pass(sessions, reference_data, created + timedelta(days=6))
    assert (early.found, early.escalated) == (0, [])

    as_of = created + timedelta(days=8)
    report = await run_pass(sessions, reference_data, as_of)
    assert [(e.number, e.from_officer, e.to_officer) for e in report.escalated] == [
        (number, TEHSIL_OFFICER, DISTRICT_OFFICER)
    ]
    assert report.escalated[0].overdue_by == as_of - due
    row = await stored(sessions, number)
    assert (row.status, row.assigned_officer, row.level) == (
        "escalated",
        DISTRICT_OFFICER,
        "district",
    )
    assert row.due_at == as_of + SLA
    assert await escalations(sessions, number) == [(TEHSIL_OFFICER, DISTRICT_OFFICER)]
    assert await breaches(sessions) == [(number, TEHSIL_OFFICER, "tehsil", due, as_of)]
    escalated_sms = [s for s in await sms(sessions, number) if s[0] == "escalated"]
    assert escalated_sms == [("escalated", f"breach tehsil {due.isoformat()}")]
    # The resolved complaint never escalates.
    assert (await stored(sessions, resolved)).status == "resolved"

    # Twice at the same time: nothing more.
    second = await run_pass(sessions, reference_data, as_of)
    assert (second.found, second.escalated) == (0, [])
    # The clock stepping back: nothing either.
    back = await run_pass(sessions, reference_data, as_of - timedelta(days=3))
    assert back.escalated == []
    assert await escalations(sessions, number) == [(TEHSIL_OFFICER, DISTRICT_OFFICER)]
    assert len(await breaches(sessions)) == 1
    assert len([s for s in await sms(sessions, number) if s[0] == "escalated"]) == 1


async def test_a_late_pass_climbs_one_level_per_pass(
    client: httpx.AsyncClient,
    seeded: Users,
    sessions: async_sessionmaker[AsyncSession],
    reference_data: Reference,
) -> None:
    number = (await file(client, seeded))["number"]
    due = (await stored(sessions, number)).due_at
    late = due - SLA + timedelta(days=30)
    first = await run_pass(sessions, reference_data, late)
    assert [(e.from_level, e.to_level) for e in first.escalated] == [("tehsil", "district")]
    assert (await run_pass(sessions, reference_data, late)).escalated == []
    # The next breach is counted from the late pass: due again 7 days after it.
    assert (await run_pass(sessions, reference_data, late + SLA)).escalated == []
    later = late + SLA + timedelta(minutes=1)
    second = await run_pass(sessions, reference_data, later)
    assert [(e.from_officer, e.to_officer) for e in second.escalated] == [
        (DISTRICT_OFFICER, DIVISION_OFFICER)
    ]
    assert await escalations(sessions, number) == [
        (TEHSIL_OFFICER, DISTRICT_OFFICER),
        (DISTRICT_OFFICER, DIVISION_OFFICER),
    ]
    assert [(o, lv) for _, o, lv, _, _ in await breaches(sessions)] == [
        (TEHSIL_OFFICER, "tehsil"),
        (DISTRICT_OFFICER, "district"),
    ]


async def test_two_passes_at_once_escalate_each_complaint_once(
    client: httpx.AsyncClient,
    seeded: Users,
    db_settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    reference_data: Reference,
) -> None:
    numbers = [(await file(client, seeded))["number"] for _ in range(6)]
    due = max([(await stored(sessions, n)).due_at for n in numbers])
    as_of = due + timedelta(days=1)
    engines = [create_engine(db_settings, pool_size=2) for _ in range(2)]
    try:
        reports = await asyncio.gather(
            *(run_pass(session_factory(e), reference_data, as_of, batch=2) for e in engines)
        )
    finally:
        for engine in engines:
            await engine.dispose()
    escalated = sorted(e.number for report in reports for e in report.escalated)
    assert escalated == sorted(numbers)
    for number in numbers:
        assert await escalations(sessions, number) == [(TEHSIL_OFFICER, DISTRICT_OFFICER)]
    assert sorted(n for n, *_ in await breaches(sessions)) == sorted(numbers)
    async with sessions() as session:
        escalated_sms = (
            await session.execute(
                select(func.count()).select_from(SmsOutbox).where(SmsOutbox.kind == "escalated")
            )
        ).scalar_one()
    assert escalated_sms == len(numbers)


async def test_a_breach_already_in_the_ledger_is_not_escalated_again(
    client: httpx.AsyncClient,
    seeded: Users,
    sessions: async_sessionmaker[AsyncSession],
    reference_data: Reference,
) -> None:
    """The UNIQUE on the assignment is the last guard: a pass holding a stale view of a
    complaint whose breach is already charged stores nothing."""
    number = (await file(client, seeded))["number"]
    row = await stored(sessions, number)
    async with sessions() as session:
        session.add(
            AcrBreach(
                complaint_id=row.id,
                officer_id=TEHSIL_OFFICER,
                level="tehsil",
                due_at=row.due_at,
                breached_at=row.due_at + timedelta(hours=1),
            )
        )
        await session.commit()
    report = await run_pass(sessions, reference_data, row.due_at + timedelta(days=1))
    assert (report.escalated, report.already_recorded) == ([], [number])
    assert await escalations(sessions, number) == []
    assert (await stored(sessions, number)).status == "assigned"


async def test_cli_sla_run_prints_what_it_did(
    client: httpx.AsyncClient,
    seeded: Users,
    db_settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    number = (await file(client, seeded))["number"]
    due = (await stored(sessions, number)).due_at
    as_of = (due + timedelta(days=1)).isoformat()
    env = os.environ | {
        "HELPLINE_DATABASE_URL": db_settings.database_url,
        "HELPLINE_STATE_DIR": str(tmp_path / "cli-state"),
    }

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "helpline", "sla", "run", "--as-of", as_of],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    first = await asyncio.to_thread(run)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0].startswith(f"{number}: {TEHSIL_OFFICER} -> {DISTRICT_OFFICER}; breach by")
    assert "1 overdue, 1 escalated" in lines[-1]
    again = await asyncio.to_thread(run)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [again.stdout.splitlines()[-1]]
    assert "0 overdue, 0 escalated" in again.stdout
    as_of = "2026-12-20T10:00:00"  # no offset: refused before any pass
    naive = await asyncio.to_thread(run)
    assert naive.returncode == 2 and "has no offset" in naive.stderr


async def test_the_worker_runs_the_pass_every_sla_pass_minutes(
    client: httpx.AsyncClient,
    seeded: Users,
    db_settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    reference_data: Reference,
) -> None:
    number = (await file(client, seeded))["number"]
    due = (await stored(sessions, number)).due_at
    schedule = SlaSchedule(reference_data, timedelta(minutes=5))
    now = due + timedelta(hours=1)
    # The worker's turn: deliver due SMS, then its sla_pass hook.
    worker = LifecycleWorker(
        db_settings, sessions, provider_from_settings(db_settings), sla_pass=schedule
    )
    await worker.run_once(now)
    first = schedule.last_report
    assert first is not None and [e.number for e in first.escalated] == [number]
    await schedule(sessions, now + timedelta(minutes=4))
    assert schedule.last_report is first  # not yet: the worker's loop turns every few seconds
    await schedule(sessions, now + timedelta(minutes=5))
    assert schedule.last_report is not first
    assert schedule.last_report.escalated == []
    # A clock stepped back does not stop the schedule.
    await schedule(sessions, now - timedelta(hours=2))
    assert schedule.last == now - timedelta(hours=2)
    assert await escalations(sessions, number) == [(TEHSIL_OFFICER, DISTRICT_OFFICER)]


async def test_a_transition_from_a_stale_snapshot_writes_nothing(
    client: httpx.AsyncClient,
    seeded: Users,
    sessions: async_sessionmaker[AsyncSession],
    reference_data: Reference,
) -> None:
    """The writer's one statement (lifecycle.transitions._writes) writes the history row and
    the SMS only if its UPDATE found the row as the transition's ``before``; else nothing of
    it, and the transition is refused."""
    number = (await file(client, seeded))["number"]
    officer = Actor(Role.OFFICER, "sdm", officer=TEHSIL_OFFICER)
    async with sessions() as session:
        complaint = await lock_complaint(session, number)
        assert complaint is not None
        now = datetime.now(UTC)
        started = apply(
            await view_of(session, complaint), Action.START, officer, now, reference=reference_data
        )
        assert isinstance(started, Transition)
        await store(session, complaint, started, actor_user_id=None, reference=reference_data)
        resolving = apply(
            await view_of(session, complaint),
            Action.RESOLVE,
            officer,
            now,
            reference=reference_data,
            note="नामांतरण आदेश पारित",
        )
        assert isinstance(resolving, Transition)
        assert resolving.before.status == "in_progress"
        # The row moves on behind the snapshot (what the row lock prevents in service).
        await session.execute(
            update(Complaint).where(Complaint.number == number).values(status="assigned")
        )
        with pytest.raises(TransitionRefused, match="changed meanwhile"):
            await store(session, complaint, resolving, actor_user_id=None, reference=reference_data)
        await session.commit()
    assert (await stored(sessions, number)).status == "assigned"
    assert len(await _history_ids(sessions, number)) == 3  # register, assign, start
    assert [kind for kind, _ in await sms(sessions, number)] == ["registered", "assigned"]
