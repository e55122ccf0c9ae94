"""Fault injection (issue 15): AMI events duplicated and reordered, 20 rounds at random.

Each round, 12 calls (answered, abandoned in the queue, IVR-only) are sent to the real queue
manager through the fake AMI server as one stream: the calls interleaved at random (each
call's own events in order, as Asterisk sends a channel's), a random share of events sent
twice, earlier events replayed later (what a resync or a duplicated link does), and the bytes
cut into random reads; meanwhile, at random moments, resyncs (QueueStatus, CoreShowChannels:
their answers come between two events) and Pings. The invariants after each round: exactly one
call record per call, with the right disposition, agent and times (its own, to the
millisecond); exactly the canonical queue events per call (none twice); no call left open.
Counted in the ledger (tests/faults.py) and printed; each violation names its round's seed.

It once failed about 1 run in 8 (a call ended "now", losing its IVR_DONE): the fake AMI
spliced a Ping's answer, Timestamp and all, into a half-pushed event; real Asterisk writes
each message whole, and so does the fake now (tests/unit/test_ami_fake.py).
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.models import Call, QueueEvent
from core.protocols.ami import encode_message
from tests import faults
from tests.service.test_queue_manager import running_manager
from tests.waiting import wait_for

ROUNDS = 20
CALLS_PER_ROUND = 12
Event = tuple[str, dict[str, str]]
#: Seconds from a call's start to its hang-up, and to leaving the line (connected, abandoned;
#: the IVR's calls never join it).
END = {"answered": 73, "abandoned": 18, "ivr_only": 30}
QUEUE_LEFT = {"answered": 13, "abandoned": 18}


def call_events(uniqueid: str, kind: str, seat: str, start: float) -> list[Event]:
    """A channel's events as app_queue sends them for an answered, abandoned or IVR-only call."""

    def at(seconds: float) -> str:
        return f"{start + seconds:.3f}"

    channel = {"Channel": f"PJSIP/trunk-{uniqueid[-6:]}", "Uniqueid": uniqueid}
    events: list[Event] = [
        (
            "Newchannel",
            {
                **channel,
                "Linkedid": uniqueid,
                "Context": "from-trunk",
                "Exten": "1076",
                "CallerIDNum": "+919876543210",
                "Timestamp": at(0),
            },
        ),
        ("Newstate", {**channel, "ChannelStateDesc": "Up", "Timestamp": at(0.1)}),
    ]
    queue = {**channel, "Queue": "helpline"}
    member = {"Interface": f"Local/{seat}@seat-phones"}
    if kind != "ivr_only":
        events.append(("QueueCallerJoin", {**queue, "Position": "1", "Timestamp": at(10)}))
    if kind == "answered":
        events += [
            ("AgentCalled", {**queue, **member, "Timestamp": at(10.1)}),
            ("AgentConnect", {**queue, **member, "HoldTime": "3", "Timestamp": at(13)}),
            ("QueueCallerLeave", {**queue, "Timestamp": at(13)}),
            (
                "AgentComplete",
                {**queue, **member, "TalkTime": "60", "Reason": "caller", "Timestamp": at(73)},
            ),
        ]
    elif kind == "abandoned":
        events.append(
            ("QueueCallerAbandon", {**queue, "Position": "1", "HoldTime": "8", "Timestamp": at(18)})
        )
    else:  # served by the IVR alone
        events.append(("VarSet", {**channel, "Variable": "IVR_DONE", "Value": "1"}))
    events.append(
        ("Hangup", {**channel, "Context": "from-trunk", "Cause": "16", "Timestamp": at(END[kind])})
    )
    return events


#: Join, called, connect, leave, complete; join, abandon; none.
QUEUE_EVENT_COUNT = {"answered": 5, "abandoned": 2, "ivr_only": 0}


def plan_round(
    prefix: str, rng: random.Random, start: float, count: int
) -> tuple[list[tuple[str, str]], list[list[Event]]]:
    """A round of ``count`` calls of random kinds, one a second from ``start``: (uniqueid,
    kind) each, and each call's events (answered ones by agent0001..3 in turn)."""
    plan = [
        (f"{prefix}-{n:02d}", rng.choice(["answered", "abandoned", "ivr_only"]))
        for n in range(count)
    ]
    calls = [
        call_events(uid, kind, f"agent000{1 + n % 3}", start + n)
        for n, (uid, kind) in enumerate(plan)
    ]
    return plan, calls


async def all_closed(sessions: async_sessionmaker[AsyncSession], ids: list[str]) -> bool:
    """Every one of the calls ``ids`` has its disposition (is recorded and closed)."""
    async with sessions() as session:
        closed = await session.scalar(
            select(func.count()).where(Call.uniqueid.in_(ids), Call.disposition.is_not(None))
        )
    return closed == len(ids)


def faulty_stream(calls: list[list[Event]], rng: random.Random) -> tuple[bytes, int]:
    """The calls interleaved, events duplicated and replayed; (bytes, faults injected)."""
    pending = [list(events) for events in calls]
    stream: list[Event] = []
    faults = 0
    while any(pending):
        events = rng.choice([p for p in pending if p])
        event = events.pop(0)
        stream.append(event)
        if rng.random() < 0.15:  # sent twice at once
            stream.append(event)
            faults += 1
        if stream and rng.random() < 0.1:  # an earlier event replayed later
            stream.append(rng.choice(stream))
            faults += 1
    data = b"".join(encode_message([("Event", name), *fields.items()]) for name, fields in stream)
    return data, faults


