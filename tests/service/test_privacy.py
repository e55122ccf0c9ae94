"""The privacy pass (lifecycle.privacy) on a real PostgreSQL: every data class anonymised (or
deleted) past its retention and not a day before, open complaints never, batch after batch;
a second pass changes nothing; the statistics (complaints by department, month and status;
calls by day and disposition) are the same before and after."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.models import (
    AsteriskCel,
    AuditLog,
    Call,
    CallbackRequest,
    Complaint,
    ComplaintHistory,
    DialerAttempt,
    DialerJob,
    DialerNumberDay,
    IvrSession,
    SmsOutbox,
    User,
)
from core.domain.complaints import SEQUENCE_START, complaint_number
from lifecycle import privacy
from lifecycle.privacy import ANONYMISED, PrivacySchedule, prune

AS_OF = datetime(2026, 12, 6, 4, 30, tzinfo=UTC)
OLD, RECENT = "9415000001", "9415000002"


def days(n: int) -> datetime:
    return AS_OF - timedelta(days=n)


async def populate(sessions: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    """Rows of every class on both sides of its cut-off; the complaints' ids by name."""
    async with sessions() as session:
        user = User(username="agent1", full_name="A", role="agent", password_hash="x")
        session.add(user)
        await session.flush()
        complaints: dict[str, Complaint] = {}
        # name: (status, created days ago, last transition days ago)
        shapes = {
            "closed_long_ago": ("closed", 500, 400),
            "closed_recently": ("closed", 500, 300),
            "duplicate_long_ago": ("rejected_duplicate", 600, 590),
            "open_for_ever": ("assigned", 900, 880),
            "resolved_not_closed": ("resolved", 700, 600),
        }
        for seq, (name, (status, created, last)) in enumerate(shapes.items(), SEQUENCE_START):
            complaint = Complaint(
                number=complaint_number(seq),
                caller_number=OLD,
                caller_name="Ramkali Devi",
                description=f"personal story of {name}",
                created_by=user.id,
                status=status,
                department="police" if seq % 2 else "health",
                created_at=days(created),
                due_at=days(created - 7),
                resolution_text="what the officer did" if status != "assigned" else None,
                request_hash="ab" * 32,
            )
            session.add(complaint)
            await session.flush()
            complaints[name] = complaint
            for at, note in ((days(created), "filed"), (days(last), "the citizen said ...")):
                session.add(
                    ComplaintHistory(
                        complaint_id=complaint.id,
                        at=at,
                        action="close",
                        to_status=status,
                        note=note,
                    )
                )
        # Calls: five old ones (more than a batch of 2), one recent.
        for n, ago in enumerate((200, 190, 185, 181, 181, 179)):
            number = OLD if ago > 180 else RECENT
            session.add(
                Call(
                    uniqueid=f"c.{n}",
                    caller_number=number,
                    caller_number_raw=f"+91{number}",
                    caller_name="RAMKALI",
                    started_at=days(ago),
                    disposition="answered",
                )
            )
            session.add(
                IvrSession(
                    uniqueid=f"c.{n}",
                    caller_number=number,
                    caller_number_raw=f"+91{number}",
                    lang="hi",
                    started_at=days(ago),
                    path=[],
                    prompts=[],
                )
            )
        for n, (status, ago, number) in enumerate(
            (("called", 200, OLD), ("pending", 200, "9415000003"), ("called", 10, RECENT))
        ):
            session.add(
                CallbackRequest(
                    uniqueid=f"cb.{n}",
                    caller_number=number,
                    lang="hi",
                    reason="wait",
                    status=status,
                    requested_at=days(ago),
                    place_at=days(ago),
                )
            )
        job_old = DialerJob(
            campaign="feedback",
            complaint_id=complaints["closed_long_ago"].id,
            dedupe_key="resolve:1",
            number=OLD,
            state="done",
            created_at=days(200),
            finished_at=days(199),
        )
        job_pending = DialerJob(
            campaign="followup",
            complaint_id=complaints["open_for_ever"].id,
            dedupe_key="assigned:1",
            number=OLD,
            state="pending",
            created_at=days(300),
        )
        session.add_all([job_old, job_pending])
        await session.flush()
        for n, ago in enumerate((199, 5)):
            session.add(
                DialerAttempt(
                    id=f"a.{n}",
                    job_id=job_old.id,
                    attempt_no=n + 1,
                    campaign="feedback",
                    number=OLD,
                    day=days(ago).date(),
                    started_at=days(ago),
                    ended_at=days(ago),
                    outcome="completed",
                    dialer="test:1",
                )
            )
        session.add_all(
            [
                DialerNumberDay(number=OLD, day=days(200).date(), attempts=1),
                DialerNumberDay(number=OLD, day=days(5).date(), attempts=1),
            ]
        )
        for n, (status, ago) in enumerate((("sent", 100), ("pending", 100), ("sent", 80))):
            session.add(
                SmsOutbox(
                    complaint_number=complaints["closed_long_ago"].number,
                    caller_number=OLD,
                    kind="resolved",
                    dedupe_key=str(n),
                    language="hi",
                    body="आपकी शिकायत हल हो गई",
                    dlt_template_id="1" * 19,
                    status=status,
                    created_at=days(ago),
                )
            )
        session.add_all(
            [
                AuditLog(service="api", action="x", entity="y", at=days(1100)),
                AuditLog(service="api", action="x", entity="y", at=days(1000)),
                # Asterisk's CEL, UTC without a zone as cel_pgsql writes it: 40 and 20 days.
                AsteriskCel(eventtime=days(40).replace(tzinfo=None), cid_num=OLD),
                AsteriskCel(eventtime=days(20).replace(tzinfo=None), cid_num=RECENT),
            ]
        )
        await session.commit()
        return {name: c.id for name, c in complaints.items()}


