"""Issue 15's fault-injection suite on the real Asterisk, with calls flowing: each fault injected
at least :data:`ROUNDS` times at random (seeded) moments, the invariants checked after each
round and counted in the shared ledger (tests/faults.py).

* "Asterisk restarted" with calls up and agents logged in (one paused);
* "AMI client too slow (dropped by Asterisk)": the queue manager SIGSTOPped while a flood of
  events fills its socket, until Asterisk's ``writetimeout`` drops it; then SIGCONT;
* "queue manager down for a whole call": calls that start and end while it is stopped;
* "dialer killed after Originate": SIGKILL right after it committed an attempt and sent its
  Originate; started again at once.

Invariants: exactly one ``calls`` row per call that reached us, closed, with the disposition its
own facts (and the agents' phones) say; no seat or call state stale; at most one Originate per
dial attempt and the budget never exceeded; every job in a terminal or retry state; heartbeats
fresh. ``HELPLINE_FAULT_SEED=<n>`` replays a run (the seed is in every violation).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from asterisk_config.instance import AsteriskError, AsteriskInstance
from core.config import Settings
from core.db.heartbeat import EXPECTED_SERVICES, STALE_AFTER_SECONDS
from core.db.models import (
    AsteriskCel,
    Call,
    Complaint,
    DialerAttempt,
    DialerBudget,
    DialerJob,
    SeatStatus,
    ServiceHeartbeat,
)
from core.domain.clock import helpline_day
from helpline import services
from helpline.sipp import AgentSeat, CallOutcome, citizen_call
from tests import faults
from tests.integration.queue_support import (
    Agent,
    login,
    logout_all,
    make_agents,
    seat_password,
    wait_queue_manager,
)
from tests.integration.test_dialer import (  # noqa: F401 (fixtures)
    Citizens,
    budget_used_with_feedback_paused,
    citizens,
    dialer_ready,
    monkeymodule,
    resolve_new,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

#: Injections of each fault per run (issue 15: at least 20).
ROUNDS = int(os.environ.get("HELPLINE_FAULT_ROUNDS", "20"))
SEED = int(os.environ.get("HELPLINE_FAULT_SEED") or random.SystemRandom().randrange(2**31))
KEYS = "11"  # Hindi, new complaint: into the queue
KEY_ARGS: dict[str, Any] = {"first_digit_delay": 1.0, "digit_gap": 1.0}


def rng_of(fault: str) -> random.Random:
    return random.Random(f"{SEED}:{fault}")


class Callers:
    """A fresh valid caller number for every call of the run."""

    def __init__(self, block: int) -> None:
        self.block, self.n = block, 0

    def __call__(self) -> str:
        self.n += 1
        return f"97{self.block:02d}{SEED % 10000:04d}{self.n:02d}"[:10]


# ---------------------------------------------------------------------------- invariants


async def rows_of(
    db: async_sessionmaker[AsyncSession], callers: list[str], since: datetime
) -> dict[str, list[Call]]:
    async with db() as session:
        rows = (
            (
                await session.execute(
                    select(Call).where(Call.caller_number.in_(callers), Call.started_at >= since)
                )
            )
            .scalars()
            .all()
        )
    found: dict[str, list[Call]] = {caller: [] for caller in callers}
    for row in rows:
        found[str(row.caller_number)].append(row)
    return found


def consistent(call: Call) -> str | None:
    """The disposition the row's own facts call for, or why it is wrong."""
    if call.ended_at is None:
        return "left open"
    if call.disposition is None:
        return "closed without a disposition"
    if call.agent_connected_at is not None:
        want = "answered"
    elif call.queue_joined_at is not None:
        want = "abandoned"
    else:
        want = None  # hung up in the IVR: unanswered or ivr_only
    if want is not None and call.disposition != want:
        return f"disposition {call.disposition}, its facts say {want}"
    if want is None and call.disposition not in ("unanswered", "ivr_only"):
        return f"disposition {call.disposition} without a queue"
    return None