def cuts(data: bytes, rng: random.Random) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        step = rng.randint(1, 700)
        out.append(data[i : i + step])
        i += step
    return out


async def test_duplicated_and_reordered_ami_events_leave_exact_call_records(
    db_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    ledger = faults.fault("AMI events duplicated and reordered")
    injected = resyncs = 0
    checked_before, violations_before = ledger.checked, len(ledger.violations)
    # Pings every 5 s, as in production (more would be sent on a loaded machine's timeouts,
    # and what the fake sends while the link is down is lost: Asterisk's CEL would back-fill
    # it, the fake keeps none); the Pings and resyncs below interleave answers with events.
    async with running_manager(db_settings, sessions, ping_interval=5.0) as h:
        h.fake.writetimeout = 5.0  # a slow reader dropped is another fault, not this one
        for round_no in range(ROUNDS):
            seed = random.randrange(2**32)
            rng = random.Random(seed)
            start = datetime.now(UTC).timestamp() - 3600 + round_no * 100
            plan, calls = plan_round(f"fault-{seed}", rng, start, CALLS_PER_ROUND)
            data, duplicated = faulty_stream(calls, rng)
            injected += duplicated
            # Asterisk's side: the channels live until their hang-up, the queue's callers
            # listed in app_queue (a resync in the middle finds them, as it would).
            for (_uid, kind), events in zip(plan, calls, strict=True):
                channel = {k: events[0][1][k] for k in ("Channel", "Uniqueid")}
                h.fake.add_channel(**channel)
                if kind != "ivr_only":
                    h.fake.entries["helpline"].append(channel)
            actions: list[asyncio.Task[object]] = []
            for chunk in cuts(data, rng):
                await h.fake.push_raw(chunk)
                if rng.random() < 0.03:  # a resync: its answers arrive between events
                    actions.append(asyncio.create_task(h.manager.reconcile(h.ami)))
                    resyncs += 1
                elif rng.random() < 0.05:
                    actions.append(asyncio.create_task(h.ami.action("Ping")))
            await asyncio.gather(*actions)
            ids = [uid for uid, _ in plan]

            # A deadline, not a duration: generous for a loaded machine (2 cores, shared).
            await wait_for(
                lambda ids=ids: all_closed(sessions, ids),
                20,
                interval=0.05,
                what=f"round {round_no} (seed {seed})",
            )
            h.fake.channels.clear()  # all hung up
            h.fake.entries["helpline"].clear()
            async with sessions() as session:
                rows = (
                    (await session.execute(select(Call).where(Call.uniqueid.in_(ids))))
                    .scalars()
                    .all()
                )
                stored = (
                    await session.execute(
                        select(QueueEvent.uniqueid, QueueEvent.event, QueueEvent.event_time)
                        .where(QueueEvent.uniqueid.in_(ids))
                        .order_by(QueueEvent.id)
                    )
                ).all()
            by_id = {row.uniqueid: row for row in rows}
            queue_events: dict[str, list[str]] = {}
            for uid, event, when in stored:
                queue_events.setdefault(uid or "", []).append(
                    f"{event}@{when.timestamp() - start:.1f}"
                )
            where = f"round {round_no} (seed {seed})"
            ledger.check(len(rows) == len(ids), f"{where}: {len(rows)} call rows for {len(ids)}")
            for n, (uid, kind) in enumerate(plan):
                row = by_id.get(uid)
                if not ledger.check(row is not None, f"{where}: {uid}: no record"):
                    continue
                assert row is not None
                own = start + n

                def at(seconds: float | None, own: float = own) -> datetime | None:
                    # As the recorder reads the event's Timestamp (milliseconds).
                    if seconds is None:
                        return None
                    return datetime.fromtimestamp(float(f"{own + seconds:.3f}"), UTC)

                want_seat = f"agent000{1 + n % 3}" if kind == "answered" else None
                want_talk = 60 if kind == "answered" else None
                got_events = queue_events.get(uid, [])
                invariants = [
                    (row.disposition == kind, f"{row.disposition} for {kind}"),
                    (row.agent_seat == want_seat, f"seat {row.agent_seat} for {want_seat}"),
                    (
                        row.started_at == at(0) and row.ended_at == at(END[kind]),
                        f"{row.started_at}..{row.ended_at} is not its own {at(0)}..{at(END[kind])}",
                    ),
                    (
                        row.queue_left_at == at(QUEUE_LEFT.get(kind)),
                        f"left the line {row.queue_left_at}",
                    ),
                    (
                        len(got_events) == QUEUE_EVENT_COUNT[kind],
                        f"queue events {got_events}",
                    ),
                    (row.talk_seconds == want_talk, f"talk {row.talk_seconds}"),
                    (
                        row.ivr_done is (kind == "ivr_only"),
                        f"ivr_done {row.ivr_done}",
                    ),
                ]
                for holds, violation in invariants:
                    ledger.check(holds, f"{where}: {uid} ({kind}): {violation}")
    ledger.injected += injected
    checked = ledger.checked - checked_before
    violations = len(ledger.violations) - violations_before
    print(
        f"\nAMI stream faults: {ROUNDS} rounds, {ROUNDS * CALLS_PER_ROUND} calls, "
        f"{injected} duplicated/replayed events injected, {resyncs} resyncs mid-stream, "
        f"{checked} invariants checked, {violations} violations"
    )
    ledger.assert_clean()
