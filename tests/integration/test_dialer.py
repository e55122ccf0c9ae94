"""The outbound dialer on the real Asterisk: the ``helpline dialer`` process originates feedback
calls through the trunk to sipp "citizens" (a UAS on the trunk address) who answer and press 1
or 2, are busy (486), never answer, or hang up mid-survey. Checked on both sides: the attempts'
outcomes and retries in PostgreSQL, the complaint closed, or reopened one level up, or
"unreachable" on its history; and what sipp received (one INVITE per attempt, from the
1600-series caller ID)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jinja2
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.live import screen_pop
from core.config import Settings
from core.db.models import (
    Call,
    CallbackRequest,
    Complaint,
    ComplaintHistory,
    DialerAttempt,
    DialerBudget,
    DialerJob,
    DoNotCall,
    ServiceHeartbeat,
)
from core.db.session import create_engine, session_factory
from core.domain.clock import IST, helpline_day
from helpline import services
from helpline.sipp import SCENARIO_DIR, AgentSeat, _step_pcap, free_udp_port, sipp_binary
from outbound_dialer.store import make_feedback_jobs, make_followup_jobs
from tests.integration.queue_support import (
    login,
    logout_all,
    make_agents,
    seat_password,
    wait_queue_manager,
)
from tests.service.test_routing import complaint
from tests.waiting import wait_for, wait_for_sync

MUTATION = complaint("दाखिल-ख़ारिज लंबित है", "revenue.mutation", "lucknow", tehsil="lucknow_sadar")
TEHSIL_OFFICER = "revenue.tehsil.lucknow_sadar"
CALLER_ID = "1600110076"
#: The dialer's settings for this module: any hour, short rings and retries.
DIALER_ENV = {
    "HELPLINE_DAILY_OUTBOUND_BUDGET": "1000",
    "HELPLINE_DIALER_WINDOW_START": "00:00",
    "HELPLINE_DIALER_WINDOW_END": "23:59",
    "HELPLINE_DIALER_RING_SECONDS": "6",
    "HELPLINE_DIALER_RETRY_BUSY_MINUTES": "0.05",
    "HELPLINE_DIALER_RETRY_NO_ANSWER_MINUTES": "0.05",
    "HELPLINE_DIALER_RETRY_SILENCE_MINUTES": "0.05",
    "HELPLINE_DIALER_POLL_SECONDS": "0.5",
    "HELPLINE_DIALER_JOB_PASS_SECONDS": "1",
    "HELPLINE_OUTBOUND_CALLER_ID": CALLER_ID,
}


@dataclass
class Citizens:
    """sipp as the citizens behind the trunk: one behaviour at a time, on a fixed port."""

    ip: str
    port: int
    media: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    def count(self, event: str) -> int:
        return len(list((self.workdir / "events").glob(f"{event}.*")))

    def messages(self) -> str:
        path = self.workdir / "uas.messages"
        return path.read_text(errors="replace") if path.exists() else ""

    @contextlib.contextmanager
    def behave(
        self, mode: str, dtmf: str = "", *, delay_ms: int = 4000, hold_ms: int = 20000
    ) -> Iterator[Citizens]:
        wd = Path(tempfile.mkdtemp(prefix=f"citizens-{mode}-", dir=self.workdir))
        (wd / "events").mkdir()
        steps = [
            {"digit": d, "delay_ms": delay_ms, "pcap": str(_step_pcap(wd, i, d))}
            for i, d in enumerate(dtmf)
        ]
        template = jinja2.Template((SCENARIO_DIR / "citizen_uas.xml").read_text(), autoescape=True)
        (wd / "uas.xml").write_text(
            template.render(mode=mode, dtmf=steps, ring_ms=500, hold_ms=hold_ms)
        )
        args = [
            *("-sf", str(wd / "uas.xml"), "-i", self.ip, "-mi", self.ip),
            *("-p", str(self.port), "-mp", str(self.media), "-nostdin", "-aa"),
            *("-trace_msg", "-message_file", str(wd / "uas.messages")),
            *("-trace_err", "-error_file", str(wd / "uas.errors"), "-timeout", "300s"),
        ]
        with (wd / "uas.stdout").open("wb") as out:
            proc = subprocess.Popen(
                [sipp_binary(), *args], stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=wd
            )
        run = Citizens(self.ip, self.port, self.media, wd, proc)

        def listening() -> bool:
            assert proc.poll() is None, (wd / "uas.stdout").read_text(errors="replace")
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    probe.bind((self.ip, self.port))
                except OSError:
                    return True
            return False

        wait_for_sync(listening, 10, interval=0.05, what=f"sipp citizens ({mode}) listening")
        try:
            yield run
        finally:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def monkeymodule() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as mp:
        yield mp


async def _quiet_old_jobs(settings: Settings) -> None:
    """Jobs for complaints other tests resolved are made now and stopped: only this module's
    complaints are dialled."""
    engine = create_engine(settings, pool_size=1)
    try:
        async with session_factory(engine)() as session:
            await make_feedback_jobs(session, datetime.now(UTC))
            await session.execute(
                text("UPDATE dialer_jobs SET state = 'stopped' WHERE state = 'pending'")
            )
            await session.execute(
                text("UPDATE dialer_campaigns SET paused = (name <> 'feedback'), max_attempts = 3")
            )
            await session.commit()
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def citizens(stack_settings: Settings, monkeymodule: pytest.MonkeyPatch) -> Iterator[Citizens]:
    ip = stack_settings.trunk_address
    avoid = (stack_settings.rtp_port_start, stack_settings.rtp_port_end)
    port = free_udp_port(ip, avoid=avoid)
    media = free_udp_port(ip, span=4, avoid=avoid)
    services.stop(stack_settings, "dialer")
    asyncio.run(_quiet_old_jobs(stack_settings))
    for key, value in DIALER_ENV.items():
        monkeymodule.setenv(key, value)
    monkeymodule.setenv("HELPLINE_DIALER_TRUNK_DIAL", f"PJSIP/trunk/sip:{{number}}@{ip}:{port}")
    services.start(stack_settings, "dialer")
    try:
        yield Citizens(ip, port, media, Path(tempfile.mkdtemp(prefix="citizens-")))
    finally:
        services.stop(stack_settings, "dialer")
        for key in [*DIALER_ENV, "HELPLINE_DIALER_TRUNK_DIAL"]:
            monkeymodule.delenv(key)
        services.start(stack_settings, "dialer")


@pytest.fixture
async def dialer_ready(
    citizens: Citizens, db: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Citizens]:
    async def reconciled() -> bool:
        async with db() as session:
            beat = await session.get(ServiceHeartbeat, "dialer")
        return beat is not None and bool(beat.detail.get("reconciled"))

    await wait_for(reconciled, 30, what="the dialer logged in to AMI and reconciled")
    yield citizens


async def resolve_new(
    api: httpx.AsyncClient, users: dict[str, list[dict[str, str]]], caller: str
) -> str:
    async def login(username: str) -> dict[str, str]:
        entry = next(e for entries in users.values() for e in entries if e["username"] == username)
        got = await api.post(
            "/auth/token", data={"username": username, "password": entry["password"]}
        )
        assert got.status_code == 200, got.text
        return {"Authorization": f"Bearer {got.json()['access_token']}"}

    filed = await api.post(
        "/complaints", json=MUTATION | {"caller_number": caller}, headers=await login("supervisor1")
    )
    assert filed.status_code == 201, filed.text
    number: str = filed.json()["number"]
    resolved = await api.post(
        f"/complaints/{number}/transitions",
        json={"action": "resolve", "note": "नामांतरण आदेश पारित"},
        headers=await login(TEHSIL_OFFICER),
    )
    assert resolved.status_code == 200, resolved.text
    return number


async def attempts_of(db: async_sessionmaker[AsyncSession], number: str) -> list[DialerAttempt]:
    async with db() as session:
        rows = await session.execute(
            select(DialerAttempt)
            .join(DialerJob, DialerJob.id == DialerAttempt.job_id)
            .join(Complaint, Complaint.id == DialerJob.complaint_id)
            .where(Complaint.number == number)
            .order_by(DialerAttempt.attempt_no)
        )
        return list(rows.scalars())


async def ended(
    db: async_sessionmaker[AsyncSession], number: str, count: int
) -> list[DialerAttempt]:
    async def check() -> list[DialerAttempt] | None:
        rows = await attempts_of(db, number)
        done = [a for a in rows if a.ended_at is not None]
        return rows if len(done) >= count else None

    found: list[DialerAttempt] | None = await wait_for(
        check, 90, interval=0.5, what=f"{count} ended attempt(s) for {number}"
    )
    assert found is not None
    return found


async def stored(db: async_sessionmaker[AsyncSession], number: str) -> Any:
    async with db() as session:
        return (
            await session.execute(select(Complaint).where(Complaint.number == number))
        ).scalar_one()


async def test_busy_then_not_satisfied_reopens_one_level_up(
    dialer_ready: Citizens,
    api: httpx.AsyncClient,
    demo_users: dict[str, list[dict[str, str]]],
    db: async_sessionmaker[AsyncSession],
) -> None:
    with dialer_ready.behave("busy") as busy:
        number = await resolve_new(api, demo_users, "9811100001")
        [first] = await ended(db, number, 1)
        assert (first.outcome, first.answered, first.attempt_no) == ("busy", False, 1)
        assert busy.count("INVITE") == busy.count("BUSY") == 1
        assert f"sip:{CALLER_ID}@" in busy.messages()  # the 1600-series caller ID
    with dialer_ready.behave("answer", "2") as answering:
        rows = await ended(db, number, 2)
        second = rows[1]
        assert (second.outcome, second.answered) == ("completed", True)
        assert answering.count("INVITE") == answering.count("ANSWERED") == 1
    complaint_row = await stored(db, number)
    assert (complaint_row.status, complaint_row.level, complaint_row.reopen_count) == (
        "reopened",
        "district",
        1,
    )
    async with db() as session:
        note = (
            await session.execute(
                select(ComplaintHistory.note).where(
                    ComplaintHistory.complaint_id == complaint_row.id,
                    ComplaintHistory.action == "reopen",
                )
            )
        ).scalar_one()
    assert note == "feedback call: citizen not satisfied (pressed 2)"


async def test_satisfied_closes_the_complaint(
    dialer_ready: Citizens,
    api: httpx.AsyncClient,
    demo_users: dict[str, list[dict[str, str]]],
    db: async_sessionmaker[AsyncSession],
) -> None:
    with dialer_ready.behave("answer", "1") as answering:
        number = await resolve_new(api, demo_users, "9811100002")
        [only] = await ended(db, number, 1)
        assert only.outcome == "completed"
        assert answering.count("DTMF_1") == 1
    assert (await stored(db, number)).status == "closed"


async def test_no_answer_and_hang_up_mid_survey_make_it_unreachable(
    dialer_ready: Citizens,
    api: httpx.AsyncClient,
    demo_users: dict[str, list[dict[str, str]]],
    db: async_sessionmaker[AsyncSession],
) -> None:
    async with db() as session:
        await session.execute(
            text("UPDATE dialer_campaigns SET max_attempts = 2 WHERE name = 'feedback'")
        )
        await session.commit()
    try:
        with dialer_ready.behave("no_answer") as ringing:
            number = await resolve_new(api, demo_users, "9811100003")
            [first] = await ended(db, number, 1)
            assert first.outcome == "no_answer"
            assert ringing.count("CANCELLED") == 1
        with dialer_ready.behave("answer", hold_ms=3000) as hanging_up:
            rows = await ended(db, number, 2)
            assert (rows[1].outcome, rows[1].answered) == ("hung_up", True)
            assert hanging_up.count("LOCAL_BYE") == 1
    finally:
        async with db() as session:
            await session.execute(text("UPDATE dialer_campaigns SET max_attempts = 3"))
            await session.commit()
    complaint_row = await stored(db, number)
    assert complaint_row.status == "resolved"  # nobody said otherwise
    async with db() as session:
        job_state = (
            await session.execute(
                select(DialerJob.state).where(DialerJob.complaint_id == complaint_row.id)
            )
        ).scalar_one()
        note = (
            await session.execute(
                select(ComplaintHistory.note).where(
                    ComplaintHistory.complaint_id == complaint_row.id,
                    ComplaintHistory.action == "feedback_unreachable",
                )
            )
        ).scalar_one()
    assert job_state == "unreachable"
    assert note == "feedback call: citizen not reached in 2 attempt(s), the last hung up"


async def budget_used_with_feedback_paused(
    db: async_sessionmaker[AsyncSession], *, max_attempts: int
) -> int:
    """Outbound calls spent today so far; the feedback campaign paused (its jobs dialled only
    once the test resumes it) with ``max_attempts`` per job."""
    async with db() as session:
        used = (
            await session.execute(
                select(DialerBudget.used).where(
                    DialerBudget.day == helpline_day(), DialerBudget.scope == "all"
                )
            )
        ).scalar_one_or_none() or 0
        await session.execute(
            text(
                "UPDATE dialer_campaigns SET max_attempts = :n, paused = true "
                "WHERE name = 'feedback'"
            ),
            {"n": max_attempts},
        )
        await session.commit()
    return int(used)


async def test_three_dialers_never_pass_a_small_budget_nor_dial_a_job_twice(
    stack_settings: Settings,
    dialer_ready: Citizens,
    api: httpx.AsyncClient,
    demo_users: dict[str, list[dict[str, str]]],
    db: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The stack's dialer and two more processes, one database, a budget with room for 4 more
    calls today and 7 citizens to call once each: sipp sees 4 INVITEs, to 4 different numbers."""
    used = await budget_used_with_feedback_paused(db, max_attempts=1)
    budget = used + 4
    monkeypatch.setenv("HELPLINE_DAILY_OUTBOUND_BUDGET", str(budget))
    services.stop(stack_settings, "dialer")
    services.start(stack_settings, "dialer")
    env = dict(os.environ, HELPLINE_STATE_DIR=str(stack_settings.state_dir))
    extra: list[subprocess.Popen[bytes]] = []
    try:
        logs = [tmp_path / f"dialer{n}.log" for n in (2, 3)]
        extra += [_spawn_dialer(env, log) for log in logs]
        await wait_for(
            lambda: all("logged in" in log.read_text(errors="replace") for log in logs),
            60,  # two Python processes starting at once on a busy 2-core machine: 30 s seen
            what="the two more dialers logged in to AMI",
        )
        with dialer_ready.behave("busy") as busy:
            # The campaign is paused while the jobs are made: then all three dialers find
            # seven due jobs at once.
            numbers = [await resolve_new(api, demo_users, f"98111002{n:02d}") for n in range(7)]

            async def jobs_made() -> bool:
                async with db() as session:
                    made = (
                        await session.execute(
                            select(func.count())
                            .select_from(DialerJob)
                            .join(Complaint, Complaint.id == DialerJob.complaint_id)
                            .where(Complaint.number.in_(numbers))
                        )
                    ).scalar_one()
                return made == 7

            await wait_for(jobs_made, 30, what="the seven feedback jobs")
            async with db() as session:
                await session.execute(
                    text("UPDATE dialer_campaigns SET paused = false WHERE name = 'feedback'")
                )
                await session.commit()

            async def settled() -> bool:
                async with db() as session:
                    spent = (
                        await session.execute(
                            select(DialerBudget.used, DialerBudget.active).where(
                                DialerBudget.day == helpline_day(), DialerBudget.scope == "all"
                            )
                        )
                    ).one_or_none()
                return spent is not None and tuple(spent) == (budget, 0)

            await wait_for(settled, 90, interval=0.5, what="the budget spent, every call ended")

            # Give all three dialers many more passes (0.5 s apart) to overspend: wait until
            # the shared heartbeat row was written twice more (every 5 s by any of them).
            await more_dialer_passes(db, "two more heartbeats")
            assert all(p.poll() is None for p in extra), "a dialer process died"
            invited = re.findall(r"^INVITE sip:(\d+)@", busy.messages(), re.MULTILINE)
        attempts = [a for number in numbers for a in await attempts_of(db, number)]
        assert len(invited) == len(attempts) == 4
        assert len(set(invited)) == 4  # four citizens, each dialled once
        assert {str(a.number) for a in attempts} == set(invited)
        dialers = {a.dialer for a in attempts}
        print(f"attempts by dialer: {sorted(a.dialer for a in attempts)}")
        assert 1 <= len(dialers) <= 3
    finally:
        _stop_dialers(extra)
        monkeypatch.undo()
        services.stop(stack_settings, "dialer")
        async with db() as session:
            await session.execute(text("UPDATE dialer_campaigns SET max_attempts = 3"))
            # The citizens the budget left out are not this module's to call any more.
            await session.execute(
                text("UPDATE dialer_jobs SET state = 'stopped' WHERE state = 'pending'")
            )
            await session.commit()
        services.start(stack_settings, "dialer")