async def check_calls(
    ledger: faults.Fault,
    db: async_sessionmaker[AsyncSession],
    callers: list[str],
    since: datetime,
    where: str,
    *,
    answered: set[str] | None = None,
    answered_count: int | None = None,
    within: float = 30.0,
) -> dict[str, Call]:
    """Exactly one closed row per caller with a consistent disposition; ``answered``: callers
    an agent's phone took (must be "answered"); ``answered_count``: how many phones took."""

    if not callers:
        return {}

    async def settled() -> dict[str, list[Call]] | None:
        found = await rows_of(db, callers, since)
        done = all(rows and all(r.ended_at is not None for r in rows) for rows in found.values())
        return found if done else None

    try:
        found = await wait_for(settled, within, interval=0.3, what="every call recorded, closed")
    except TimeoutError:
        found = await rows_of(db, callers, since)
    one: dict[str, Call] = {}
    for caller, rows in found.items():
        if not ledger.check(len(rows) == 1, f"[seed {SEED}] {where}: {caller}: {len(rows)} rows"):
            continue
        call = rows[0]
        one[caller] = call
        wrong = consistent(call)
        ledger.check(wrong is None, f"[seed {SEED}] {where}: {caller} ({call.uniqueid}): {wrong}")
        if answered is not None and caller in answered:
            ledger.check(
                call.disposition == "answered",
                f"[seed {SEED}] {where}: {caller} taken by a phone, recorded {call.disposition}",
            )
    if answered_count is not None:
        got = sum(1 for c in one.values() if c.disposition == "answered")
        ledger.check(
            got == answered_count,
            f"[seed {SEED}] {where}: phones answered {answered_count}, recorded {got} answered",
        )
    return one


async def check_nothing_stale(
    ledger: faults.Fault,
    db: async_sessionmaker[AsyncSession],
    seats: list[str],
    since: datetime,
    where: str,
) -> None:
    """No call of ours left open, no seat holding a call, every heartbeat fresh."""
    async with db() as session:
        open_calls = await session.scalar(
            select(func.count())
            .select_from(Call)
            .where(Call.started_at >= since, Call.ended_at.is_(None))
        )
        holding = (
            await session.execute(
                select(SeatStatus.seat, SeatStatus.current_call_uniqueid).where(
                    SeatStatus.seat.in_(seats), SeatStatus.current_call_uniqueid.is_not(None)
                )
            )
        ).all()
        beats = dict(
            (
                await session.execute(
                    select(
                        ServiceHeartbeat.service,
                        func.extract("epoch", func.now() - ServiceHeartbeat.seen_at),
                    )
                )
            ).all()
        )
    ledger.check(open_calls == 0, f"[seed {SEED}] {where}: {open_calls} call(s) left open")
    ledger.check(not holding, f"[seed {SEED}] {where}: seats still on a call: {holding}")
    stale = {
        s: beats.get(s) for s in EXPECTED_SERVICES if (beats.get(s) or 1e9) > STALE_AFTER_SECONDS
    }
    ledger.check(not stale, f"[seed {SEED}] {where}: stale heartbeats {stale}")


async def pause(api: httpx.AsyncClient, agent: Agent, reason: str) -> None:
    got = await api.post("/agents/me/pause", json={"reason": reason}, headers=agent.headers)
    assert got.status_code == 200 and got.json()["pause_reason"] == reason, got.text


def members_line(shown: str, seat: str) -> str | None:
    return next((line for line in shown.splitlines() if seat in line), None)


@contextlib.asynccontextmanager
async def phones(
    settings: Settings, db: async_sessionmaker[AsyncSession], seats: list[str]
) -> AsyncIterator[list[AgentSeat]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                AgentSeat(settings, seat, await seat_password(db, seat), answer_delay=0.3)
            )
            for seat in seats
        ]


# ---------------------------------------------------------------------------- Asterisk restarted


