"""``python -m bench day``: the customer's day (88,000 IVR sessions, 55,000 originates) replayed
time-compressed against emulated Asterisk, through our real services and PostgreSQL.

What runs: our FastAGI server with the real IVR flow (``agi_scripts.ivr``), the queue manager
and the dialer, each in its own process (``bench.day_service``), built as their ``serve()``
builds them, on a fresh database migrated to head. What is emulated is Asterisk only, in this
process: an AMI server (``core.transport.fake_ami.FakeAMIServer``, one session per service) and
the channels' side of FastAGI. Every process shares one compressed clock: the helpline's "now"
runs ``k`` times faster than the wall clock, and so do the emulated callers (prompts, holds,
talk, ring times are their sim durations divided by ``k``); AMI events carry the sim time in
``Timestamp`` (``timestampevents=yes``), which the queue manager records.

The day's profile (:data:`PROFILE`): citizens' calls by IST hour, peaking at 10-11 (13.6 % of the
day, 11,968 calls, 3.3 calls/s: the busiest hour the issue's "about 10 calls/s = three times the
busiest hour" implies), quiet at night. The dialer paces itself (its own pacing: the day's budget
spread evenly over its 09:00-21:00 window plus a burst, at most ``dialer_max_channels`` lines).

A run replays one *slice* of the day at each compression of a ladder (fresh database each): by
default 10:15-10:20 IST, inside the peak hour (``--start``/``--end`` choose another: 10-11 is
the whole peak hour). What the day had done before the slice is in the database when it
starts: the inbound calls of 00:00 to the slice's start as rows and in the day's counter, the
dialer's budget used so far. Each emulated inbound call: ``Newchannel``, ``Newstate`` Up, the
FastAGI session (one of five caller behaviours, :data:`BEHAVIOURS`; each prompt takes 3 s, the
welcome 6 s); then by the route: in the queue ``QueueCallerJoin``, after a 5-60 s hold 85 %
``AgentConnect`` (one of 500 seats), 2-6 min talk, ``AgentComplete``; 15 %
``QueueCallerAbandon``; then ``Hangup``. Each ``Originate``: ``Newchannel`` at once, 5-25 s of
ringing, then 65 % answered (``OriginateResponse`` Success, 30-120 s talk, ``Hangup`` 16), 35 %
not (``OriginateResponse`` Failure reason 3, ``Hangup`` 19). As from our manager.conf, every
event about a channel carries its ``ChanVariable`` lines (the IVR's state, empty until set)
and no ``VarSet`` is sent (it is among the events disabled there).

After each run the database is checked (:func:`check`): every inbound call recorded once and
ended, the day's ``inbound_budget`` equal to the calls, every IVR session stored once and
finished, every ``Originate`` one attempt and every attempt ended, the budget and the channel
cap never exceeded. Errors are counted from every side: a service's ERROR log records, AMI
events dropped, sessions dropped by AMI's ``writetimeout``, IVR sessions with database errors,
failed FastAGI sessions, and every consistency check that fails. The highest compression with
zero errors is the result. Per run, each service's CPU seconds, loop lag, statements and
commits, and the PostgreSQL server's CPU seconds (every ``postgres`` process of this machine,
ended backends included) over the same window.

The peer: after the ladder, the AMI byte stream the emulator sent in the highest clean run is
replayed at the same pace to two bare AMI consumers, each in its own process: ours
(``AMIClient`` with the queue manager's subscription) and panoramisk 1.4's ``Manager``; their
CPU seconds and loop lag are compared (``bench.day_peer``). That is the AMI event path of the
day at that compression; the database work (the rest of the queue manager) is ours alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from asterisk_config.render import channel_variable_fields
from bench.common import REPO, cpu_seconds, machine, postgres_cpu_seconds
from bench.day_peer import compare
from core.config import Settings
from core.db.migrate import upgrade
from core.db.session import asyncpg_dsn, drop_database, ensure_database
from core.domain.clock import IST
from core.domain.design_day import HOURLY_PER_MILLE
from core.domain.dialing import Pacing
from core.protocols.agi import parse_command_line
from core.protocols.ami import AMIMessage, encode_message, iter_fields
from core.transport.fake_ami import FakeAMIServer, FakeAMISession, Reply
from outbound_dialer.store import DialRules

#: Share (%) of the day's citizens' calls in each IST hour, 00-01 first; sums to 100: the
#: design day's curve (core.domain.design_day), the one the seats are sized for.
PROFILE: tuple[float, ...] = tuple(share / 10 for share in HOURLY_PER_MILLE)
DAY_INBOUND = 88_000
DAY_OUTBOUND = 55_000
#: The replayed day (a fixed date: runs are comparable; its weekday does not matter here).
DAY = datetime(2026, 12, 1, tzinfo=IST)
SEATS = 500
SECRET = "bench-day"
#: Each prompt's length, and the welcome's (sim seconds).
PROMPT_S = 3.0
WELCOME_S = 6.0

#: (share, name, keys the caller presses, prompt index to hang up at or None).
BEHAVIOURS: tuple[tuple[float, str, str, int | None], ...] = (
    (0.70, "new_complaint", "11", None),  # Hindi, 1 new complaint: queue (budget/wait check)
    (0.08, "agent", "10", None),  # Hindi, 0 agent
    (0.04, "emergency", "4", None),  # police from the welcome: transfer
    (0.10, "abandon", "", 2),  # hangs up during the language prompt
    (0.08, "no_input", "", None),  # never presses: Hindi, then an agent, each by timeout
)


@dataclass
class Options:
    ladder: list[float]
    start_h: float
    end_h: float
    scale: float
    seed: int
    pool_size: int
    lead_s: float
    drain_s: float
    peer: bool


@dataclass
class Tally:
    inbound: int = 0
    agi_sessions: int = 0
    agi_failed: int = 0
    agi_commands: int = 0
    ivr_routes: dict[str, int] = field(default_factory=dict)
    originates: list[str] = field(default_factory=list)
    live_dialer: set[str] = field(default_factory=set)
    max_dialer_channels: int = 0
    max_channels: int = 0
    channels: int = 0
    events: int = 0
    behind_max_s: float = 0.0
    inbound_ids: list[str] = field(default_factory=list)


def arrivals(rng: random.Random, start_s: float, end_s: float, per_day: float) -> list[float]:
    """Poisson arrivals (sim seconds since midnight) at the hour's rate of :data:`PROFILE`."""
    out: list[float] = []
    t = start_s
    while True:
        rate = per_day * PROFILE[int(t // 3600) % 24] / 100 / 3600
        t += rng.expovariate(rate)
        if t >= end_s:
            return out
        out.append(t)


def behaviour(rng: random.Random) -> tuple[str, int | None]:
    """A caller's keys and hang-up prompt, drawn from :data:`BEHAVIOURS`."""
    pick = rng.random()
    for share, _name, keys, hang_at in BEHAVIOURS:
        pick -= share
        if pick <= 0:
            return keys, hang_at
    return BEHAVIOURS[0][2], BEHAVIOURS[0][3]


def prior_share(hours: float) -> float:
    """Fraction of the day's calls that arrived before ``hours`` (IST)."""
    whole = int(hours)
    return (sum(PROFILE[:whole]) + PROFILE[whole] * (hours - whole)) / 100 if hours else 0.0


class DayAsterisk(FakeAMIServer):
    """The fake AMI with one user per service (all with the bench's secret) and Originate
    answered as a trunk would, events sent to every session and recorded for the peer."""

    def __init__(self, run: Run) -> None:
        super().__init__(
            secret=SECRET, handler=self._originate, writetimeout=1.0, queues=("helpline",)
        )
        self.run = run
        #: (wall seconds since the slice began, bytes) of every event sent.
        self.stream: list[tuple[float, bytes]] = []

    async def _login(self, session: FakeAMISession, action: AMIMessage) -> None:
        self.username = action.get("Username") or ""
        await super()._login(session, action)

    async def send(self, name: str, variables: dict[str, str] | None = None, **fields: str) -> None:
        """Send an event; ``variables``: the channel's, for an event about a channel (Asterisk
        appends every ``channelvars`` one, empty when unset)."""
        pairs = [("Event", name), ("Timestamp", f"{self.run.now().timestamp():.6f}")]
        chan_vars = [] if variables is None else channel_variable_fields(variables)
        data = encode_message([*pairs, *iter_fields(fields), *chan_vars])
        self.stream.append((time.time() - self.run.wall0, data))
        self.run.tally.events += 1
        await self.push_raw(data)

    def _originate(self, _session: FakeAMISession, action: AMIMessage) -> Reply | None:
        if (action.get("Action") or "").lower() != "originate":
            return None
        channel_id = action.get("ChannelId") or ""
        self.run.tally.originates.append(channel_id)
        self.run.spawn(self.run.outbound(channel_id))
        return [
            [
                ("Response", "Success"),
                *([("ActionID", action.action_id)] if action.action_id else []),
                ("Message", "Originate successfully queued"),
            ]
        ]


class Run:
    """One compression of the ladder: database, services, emulator, checks."""

    def __init__(self, opts: Options, k: float, workdir: Path) -> None:
        self.opts = opts
        self.k = k
        self.workdir = workdir
        self.rng = random.Random(opts.seed)
        self.tally = Tally()
        self.base = DAY + timedelta(hours=opts.start_h)
        self.wall0 = 0.0
        self.tasks: set[asyncio.Task[None]] = set()
        self.seat = 0
        self.agi_port = 0
        self.fake = DayAsterisk(self)

    def now(self) -> datetime:
        return self.base + timedelta(seconds=(time.time() - self.wall0) * self.k)

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def pause(self, sim_s: float) -> None:
        await asyncio.sleep(sim_s / self.k)

    def _channel_up(self, delta: int) -> None:
        self.tally.channels += delta
        self.tally.max_channels = max(self.tally.max_channels, self.tally.channels)

    # ------------------------------------------------------------------ inbound

    async def inbound(self, n: int) -> None:
        uid = f"{int(self.now().timestamp())}.{n}"
        self.tally.inbound_ids.append(uid)
        caller = f"9{self.rng.randrange(10**8, 10**9)}"
        keys, hang_at = behaviour(self.rng)
        channel = f"PJSIP/trunk-{n:08x}"
        variables: dict[str, str] = {}
        self._channel_up(1)
        try:
            await self.fake.send(
                "Newchannel",
                variables,
                Channel=channel,
                Uniqueid=uid,
                Linkedid=uid,
                Context="from-trunk",
                Exten="1076",
                CallerIDNum=caller,
                CallerIDName="नागरिक",
                ChannelStateDesc="Ring",
            )
            await self.fake.send(
                "Newstate", variables, Channel=channel, Uniqueid=uid, ChannelStateDesc="Up"
            )
            variables = await self.agi(uid, caller, keys, hang_at)
            route = variables.get("IVR_ROUTE", "hangup" if hang_at is not None else "")
            if variables.get("IVR_DONE") != "1" and hang_at is None:
                self.tally.agi_failed += 1
                route = "queue"  # the dialplan's fallback
                variables["IVR_FALLBACK"] = "1"
            self.tally.ivr_routes[route] = self.tally.ivr_routes.get(route, 0) + 1
            if route == "queue":
                await self.queue(uid, variables)
            elif route == "transfer":
                await self.pause(30)
            await self.fake.send("Hangup", variables, Channel=channel, Uniqueid=uid, Cause="16")
        finally:
            self._channel_up(-1)

    async def queue(self, uid: str, variables: dict[str, str]) -> None:
        await self.fake.send(
            "QueueCallerJoin", variables, Queue="helpline", Uniqueid=uid, Position="1"
        )
        hold = self.rng.uniform(5, 60)
        await self.pause(hold)
        if self.rng.random() < 0.85:
            self.seat = self.seat % SEATS + 1
            interface = f"Local/agent{self.seat:04d}@seat-phones"
            await self.fake.send(
                "AgentConnect",
                variables,
                Queue="helpline",
                Uniqueid=uid,
                Interface=interface,
                MemberName=f"agent{self.seat:04d}",
                HoldTime=str(int(hold)),
            )
            talk = self.rng.uniform(120, 360)
            await self.pause(talk)
            await self.fake.send(
                "AgentComplete",
                variables,
                Queue="helpline",
                Uniqueid=uid,
                Interface=interface,
                HoldTime=str(int(hold)),
                TalkTime=str(int(talk)),
                Reason="caller",
            )
        else:
            await self.fake.send(
                "QueueCallerAbandon",
                variables,
                Queue="helpline",
                Uniqueid=uid,
                HoldTime=str(int(hold)),
            )

    async def agi(self, uid: str, caller: str, keys: str, hang_at: int | None) -> dict[str, str]:
        """Asterisk's side of the call's FastAGI session: answer each command as the caller
        and the channel would, in compressed time; return the variables the script set."""
        variables: dict[str, str] = {}
        self.tally.agi_sessions += 1
        env = {
            "agi_network": "yes",
            "agi_network_script": "ivr",
            "agi_request": f"agi://127.0.0.1:{self.agi_port}/ivr",
            "agi_channel": f"PJSIP/trunk-{uid}",
            "agi_language": "hi",
            "agi_type": "PJSIP",
            "agi_uniqueid": uid,
            "agi_version": "22.0.0",
            "agi_callerid": caller,
            "agi_calleridname": "नागरिक",
            "agi_dnid": "1076",
            "agi_context": "ivr",
            "agi_extension": "1076",
            "agi_priority": "2",
        }
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.agi_port)
        except OSError:
            self.tally.agi_failed += 1
            return variables
        pending = list(keys)
        prompts = 0
        dead = False
        try:
            writer.write(("".join(f"{k}: {v}\n" for k, v in env.items()) + "\n").encode())
            while True:
                raw = await reader.readline()
                if not raw.endswith(b"\n"):
                    break
                self.tally.agi_commands += 1
                argv = parse_command_line(raw.decode().rstrip("\r\n"))
                verb = " ".join(argv[:2]).upper()
                if dead:
                    reply = "511 Command Not Permitted on a dead channel or intercept routine"
                elif verb == "STREAM FILE":
                    escape = argv[3] if len(argv) > 3 else ""
                    prompts += 1
                    if hang_at is not None and prompts >= hang_at:
                        await self.pause(1.0)
                        writer.write(b"200 result=-1 endpos=0\nHANGUP\n")
                        dead = True
                        continue
                    if pending and pending[0] in escape:
                        await self.pause(self.rng.uniform(0.5, 2.0))
                        reply = f"200 result={ord(pending.pop(0))} endpos=8000"
                    else:
                        await self.pause(WELCOME_S if "welcome" in argv[2] else PROMPT_S)
                        reply = "200 result=0 endpos=24000"
                elif verb == "WAIT FOR":
                    if pending:
                        await self.pause(1.0)
                        reply = f"200 result={ord(pending.pop(0))}"
                    else:
                        await self.pause(int(argv[3]) / 1000 if len(argv) > 3 else 5.0)
                        reply = "200 result=0"
                elif verb == "SET VARIABLE" and len(argv) >= 4:
                    variables[argv[2]] = argv[3]
                    reply = "200 result=1"
                elif verb == "GET DATA":
                    await self.pause(4.0)
                    reply = "200 result= (timeout)"
                else:
                    reply = "200 result=0"
                writer.write(f"{reply}\n".encode())
        except (ConnectionError, OSError):
            self.tally.agi_failed += 1
        finally:
            writer.close()
        return variables

    # ------------------------------------------------------------------ outbound

    async def outbound(self, attempt: str) -> None:
        self.tally.live_dialer.add(attempt)
        self.tally.max_dialer_channels = max(
            self.tally.max_dialer_channels, len(self.tally.live_dialer)
        )
        self._channel_up(1)
        channel = f"PJSIP/trunk-{attempt[-8:]}"
        live = self.fake.add_channel(Channel=channel, Uniqueid=attempt, Context="outbound")
        try:
            await self.fake.send(
                "Newchannel",
                {},
                Channel=channel,
                Uniqueid=attempt,
                Linkedid=attempt,
                Context="from-trunk",
                Exten="s",
                CallerIDNum="1076",
            )
            await self.pause(self.rng.uniform(5, 25))
            if self.rng.random() < 0.65:
                await self.fake.send("OriginateResponse", Response="Success", Uniqueid=attempt)
                await self.pause(self.rng.uniform(30, 120))
                cause = "16"
            else:
                await self.fake.send(
                    "OriginateResponse", Response="Failure", Reason="3", Uniqueid=attempt
                )
                cause = "19"
            # Gone before its Hangup is sent, as in Asterisk: the dialer may free the channel
            # and dial the next as soon as it reads the Hangup, while this send still waits
            # on the other sessions' sockets (it counted 152 lines against a cap of 120).
            self.tally.live_dialer.discard(attempt)
            await self.fake.send("Hangup", {}, Channel=channel, Uniqueid=attempt, Cause=cause)
        finally:
            self.fake.channels.remove(live)
            self.tally.live_dialer.discard(attempt)
            self._channel_up(-1)

    # ------------------------------------------------------------------ the run

    async def replay(self, times: list[float]) -> float:
        """Start each call at its compressed time; returns the wall seconds the slice took."""
        midnight = self.opts.start_h * 3600
        for n, at in enumerate(times):
            due = self.wall0 + (at - midnight) / self.k
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                self.tally.behind_max_s = max(self.tally.behind_max_s, -delay)
            self.tally.inbound += 1
            self.spawn(self.inbound(n))
        end = self.wall0 + (self.opts.end_h - self.opts.start_h) * 3600 / self.k
        if end > time.time():
            await asyncio.sleep(end - time.time())
        return time.time() - self.wall0


def settings_for(url: str, ami_port: int, agi_port: int, scale: float) -> dict[str, Any]:
    return {
        "database_url": url,
        "ami_host": "127.0.0.1",
        "ami_port": ami_port,
        "ami_secret_queue_manager": SECRET,
        "ami_secret_outbound_dialer": SECRET,
        "agi_host": "127.0.0.1",
        "agi_port": agi_port,
        "daily_inbound_budget": int(DAY_INBOUND * scale),
        "daily_outbound_budget": int(DAY_OUTBOUND * scale),
        "dialer_burst": max(1, int(200 * scale)),
    }


async def prepare(url: str, opts: Options, slice_originates: int) -> dict[str, int]:
    """What the day did before the slice: its calls (rows and the day's counter), the dialer's
    budget spent; seats; and the open complaints whose follow-ups the dialer will make."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        prior_calls = int(DAY_INBOUND * opts.scale * prior_share(opts.start_h))
        prior_dialled = int(DAY_OUTBOUND * opts.scale * max(0.0, (opts.start_h - 9) / 12))
        day_start = DAY
        await conn.execute(
            """
            INSERT INTO calls (uniqueid, linkedid, channel, caller_number, started_at, ended_at,
                               answered_at, ivr_done, disposition, queue, queue_joined_at,
                               queue_left_at, agent_connected_at, agent_completed_at)
            SELECT 'prior.' || g, 'prior.' || g, 'PJSIP/trunk-x', '9' || (800000000 + g),
                   at, at + interval '300 s', at, true, 'answered', 'helpline',
                   at + interval '25 s', at + interval '60 s', at + interval '60 s',
                   at + interval '300 s'
            FROM generate_series(1, $3::int) AS g,
                 LATERAL (SELECT $1::timestamptz + (g * $2::float8) * interval '1 second' AS at) t
            """,
            day_start,
            opts.start_h * 3600 / max(prior_calls, 1) * 0.999,
            prior_calls,
        )
        await conn.execute(
            "INSERT INTO inbound_budget (day, used) VALUES ($1, $2)", day_start.date(), prior_calls
        )
        await conn.execute(
            "INSERT INTO dialer_budget (day, scope, used, active) VALUES ($1, 'all', $2, 0)",
            day_start.date(),
            prior_dialled,
        )
        await conn.execute(
            "INSERT INTO seats (name, sip_password) "
            "SELECT 'agent' || lpad(g::text, 4, '0'), 'x' FROM generate_series(1, $1::int) g",
            SEATS,
        )
        user = await conn.fetchval(
            "INSERT INTO users (username, full_name, role, password_hash) "
            "VALUES ('bench', 'Bench', 'agent', 'x') RETURNING id"
        )
        # Open complaints (an officer holds them) four days old: one follow-up each is due.
        await conn.execute(
            """
            INSERT INTO complaints (number, caller_number, description, created_by, status,
                                    created_at, due_at)
            SELECT lpad(g::text, 16, '0'), '7' || (700000000 + g), 'bench', $1,
                   'in_progress', $2::timestamptz - interval '4 days',
                   $2::timestamptz + interval '10 days'
            FROM generate_series(1, $3::int) AS g
            """,
            user,
            day_start,
            slice_originates,
        )
    finally:
        await conn.close()
    return {"prior_calls": prior_calls, "prior_dialled": prior_dialled}


async def check(
    url: str, run: Run, prior: dict[str, int], pacing: Pacing, cap: int
) -> dict[str, Any]:
    """The database after the run: each figure with what it must be (``failures`` lists the
    ones that are not)."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        ids = run.tally.inbound_ids
        calls = await conn.fetchrow(
            """
            SELECT count(*) AS rows, count(*) FILTER (WHERE ended_at IS NULL) AS open,
                   count(DISTINCT uniqueid) AS distinct_ids
            FROM calls WHERE uniqueid = ANY($1::text[])
            """,
            ids,
        )
        counted = await conn.fetchval("SELECT used FROM inbound_budget WHERE day = $1", DAY.date())
        day_calls = await conn.fetchval(
            "SELECT count(*) FROM calls WHERE dialer_attempt_id IS NULL "
            "AND started_at >= $1 AND started_at < $1 + interval '1 day'",
            DAY,
        )
        ivr = await conn.fetchrow(
            """
            SELECT count(*) AS rows, count(*) FILTER (WHERE ended_at IS NULL) AS unfinished,
                   count(*) FILTER (WHERE outcome IS NULL) AS no_outcome,
                   count(*) FILTER (WHERE detail ? 'db_errors') AS db_errors
            FROM ivr_sessions WHERE uniqueid = ANY($1::text[])
            """,
            ids,
        )
        originated = run.tally.originates
        attempts = await conn.fetchrow(
            """
            SELECT count(*) AS rows, count(*) FILTER (WHERE ended_at IS NULL) AS open,
                   count(*) FILTER (WHERE NOT (id = ANY($1::text[]))) AS never_originated
            FROM dialer_attempts
            """,
            originated,
        )
        spent = await conn.fetchrow(
            "SELECT used, active FROM dialer_budget WHERE day = $1 AND scope = 'all'", DAY.date()
        )
        last_claim = await conn.fetchval("SELECT max(started_at) FROM dialer_attempts")
        error_kinds = {
            str(row[0]): row[1]
            for row in await conn.fetch(
                "SELECT detail->'db_errors', count(*) FROM ivr_sessions "
                "WHERE detail ? 'db_errors' GROUP BY 1"
            )
        }
        per_number = await conn.fetchval("SELECT coalesce(max(attempts), 0) FROM dialer_number_day")
    finally:
        await conn.close()
    # What the pacing allowed by the last claim (none: the burst): the budget's bound.
    budget = pacing.allowed(last_claim) if last_claim is not None else pacing.burst
    # What it allowed in the slice: the outbound day's share that this run replayed.
    allowed_in_slice = max(
        0, pacing.allowed(DAY + timedelta(hours=run.opts.end_h)) - prior["prior_dialled"]
    )
    figures = {
        "inbound_calls": len(ids),
        "calls_rows": calls["rows"],
        "calls_open": calls["open"],
        "inbound_budget_used": counted,
        "day_calls_rows": day_calls,
        "ivr_sessions": ivr["rows"],
        "ivr_unfinished": ivr["unfinished"],
        "ivr_without_outcome": ivr["no_outcome"],
        "ivr_db_errors": ivr["db_errors"],
        "ivr_db_error_kinds": error_kinds,
        "originates": len(originated),
        "originates_distinct": len(set(originated)),
        "attempts": attempts["rows"],
        "attempts_open": attempts["open"],
        "attempts_never_originated": attempts["never_originated"],
        "budget_used": spent["used"] if spent else 0,
        "budget_allowed_at_last_claim": budget,
        "originates_pacing_allowed_in_slice": allowed_in_slice,
        "originates_pct_of_pacing": round(100 * len(originated) / max(1, allowed_in_slice), 1),
        "last_claim": last_claim.isoformat() if last_claim else None,
        "max_dialer_channels": run.tally.max_dialer_channels,
        "channel_cap": cap,
        "max_attempts_per_number": per_number,
    }
    rules = {
        "every inbound call recorded once": calls["rows"] == calls["distinct_ids"] == len(ids),
        "every inbound call ended": calls["open"] == 0,
        "inbound_budget equals the day's calls": counted
        == day_calls
        == prior["prior_calls"] + len(ids),
        "every IVR session stored once": ivr["rows"] == len(ids),
        "every IVR session finished": ivr["unfinished"] == 0 and ivr["no_outcome"] == 0,
        "no IVR database error": ivr["db_errors"] == 0,
        "every Originate one attempt": len(originated) == len(set(originated)) == attempts["rows"]
        and attempts["never_originated"] == 0,
        "every attempt ended": attempts["open"] == 0,
        "budget never exceeded": (spent["used"] if spent else 0) <= budget,
        "channel cap never exceeded": run.tally.max_dialer_channels <= cap,
        "attempts per number within the cap": per_number <= 3,
    }
    figures["failures"] = [name for name, ok in rules.items() if not ok]
    return figures


async def create_database(base_url: str, name: str) -> str:
    url = make_url(base_url).set(database=name).render_as_string(hide_password=False)
    await drop_named(base_url, name)
    await ensure_database(Settings(database_url=url))
    await asyncio.to_thread(upgrade, Settings(database_url=url))
    return url


async def drop_named(base_url: str, name: str) -> None:
    url = make_url(base_url).set(database=name).render_as_string(hide_password=False)
    await drop_database(url)


async def db_counters(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        row = await conn.fetchrow(
            "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted "
            "FROM pg_stat_database WHERE datname = current_database()"
        )
    finally:
        await conn.close()
    return dict(row)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run_one(opts: Options, k: float, base_url: str, workdir: Path) -> dict[str, Any]:
    run = Run(opts, k, workdir)
    name = f"helpline_benchday_{os.getpid()}"
    url = await create_database(base_url, name)
    procs: dict[str, subprocess.Popen[str]] = {}
    try:
        start_s, end_s = opts.start_h * 3600, opts.end_h * 3600
        times = arrivals(run.rng, start_s, end_s, DAY_INBOUND * opts.scale)
        allowed = int(DAY_OUTBOUND * opts.scale * max(0.0, (opts.end_h - 9) / 12))
        budget_cap = allowed + max(1, int(200 * opts.scale))
        prior = await prepare(url, opts, int((budget_cap - 0) * 1.05) + 10)
        await run.fake.start()
        run.agi_port = _free_port()
        settings = settings_for(url, run.fake.port, run.agi_port, opts.scale)
        config = workdir / f"config-{k:g}.json"
        config.write_text(
            json.dumps(
                {
                    "settings": settings,
                    "base": run.base.isoformat(),
                    "k": k,
                    "pool_size": opts.pool_size,
                }
            )
        )
        for service in ("ivr", "queue_manager", "dialer"):
            procs[service] = subprocess.Popen(  # noqa: ASYNC220 (started once, not awaited)
                [
                    sys.executable,
                    "-m",
                    "bench.day_service",
                    "--service",
                    service,
                    "--config",
                    str(config),
                    "--stats-file",
                    str(workdir / f"{service}-{k:g}.json"),
                ],
                cwd=REPO,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        for service, proc in procs.items():
            assert proc.stdout is not None
            line = await asyncio.to_thread(proc.stdout.readline)
            if line.strip() != "READY":
                raise RuntimeError(f"{service} did not start: {line!r}")
        run.wall0 = time.time() + opts.lead_s
        for proc in procs.values():
            assert proc.stdin is not None
            proc.stdin.write(f"GO {run.wall0!r}\n")
            proc.stdin.flush()
        cpu0 = {s: cpu_seconds(p.pid) for s, p in procs.items()}
        postgres0 = postgres_cpu_seconds()
        db0 = await db_counters(url)
        load0 = os.getloadavg()[0]
        await asyncio.sleep(max(0.0, run.wall0 - time.time()))
        wall = await run.replay(times)
        # The slice is over: the operator pauses the campaigns (calls on the line go on).
        await _pause_campaigns(url)
        # Calls still on the line finish at their compressed pace; then the services catch up.
        drain_started = time.time()
        while run.tasks:
            await asyncio.gather(*list(run.tasks), return_exceptions=True)
        calls_done = time.time() - drain_started
        caught_up = await _caught_up(url, run, opts.drain_s)
        cpu = {s: round(cpu_seconds(p.pid) - cpu0[s], 2) for s, p in procs.items()}
        postgres1 = postgres_cpu_seconds()
        postgres_cpu = (
            None if postgres0 is None or postgres1 is None else round(postgres1 - postgres0, 2)
        )
        db1 = await db_counters(url)
        elapsed = time.time() - run.wall0
        load1 = os.getloadavg()[0]
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            await asyncio.to_thread(proc.wait, 30)
        stats = {s: json.loads((workdir / f"{s}-{k:g}.json").read_text()) for s in procs}
        rules = DialRules.from_settings(Settings(**settings))
        checked = await check(url, run, prior, rules.pacing, rules.max_channels)
        tally = run.tally
        inbound = max(1, tally.inbound)
        originates = max(1, len(tally.originates))
        sim_s = end_s - start_s
        service_errors = sum(s["log_errors"] for s in stats.values())
        dropped = sum(int(s.get("events_dropped", 0)) for s in stats.values())
        reconnects = sum(max(0, int(s.get("ami_connects", 1)) - 1) for s in stats.values())
        errors = (
            service_errors
            + dropped
            + run.fake.stats.writetimeout_drops
            + reconnects
            + tally.agi_failed
            + len(checked["failures"])
        )
        return {
            "compression": k,
            "slice_ist": f"{_hhmm(opts.start_h)}-{_hhmm(opts.end_h)}",
            "slice_sim_s": sim_s,
            "wall_s": round(wall, 1),
            "drain_s": round(calls_done, 1),
            "services_caught_up_s": caught_up,
            "compression_achieved": round(sim_s / wall, 1),
            "emulator_behind_max_s": round(tally.behind_max_s, 3),
            "errors": errors,
            "error_sources": {
                "service_log_errors": service_errors,
                "ami_events_dropped": dropped,
                "ami_writetimeout_drops": run.fake.stats.writetimeout_drops,
                "ami_reconnects": reconnects,
                "agi_failed": tally.agi_failed,
                "check_failures": checked["failures"],
                "first_errors": {
                    s: v["first_errors"] for s, v in stats.items() if v["first_errors"]
                },
            },
            "load": {
                "inbound_calls": tally.inbound,
                "originates": len(tally.originates),
                "ivr_routes": tally.ivr_routes,
                "agi_commands": tally.agi_commands,
                "ami_events": tally.events,
                "max_channels": tally.max_channels,
                "inbound_per_s_wall": round(tally.inbound / wall, 1),
                "originates_per_s_wall": round(len(tally.originates) / wall, 1),
                "agi_commands_per_s_wall": round(tally.agi_commands / wall, 1),
                "ami_events_per_s_wall": round(tally.events / wall, 1),
                "db_commits_per_s_wall": round(
                    (db1["xact_commit"] - db0["xact_commit"]) / elapsed, 1
                ),
                "db_rows_written_per_s_wall": round(
                    sum(db1[c] - db0[c] for c in ("tup_inserted", "tup_updated", "tup_deleted"))
                    / elapsed,
                    1,
                ),
            },
            # The whole server's (this run's database and any other work it had meanwhile),
            # over the same window as the services' CPU; None with no PostgreSQL here.
            "postgres": {
                "cpu_s": postgres_cpu,
                "cpu_share_of_wall": None
                if postgres_cpu is None
                else round(postgres_cpu / elapsed, 2),
                "cpu_ms_per_call": None
                if postgres_cpu is None
                else round(1000 * postgres_cpu / (inbound + originates), 2),
            },
            "services": {
                s: {
                    "cpu_s": cpu[s],
                    "cpu_share_of_wall": round(cpu[s] / elapsed, 2),
                    "loop_lag_ms": v["loop_lag"],
                    "statements": v["statements"],
                    "commits": v["commits"],
                    "statements_per_call": round(
                        v["statements"]
                        / (
                            inbound
                            if s == "ivr"
                            else originates
                            if s == "dialer"
                            else inbound + originates
                        ),
                        2,
                    ),
                    "log_warnings": v["log_warnings"],
                    **{x: v[x] for x in ("events_applied", "events_dropped", "totals") if x in v},
                }
                for s, v in stats.items()
            },
            "database": checked,
            "load_average_1m": [round(load0, 2), round(load1, 2)],
            "_stream": run.fake.stream,
        }
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()
        await run.fake.close()
        await drop_named(base_url, name)


async def _pause_campaigns(url: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("UPDATE dialer_campaigns SET paused = true")
    finally:
        await conn.close()


async def _caught_up(url: str, run: Run, limit: float) -> float | None:
    """Seconds until the services have recorded every call and ended every attempt (None:
    not within ``limit``; the checks then say what is missing)."""
    started = time.time()
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        while time.time() - started < limit:
            ended_calls = await conn.fetchval(
                "SELECT count(*) FROM calls "
                "WHERE uniqueid = ANY($1::text[]) AND ended_at IS NOT NULL",
                run.tally.inbound_ids,
            )
            open_attempts = await conn.fetchval(
                "SELECT count(*) FROM dialer_attempts WHERE ended_at IS NULL"
            )
            sessions = await conn.fetchval(
                "SELECT count(*) FROM ivr_sessions WHERE ended_at IS NOT NULL"
            )
            if ended_calls == len(run.tally.inbound_ids) == sessions and open_attempts == 0:
                return round(time.time() - started, 1)
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
    return None


def _hhmm(hours: float) -> str:
    return f"{int(hours):02d}:{round(hours % 1 * 60):02d}"


def parse(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench day", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1/12 of the day, 10:00-10:15, 180x")
    parser.add_argument(
        "--ladder", default="12,24,36,48,96,144", help="compressions to try, rising"
    )
    parser.add_argument("--start", type=float, default=10.25, help="slice start, IST hours")
    parser.add_argument("--end", type=float, default=10.3333, help="slice end, IST hours")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the 88k/55k day")
    parser.add_argument("--seed", type=int, default=1076)
    parser.add_argument(
        "--pool-size",
        type=int,
        default=10,
        help="the queue manager's and dialer's pool_size (the IVR's: its POOL_SIZE)",
    )
    parser.add_argument("--lead", type=float, default=0.5, help="seconds from GO to the slice")
    parser.add_argument("--drain", type=float, default=60.0, help="seconds to let them catch up")
    parser.add_argument("--no-peer", action="store_true", help="skip the panoramisk comparison")
    args = parser.parse_args(argv)
    if args.quick:
        return Options(
            [180.0], 10.0, 10.25, 1 / 12, args.seed, args.pool_size, 0.5, 60.0, not args.no_peer
        )
    ladder = [float(x) for x in args.ladder.split(",")]
    return Options(
        ladder, args.start, args.end, args.scale, args.seed, args.pool_size, args.lead,
        args.drain, not args.no_peer,
    )  # fmt: skip


def run(argv: list[str]) -> dict[str, Any]:
    opts = parse(argv)
    base_url = Settings.load(Path(os.environ.get("HELPLINE_STATE_DIR", ".helpline"))).database_url
    runs: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    #: The AMI stream the peer comparison replays: the highest clean run's, else the first's.
    peer_stream: tuple[float, list[tuple[float, bytes]]] | None = None
    with tempfile.TemporaryDirectory(prefix="helpline-bench-day-") as tmp:
        for k in opts.ladder:
            result = asyncio.run(run_one(opts, k, base_url, Path(tmp)))
            stream = result.pop("_stream")
            runs.append(result)
            if peer_stream is None or not result["errors"]:
                peer_stream = (k, stream)
            print(json.dumps({"compression": k, "errors": result["errors"]}), file=sys.stderr)
            if result["errors"]:
                break
            best = result
        peer: dict[str, Any] | None = None
        if peer_stream is not None and opts.peer:
            peer = compare(peer_stream[1], Path(tmp))
            peer["compression"] = peer_stream[0]
    top = runs[-1] if best is None else best
    ours_peer = peer or {}
    return {
        "bench": "day",
        "profile_percent_by_ist_hour": list(PROFILE),
        "day": {
            "inbound": int(DAY_INBOUND * opts.scale),
            "outbound": int(DAY_OUTBOUND * opts.scale),
        },
        "highest_clean_compression": best["compression"] if best else None,
        "runs": runs,
        "result": top,
        "ours": ours_peer.get("ours"),
        "peer": ours_peer.get("peer"),
        "ratio": ours_peer.get("ratio"),
        "peer_compression": ours_peer.get("compression"),
        "machine": machine(pinned=False),
    }