def _spawn_dialer(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """One more ``helpline dialer`` process on the stack's database and Asterisk."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "helpline", "dialer"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _stop_dialers(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM (the dialer's graceful stop), SIGKILL if it does not go."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def more_dialer_passes(db: async_sessionmaker[AsyncSession], what: str) -> None:
    """Until the dialers' shared heartbeat row was written twice more (every 5 s by any of
    them): many more passes (0.5 s apart) have run meanwhile."""

    async def beat() -> datetime:
        async with db() as session:
            row = await session.get(ServiceHeartbeat, "dialer", populate_existing=True)
        assert row is not None
        return row.seen_at

    first = await beat()

    async def later() -> bool:
        return await beat() >= first + timedelta(seconds=6)

    await wait_for(later, 30, what=what)


async def test_a_callback_waits_for_a_free_agent_then_reaches_them(
    stack_settings: Settings,
    dialer_ready: Citizens,
    api: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    """A stored callback request is not dialled while no agent is free; once a sipp agent sits
    at a seat, the citizen is called, hears why, and is connected to that agent."""
    await wait_queue_manager(db)
    (agent,) = await make_agents(db, api, "dialcb", 1)
    seat = "agent0301"
    async with db() as session:
        request = CallbackRequest(
            uniqueid=f"itest-callback-{os.getpid()}",
            caller_number="9811100301",
            lang="hi",
            reason="wait",
        )
        session.add(request)
        await session.execute(
            text("UPDATE dialer_campaigns SET paused = false WHERE name = 'callback'")
        )
        await session.commit()
        request_id = request.id
    try:
        with dialer_ready.behave("answer", hold_ms=20000) as citizen:

            async def job() -> DialerJob | None:
                async with db() as session:
                    return (
                        await session.execute(
                            select(DialerJob).where(DialerJob.callback_request_id == request_id)
                        )
                    ).scalar_one_or_none()

            await wait_for(job, 30, what="the callback job")

            await more_dialer_passes(db, "the dialer's passes with no agent free")
            # Nobody to connect them to: not dialled.
            assert "INVITE sip:9811100301@" not in citizen.messages()

            password = await seat_password(db, seat)
            async with AgentSeat(stack_settings, seat, password, workdir=tmp_path) as phone:
                await login(api, agent, seat)
                try:
                    await phone.wait_answered(1, within=60)
                    invited = re.findall(r"^INVITE sip:(\d+)@", citizen.messages(), re.M)
                    assert invited == ["9811100301"]
                    assert citizen.count("ANSWERED") == 1
                finally:
                    await logout_all(api, [agent])
            found = await job()
            assert found is not None
            [attempt] = await _attempts_of_job(db, found.id)
            assert attempt.answered
            # Recorded by the queue manager as the dialer's call, connected to the seat: what
            # the agent's screen-pop read (why the citizen was called).
            async with db() as session:
                call = (
                    await session.execute(select(Call).where(Call.uniqueid == attempt.id))
                ).scalar_one()
                pop = await screen_pop(session, attempt.id)
            assert (call.dialer_attempt_id, call.caller_number) == (attempt.id, "9811100301")
            assert call.agent_seat == seat
            assert pop is not None and pop["outbound"]["callback"]["reason"] == "wait"
    finally:
        async with db() as session:
            await session.execute(
                text("UPDATE dialer_campaigns SET paused = true WHERE name = 'callback'")
            )
            await session.commit()


async def _attempts_of_job(
    db: async_sessionmaker[AsyncSession], job_id: int
) -> list[DialerAttempt]:
    async with db() as session:
        rows = await session.execute(select(DialerAttempt).where(DialerAttempt.job_id == job_id))
        return list(rows.scalars())


async def test_followup_reads_the_status_and_9_stops_the_calls(
    stack_settings: Settings,
    dialer_ready: Citizens,
    api: httpx.AsyncClient,
    demo_users: dict[str, list[dict[str, str]]],
    db: async_sessionmaker[AsyncSession],
) -> None:
    """A complaint open for four days gets its follow-up call; the citizen presses 9 during
    the message: the number goes on the do-not-call list."""
    caller = "9811100401"
    number = await file_new(api, demo_users, caller)
    async with db() as session:
        # Follow-ups other tests' complaints are due are not this test's to make.
        await make_followup_jobs(session, datetime.now(UTC), timedelta(days=3))
        await session.execute(
            text(
                "UPDATE dialer_jobs SET state = 'stopped' "
                "WHERE state = 'pending' AND campaign = 'followup'"
            )
        )
        await session.execute(
            text(
                "UPDATE complaints SET created_at = created_at - interval '4 days' "
                "WHERE number = :number"
            ),
            {"number": number},
        )
        await session.execute(
            text("UPDATE dialer_campaigns SET paused = false WHERE name = 'followup'")
        )
        await session.commit()
    try:
        with dialer_ready.behave("answer", "9", delay_ms=3000) as citizen:

            async def ended() -> DialerAttempt | None:
                async with db() as session:
                    return (
                        await session.execute(
                            select(DialerAttempt)
                            .join(DialerJob, DialerJob.id == DialerAttempt.job_id)
                            .join(Complaint, Complaint.id == DialerJob.complaint_id)
                            .where(
                                Complaint.number == number,
                                DialerJob.campaign == "followup",
                                DialerAttempt.ended_at.is_not(None),
                            )
                        )
                    ).scalar_one_or_none()

            attempt: DialerAttempt | None = await wait_for(
                ended, 90, interval=0.5, what="the follow-up call ended"
            )
            assert attempt is not None and attempt.outcome == "completed"
            assert citizen.count("DTMF_9") == 1
    finally:
        async with db() as session:
            await session.execute(
                text("UPDATE dialer_campaigns SET paused = true WHERE name = 'followup'")
            )
            await session.commit()
    async with db() as session:
        dnc = await session.get(DoNotCall, caller)
    assert dnc is not None and dnc.source == "citizen"


async def file_new(
    api: httpx.AsyncClient, users: dict[str, list[dict[str, str]]], caller: str
) -> str:
    entry = next(e for entries in users.values() for e in entries if e["username"] == "supervisor1")
    token = await api.post(
        "/auth/token", data={"username": "supervisor1", "password": entry["password"]}
    )
    filed = await api.post(
        "/complaints",
        json=MUTATION | {"caller_number": caller},
        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
    )
    assert filed.status_code == 201, filed.text
    number: str = filed.json()["number"]
    return number


WINDOW_KEYS = ("HELPLINE_DIALER_WINDOW_START", "HELPLINE_DIALER_WINDOW_END")


async def _restart_api(
    settings: Settings, api: httpx.AsyncClient, window: tuple[str, str] | None
) -> None:
    """The API process again, with the module's dialer settings and the calling window
    ``window`` for its click-to-call checks (None: as the stack started it, without them);
    back once it answers. The test process's environment is left as it was."""
    services.stop(settings, "api")
    module_env = dict(os.environ)
    if window is None:  # as the stack started it: none of this module's dialer settings
        for key in DIALER_ENV:
            os.environ.pop(key, None)
    else:  # the module's dialer settings (budget...), with this window
        os.environ.update(dict(zip(WINDOW_KEYS, window, strict=True)))
    try:
        services.start(settings, "api")
    finally:
        os.environ.clear()
        os.environ.update(module_env)

    async def up() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return (await api.get("/health")).status_code < 500
        return False

    ready: bool = await wait_for(up, 30, interval=0.2, what="the API up again")
    assert ready