async def test_asterisk_restarted_with_calls_up(
    stack_settings: Settings,
    api: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    settings = stack_settings
    ledger = faults.fault("Asterisk restarted")
    rng = rng_of("restart")
    next_caller = Callers(31)
    await wait_queue_manager(db)
    seats = ["agent0301", "agent0302", "agent0303"]
    agents = await make_agents(db, api, "fltrestart", 3)
    instance = AsteriskInstance(settings)
    since = datetime.now(UTC)
    took: list[float] = []
    async with phones(settings, db, seats[:1]) as (phone,):
        try:
            for agent, seat in zip(agents, seats, strict=True):
                await login(api, agent, seat)
            await pause(api, agents[1], "break")
            await pause(api, agents[2], "meeting")
            for n in range(ROUNDS):
                where = f"restart {n + 1}"
                round_since = datetime.now(UTC)
                caller = next_caller()
                before = phone.calls_answered
                call = asyncio.create_task(
                    citizen_call(
                        settings, KEYS, hold=rng.uniform(2, 10), caller_id=caller, **KEY_ARGS
                    )
                )
                await asyncio.sleep(rng.uniform(0.2, 3.0))  # the random moment: calls are up
                t0 = time.monotonic()
                await asyncio.to_thread(instance.stop)
                ledger.injected += 1
                try:
                    await asyncio.to_thread(instance.start)
                except AsteriskError as error:
                    # Seen once on a loaded machine (load 10 on 2 cores): the new Asterisk
                    # booted and ended at once ("cleanly ending (0)"), cause not found. Not
                    # the fault under test: started again, and said.
                    print(f"\n{where}: Asterisk start failed, again: {str(error)[:120]}")
                    await asyncio.to_thread(instance.start)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(call, 30)

                async def members_back() -> str | None:
                    shown = await asyncio.to_thread(instance.cli, "queue show helpline")
                    lines = [members_line(shown, seat) for seat in seats]
                    return shown if all(lines) and shown.count("paused") >= 2 else None

                try:
                    shown = await wait_for(members_back, 30, interval=0.3, what="seats back")
                except TimeoutError as error:
                    ledger.check(False, f"[seed {SEED}] {where}: {error}")
                    continue
                took.append(time.monotonic() - t0)
                lines = {seat: members_line(shown, seat) or "" for seat in seats}
                ledger.check(
                    "paused:break" in lines[seats[1]]
                    and "paused:meeting" in lines[seats[2]]
                    and "paused" not in lines[seats[0]],
                    f"[seed {SEED}] {where}: pauses not restored: {lines}",
                )
                taken = {caller} if phone.calls_answered > before else set()
                await check_calls(ledger, db, [caller], round_since, where, answered=taken)
                await check_nothing_stale(ledger, db, seats, since, where)
        finally:
            await logout_all(api, agents)
    print(
        f"\n[seed {SEED}] Asterisk restarts: {len(took)}, restart to seats back "
        f"{min(took):.1f}-{max(took):.1f} s (mean {sum(took) / len(took):.1f} s)"
    )
    ledger.assert_clean()


# ---------------------------------------------------------------------------- QM down for a call


async def cel_ends(db: async_sessionmaker[AsyncSession], callers: list[str]) -> dict[str, datetime]:
    """Caller -> the LINKEDID_END time Asterisk's CEL has for their call."""
    starts = (
        select(AsteriskCel.linkedid, AsteriskCel.cid_num)
        .where(
            AsteriskCel.eventtype == "CHAN_START",
            AsteriskCel.uniqueid == AsteriskCel.linkedid,
            AsteriskCel.cid_num.in_(callers),
        )
        .subquery()
    )
    async with db() as session:
        rows = (
            await session.execute(
                select(starts.c.cid_num, AsteriskCel.eventtime)
                .join(starts, starts.c.linkedid == AsteriskCel.linkedid)
                .where(AsteriskCel.eventtype == "LINKEDID_END")
            )
        ).all()
    return {str(caller): at.replace(tzinfo=UTC) for caller, at in rows}


async def test_queue_manager_down_for_whole_calls(
    stack_settings: Settings,
    api: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    settings = stack_settings
    ledger = faults.fault("queue manager down for a whole call")
    rng = rng_of("qmdown")
    next_caller = Callers(33)
    await wait_queue_manager(db)
    seats = ["agent0305", "agent0306"]
    agents = await make_agents(db, api, "fltdown", 2)
    since = datetime.now(UTC)
    async with phones(settings, db, seats) as seat_phones:
        try:
            for agent, seat in zip(agents, seats, strict=True):
                await login(api, agent, seat)
            where = "queue manager down"
            callers = [next_caller() for _ in range(ROUNDS)]
            before = sum(p.calls_answered for p in seat_phones)
            assert services.stop(settings, "queue-manager")
            stopped = datetime.now(UTC)

            async def one(caller: str) -> CallOutcome:
                await asyncio.sleep(rng.uniform(0, 4))  # calls start at random moments
                return await citizen_call(
                    settings, KEYS, hold=rng.uniform(1, 5), caller_id=caller, **KEY_ARGS
                )

            outcomes = await asyncio.gather(*(one(c) for c in callers))
            ledger.injected += len(callers)
            assert all(o.answered for o in outcomes), [o.errors for o in outcomes]
            taken = sum(p.calls_answered for p in seat_phones) - before

            async def all_ended() -> dict[str, datetime] | None:
                ends = await cel_ends(db, callers)
                return ends if set(ends) == set(callers) else None

            ends = await wait_for(all_ended, 15, what="every call's end in asterisk_cel")
            restarted = datetime.now(UTC)
            services.start(settings, "queue-manager")
            rows = await check_calls(ledger, db, callers, stopped, where, answered_count=taken)
            for caller, call in rows.items():
                true_end = ends[caller]
                ledger.check(
                    call.started_at > stopped
                    and call.ended_at is not None
                    and abs((call.ended_at - true_end).total_seconds()) < 1.0
                    and call.ended_at < restarted,
                    f"[seed {SEED}] {where}: {caller}: started {call.started_at}, ended "
                    f"{call.ended_at}; CEL end {true_end}, restarted {restarted}",
                )
            await wait_queue_manager(db)
            await check_nothing_stale(ledger, db, seats, since, where)
        finally:
            services.start(settings, "queue-manager")
            await logout_all(api, agents)
    ledger.assert_clean()


# ---------------------------------------------------------------------------- AMI client too slow


class Flood:
    """A second AMI session as the queue manager's user: QueuePenalty actions, each answered by
    a ``QueueMemberPenalty`` event to every session of that user, pipelined so that a reader
    that does not read fills its socket; this session reads (and drops) everything."""

    def __init__(self, settings: Settings, seat: str) -> None:
        self.settings, self.seat = settings, seat
        self.writer: asyncio.StreamWriter | None = None
        self.drain: asyncio.Task[None] | None = None
        self.sent = 0

    async def __aenter__(self) -> Flood:
        reader, self.writer = await asyncio.open_connection(
            self.settings.ami_host, self.settings.ami_port
        )
        await reader.readline()  # the greeting
        user = self.settings.ami_username("queue_manager")
        secret = self.settings.ami_secret("queue_manager")
        self.writer.write(f"Action: Login\r\nUsername: {user}\r\nSecret: {secret}\r\n\r\n".encode())
        reply = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert b"Success" in reply, reply

        async def drain() -> None:
            while await reader.read(1 << 16):
                pass

        self.drain = asyncio.create_task(drain())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.writer is not None and self.drain is not None
        self.writer.close()
        self.drain.cancel()
        with contextlib.suppress(BaseException):
            await self.drain

    async def burst(self, count: int) -> None:
        assert self.writer is not None
        interface = f"Local/{self.seat}@seat-phones"
        self.writer.write(
            b"".join(
                f"Action: QueuePenalty\r\nInterface: {interface}\r\nQueue: "
                f"{self.settings.queue_name}\r\nPenalty: {(self.sent + i) % 2}\r\n\r\n".encode()
                for i in range(count)
            )
        )
        self.sent += count
        await self.writer.drain()


def _tcp_rows(pid: int) -> list[list[str]]:
    return [line.split() for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]]


def _port(address: str) -> int:
    return int(address.split(":")[1], 16)


def ami_link(pid: int, ami_port: int) -> int | None:
    """The local port of process ``pid``'s established link to AMI, from /proc (no CLI
    round trip: polled every 20 ms)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    for row in _tcp_rows(pid):
        if _port(row[2]) == ami_port and row[3] == "01" and row[9] in inodes:
            return _port(row[1])
    return None


def queued(pid: int, ami_port: int, client_port: int) -> int:
    """Bytes on their way to the link's client: Asterisk's send queue plus the client's
    receive queue."""
    total = 0
    for row in _tcp_rows(pid):
        ends = (_port(row[1]), _port(row[2]))
        tx, rx = (int(part, 16) for part in row[4].split(":"))
        if ends == (ami_port, client_port):
            total += tx
        elif ends == (client_port, ami_port):
            total += rx
    return total


def asterisk_closed(pid: int, ami_port: int, client_port: int) -> bool:
    """Whether Asterisk's end of the link to ``client_port`` is no longer established (it
    closed it: FIN_WAIT1 behind the unread data, or gone)."""
    for row in _tcp_rows(pid):
        if _port(row[1]) == ami_port and _port(row[2]) == client_port:
            return row[3] != "01"
    return True


async def slow_rounds(
    settings: Settings,
    db: async_sessionmaker[AsyncSession],
    phone: AgentSeat,
    flood: Flood,
    seat: str,
) -> None:
    """Calls keep coming (one a round, overlapping); at a random moment of each round the
    queue manager is stopped while the flood fills its socket, until Asterisk drops it."""
    ledger = faults.fault("AMI client too slow (dropped by Asterisk)")
    rng = rng_of("slow")
    next_caller = Callers(32)
    since = datetime.now(UTC)
    answered_before = phone.calls_answered
    calls: dict[str, asyncio.Task[CallOutcome]] = {}
    checked: set[str] = set()
    stalls: list[float] = []
    for n in range(ROUNDS):
        where = f"slow {n + 1}"
        caller = next_caller()
        calls[caller] = asyncio.create_task(
            citizen_call(settings, KEYS, hold=rng.uniform(0.5, 4), caller_id=caller, **KEY_ARGS)
        )
        await asyncio.sleep(rng.uniform(0.2, 2.0))  # the random moment
        pid = services.state(settings, "queue-manager").pid
        assert pid is not None
        port = settings.ami_port
        link = ami_link(pid, port)
        assert link is not None, "the queue manager has no AMI link"
        t0 = time.monotonic()
        os.kill(pid, signal.SIGSTOP)
        try:
            # Flood while the queues still grow (or now and then); once they are full, Asterisk's
            # write blocks and its writetimeout drops the link: no need to go on flooding.
            grown, burst_at = -1, 0.0
            while not asterisk_closed(pid, port, link):
                assert time.monotonic() - t0 < 30, "Asterisk never dropped the reader"
                now, backlog = time.monotonic(), queued(pid, port, link)
                if backlog > grown or now - burst_at > 0.4:
                    await flood.burst(2000)
                    grown, burst_at = backlog, now
                await asyncio.sleep(0.03)
            ledger.injected += 1
            stalls.append(time.monotonic() - t0)
        finally:
            os.kill(pid, signal.SIGCONT)

        def back(pid: int = pid, port: int = port, link: int = link) -> bool:
            return ami_link(pid, port) not in (None, link)

        try:
            await wait_for(back, 20, interval=0.05, what="the queue manager linked again")
        except TimeoutError as error:
            ledger.check(False, f"[seed {SEED}] {where}: {error}")
        done = [c for c, task in calls.items() if task.done() and c not in checked]
        await check_calls(ledger, db, done, since, where)
        checked.update(done)
    await asyncio.gather(*calls.values(), return_exceptions=True)
    await check_calls(
        ledger,
        db,
        list(calls),
        since,
        "slow: the end",
        answered_count=phone.calls_answered - answered_before,
    )
    await check_nothing_stale(ledger, db, [seat], since, "slow: the end")
    print(
        f"\n[seed {SEED}] AMI drops: {len(stalls)}, stall until dropped "
        f"{min(stalls):.1f}-{max(stalls):.1f} s, {flood.sent} QueuePenalty actions"
    )


async def test_ami_reader_dropped_and_dialer_killed_with_calls_flowing(
    stack_settings: Settings,
    dialer_ready: Citizens,  # noqa: F811
    api: httpx.AsyncClient,
    demo_users: dict[str, list[dict[str, str]]],
    db: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two faults at once, on two processes: the queue manager dropped by Asterisk for being
    slow while citizens call in, and the dialer killed after its Originates."""
    settings = stack_settings
    await wait_queue_manager(db)
    seat = "agent0304"
    (agent,) = await make_agents(db, api, "fltslow", 1)
    async with phones(settings, db, [seat]) as (phone,), Flood(settings, seat) as flood:
        try:
            await login(api, agent, seat)
            await asyncio.gather(
                slow_rounds(settings, db, phone, flood, seat),
                dialer_rounds(settings, dialer_ready, api, demo_users, db, monkeypatch),
            )
        finally:
            await logout_all(api, [agent])
    faults.fault("AMI client too slow (dropped by Asterisk)").assert_clean()
    faults.fault("dialer killed after Originate").assert_clean()


