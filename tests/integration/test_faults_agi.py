"""Issue 15's FastAGI faults, each injected at least 20 times at random (seeded) moments on the
real stack while citizens call (sipp) and agents answer (one sipp for every seat):

* **FastAGI absent** -- after some of the kills the service stays down while 5 callers arrive
  at random moments (as between a crash and its restart; the stop by SIGTERM is
  test_walking_skeleton's): they go straight to the queue (the dialplan's fallback) and reach
  an agent, with no IVR session of the IVR's own.
* **FastAGI killed mid-call** -- SIGKILL while callers are in the IVR, restarted after; those
  callers reach the queue, their IVR sessions are closed by reconciliation.
* **FastAGI event loop stalled** -- SIGSTOP for a random time, some longer than
  ``agi_stall_seconds``: those are killed by ``helpline supervise``'s stall check (the
  liveness file, core/liveness.py) so that the AGI sockets close; the shorter ones resume.
* **caller hangs up at every IVR step** -- a share of the callers hang up at random moments:
  during the welcome, between keys, during the queue check, ringing an agent, talking.

Invariants, per call once it ended (each counted in ``tests/faults.py`` under every fault that
overlapped the call): exactly one ``calls`` row with a disposition that matches what happened
to the caller; no ``ivr_sessions`` row left open; no complaint or callback request made for
it. After each injection: the services' heartbeats fresh, FastAGI serving (a new process after
a kill), a long stall detected and a short one left alone. At the end: every seat back in the
queue with no call. ``HELPLINE_FAULT_SEED`` replays a run (the seed is in every violation).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.services.seats import seat_name
from bench.sipp import LoadPlan, SeatPhones, _login, _logout, _make_agents
from core.config import Settings
from core.db.heartbeat import EXPECTED_SERVICES, STALE_AFTER_SECONDS
from core.db.models import (
    Call,
    CallbackRequest,
    Complaint,
    IvrSession,
    Seat,
    SeatStatus,
    ServiceHeartbeat,
)
from core.domain.calls import CallDisposition, IvrOutcome
from helpline import services
from helpline.sipp import CallOutcome, DtmfStep, citizen_call
from helpline.supervisor import Supervisor
from tests import faults
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

ABSENT = "FastAGI absent"
KILLED = "FastAGI killed mid-call"
STALLED = "FastAGI event loop stalled"
HANGUP = "caller hangs up at every IVR step"
UNTOUCHED = "(no fault)"

#: Per fault (issue 15: at least 20); fewer only to try a change quickly.
INJECTIONS = int(os.environ.get("HELPLINE_FAULT_INJECTIONS", "20"))
#: Kills after which FastAGI stays down while callers arrive (INJECTIONS // ABSENCES each).
ABSENCES = 4
#: Stalls longer than the limit (killed); the others are shorter (left alone).
LONG_STALLS = 3
#: The stall limit of this run (production: 10 s, Settings.agi_stall_seconds): short enough
#: for 20 stalls in the suite's budget, three times a loaded machine's worst tick delay.
STALL_SECONDS = 3.0
#: Reconciliation of this run's FastAGI processes: orphans closed 2 s after their call ended.
ORPHAN_ENV = {"HELPLINE_IVR_ORPHAN_GRACE_SECONDS": "2", "HELPLINE_IVR_ORPHAN_PASS_SECONDS": "1"}
SEATS = 8
FIRST_SEAT = 441
#: A caller who holds on is put through within this (IVR, a stall, a restart, the ring).
TO_AGENT_WITHIN = 45.0
#: ... and within this when the IVR did not hear their keys. A key pressed while FastAGI is
#: stopped between two commands is lost: Asterisk's AGI loop reads the channel's frames and
#: frees them while it waits for the next command. A stall then costs a holder their 2 (the
#: 0 lands in the language menu: a wrong key, its prompt again, Hindi by timeout) or their 0
#: (the main menu's timeout puts them through): the IVR's way for a caller it cannot hear.
TO_AGENT_UNHEARD_WITHIN = 60.0
HOLD_ON = 75.0
#: A caller who hangs up this soon after the answer may never reach the IVR (AGI() does not
#: run on a channel already hung up): no session is right then.
EARLY_HANGUP = 1.5


@dataclass
class Caller:
    number: str
    kind: str  # "holder" (stays until the agent hangs up), "hanger", "absent"
    steps: list[DtmfStep]
    hold: float
    started: float = 0.0
    ended: float = 0.0
    outcome: CallOutcome | None = None


@dataclass
class Injection:
    fault: str
    start: float
    end: float = float("inf")
    detail: str = ""
    #: Changes where the callers' IVR ends (a kill, a stall killed, an absence); a short stall
    #: must not: its callers' IVR ends as designed, only later.
    disruptive: bool = True


@dataclass
class Run:
    seed: int
    settings: Settings
    db: async_sessionmaker[AsyncSession]
    rng: random.Random
    injections: list[Injection] = field(default_factory=list)
    callers: list[Caller] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    serial: int = 0
    restarts: list[float] = field(default_factory=list)
    hangers: int = 0
    hung_up: int = 0
    #: Calls whose IVR was checked to end as designed (no disruptive fault during them).
    designed: int = 0
    #: Holders whose keys the IVR did not all get (a stall between two commands lost one).
    unheard: int = 0
    #: Calls no fault touched: the IVR ends as designed (not a fault: not in the ledger).
    untouched: faults.Fault = field(default_factory=lambda: faults.Fault(UNTOUCHED))

    def check(self, fault: str, holds: bool, violation: str) -> bool:
        entry = self.untouched if fault == UNTOUCHED else faults.fault(fault)
        return entry.check(holds, f"[seed {self.seed}] {violation}")

    def number(self) -> str:
        self.serial += 1
        return f"91{self.seed % 100:02d}{self.serial:06d}"


# --------------------------------------------------------------------------- callers


def holder(run: Run, kind: str = "holder") -> Caller:
    """English (typed ahead in the welcome), then 0 (an agent) in the main menu; stays on.
    Neither key is 1, which in the queue would ask for a callback."""
    rng = run.rng
    steps = [DtmfStep("2", rng.uniform(0.8, 1.5)), DtmfStep("0", rng.uniform(1.5, 3.0))]
    return Caller(run.number(), kind, [] if kind == "absent" else steps, HOLD_ON)


def hanger(run: Run, stages: tuple[str, ...] = ("prompt", "between", "after")) -> Caller:
    """Hangs up at a random step: in the welcome, between the keys, or after both (the queue
    check, the queue, an agent ringing, the talk)."""
    rng = run.rng
    run.hangers += 1
    stage = rng.choice(stages)
    if stage == "prompt":
        return Caller(run.number(), "hanger", [], rng.uniform(0.3, 7.0))
    first = DtmfStep("2", rng.uniform(0.8, 1.5))
    if stage == "between":
        return Caller(run.number(), "hanger", [first], rng.uniform(0.2, 3.0))
    steps = [first, DtmfStep("0", rng.uniform(1.5, 3.0))]
    return Caller(run.number(), "hanger", steps, rng.uniform(0.2, 7.5))


async def place(run: Run, caller: Caller) -> None:
    caller.started = time.monotonic()
    try:
        for _ in range(3):
            caller.outcome = await citizen_call(
                run.settings,
                caller.steps,
                hold=caller.hold,
                caller_id=caller.number,
                max_duration=caller.hold + 60,
            )
            # sipp that could not start (its random media port taken meanwhile by another
            # sipp: "Unable to bind ... RTP socket") sent no INVITE: no call reached us; again.
            if any(event.startswith("INVITE") for event in caller.outcome.events):
                break
    finally:
        caller.ended = time.monotonic()
    await judge(run, caller)


def launch(run: Run, caller: Caller) -> None:
    run.callers.append(caller)
    run.tasks.append(asyncio.create_task(place(run, caller), name=caller.number))


async def stream(run: Run, stop: asyncio.Event) -> None:
    """A caller every 0.9-1.9 s until ``stop``: half of them hang up somewhere."""
    while not stop.is_set():
        launch(run, hanger(run) if run.rng.random() < 0.5 else holder(run))
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), run.rng.uniform(0.9, 1.9))


# --------------------------------------------------------------------------- invariants


def _overlapping(run: Run, caller: Caller) -> list[Injection]:
    return [i for i in run.injections if i.start <= caller.ended and i.end >= caller.started]


async def _settled(run: Run, caller: Caller) -> tuple[list[Call], list[IvrSession]] | None:
    """The call's rows once the queue manager closed the call and no IVR session is open."""
    async with run.db() as session:
        calls = list(
            (await session.execute(select(Call).where(Call.caller_number == caller.number)))
            .scalars()
            .all()
        )
        ids = [c.uniqueid for c in calls]
        ivr = list(
            (await session.execute(select(IvrSession).where(IvrSession.uniqueid.in_(ids))))
            .scalars()
            .all()
        )
    if not calls or any(c.disposition is None or c.ended_at is None for c in calls):
        return None
    if any(s.outcome is None for s in ivr):
        return None
    return calls, ivr