async def test_click_to_call_rings_the_seat_then_the_citizen_through_the_dialer(
    stack_settings: Settings,
    dialer_ready: Citizens,
    api: httpx.AsyncClient,
    demo_users: dict[str, list[dict[str, str]]],
    db: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    """An agent at a sipp seat clicks "call" on a complaint: refused outside the calling
    window (409); inside it, the seat rings first, and once it answers the citizen (sipp UAS
    behind the trunk) is dialled from the 1600 number and bridged; the call is the dialer's
    (an attempt of campaign ``click``) and counted in the day's budget."""
    await wait_queue_manager(db)
    caller = "9811100501"
    number = await file_new(api, demo_users, caller)
    (agent,) = await make_agents(db, api, "dialclick", 1)
    seat = "agent0302"
    async with db() as session:
        await session.execute(
            text(
                "UPDATE dialer_campaigns SET paused = false, max_attempts = 1 WHERE name = 'click'"
            )
        )
        await session.commit()
    ist_hour = datetime.now(UTC).astimezone(IST).hour
    closed = ("00:00", "00:01") if ist_hour != 0 else ("12:00", "12:01")
    try:
        password = await seat_password(db, seat)
        async with AgentSeat(stack_settings, seat, password, workdir=tmp_path) as phone:
            await login(api, agent, seat)
            try:
                await _restart_api(stack_settings, api, closed)
                refused = await api.post(f"/complaints/{number}/call", headers=agent.headers)
                assert refused.status_code == 409 and "window" in refused.text, refused.text
                await _restart_api(stack_settings, api, ("00:00", "23:59"))
                async with db() as session:
                    before = await session.scalar(
                        select(func.coalesce(func.sum(DialerBudget.used), 0)).where(
                            DialerBudget.day == helpline_day(datetime.now(UTC)),
                            DialerBudget.scope == "all",
                        )
                    )
                with dialer_ready.behave("answer", hold_ms=3000) as citizen:
                    queued = await api.post(f"/complaints/{number}/call", headers=agent.headers)
                    assert queued.status_code == 202, queued.text
                    assert queued.json()["seat"] == seat
                    await phone.wait_answered(1, within=60)

                    async def done() -> dict[str, Any] | None:
                        got = await api.get(f"/complaints/{number}/call", headers=agent.headers)
                        body: dict[str, Any] = got.json()
                        return body if body["state"] not in ("pending", "dialing") else None

                    final: dict[str, Any] | None = await wait_for(
                        done, 60, interval=0.5, what="the click-to-call ended"
                    )
                    assert final == {
                        "job": queued.json()["job"],
                        "seat": seat,
                        "state": "done",
                        "outcome": "completed",
                    }
                    invited = re.findall(r"^INVITE sip:(\d+)@", citizen.messages(), re.M)
                    assert invited == [caller]
                    assert citizen.count("ANSWERED") == 1
                    assert f"sip:{CALLER_ID}@" in citizen.messages()
            finally:
                await logout_all(api, [agent])
        [attempt] = await _attempts_of_job(db, queued.json()["job"])
        assert (attempt.campaign, attempt.answered, attempt.dial_status) == (
            "click",
            True,
            "ANSWER",
        )
        async with db() as session:
            after = await session.scalar(
                select(DialerBudget.used).where(
                    DialerBudget.day == attempt.day, DialerBudget.scope == "all"
                )
            )
        assert after == int(before or 0) + 1
        async with db() as session:
            pop = await screen_pop(session, attempt.id)
        assert pop is not None and pop["caller_number"] == caller
        assert pop["outbound"]["complaint"]["number"] == number
    finally:
        # The API as the stack started it (the default window), the module's env kept.
        await _restart_api(stack_settings, api, None)
        async with db() as session:
            await session.execute(
                text("UPDATE dialer_campaigns SET paused = true WHERE name = 'click'")
            )
            await session.commit()
