"""A complaint's whole life on the real parts (issue 11, "What it must show").

A sipp citizen calls 1076, goes through the Hindi IVR and is answered by a sipp agent (agent1 on
seat agent0001); the agent files the complaint on that call with its department, category and
place; routing gives it to the tehsil's revenue officer. The complaint is then moved 16 days
into the past (its row and its history together, so its times stay consistent) and
``helpline sla run --as-of <filing + 8 days>`` runs as its own process, as an operator would run
it: the complaint escalates one level up, the breach lands once in the ACR ledger, the officer's
scorecard and the CM's monthly review count it. The citizen calls again, asks the IVR's status
menu for the complaint's number and hears "escalated" in Hindi; finally ``/review`` (CM office)
and ``/worklist`` (the officer who has it now) show those figures in headless Chromium.

The ``sla`` service is stopped for the test (so only the test's pass escalates) and started
again afterwards; the fixture waits for its first pass, so later tests meet a settled database.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.models import (
    AcrBreach,
    Complaint,
    ComplaintHistory,
    RefOfficer,
    ServiceHeartbeat,
    User,
)
from core.domain.clock import IST
from core.domain.complaints import ComplaintStatus, HistoryAction
from core.domain.credentials import hash_password
from helpline import services
from helpline.sipp import AgentSeat, DtmfStep, citizen_call
from tests.integration.browser import Page, chromium
from tests.integration.test_ivr_support import ivr_session, language_key_at, seconds
from tests.integration.test_walking_skeleton import agent_headers, seat_password, wait_call
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

CITIZEN = "9415001076"
OFFICER = "revenue.tehsil.lucknow_sadar"
#: How far the complaint is moved into the past: the pass runs 8 days after the filing, the
#: next officer's 7 days (from the pass) have run out too, so the complaint is overdue now.
BACKDATE = timedelta(days=16)
SLA_AFTER = timedelta(days=8)
FIGURES = ("received", "resolved", "resolved_within_sla", "pending", "overdue")


@pytest.fixture
async def sla_stopped(
    stack_settings: Settings, db: async_sessionmaker[AsyncSession]
) -> AsyncIterator[None]:
    """The ``sla`` service stopped for the test; started again afterwards, and waited for
    until its first pass is done (what it escalates, it has escalated before the next test)."""
    services.stop(stack_settings, "sla")
    assert not services.state(stack_settings, "sla").running
    try:
        yield
    finally:
        restarted = datetime.now(UTC)
        services.start(stack_settings, "sla")
        pid = services.state(stack_settings, "sla").pid

        async def passed() -> bool:
            async with db() as session:
                beat = await session.get(ServiceHeartbeat, "sla")
                if beat is None or beat.pid != pid:
                    return False
                last = (beat.detail or {}).get("last_pass_at")
                return last is not None and datetime.fromisoformat(last) >= restarted

        await wait_for(passed, 30, what="the restarted sla worker's first pass")


async def _token(api: httpx.AsyncClient, username: str, password: str) -> str:
    reply = await api.post("/auth/token", data={"username": username, "password": password})
    assert reply.status_code == 200, reply.text
    token: str = reply.json()["access_token"]
    return token


def _demo_user(demo_users: dict[str, list[dict[str, str]]], role: str, name: str) -> dict[str, str]:
    return next(user for user in demo_users[role] if user["username"] == name)


async def _json(api: httpx.AsyncClient, path: str, token: str) -> Any:
    reply = await api.get(path, headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 200, f"{path}: {reply.status_code} {reply.text}"
    return reply.json()


def _row(rows: list[dict[str, Any]], code: str) -> dict[str, int]:
    """The figures of row ``code`` of the review (zeros when the review has no such row)."""
    found = next((row for row in rows if row["code"] == code), None)
    return {key: (found[key] if found else 0) for key in FIGURES}


def _month(moment: datetime) -> str:
    return moment.astimezone(IST).strftime("%Y-%m")


async def _file_on_a_real_call(
    settings: Settings,
    demo_users: dict[str, list[dict[str, str]]],
    api: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> dict[str, Any]:
    """The citizen's call through the IVR to agent1 at agent0001, and the complaint filed on it."""
    headers = await agent_headers(api, demo_users)
    password = await seat_password(db, "agent0001")
    async with AgentSeat(settings, "agent0001", password, answer_delay=0.5) as seat:
        login = await api.post("/agents/me/login", json={"seat": "agent0001"}, headers=headers)
        assert login.status_code == 200 and login.json()["state"] == "in_queue", login.text
        try:
            started = time.time()
            # "1" typed ahead during the welcome picks Hindi, the second "1" a new complaint.
            outcome = await citizen_call(
                settings, "11", hold=6.0, caller_id=CITIZEN, first_digit_delay=3.0
            )
            assert outcome.answered, outcome.errors
            await seat.wait_answered(1, within=5)
            call = await wait_call(db, started, disposition="answered")
            assert call.caller_number == CITIZEN and call.agent_seat == "agent0001"
            assert call.ivr_path is not None and "key:1" in call.ivr_path, call.ivr_path
            body = {
                "description": "खतौनी में मेरे खेत का रकबा ग़लत दर्ज है, सुधार नहीं हुआ।",
                "caller_name": "रामप्रसाद",
                "call_uniqueid": call.uniqueid,
                "department": "revenue",
                "category": "revenue.land_record",
                "district": "lucknow",
                "tehsil": "lucknow_sadar",
            }
            created = await api.post("/complaints", json=body, headers=headers)
            assert created.status_code == 201, created.text
        finally:
            await api.post("/agents/me/logout", headers=headers)
    complaint: dict[str, Any] = created.json()
    assert complaint["call_uniqueid"] == call.uniqueid
    assert complaint["caller_number"] == CITIZEN
    return complaint