async def judge(run: Run, caller: Caller) -> None:
    """Every invariant of one ended call, counted under each fault that touched it."""
    outcome = caller.outcome
    hit = _overlapping(run, caller)
    names = sorted({i.fault for i in hit} | ({ABSENT} if caller.kind == "absent" else set()))
    if caller.kind == "hanger" and outcome is not None and outcome.hangup_by == "citizen":
        faults.fault(HANGUP).injected += 1
        run.hung_up += 1
        names.append(HANGUP)
    if not names:
        names = [UNTOUCHED]
    who = f"{caller.kind} {caller.number[-4:]} ({', '.join(names)}; {_timeline(caller, hit)})"
    if outcome is None or not outcome.answered:
        for name in names:
            run.check(name, False, f"{who}: Asterisk never answered: {outcome}")
        return
    try:
        settled = await wait_for(
            lambda: _settled(run, caller), 30, interval=0.5, what=f"{who} settled"
        )
    except TimeoutError as error:
        async with run.db() as session:
            rows = (
                await session.execute(
                    select(Call.uniqueid, Call.disposition, Call.ended_at).where(
                        Call.caller_number == caller.number
                    )
                )
            ).all()
            open_ivr = (
                await session.execute(
                    select(IvrSession.uniqueid, IvrSession.last_node).where(
                        IvrSession.uniqueid.in_([r.uniqueid for r in rows]),
                        IvrSession.outcome.is_(None),
                    )
                )
            ).all()
        for name in names:
            run.check(name, False, f"{who}: {error}; calls {rows}, open IVR sessions {open_ivr}")
        return
    calls, ivr = settled
    disrupted = any(i.disruptive for i in hit)
    run.designed += not disrupted and caller.kind != "absent"
    run.unheard += caller.kind == "holder" and not _keys_heard(caller, calls[0], ivr)
    for name in names:
        for holds, violation in _call_invariants(caller, calls, ivr, disrupted):
            run.check(name, holds, f"{who}: {violation}")
    call = calls[0]
    async with run.db() as session:
        complaints = await session.scalar(
            select(func.count()).select_from(Complaint).where(Complaint.call_id == call.id)
        )
        callbacks = await session.scalar(
            select(func.count())
            .select_from(CallbackRequest)
            .where(CallbackRequest.uniqueid == call.uniqueid)
        )
    for name in names:
        run.check(name, complaints == 0, f"{who}: {complaints} complaint(s) half-made")
        run.check(name, callbacks == 0, f"{who}: {callbacks} callback request(s)")