async def statistics(session: AsyncSession) -> list[Any]:
    rows = await session.execute(
        text(
            "SELECT department, date_trunc('month', created_at), status, count(*)"
            " FROM complaints GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        )
    )
    calls = await session.execute(
        text(
            "SELECT date_trunc('day', started_at), disposition, count(*) FROM calls"
            " GROUP BY 1, 2 ORDER BY 1, 2"
        )
    )
    return [*rows.all(), *calls.all()]


async def test_every_class_past_its_retention_is_anonymised_once_and_statistics_stay(
    db_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    ids = await populate(sessions)
    settings = db_settings.model_copy(update={"privacy_batch": 2})
    async with sessions() as session:
        before = await statistics(session)

    report = await prune(sessions, settings, AS_OF)
    print("\n" + "\n".join(report.lines()))
    assert report.changed == {
        "call numbers": 5,
        "IVR session numbers": 5,
        "callback request numbers": 1,
        "dialer job numbers": 1,
        "dialer attempt numbers": 1,
        "dialer per-number counters": 1,
        "complaint history notes": 4,
        "complaints": 2,
        "SMS bodies": 1,
        "audit rows": 1,
        "Asterisk CEL rows": 1,
    }

    async with sessions() as session:
        assert await statistics(session) == before
        complaints = {c.id: c for c in (await session.execute(select(Complaint))).scalars().all()}
        for name, complaint_id in ids.items():
            c = complaints[complaint_id]
            gone = name in ("closed_long_ago", "duplicate_long_ago")
            assert (c.anonymised_at == AS_OF) is gone, name
            if gone:
                assert (c.caller_number, c.caller_name, c.resolution_text) == (None, None, None)
                assert (c.description, c.request_hash) == (ANONYMISED, None)
            else:
                assert c.caller_number == OLD and c.description.startswith("personal"), name
            notes = (
                await session.execute(
                    select(ComplaintHistory.note).where(
                        ComplaintHistory.complaint_id == complaint_id
                    )
                )
            ).scalars()
            assert all((note is None) is gone for note in notes), name
        calls = (await session.execute(select(Call).order_by(Call.id))).scalars().all()
        assert [c.caller_number for c in calls] == [None] * 5 + [RECENT]
        assert all(c.caller_number_raw is None and c.caller_name is None for c in calls[:5])
        ivr = (await session.execute(select(IvrSession.caller_number))).scalars().all()
        assert sorted(ivr, key=str) == sorted([None] * 5 + [RECENT], key=str)
        callbacks = (
            await session.execute(
                select(CallbackRequest.status, CallbackRequest.caller_number).order_by(
                    CallbackRequest.id
                )
            )
        ).all()
        assert [tuple(r) for r in callbacks] == [
            ("called", None),
            ("pending", "9415000003"),
            ("called", RECENT),
        ]
        jobs = (await session.execute(select(DialerJob.state, DialerJob.number))).all()
        assert sorted((str(s), n) for s, n in jobs) == [("done", None), ("pending", OLD)]
        attempts = (
            await session.execute(select(DialerAttempt.number).order_by(DialerAttempt.id))
        ).scalars()
        assert list(attempts) == [None, OLD]
        counters = (await session.execute(select(DialerNumberDay.day))).scalars().all()
        assert counters == [days(5).date()]
        sms = (
            await session.execute(
                select(SmsOutbox.status, SmsOutbox.body, SmsOutbox.caller_number).order_by(
                    SmsOutbox.id
                )
            )
        ).all()
        assert [(str(s), b == "", n is None) for s, b, n in sms] == [
            ("sent", True, True),
            ("pending", False, False),
            ("sent", False, False),
        ]
        audits = (
            await session.execute(select(AuditLog.action, AuditLog.detail).order_by(AuditLog.id))
        ).all()
        assert [a for a, _ in audits] == ["x", "personal_data_anonymised"]
        cel = (await session.execute(select(AsteriskCel.cid_num))).scalars().all()
        assert cel == [RECENT]
        assert audits[-1][1]["complaints"] == 2

    # Idempotent: nothing left to do, nothing audited again.
    again = await prune(sessions, settings, AS_OF)
    assert again.total == 0, again.changed
    async with sessions() as session:
        assert await statistics(session) == before
        count = select(func.count()).select_from(AuditLog)
        assert (await session.execute(count)).scalar_one() == 2


async def test_the_worker_runs_the_pass_hourly(
    db_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await populate(sessions)
    schedule = PrivacySchedule(db_settings)
    await schedule(sessions, AS_OF)
    assert schedule.last_report is not None and schedule.last_report.total > 0
    first = schedule.last_report
    await schedule(sessions, AS_OF + timedelta(minutes=30))
    assert schedule.last_report is first  # within the hour: not run again
    await schedule(sessions, AS_OF + timedelta(hours=1))
    assert schedule.last_report is not first and schedule.last_report.total == 0


def test_every_data_class_has_a_retention() -> None:
    periods = privacy.retention(Settings())
    assert {step.data_class for step in privacy.STEPS} == set(periods)
    assert periods["complaints"] == timedelta(days=365) and periods["calls"] == timedelta(180)


async def test_helpline_privacy_prune_runs_one_pass_and_prints_it(
    db_settings: Settings, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    await populate(sessions)
    env = os.environ | {
        "HELPLINE_DATABASE_URL": db_settings.database_url,
        "HELPLINE_STATE_DIR": str(tmp_path),
    }
    command = [sys.executable, "-m", "helpline", "privacy", "prune", "--as-of", AS_OF.isoformat()]
    first = await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, timeout=120
    )
    assert first.returncode == 0, first.stderr
    assert "complaints: 2" in first.stdout.splitlines()
    assert first.stdout.splitlines()[-1].endswith(": 23 rows anonymised or deleted")
    again = await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1].endswith(": 0 rows anonymised or deleted")