# ---------------------------------------------------------------------------- dialer killed


async def dialer_rounds(
    settings: Settings,
    dialer_citizens: Citizens,
    api: httpx.AsyncClient,
    demo_users: dict[str, list[dict[str, str]]],
    db: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Feedback calls to busy citizens; each round the dialer is SIGKILLed right after an
    attempt's commit (its Originate on the way) or once its channel is up, and started again."""
    ledger = faults.fault("dialer killed after Originate")
    rng = rng_of("dialer")
    t_start = t_jobs = t_rounds = t_settled = time.monotonic()
    used = await budget_used_with_feedback_paused(db, max_attempts=3)
    budget = used + ROUNDS + 8
    monkeypatch.setenv("HELPLINE_DAILY_OUTBOUND_BUDGET", str(budget))
    monkeypatch.setenv("HELPLINE_DIALER_RECONCILE_SECONDS", "2")
    services.stop(settings, "dialer")
    services.start(settings, "dialer")
    numbers: list[str] = []
    seen: set[str] = set()
    kills = {"at commit": 0, "channel up": 0}
    try:
        with dialer_citizens.behave("busy") as busy:
            numbers = [
                await resolve_new(api, demo_users, f"98113{SEED % 1000:03d}{n:02d}")
                for n in range(max(8, ROUNDS // 2))
            ]

            async def jobs_made() -> bool:
                return len(await jobs_of(db, numbers)) == len(numbers)

            await wait_for(jobs_made, 30, what="the feedback jobs")
            t_jobs = time.monotonic()
            async with db() as session:
                await session.execute(
                    text("UPDATE dialer_campaigns SET paused = false WHERE name = 'feedback'")
                )
                await session.commit()
            for n in range(ROUNDS):
                where = f"dialer {n + 1}"

                async def new_attempt() -> str | None:
                    async with db() as session:
                        ids = (
                            await session.execute(
                                select(DialerAttempt.id)
                                .join(DialerJob, DialerJob.id == DialerAttempt.job_id)
                                .join(Complaint, Complaint.id == DialerJob.complaint_id)
                                .where(Complaint.number.in_(numbers))
                            )
                        ).scalars()
                        fresh = [i for i in ids if i not in seen]
                    return fresh[0] if fresh else None

                attempt = await wait_for(
                    new_attempt, 30, interval=0.02, what=f"{where}: an attempt"
                )
                seen.add(attempt)
                if rng.random() < 0.5:  # just after its commit: the Originate is on its way
                    await asyncio.sleep(rng.uniform(0, 0.05))
                    kills["at commit"] += 1
                else:  # once its channel exists, at a random moment of the call

                    async def channel_up(attempt: str = attempt) -> bool:
                        return await originates(db, [attempt]) > 0

                    with contextlib.suppress(TimeoutError):
                        await wait_for(channel_up, 5, interval=0.02)
                    await asyncio.sleep(rng.uniform(0, 0.5))
                    kills["channel up"] += 1
                services.kill(settings, "dialer")
                ledger.injected += 1
                services.start(settings, "dialer")
                await check_dialing(ledger, db, numbers, budget, busy, where)

            t_rounds = time.monotonic()

            async def settled() -> bool:
                async with db() as session:
                    spent = (
                        await session.execute(
                            select(DialerBudget.active).where(
                                DialerBudget.day == helpline_day(), DialerBudget.scope == "all"
                            )
                        )
                    ).scalar_one()
                states = {job.state for job in await jobs_of(db, numbers)}
                open_attempts = [a for a in await attempts_for(db, numbers) if a.ended_at is None]
                return spent == 0 and "dialing" not in states and not open_attempts

            try:
                await wait_for(settled, 40, interval=0.5, what="every attempt ended")
            except TimeoutError as error:
                ledger.check(False, f"[seed {SEED}] dialer: {error}")
            t_settled = time.monotonic()
            await check_dialing(ledger, db, numbers, budget, busy, "dialer: the end")
            for job in await jobs_of(db, numbers):
                ledger.check(
                    job.state in ("pending", "unreachable", "done", "stopped"),
                    f"[seed {SEED}] dialer: job {job.id} {job.state}",
                )
    finally:
        monkeypatch.undo()
        services.stop(settings, "dialer")
        async with db() as session:
            await session.execute(
                text("UPDATE dialer_jobs SET state = 'stopped' WHERE state = 'pending'")
            )
            await session.commit()
        services.start(settings, "dialer")
    print(
        f"\n[seed {SEED}] dialer kills: {kills}; jobs made in {t_jobs - t_start:.1f} s, "
        f"rounds {t_rounds - t_jobs:.1f} s, settled {t_settled - t_rounds:.1f} s"
    )


async def jobs_of(db: async_sessionmaker[AsyncSession], numbers: list[str]) -> list[DialerJob]:
    async with db() as session:
        return list(
            (
                await session.execute(
                    select(DialerJob)
                    .join(Complaint, Complaint.id == DialerJob.complaint_id)
                    .where(Complaint.number.in_(numbers))
                )
            ).scalars()
        )


async def attempts_for(
    db: async_sessionmaker[AsyncSession], numbers: list[str]
) -> list[DialerAttempt]:
    async with db() as session:
        return list(
            (
                await session.execute(
                    select(DialerAttempt)
                    .join(DialerJob, DialerJob.id == DialerAttempt.job_id)
                    .join(Complaint, Complaint.id == DialerJob.complaint_id)
                    .where(Complaint.number.in_(numbers))
                )
            ).scalars()
        )


async def originates(db: async_sessionmaker[AsyncSession], attempts: list[str]) -> int:
    """Channels Asterisk created for these attempts (an Originate's channel is the attempt's
    uniqueid): more than one per attempt would be an Originate sent twice."""
    async with db() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(AsteriskCel)
            .where(AsteriskCel.eventtype == "CHAN_START", AsteriskCel.uniqueid.in_(attempts))
        )
    return int(count or 0)


async def check_dialing(
    ledger: faults.Fault,
    db: async_sessionmaker[AsyncSession],
    numbers: list[str],
    budget: int,
    citizens_now: Citizens,
    where: str,
) -> None:
    """At most one Originate per attempt (Asterisk's channels and sipp's INVITEs), never more
    calls than the budget."""
    attempts = await attempts_for(db, numbers)
    async with db() as session:
        per_attempt = dict(
            (
                await session.execute(
                    select(AsteriskCel.uniqueid, func.count())
                    .where(
                        AsteriskCel.eventtype == "CHAN_START",
                        AsteriskCel.uniqueid.in_([a.id for a in attempts]),
                    )
                    .group_by(AsteriskCel.uniqueid)
                )
            ).all()
        )
        spent = (
            await session.execute(
                select(DialerBudget.used, DialerBudget.active).where(
                    DialerBudget.day == helpline_day(), DialerBudget.scope == "all"
                )
            )
        ).one()
    twice = {a: c for a, c in per_attempt.items() if c > 1}
    ledger.check(not twice, f"[seed {SEED}] {where}: Originated more than once: {twice}")
    calls = set(re.findall(r"^Call-ID: (\S+)", citizens_now.messages(), re.MULTILINE))
    ledger.check(
        len(calls) <= len(attempts),
        f"[seed {SEED}] {where}: {len(calls)} calls reached the trunk for {len(attempts)} attempts",
    )
    ledger.check(
        spent.used <= budget and spent.active >= 0,
        f"[seed {SEED}] {where}: budget {budget}, used {spent.used}, active {spent.active}",
    )