def _keys_heard(caller: Caller, call: Call, ivr: list[IvrSession]) -> bool:
    """The IVR got every key the caller pressed (or the call went around it, by the fallback)."""
    sent = "".join(step.digit for step in caller.steps)
    return call.ivr_fallback or all(s.digits == sent for s in ivr)


def _timeline(caller: Caller, hit: list[Injection]) -> str:
    """When the call's keys went and the faults came, in seconds from the call's start."""
    at, keys = 0.0, []
    for step in caller.steps:
        at += step.delay
        keys.append(f"{step.digit}@{at:.1f}")
    faults_at = [
        f"{i.fault.split()[-1]} {i.start - caller.started:.1f}..{i.end - caller.started:.1f}"
        + (f" ({i.detail})" if i.detail else "")
        for i in hit
    ]
    return f"keys after answer {' '.join(keys) or '-'}; faults {', '.join(faults_at) or '-'}"


def _step(step: dict[str, Any]) -> str:
    """One IVR path step, short: node@ms since the session began, its keys and events."""
    keys = f" keys {step['keys']}" if step.get("keys") else ""
    event = f" {step['event']}" if step.get("event") else ""
    return f"{step.get('node')}@{step.get('at_ms')}{keys}{event}"


def _call_invariants(
    caller: Caller, calls: list[Call], ivr: list[IvrSession], disrupted: bool
) -> Iterator[tuple[bool, str]]:
    outcome = caller.outcome
    assert outcome is not None
    yield len(calls) == 1, f"{len(calls)} calls rows"
    call = calls[0]
    facts = (
        f"disposition {call.disposition}, joined {call.queue_joined_at}, agent "
        f"{call.agent_connected_at}, fallback {call.ivr_fallback}, done {call.ivr_done}, "
        f"hangup by {outcome.hangup_by}, ivr {[(s.outcome, s.last_node) for s in ivr]}, "
        f"path {[_step(step) for s in ivr for step in s.path or []]}"
    )
    # The disposition says what the row's own times say.
    if call.agent_connected_at is not None:
        expected = CallDisposition.ANSWERED
    elif call.queue_joined_at is not None:
        expected = CallDisposition.ABANDONED
    else:
        expected = CallDisposition.UNANSWERED
    yield call.disposition == expected, f"disposition is not {expected}: {facts}"
    yield len(ivr) <= 1, f"{len(ivr)} IVR sessions"
    if caller.kind in ("holder", "absent"):
        # Whatever happened to the IVR, a caller who holds on reaches an agent, in time, and it
        # is the agent who ends the call.
        yield call.disposition == CallDisposition.ANSWERED, f"held on, not answered: {facts}"
        yield outcome.hangup_by == "remote", f"the caller had to hang up: {facts}"
        if call.agent_connected_at is not None and call.started_at is not None:
            waited = (call.agent_connected_at - call.started_at).total_seconds()
            limit = TO_AGENT_WITHIN if _keys_heard(caller, call, ivr) else TO_AGENT_UNHEARD_WITHIN
            yield waited <= limit, f"{waited:.0f} s to an agent (limit {limit:g} s): {facts}"
    else:
        # The caller hung up: the record ends when they did, within the switch's delay.
        yield outcome.hangup_by is not None, f"no hang-up seen: {facts}"
    if caller.kind == "absent":
        yield call.ivr_fallback and not call.ivr_done, f"the IVR served an absent caller: {facts}"
        yield all(not s.path for s in ivr), f"the IVR served an absent caller: {facts}"
    if call.ivr_fallback:
        yield (
            all(s.outcome in (IvrOutcome.FAILED, IvrOutcome.QUEUED) for s in ivr),
            f"fallback, yet the IVR session says otherwise: {facts}",
        )
    if not disrupted and caller.kind != "absent":
        # No kill, absence or stall killed during the call: the IVR ends as designed.
        yield not call.ivr_fallback, f"fallback without a fault: {facts}"
        # No session only for a caller gone before the dialplan reached AGI().
        quick = outcome.duration is not None and outcome.duration < EARLY_HANGUP
        yield len(ivr) == 1 or quick, f"no IVR session: {facts}"
        if call.queue_joined_at is not None:
            yield call.ivr_done, f"queued without IVR_DONE: {facts}"
            yield all(s.outcome == IvrOutcome.QUEUED for s in ivr), f"queued: {facts}"
        elif not call.ivr_done:
            yield all(s.outcome == IvrOutcome.ABANDONED for s in ivr), f"hung up: {facts}"