async def _backdate(db: async_sessionmaker[AsyncSession], number: str) -> tuple[datetime, datetime]:
    """Move the complaint and its history ``BACKDATE`` into the past; its filing time and due
    date as they are then."""
    async with db() as session:
        complaint = await session.scalar(select(Complaint).where(Complaint.number == number))
        assert complaint is not None
        await session.execute(
            update(Complaint)
            .where(Complaint.id == complaint.id)
            .values(created_at=Complaint.created_at - BACKDATE, due_at=Complaint.due_at - BACKDATE)
        )
        await session.execute(
            update(ComplaintHistory)
            .where(ComplaintHistory.complaint_id == complaint.id)
            .values(at=ComplaintHistory.at - BACKDATE)
        )
        await session.commit()
        moved = (
            await session.execute(
                select(Complaint.created_at, Complaint.due_at).where(Complaint.id == complaint.id)
            )
        ).one()
    return moved.created_at, moved.due_at


def _sla_run(settings: Settings, as_of: datetime) -> list[str]:
    """``helpline sla run --as-of`` in its own process, as an operator runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "helpline", "sla", "run", "--as-of", as_of.isoformat()],
        env=dict(os.environ, HELPLINE_STATE_DIR=str(settings.state_dir)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


async def _officer_login(db: async_sessionmaker[AsyncSession], post: str) -> str:
    """A login for officer's post ``post`` (its code as username), as an admin gives one;
    returns the password."""
    password = "e2e-officer-password"
    async with db() as session:
        await session.execute(
            insert(User)
            .values(
                username=post,
                full_name=f"E2E officer {post}",
                role="officer",
                password_hash=hash_password(password),
            )
            .on_conflict_do_nothing(index_elements=["username"])
        )
        user_id = await session.scalar(select(User.id).where(User.username == post))
        await session.execute(
            update(RefOfficer).where(RefOfficer.code == post).values(user_id=user_id)
        )
        await session.commit()
    return password


async def _screenshot(page: Page, path: Path) -> None:
    """A PNG of the tab (the test's artifact: where it is is printed)."""
    data = await page.command("Page.captureScreenshot", {"format": "png"})
    png = base64.b64decode(data["data"])
    assert png.startswith(b"\x89PNG"), "not a PNG"
    await asyncio.to_thread(path.write_bytes, png)
    print(f"\nscreenshot: {path}")


async def test_a_complaint_lives_its_whole_life_on_the_real_helpline(
    stack_settings: Settings,
    demo_users: dict[str, list[dict[str, str]]],
    api: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
    sla_stopped: None,
    tmp_path: Path,
) -> None:
    settings = stack_settings
    cm = _demo_user(demo_users, "cm_office", "cm_office.up")
    cm_token = await _token(api, cm["username"], cm["password"])
    # Whatever else is overdue (the demo complaints, other tests') escalates now, so the
    # pass under test, earlier in time, finds the test's complaint alone.
    settled = _sla_run(settings, datetime.now(UTC))
    assert settled[-1].endswith(" 0 refused"), settled
    now = datetime.now(UTC)
    review_before = await _json(api, f"/reports/monthly?month={_month(now)}", cm_token)

    # ---------------------------------------------------------------- the call and the filing
    complaint = await _file_on_a_real_call(settings, demo_users, api, db)
    number = complaint["number"]
    assert complaint["status"] == ComplaintStatus.ASSIGNED
    assert complaint["assigned_officer"]["code"] == OFFICER
    assert complaint["assigned_officer"]["level"] == "tehsil"
    assert complaint["department"]["code"] == "revenue"
    assert complaint["district"]["code"] == "lucknow"
    assert complaint["tehsil"]["code"] == "lucknow_sadar"

    filed, due = await _backdate(db, number)
    assert due == filed + timedelta(days=7)  # revenue.land_record: the default 7 days
    as_of = (filed + SLA_AFTER).astimezone(IST)
    breach_month = _month(as_of)
    scorecard_path = f"/officers/{OFFICER}/scorecard?month={breach_month}"
    scorecard_before = await _json(api, scorecard_path, cm_token)

    # ---------------------------------------------------------------- the SLA pass, 8 days on
    printed = _sla_run(settings, as_of)
    mine = [line for line in printed if line.startswith(f"{number}:")]
    assert len(mine) == 1, printed
    assert mine[0].startswith(f"{number}: {OFFICER} -> "), mine
    assert f"breach by {OFFICER} at tehsil" in mine[0], mine
    overdue = as_of - due
    hours, minutes = overdue.seconds // 3600, overdue.seconds % 3600 // 60
    assert f"due {due.isoformat()}, overdue {overdue.days}d {hours}h {minutes:02d}m" in mine[0]
    summary = printed[-1]
    assert summary.startswith(f"SLA pass as of {as_of.isoformat()}:"), summary
    assert ": 1 overdue, 1 escalated, 0 skipped" in summary, summary
    assert summary.endswith(" 0 already in the ACR ledger, 0 refused"), summary

    async with db() as session:
        stored = await session.scalar(select(Complaint).where(Complaint.number == number))
        assert stored is not None
        new_officer = stored.assigned_officer
        assert stored.status is ComplaintStatus.ESCALATED
        assert stored.level == "district"
        assert new_officer is not None and new_officer != OFFICER
        assert mine[0].startswith(f"{number}: {OFFICER} -> {new_officer};"), mine
        escalations = (
            (
                await session.execute(
                    select(ComplaintHistory).where(
                        ComplaintHistory.complaint_id == stored.id,
                        ComplaintHistory.action == HistoryAction.ESCALATE,
                    )
                )
            )
            .scalars()
            .all()
        )
        assert len(escalations) == 1
        assert escalations[0].from_officer == OFFICER
        assert escalations[0].to_officer == new_officer
        assert escalations[0].at == as_of
        assert escalations[0].actor_user_id is None  # the helpline's own action
        breaches = (
            (
                await session.execute(
                    select(AcrBreach).where(
                        AcrBreach.complaint_id == stored.id, AcrBreach.officer_id == OFFICER
                    )
                )
            )
            .scalars()
            .all()
        )
        assert len(breaches) == 1
        assert breaches[0].level == "tehsil" and breaches[0].breached_at == as_of
        assert (
            await session.scalar(select(func.count()).where(AcrBreach.complaint_id == stored.id))
            == 1
        )
        # The new officer's 7 days ran out too (the time is now 16 days after the filing).
        assert stored.due_at < datetime.now(UTC)

    # A second pass as of the same time does nothing more: idempotent.
    again = _sla_run(settings, as_of)
    assert not [line for line in again if line.startswith(f"{number}:")], again

    fetched = await _json(api, f"/complaints/{number}", cm_token)
    assert fetched["status"] == "escalated" and fetched["level"] == "district"
    assert fetched["assigned_officer"]["code"] == new_officer

    # ---------------------------------------------------------------- the officer's record
    scorecard = await _json(api, scorecard_path, cm_token)
    assert scorecard["breached"] == scorecard_before["breached"] + 1

    review = await _json(api, f"/reports/monthly?month={_month(now)}", cm_token)
    month_start = now.astimezone(IST).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    received = 1 if filed >= month_start else 0  # filed 16 days ago: this month or the last
    for group, code in (("departments", "revenue"), ("districts", "lucknow")):
        before, after = _row(review_before[group], code), _row(review[group], code)
        assert after["pending"] == before["pending"] + 1, (group, before, after)
        assert after["overdue"] == before["overdue"] + 1, (group, before, after)
        assert after["received"] == before["received"] + received, (group, before, after)
        assert after["resolved"] == before["resolved"], (group, before, after)
    assert review["total"]["overdue"] == review_before["total"]["overdue"] + 1

    # ---------------------------------------------------------------- the citizen calls again
    await _hears_escalated(settings, db, number)

    # ---------------------------------------------------------------- the pages
    await _review_page_shows(settings, api, cm_token, review, tmp_path)
    await _worklist_page_shows(settings, api, db, new_officer, number, tmp_path)


async def _hears_escalated(
    settings: Settings, db: async_sessionmaker[AsyncSession], number: str
) -> None:
    """The citizen's second call: Hindi; the open-complaints offer ("2": other services); the
    main menu's status ("2"); the complaint's number and "#"; the IVR reads it back."""
    own_to_2 = seconds(settings, "you_have_open_complaints", "press1_hear_status") + 0.5
    main_to_2 = seconds(settings, "press1_new_complaint") + 1.0
    digits = [DtmfStep(d, 0.4) for d in number]
    digits[0] = DtmfStep(number[0], main_to_2 + 1.0)  # 1 s into "enter the complaint number"
    steps = [
        DtmfStep("1", language_key_at(settings)),
        DtmfStep("2", own_to_2),
        DtmfStep("2", main_to_2),
        *digits,
        DtmfStep("#", 0.4),
    ]
    since = datetime.now(UTC) - timedelta(seconds=1)
    outcome = await citizen_call(settings, steps, hold=25.0, caller_id=CITIZEN)
    assert outcome.answered, outcome.errors
    ivr = await ivr_session(db, CITIZEN, since, within=40)
    nodes = [step["node"] for step in ivr.path]
    assert nodes[:9] == [
        "welcome",
        "language",
        "hindi",
        "caller",
        "own_complaints",
        "main_menu",
        "status_entry",
        "status_read",
        "status_done",
    ], ivr.path
    assert ivr.lang == "hi"
    assert ivr.detail["complaint"] == number
    heard = ivr.prompts
    start = heard.index("complaint_number_is")
    assert heard[start : start + 1 + len(number) + 2] == [
        "complaint_number_is",
        *(f"digit_{d}" for d in number),
        "status_is",
        "status_escalated",
    ], heard
    read_back = heard[start + len(number) + 3 :]
    assert read_back[:3] == ["registered_days_ago_pre", "num_16", "registered_days_ago_post"]
    assert "overdue_pre" in read_back, read_back  # the new officer's 7 days ran out too


async def _review_page_shows(
    settings: Settings,
    api: httpx.AsyncClient,
    token: str,
    review: dict[str, Any],
    tmp_path: Path,
) -> None:
    """The CM office's /review: the month's figures for revenue and Lucknow are the API's."""
    base = f"http://{settings.api_host}:{settings.api_port}"
    async with chromium(f"{base}/review#token={token}", tmp_path / "review", "review") as page:
        await page.wait_for("Number(document.body.dataset.loaded || 0) >= 1")
        # The figures as the page fetched them (the same month, a moment later: nothing moves,
        # the sla worker is stopped).
        shown = await _json(api, f"/reports/monthly?month={review['month']}", token)
        assert {k: shown["total"][k] for k in FIGURES} == {k: review["total"][k] for k in FIGURES}
        for key in FIGURES:
            assert int(await page.text(f"total-{key}")) == review["total"][key], key
        for group, attribute, code in (
            ("departments", "department", "revenue"),
            ("districts", "district", "lucknow"),
        ):
            cells = await page.evaluate(
                "Object.fromEntries([...document.querySelectorAll("
                + json.dumps(f'tr[data-{attribute}="{code}"] td[data-k]')
                + ")].map((td) => [td.dataset.k, td.textContent]))"
            )
            assert {k: int(cells[k]) for k in FIGURES} == _row(review[group], code), code
        await _screenshot(page, tmp_path / "review.png")


async def _worklist_page_shows(
    settings: Settings,
    api: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
    officer: str,
    number: str,
    tmp_path: Path,
) -> None:
    """The /worklist of the officer who has the complaint now: it is there, escalated and
    overdue, first among the overdue ones."""
    token = await _token(api, officer, await _officer_login(db, officer))
    items = await _json(api, f"/officers/{officer}/worklist", token)
    mine = next(item for item in items if item["number"] == number)
    assert mine["status"] == "escalated" and mine["overdue"] is True
    base = f"http://{settings.api_host}:{settings.api_port}"
    async with chromium(
        f"{base}/worklist#token={token}", tmp_path / "worklist", "worklist"
    ) as page:
        await page.wait_for("Number(document.body.dataset.loaded || 0) >= 1")
        rows = await page.evaluate(
            "[...document.querySelectorAll('#worklist-rows tr')].map((tr) => "
            "[tr.dataset.number, tr.dataset.overdue === 'true', "
            "tr.querySelector('td[data-k=status]').dataset.status, "
            "tr.querySelector('td[data-k=status]').textContent])"
        )
        assert [row[:3] for row in rows] == [
            [item["number"], item["overdue"], item["status"]] for item in items
        ]
        row = next(row for row in rows if row[0] == number)
        assert row[1:3] == [True, "escalated"]
        assert row[3] == "उच्च स्तर पर भेजी गई"  # the status in Hindi
        assert int(await page.text("count-overdue")) == sum(item["overdue"] for item in items)
        assert int(await page.text("count-pending")) == len(items)
        assert officer in await page.text("officer")
        await _screenshot(page, tmp_path / "worklist.png")