async def services_fresh(run: Run, fault: str, agi_pid: int | None) -> None:
    """Every service's heartbeat younger than the stale limit; FastAGI's from ``agi_pid``."""

    async def fresh() -> bool:
        async with run.db() as session:
            rows = {
                r.service: r
                for r in (await session.execute(select(ServiceHeartbeat))).scalars().all()
            }
            now = await session.scalar(select(func.now()))
        assert now is not None
        return all(
            name in rows
            and (now - rows[name].seen_at).total_seconds() < STALE_AFTER_SECONDS
            and (name != "agi" or agi_pid is None or rows[name].pid == agi_pid)
            for name in EXPECTED_SERVICES
        )

    try:
        await wait_for(fresh, 15, interval=0.3, what="fresh heartbeats")
        ok = True
    except TimeoutError:
        ok = False
    run.check(fault, ok, f"heartbeats not fresh (agi pid {agi_pid}) within 15 s")


# --------------------------------------------------------------------------- the FastAGI process


async def agi_accepts(settings: Settings) -> bool:
    try:
        _, writer = await asyncio.open_connection(settings.agi_host, settings.agi_port)
    except OSError:
        return False
    writer.close()
    with suppress(OSError):
        await writer.wait_closed()
    return True


async def start_agi(run: Run) -> int:
    t0 = time.monotonic()
    state = services.start(run.settings, "agi")
    assert state.pid is not None
    await wait_for(lambda: agi_accepts(run.settings), 30, what="FastAGI accepting")
    run.restarts.append(time.monotonic() - t0)
    return state.pid


async def ivr_busy(run: Run) -> None:
    """Until some caller is in the IVR (a session open), at most a few seconds."""

    async def some_open() -> bool:
        async with run.db() as session:
            found = await session.scalar(
                select(IvrSession.id)
                .where(IvrSession.outcome.is_(None), IvrSession.started_at > _ago(20))
                .limit(1)
            )
        return found is not None

    with suppress(TimeoutError):
        await wait_for(some_open, 8, interval=0.1, what="a caller in the IVR")


def _ago(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)


def _alive(pid: int) -> bool:
    return services._alive(pid)


async def inject_kill(run: Run, absent_callers: int = 0) -> None:
    """SIGKILL while callers are in the IVR; with ``absent_callers``, the service stays down
    while that many callers arrive at random moments (as between a crash and its restart)."""
    await ivr_busy(run)
    await asyncio.sleep(run.rng.uniform(0.1, 0.8))
    pid = services.state(run.settings, "agi").pid
    assert pid is not None
    injection = Injection(KILLED, time.monotonic(), detail=f"pid {pid}")
    run.injections.append(injection)
    faults.fault(KILLED).injected += 1
    services.kill(run.settings, "agi")
    if absent_callers:
        absence = Injection(ABSENT, time.monotonic())
        run.injections.append(absence)
        for _ in range(absent_callers):
            await asyncio.sleep(run.rng.uniform(0.1, 0.6))
            faults.fault(ABSENT).injected += 1
            launch(run, holder(run, "absent"))
        await asyncio.sleep(1.5)  # the last one has passed its AGI() step
    new = await start_agi(run)
    injection.end = time.monotonic()
    if absent_callers:
        absence.end = injection.end
    run.check(KILLED, new != pid, f"FastAGI still pid {pid} after SIGKILL")
    await services_fresh(run, KILLED, new)
    if absent_callers:
        await services_fresh(run, ABSENT, new)


async def inject_stall(run: Run, long: bool) -> None:
    """SIGSTOP, then SIGCONT after the planned time unless the supervisor's stall check
    (polled by :func:`watchdog`) killed it first: which it must for a long stall only."""
    await ivr_busy(run)
    await asyncio.sleep(run.rng.uniform(0.1, 0.8))
    planned = (
        run.rng.uniform(STALL_SECONDS + 1.0, STALL_SECONDS + 2.5)
        if long
        else run.rng.uniform(0.2, STALL_SECONDS - 1.4)
    )
    pid = services.state(run.settings, "agi").pid
    assert pid is not None
    injection = Injection(STALLED, time.monotonic(), detail=f"pid {pid} for {planned:.1f} s")
    run.injections.append(injection)
    faults.fault(STALLED).injected += 1
    os.kill(pid, signal.SIGSTOP)
    with suppress(TimeoutError):
        await wait_for(lambda: not _alive(pid), planned, interval=0.05, what="a kill")
    killed_after = time.monotonic() - injection.start if not _alive(pid) else None
    if killed_after is None:
        os.kill(pid, signal.SIGCONT)
        injection.disruptive = False
    what = f"stall of {planned:.1f} s (limit {STALL_SECONDS:g} s)"
    if long:
        run.check(STALLED, killed_after is not None, f"{what}: never killed")
        run.check(
            STALLED,
            killed_after is None or killed_after <= STALL_SECONDS + 1.5,
            f"{what}: killed only after {killed_after} s",
        )
    else:
        run.check(STALLED, killed_after is None, f"{what}: killed after {killed_after} s")
    if killed_after is not None:
        pid = await start_agi(run)
    else:
        await wait_for(lambda: agi_accepts(run.settings), 10, what="FastAGI serving again")
    injection.end = time.monotonic()
    await services_fresh(run, STALLED, pid)


async def watchdog(settings: Settings, stop: asyncio.Event) -> None:
    """``helpline supervise``'s stall check, as often as its loop runs it (restarts are the
    test's own: the supervisor's backoff would make 40 restarts take minutes)."""
    watcher = Supervisor(settings, say=lambda line: print(f"supervise: {line}"))
    while not stop.is_set():
        watcher.kill_stalled()
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.2)


# --------------------------------------------------------------------------- the run


async def seats_back(run: Run, seats: list[str]) -> None:
    """Every seat of the floor in the queue with no call on it."""

    async def idle() -> list[Any]:
        async with run.db() as session:
            return list(
                (
                    await session.execute(
                        select(
                            SeatStatus.seat, SeatStatus.in_queue, SeatStatus.current_call_uniqueid
                        ).where(SeatStatus.seat.in_(seats))
                    )
                ).all()
            )

    async def all_idle() -> bool:
        rows = await idle()
        return len(rows) == len(seats) and all(
            r.in_queue and r.current_call_uniqueid is None for r in rows
        )

    try:
        await wait_for(all_idle, 20, interval=0.5, what="seats idle")
        ok = True
    except TimeoutError:
        ok = False
    rows = await idle()
    for name in (ABSENT, KILLED, STALLED, HANGUP):
        run.check(name, ok, f"seats left stale: {rows}")


async def test_fastagi_faults_on_the_real_stack(
    stack_settings: Settings,
    db: async_sessionmaker[AsyncSession],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed = int(os.environ.get("HELPLINE_FAULT_SEED", str(random.SystemRandom().randrange(10**6))))
    print(f"\nFastAGI faults: seed {seed} (HELPLINE_FAULT_SEED={seed} replays the plan)")
    run = Run(seed, stack_settings, db, random.Random(seed))
    plan = (
        ["kill+absence"] * ABSENCES
        + ["kill"] * (INJECTIONS - ABSENCES)
        + ["stall-long"] * LONG_STALLS
    )
    run.rng.shuffle(plan)
    # The short stalls in one stretch at a random place: calls that only they touch must end
    # as designed (a short stall is a pause, not a failure), and need a stretch to fit in.
    at = run.rng.randrange(len(plan) + 1)
    plan[at:at] = ["stall-short"] * (INJECTIONS - LONG_STALLS)
    seats = [seat_name(FIRST_SEAT + i) for i in range(SEATS)]
    async with db() as session:
        passwords = dict(
            (
                await session.execute(
                    select(Seat.name, Seat.sip_password).where(Seat.name.in_(seats))
                )
            ).all()
        )
    phones = SeatPhones(
        stack_settings,
        [(n, str(passwords[n])) for n in seats],
        tmp_path,
        ring=1.0,
        talk=(1.0, 2.0),
        lifetime=600,
    )
    floor = LoadPlan(
        seats=SEATS,
        rates=[1.0],
        step_seconds=1.0,
        first_seat=FIRST_SEAT,
        user_prefix="agifault",
        api_logins=0,
    )
    base = f"http://{stack_settings.api_host}:{stack_settings.api_port}"
    stop_stream, stop_watchdog = asyncio.Event(), asyncio.Event()
    watch = asyncio.create_task(
        watchdog(
            stack_settings.model_copy(update={"agi_stall_seconds": STALL_SECONDS}), stop_watchdog
        )
    )
    async with httpx.AsyncClient(base_url=base, timeout=60) as api:
        agents: list[Any] = []
        try:
            # Every FastAGI process this run starts (after a kill) reconciles on its cadence.
            for key, value in ORPHAN_ENV.items():
                monkeypatch.setenv(key, value)
            await phones.start()
            agents, _ = await _make_agents(db, api, floor)
            await _login(db, api, agents, SEATS)
            t0 = time.monotonic()
            feeder = asyncio.create_task(stream(run, stop_stream))
            for step in plan:
                if step.startswith("kill"):
                    await inject_kill(run, INJECTIONS // ABSENCES if "absence" in step else 0)
                else:
                    await inject_stall(run, long=step == "stall-long")
            stop_stream.set()
            await feeder
            # At least INJECTIONS callers hang up: the stream's share is random, so top it up
            # with callers who hang up in the IVR (never after an agent did).
            while run.hangers < INJECTIONS + 4:
                launch(run, hanger(run, ("prompt", "between")))
                await asyncio.sleep(run.rng.uniform(0.1, 0.5))
            await asyncio.gather(*run.tasks)
            while (short := INJECTIONS - run.hung_up) > 0:  # some met a glare: a few more
                for _ in range(short + 2):
                    launch(run, hanger(run, ("prompt", "between")))
                    await asyncio.sleep(run.rng.uniform(0.1, 0.5))
                await asyncio.gather(*run.tasks)
            print(f"FastAGI faults: injected, every call judged: {time.monotonic() - t0:.0f} s")
            await seats_back(run, seats)
        finally:
            summary(run)
            stop_stream.set()
            stop_watchdog.set()
            await watch
            for task in run.tasks:
                task.cancel()
            await asyncio.gather(*run.tasks, return_exceptions=True)
            await phones.close()
            await _logout(api, agents, SEATS)
            for key in ORPHAN_ENV:
                monkeypatch.delenv(key, raising=False)
            await asyncio.to_thread(services.stop, stack_settings, "agi")
            await start_agi(run)  # with the instance's own settings again
    for name in (ABSENT, KILLED, STALLED, HANGUP):
        entry = faults.fault(name)
        assert entry.injected >= INJECTIONS, f"[seed {seed}] {name}: only {entry.injected} injected"
        entry.assert_clean()
    assert not run.untouched.violations, "; ".join(run.untouched.violations[:20])


def summary(run: Run) -> None:
    """What was injected and found, before anything else can fail (the seed replays it)."""
    print(
        f"FastAGI faults (seed {run.seed}): {len(run.restarts)} restarts of "
        f"{sum(run.restarts):.0f} s, {len(run.callers)} calls, {run.designed} checked to end "
        f"as designed, {run.untouched.checked} invariants on calls no fault touched, "
        f"{run.unheard} holders whose keys a stall lost"
    )
    for entry in [*(faults.fault(n) for n in (ABSENT, KILLED, STALLED, HANGUP)), run.untouched]:
        print(
            f"  {entry.name}: injected {entry.injected}, invariants {entry.checked}, "
            f"violations {len(entry.violations)}"
        )
        for violation in entry.violations[:3]:
            print(f"    {violation}")
