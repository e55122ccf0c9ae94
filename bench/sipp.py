"""``python -m bench sipp``: the whole real stack under sipp citizens at a rising rate.

The real Asterisk (its own instance at ``HELPLINE_TEST_PORT_OFFSET``), FastAGI IVR, queue
manager, API, SLA worker and dialer, on a fresh database. ``--seats`` seats (default 500) are
registered by ONE sipp process (a generated scenario: one REGISTER + digest exchange per seat,
sipp cannot take per-seat credentials from an injection file) and then answered by ONE sipp
UAS on the same port (``rewrite_contact=yes``: Asterisk calls back the REGISTER's source port);
as many agents log in through the API with tokens of real users, and as many ``/ws/agent``
sockets stay open in this process, counting screen-pops. Citizens then call from the trunk, one
sipp UAC per step of the rate (``--rates``, ``--step-seconds`` each), press 1 1 into the queue,
an agent answers after ``--ring`` s and hangs up after ``--talk`` s (5-8, uniform: short, so
that 500 agents (~40 calls/s) are no ceiling below the aim of 30 calls/s; at 20-30 s they are
at ~16 calls/s, and the run then measures the queue growing, not the software).

Per step: calls placed, failed (sipp's failed calls, plus calls the database does not show
answered by an agent exactly once, calls answered more than ``--patience`` s after joining
the queue, and calls Asterisk answered more than ``--answer-within`` s after their INVITE: a
citizen who hears 15 s of silence before the IVR, its INVITE retransmitted, was not served),
answer delay (INVITE → 200 at the citizen, sipp's rtd) and
time to agent (``queue_joined_at`` → ``agent_connected_at``). Over the run: each service's CPU
seconds (``/proc``), database transactions and rows per call (``pg_stat_database`` deltas;
``pg_stat_statements`` is not preloaded on this PostgreSQL and enabling it needs a restart of
the shared server), and the screen-pops: every answered call's delivered once, to its seat.

The peer runs in the same run, on the same Asterisk, seats, agents and sockets: the same
ladder again with the FastAGI server stopped, so that every call takes the dialplan's fallback
straight into ``Queue()`` (the platform's cost without our IVR: no prompts, no menu, no
database reads before the queue). ``ratio`` is ours' highest sustained rate over the peer's;
``--no-peer`` skips it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import websockets
from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.services.seats import seat_name
from asterisk_config.instance import AsteriskInstance
from bench.common import cpu_seconds, machine, ratio
from bench.day import DAY_INBOUND, PROFILE
from core.config import Settings
from core.db.models import ApiToken, Seat, SeatStatus, User
from core.db.session import asyncpg_dsn, create_engine, drop_database, session_factory
from core.domain.credentials import hash_password, new_token, token_digest
from core.fds import raise_fd_limit
from helpline import services
from helpline.cli import prepare_asterisk, prepare_database, seed, wait_healthy
from helpline.secrets import ensure_secrets
from helpline.sipp import (
    _ENV,
    _common_args,
    _spawn,
    _step_pcap,
    _tail,
    _terminate,
    free_udp_port,
)

PASSWORD = "bench-sipp-password"
#: "1" Hindi in the welcome, "1" new complaint in the main menu (tests/integration/test_queue_load).
KEYS_AT = (1.0, 3.5)
#: Seconds the IVR may take from the last key to the queue (added to the citizen's stay).
IVR_TO_QUEUE = 2.0
#: Asterisk's RTP ports in the bench: room for 1,000 channels with media at once.
RTP_PORTS = (46000, 49999)
#: Seats per registering sipp run (its scenario holds every seat's REGISTER exchange).
REGISTER_CHUNK = 40


@dataclass
class LoadPlan:
    """What one run offers: seats, the rate steps, and how citizens and agents behave."""

    seats: int
    rates: Sequence[float]
    step_seconds: float
    #: Seconds an agent talks (uniform in this range), then the agent hangs up.
    talk: tuple[float, float] = (20.0, 30.0)
    ring: float = 1.0
    #: A call answered later than this after joining the queue counts as failed (the 20 s
    #: service level); the citizen stays on the line long enough to be answered anyway.
    patience: float = 20.0
    #: A call Asterisk answered (200 OK) later than this after its INVITE counts as failed:
    #: unloaded it answers in tens of ms; seconds mean the INVITE waited for retransmissions.
    answer_within: float = 2.0
    #: Seats used: agentNNNN from first_seat on (the stack seeds at least that many).
    first_seat: int = 1
    user_prefix: str = "bsipp"
    #: Caller numbers: <number_prefix><step:02d><n:06d> (10 digits with a 2-digit prefix).
    number_prefix: str = "97"
    #: Also run the ladder again with the FastAGI server stopped (the peer), callers numbered
    #: from ``peer_prefix``.
    peer: bool = False
    peer_prefix: str = "98"
    concurrency: int = 16
    #: Agents whose tokens come from ``POST /auth/token`` (the rest: stored directly).
    api_logins: int = 20


@dataclass
class Agent:
    username: str
    seat: str
    token: str = ""
    pops: list[dict[str, Any]] = field(default_factory=list)
    hello: asyncio.Event = field(default_factory=asyncio.Event)
    sockets_retried: int = 0


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def _summary(values: list[float]) -> dict[str, float | None]:
    return {
        "p50": _pct(values, 0.5),
        "p95": _pct(values, 0.95),
        "max": round(max(values), 3) if values else None,
        "mean": round(statistics.fmean(values), 3) if values else None,
    }


# --------------------------------------------------------------------------- agents


async def _make_agents(
    sessions: async_sessionmaker[AsyncSession], api: httpx.AsyncClient, plan: LoadPlan
) -> tuple[list[Agent], float]:
    """Real users (one scrypt hash shared: hashing 500 would cost minutes here). The first
    ``plan.api_logins`` get their tokens from ``POST /auth/token`` (the server checks each
    password: the logins/s that gives is returned); the rest get a token stored as that route
    stores one (scrypt at ~40 ms of CPU each would spend the run's 5 minutes on 500 logins)."""
    agents = [
        Agent(f"{plan.user_prefix}{i:04d}", seat_name(plan.first_seat + i))
        for i in range(plan.seats)
    ]
    password_hash = hash_password(PASSWORD)
    async with sessions() as session:
        await session.execute(
            insert(User)
            .values(
                [
                    {
                        "username": a.username,
                        "full_name": f"Bench agent {a.username}",
                        "role": "agent",
                        "password_hash": password_hash,
                    }
                    for a in agents
                ]
            )
            .on_conflict_do_nothing(index_elements=["username"])
        )
        ids = dict(
            (
                await session.execute(
                    select(User.username, User.id).where(
                        User.username.in_([a.username for a in agents])
                    )
                )
            ).all()
        )
        expires = datetime.now(UTC) + timedelta(hours=2)
        for agent in agents[plan.api_logins :]:
            agent.token = new_token()
            session.add(
                ApiToken(
                    token_hash=token_digest(agent.token),
                    user_id=ids[agent.username],
                    expires_at=expires,
                )
            )
        await session.commit()
    # The API hashes on one thread with a queue of 8 and answers 429 past it (as to a shift
    # signing in at once): a few at a time, and Retry-After honoured.
    gate = asyncio.Semaphore(4)

    async def token(agent: Agent) -> None:
        async with gate:
            for _ in range(30):
                response = await api.post(
                    "/auth/token", data={"username": agent.username, "password": PASSWORD}
                )
                if response.status_code != 429:
                    break
                await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
            response.raise_for_status()
            agent.token = response.json()["access_token"]

    t0 = time.monotonic()
    await asyncio.gather(*(token(a) for a in agents[: plan.api_logins]))
    spent = time.monotonic() - t0
    return agents, round(min(plan.api_logins, plan.seats) / spent, 1) if spent > 0 else 0.0


async def _login(
    sessions: async_sessionmaker[AsyncSession],
    api: httpx.AsyncClient,
    agents: list[Agent],
    concurrency: int,
) -> None:
    """Every agent sits at their seat (``POST /agents/me/login``); until app_queue has all."""
    gate = asyncio.Semaphore(concurrency)

    async def one(agent: Agent) -> None:
        async with gate:
            response = await api.post(
                "/agents/me/login",
                json={"seat": agent.seat},
                headers={"Authorization": f"Bearer {agent.token}"},
            )
            # "pending": stored, the queue manager applies it shortly (waited for below).
            if response.status_code != 200 or response.json().get("state") not in (
                "in_queue",
                "pending",
            ):
                raise RuntimeError(f"{agent.username} at {agent.seat}: {response.text}")

    await asyncio.gather(*(one(a) for a in agents))
    seats = [a.seat for a in agents]
    deadline = time.monotonic() + 180
    while True:
        async with sessions() as session:
            ready = await session.scalar(
                select(func.count()).where(SeatStatus.seat.in_(seats), SeatStatus.in_queue)
            )
        if ready == len(seats):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(seats) - (ready or 0)} seats never joined the queue")
        await asyncio.sleep(0.5)


async def _logout(api: httpx.AsyncClient, agents: list[Agent], concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(agent: Agent) -> None:
        async with gate:
            await api.post("/agents/me/logout", headers={"Authorization": f"Bearer {agent.token}"})

    await asyncio.gather(*(one(a) for a in agents), return_exceptions=True)


async def _agent_socket(
    settings: Settings, agent: Agent, stop: asyncio.Event, gate: asyncio.Semaphore
) -> None:
    """The agent's ``/ws/agent`` until ``stop``, counting screen-pops. Opened ``gate`` at a
    time and retried: a desk that fails to connect tries again (the PostgreSQL these runs
    share with other work may refuse a connection: "too many clients")."""
    url = f"ws://{settings.api_host}:{settings.api_port}/ws/agent?token={agent.token}"
    for attempt in range(10):
        try:
            async with contextlib.AsyncExitStack() as stack:
                async with gate:
                    ws = await stack.enter_async_context(
                        websockets.connect(url, open_timeout=60, ping_interval=None)
                    )
                    first = json.loads(await asyncio.wait_for(ws.recv(), 60))
                    if first.get("type") != "hello":
                        raise RuntimeError(f"{agent.username}: {first}")
                    agent.hello.set()
                while not stop.is_set():
                    try:
                        async with asyncio.timeout(0.5):
                            raw = await ws.recv()
                    except TimeoutError:
                        continue
                    message = json.loads(raw)
                    if message.get("type") == "screen_pop":
                        agent.pops.append(message)
                return
        except (OSError, TimeoutError, websockets.WebSocketException):
            if agent.hello.is_set() or stop.is_set():
                raise
            agent.sockets_retried += 1
            await asyncio.sleep(0.5 * (attempt + 1))


# --------------------------------------------------------------------------- seats' phones


def _register_scenario(seats: Sequence[tuple[str, str]], expires: int) -> str:
    """One sipp call (one Call-ID: sipp maps answers by it; CSeq rising) that registers every
    seat in turn: sipp 3.6.1 takes the digest username
    and password only from ``-au``/``-ap`` or literal ``[authentication ...]``, never from an
    injection file's fields, so the credentials are written into the scenario."""
    blocks = []
    for n, (seat, password) in enumerate(seats):
        head = f"""
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{seat}@[remote_ip]:[remote_port]>;tag=reg{n}[pid]
      To: <sip:{seat}@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: {{cseq}} REGISTER
      Contact: <sip:{seat}@[local_ip]:[local_port]>
      {{auth}}Expires: {expires}
      Max-Forwards: 70
      User-Agent: helpline-bench-seats
      Content-Length: 0
"""
        first = head.replace("{cseq}", str(2 * n + 1)).replace("{auth}", "")
        second = head.replace("{cseq}", str(2 * n + 2)).replace(
            "{auth}", f"[authentication username={seat} password={password}]\n      "
        )
        blocks.append(
            f"""  <send retrans="500"><![CDATA[
{first}
    ]]></send>
  <recv response="401" auth="true"/>
  <send retrans="500"><![CDATA[
{second}
    ]]></send>
  <recv response="200"/>
"""
        )
    return (
        '<?xml version="1.0" encoding="ISO-8859-1" ?>\n'
        '<scenario name="helpline bench seats register">\n'
        + "".join(blocks)
        + '  <nop><action><log message="REGISTERED_ALL [clock_tick]"/></action></nop>\n'
        "</scenario>\n"
    )


def _answer_scenario(ring_ms: int, talk_ms: tuple[int, int]) -> str:
    """The seats' UAS: 180, ring, 200 with SDP, then the AGENT hangs up after a talk time
    drawn uniformly from ``talk_ms`` (a BYE of its own)."""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="helpline bench seats answer">
  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" check_it="true" assign_to="cseq"/>
      <ereg regexp=".*" search_in="hdr" header="From:" check_it="true" assign_to="caller"/>
      <ereg regexp="sip:[^>;]+" search_in="hdr" header="Contact:" check_it="true"
            assign_to="target"/>
    </action>
  </recv>
  <send><![CDATA[

      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[service]@[local_ip]:[local_port]>
      Content-Length: 0

    ]]></send>
  <recv request="CANCEL" timeout="{ring_ms}" ontimeout="answer"/>
  <send><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]></send>
  <send><![CDATA[

      SIP/2.0 487 Request Terminated
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      CSeq: [$cseq] INVITE
      Content-Length: 0

    ]]></send>
  <recv request="ACK" next="end"/>

  <label id="answer"/>
  <send retrans="500"><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      CSeq: [$cseq] INVITE
      Contact: <sip:[service]@[local_ip]:[local_port]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=agent 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-16
      a=sendrecv

    ]]></send>
  <recv request="ACK" crlf="true"/>
  <pause distribution="uniform" min="{talk_ms[0]}" max="{talk_ms[1]}"/>
  <send retrans="500"><![CDATA[

      BYE [$target] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[service]@[local_ip]:[local_port]>;tag=[pid]SIPpTag01[call_number]
      To: [$caller]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0

    ]]></send>
  <recv response="200" crlf="true"/>
  <label id="end"/>
</scenario>
"""


class SeatPhones:
    """Every seat's softphone in one sipp: registered from one port, answering there."""

    def __init__(
        self,
        settings: Settings,
        seats: Sequence[tuple[str, str]],
        workdir: Path,
        *,
        ring: float,
        talk: tuple[float, float],
        lifetime: float,
    ) -> None:
        self.settings = settings
        self.talk = talk
        self.seats = list(seats)
        self.workdir = workdir
        self.ring = ring
        self.lifetime = lifetime
        self.ip = "127.0.0.1"
        avoid = (settings.rtp_port_start, settings.rtp_port_end)
        self.port = free_udp_port(self.ip, avoid=avoid)
        self.media_port = free_udp_port(self.ip, span=4, avoid=avoid)
        self._proc: asyncio.subprocess.Process | None = None
        self.registered_in: float | None = None

    async def register(self) -> float:
        """Every seat from this one port, :data:`REGISTER_CHUNK` seats per sipp run in turn
        (sipp 3.6.1 will not parse a scenario file past 64 KB)."""
        t0 = time.monotonic()
        for first in range(0, len(self.seats), REGISTER_CHUNK):
            await self._register(self.seats[first : first + REGISTER_CHUNK], first)
        self.registered_in = time.monotonic() - t0
        return self.registered_in

    async def _register(self, seats: Sequence[tuple[str, str]], first: int) -> None:
        name = f"register{first:04d}"
        scenario = self.workdir / f"{name}.xml"
        scenario.write_text(_register_scenario(seats, int(self.lifetime) + 120))
        scenario.chmod(0o600)  # seats' SIP passwords
        within = 30.0 + len(seats) * 0.1
        args = [
            f"{self.settings.sip_host}:{self.settings.sip_port}",
            *("-sf", str(scenario), "-i", self.ip, "-p", str(self.port), "-m", "1"),
            *_common_args(self.workdir, name, within),
        ]
        proc = await _spawn(args, self.workdir, name)
        try:
            async with asyncio.timeout(within + 5):
                rc = await proc.wait()
        finally:
            await _terminate(proc)
        log = (self.workdir / f"{name}.log").read_text(errors="replace")
        if rc != 0 or "REGISTERED_ALL" not in log:
            raise RuntimeError(
                f"seats {seats[0][0]}..{seats[-1][0]} failed to register (sipp exit {rc}); see "
                f"{self.workdir}\n{_tail(self.workdir / f'{name}.errors')}"
            )

    async def start(self) -> None:
        await self.register()
        scenario = self.workdir / "seats_uas.xml"
        scenario.write_text(
            _answer_scenario(
                max(1, int(self.ring * 1000)), (int(self.talk[0] * 1000), int(self.talk[1] * 1000))
            )
        )
        args = [
            *("-sf", str(scenario), "-i", self.ip, "-mi", self.ip, "-p", str(self.port)),
            *("-mp", str(self.media_port), "-max_socket", "4096"),
            *("-trace_stat", "-stf", str(self.workdir / "seats_stat.csv"), "-fd", "2"),
            *_common_args(self.workdir, "seats", self.lifetime),
        ]
        self._proc = await _spawn(args, self.workdir, "seats")
        await asyncio.sleep(0.3)
        if self._proc.returncode is not None:
            raise RuntimeError(f"the seats' sipp exited at once; see {self.workdir}")

    async def close(self) -> None:
        if self._proc is not None:
            await _terminate(self._proc)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None


# --------------------------------------------------------------------------- citizens


def _stat_totals(path: Path) -> dict[str, int]:
    """The last row of sipp's ``-trace_stat`` file: cumulative counters."""
    with contextlib.suppress(OSError):
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
        if len(lines) >= 2:
            head, last = lines[0].split(";"), lines[-1].split(";")
            row = dict(zip(head, last, strict=False))
            out = {}
            for key in ("TotalCallCreated", "SuccessfulCall(C)", "FailedCall(C)"):
                with contextlib.suppress(KeyError, ValueError):
                    out[key] = int(row[key])
            return out
    return {}


def _rtt_ms(workdir: Path) -> list[float]:
    """Per-call INVITE → 200 (sipp's ``rtd="setup"``) from ``-trace_rtt``, milliseconds."""
    out: list[float] = []
    for path in workdir.glob("*_rtt.csv"):
        for line in path.read_text(errors="replace").splitlines()[1:]:
            parts = line.split(";")
            with contextlib.suppress(IndexError, ValueError):
                out.append(float(parts[1]))
    return out


@dataclass
class Step:
    index: int
    rate: float
    calls: int
    workdir: Path
    numbers: list[str]
    started_at: datetime | None = None
    returncode: int | None = None
    stats: dict[str, int] = field(default_factory=dict)


async def _citizen_step(settings: Settings, plan: LoadPlan, step: Step) -> None:
    wd = step.workdir
    wd.mkdir(parents=True)
    hold = IVR_TO_QUEUE + 2 * plan.patience + plan.ring + plan.talk[1]
    steps = [("1", KEYS_AT[0]), ("1", KEYS_AT[1] - KEYS_AT[0])]
    scenario = wd / "citizens.xml"
    scenario.write_text(
        _ENV.get_template("citizen_uac.xml").render(
            caller_id="[field0]",
            caller_name="Citizen",
            hold_ms=int(hold * 1000),
            speech=None,
            dtmf=[
                {"digit": d, "delay_ms": int(delay * 1000), "pcap": str(_step_pcap(wd, i, d))}
                for i, (d, delay) in enumerate(steps)
            ],
        )
    )
    (wd / "numbers.csv").write_text("SEQUENTIAL\n" + "\n".join(step.numbers) + "\n")
    ip = settings.trunk_address
    avoid = (settings.rtp_port_start, settings.rtp_port_end)
    limit = plan.step_seconds + KEYS_AT[1] + hold + 120
    args = [
        f"{settings.sip_host}:{settings.sip_port}",
        *("-sf", str(scenario), "-inf", str(wd / "numbers.csv"), "-s", settings.helpline_number),
        *("-i", ip, "-mi", ip, "-p", str(free_udp_port(ip, avoid=avoid))),
        *("-mp", str(free_udp_port(ip, span=4, avoid=avoid))),
        # The step's calls spread evenly over the step (a fractional rate too: a quiet hour
        # of a replayed day is 17 calls in 60 s).
        *("-r", str(step.calls), "-rp", str(round(plan.step_seconds * 1000))),
        *("-m", str(step.calls), "-l", "5000"),
        *("-trace_stat", "-stf", str(wd / "stat.csv"), "-fd", "1"),
        *("-trace_rtt", "-rtt_freq", "1"),
        *_common_args(wd, "citizens", limit),
    ]
    step.started_at = datetime.now(UTC)
    proc = await _spawn(args, wd, "citizens")
    try:
        async with asyncio.timeout(limit + 10):
            step.returncode = await proc.wait()
    except TimeoutError:
        step.returncode = None
    finally:
        await _terminate(proc)
    step.stats = _stat_totals(wd / "stat.csv")


# --------------------------------------------------------------------------- measurements


_DB_COUNTERS = (
    "xact_commit",
    "xact_rollback",
    "tup_returned",
    "tup_fetched",
    "tup_inserted",
    "tup_updated",
    "tup_deleted",
)


async def _db_counters(settings: Settings) -> dict[str, int]:
    conn = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        row = await conn.fetchrow(
            f"SELECT {', '.join(_DB_COUNTERS)} FROM pg_stat_database "
            "WHERE datname = current_database()"
        )
    finally:
        await conn.close()
    assert row is not None
    return {k: int(row[k]) for k in _DB_COUNTERS}


def _backend_pids(settings: Settings) -> dict[str, int]:
    pids = {name: services.state(settings, name).pid for name in services.SERVICES}
    out = {name: pid for name, pid in pids.items() if pid is not None}
    asterisk = AsteriskInstance(settings)._pid()
    if asterisk is not None:
        out["asterisk"] = asterisk
    return out


def _cpu(pids: dict[str, int]) -> dict[str, float]:
    out = {}
    for name, pid in pids.items():
        with contextlib.suppress(OSError):
            out[name] = cpu_seconds(pid)
    return out


_CALLS_OF_STEP = text(
    """
    SELECT uniqueid, caller_number, disposition, agent_seat, started_at, queue_joined_at,
           agent_connected_at, ended_at
    FROM calls WHERE caller_number LIKE :prefix AND started_at >= :since
    """
)


async def _settled(
    sessions: async_sessionmaker[AsyncSession], prefix: str, since: datetime, expected: int
) -> list[Any]:
    """The calls of a run once each has a disposition (or after 60 s, as they are)."""
    deadline = time.monotonic() + 60
    rows: list[Any] = []
    while time.monotonic() < deadline:
        async with sessions() as session:
            rows = list(
                (
                    await session.execute(_CALLS_OF_STEP, {"prefix": prefix + "%", "since": since})
                ).all()
            )
        if len(rows) >= expected and all(r.disposition is not None for r in rows):
            break
        await asyncio.sleep(1.0)
    return rows


async def _seats_left_on_a_call(
    sessions: async_sessionmaker[AsyncSession], seats: list[str], within: float = 15.0
) -> dict[str, str]:
    """Seats whose recorded current call outlives every call of the run by ``within`` s (the
    seat would show the wallboard a call that is over): seat -> call uniqueid."""
    deadline = time.monotonic() + within
    while True:
        async with sessions() as session:
            on_a_call = dict(
                (
                    await session.execute(
                        select(SeatStatus.seat, SeatStatus.current_call_uniqueid).where(
                            SeatStatus.seat.in_(seats),
                            SeatStatus.current_call_uniqueid.is_not(None),
                        )
                    )
                ).all()
            )
        if not on_a_call or time.monotonic() > deadline:
            return {seat: str(call) for seat, call in on_a_call.items()}
        await asyncio.sleep(0.5)


def _step_report(step: Step, rows: list[Any], rtt: list[float], plan: LoadPlan) -> dict[str, Any]:
    numbers = set(step.numbers)
    mine = [r for r in rows if r.caller_number in numbers]
    per_number = Counter(r.caller_number for r in mine)
    answered = [r for r in mine if r.disposition == "answered" and r.agent_connected_at]
    missing = [n for n in step.numbers if per_number[n] == 0]
    twice = [n for n, c in per_number.items() if c > 1]
    sipp_failed = step.stats.get("FailedCall(C)", step.calls if step.returncode is None else 0)
    to_agent = [
        (r.agent_connected_at - r.queue_joined_at).total_seconds()
        for r in answered
        if r.queue_joined_at is not None
    ]
    late = sum(1 for wait in to_agent if wait > plan.patience)
    # Per call, but sipp's rtt file does not name the call, so a call both answered late by
    # Asterisk and never answered by an agent counts twice: failed is then an upper bound.
    answered_late = sum(1 for ms in rtt if ms > plan.answer_within * 1000)
    unanswered = step.calls - len({r.caller_number for r in answered})
    failed = max(sipp_failed, unanswered) + len(twice) + late + answered_late
    ivr = [
        (r.queue_joined_at - r.started_at).total_seconds()
        for r in mine
        if r.queue_joined_at is not None and r.started_at is not None
    ]
    return {
        "rate_cps": step.rate,
        "calls": step.calls,
        "sipp_successful": step.stats.get("SuccessfulCall(C)"),
        "sipp_failed": sipp_failed,
        "sipp_exit": step.returncode,
        "recorded": len(mine),
        "answered_by_agent": len(answered),
        "dispositions": dict(Counter(str(r.disposition) for r in mine)),
        "not_recorded": len(missing),
        "recorded_twice": len(twice),
        "answered_after_patience": late,
        "asterisk_answered_late": answered_late,
        "failed": failed,
        "answer_delay_ms": _summary(rtt),
        "time_to_agent_s": _summary(to_agent),
        "ivr_to_queue_s": _summary(ivr),
    }


def _pop_report(agents: list[Agent], rows: list[Any]) -> dict[str, Any]:
    """Every answered call's screen-pop: delivered once, to the socket of its seat's agent."""
    by_uniqueid: dict[str, list[str]] = {}
    for agent in agents:
        for pop in agent.pops:
            by_uniqueid.setdefault(str(pop.get("uniqueid")), []).append(agent.seat)
    answered = [r for r in rows if r.disposition == "answered" and r.agent_seat]
    once = sum(1 for r in answered if by_uniqueid.get(r.uniqueid) == [r.agent_seat])
    missing = sum(1 for r in answered if r.uniqueid not in by_uniqueid)
    wrong = sum(
        1
        for r in answered
        if r.uniqueid in by_uniqueid and set(by_uniqueid[r.uniqueid]) != {r.agent_seat}
    )
    duplicated = sum(1 for r in answered if len(by_uniqueid.get(r.uniqueid, [])) > 1)
    return {
        "answered_calls": len(answered),
        "delivered_once_to_its_seat": once,
        "missing": missing,
        "wrong_seat": wrong,
        "duplicated": duplicated,
    }


async def run_load(settings: Settings, plan: LoadPlan, workdir: Path) -> dict[str, Any]:
    """Seats, agents and sockets up, then the citizens' steps; the report (see module doc)."""
    engine = create_engine(settings, pool_size=2)
    sessions = session_factory(engine)
    stop = asyncio.Event()
    sockets: list[asyncio.Task[None]] = []
    phones: SeatPhones | None = None
    peer: dict[str, Any] | None = None
    agents: list[Agent] = []
    base = f"http://{settings.api_host}:{settings.api_port}"
    limits = httpx.Limits(max_connections=plan.concurrency * 2)
    setup: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as api:
        try:
            t = time.monotonic()
            names = [seat_name(plan.first_seat + i) for i in range(plan.seats)]
            async with sessions() as session:
                found = dict(
                    (
                        await session.execute(
                            select(Seat.name, Seat.sip_password).where(Seat.name.in_(names))
                        )
                    ).all()
                )
            if len(found) != len(names):
                raise RuntimeError(f"{len(names) - len(found)} seats missing: PUT /seats/count")
            ladder = len(plan.rates) * plan.step_seconds + plan.talk[1] + plan.ring + 120
            duration = ladder * (2 if plan.peer else 1) + 60
            phones = SeatPhones(
                settings,
                [(n, str(found[n])) for n in names],
                workdir,
                ring=plan.ring,
                talk=plan.talk,
                lifetime=duration + 60,
            )
            await phones.start()
            setup["register_s"] = round(phones.registered_in or 0.0, 2)
            t = time.monotonic()
            agents, setup["api_logins_per_s"] = await _make_agents(sessions, api, plan)
            setup["tokens_s"] = round(time.monotonic() - t, 2)
            t = time.monotonic()
            await _login(sessions, api, agents, plan.concurrency)
            setup["login_s"] = round(time.monotonic() - t, 2)
            t = time.monotonic()
            gate = asyncio.Semaphore(plan.concurrency)
            sockets = [asyncio.create_task(_agent_socket(settings, a, stop, gate)) for a in agents]
            async with asyncio.timeout(180):
                await asyncio.gather(*(a.hello.wait() for a in agents))
            setup["sockets_s"] = round(time.monotonic() - t, 2)
            setup["socket_retries"] = sum(a.sockets_retried for a in agents)

            result = await _ladder(settings, plan, sessions, agents, workdir, plan.number_prefix)
            if plan.peer:
                # The peer: the same Asterisk, queue, seats, agents and services, with the
                # FastAGI server stopped, so every call takes the dialplan's fallback straight
                # into the queue (what the platform carries without our IVR).
                services.stop(settings, "agi")
                try:
                    peer = await _ladder(
                        settings, plan, sessions, agents, workdir / "peer", plan.peer_prefix
                    )
                finally:
                    services.start(settings, "agi")
        finally:
            stop.set()
            for task in sockets:
                with contextlib.suppress(Exception):
                    await task
            if agents and all(a.token for a in agents):
                await _logout(api, agents, plan.concurrency)
            if phones is not None:
                await phones.close()
            await engine.dispose()

    pops = _pop_report(agents, result.pop("rows"))
    if peer is not None:
        peer["screen_pops"] = _pop_report(agents, peer.pop("rows"))
    return {
        "seats": plan.seats,
        "agents_logged_in": len(agents),
        "agent_sockets": len(sockets),
        "setup_seconds": setup,
        "step_seconds": plan.step_seconds,
        "talk_seconds": list(plan.talk),
        "patience_seconds": plan.patience,
        "answer_within_seconds": plan.answer_within,
        "ring_seconds": plan.ring,
        **result,
        "screen_pops": pops,
        "peer": peer,
    }


async def _ladder(
    settings: Settings,
    plan: LoadPlan,
    sessions: async_sessionmaker[AsyncSession],
    agents: list[Agent],
    workdir: Path,
    prefix: str,
) -> dict[str, Any]:
    """The citizens' steps at ``plan.rates`` (callers numbered ``<prefix><step><n>``), and
    what they cost: per step, the calls' fate; over the ladder, CPU and database per call."""
    pids = _backend_pids(settings)
    cpu0, db0 = _cpu(pids), await _db_counters(settings)
    since = datetime.now(UTC)
    t0 = time.monotonic()
    steps = [
        Step(
            i,
            rate,
            calls := max(1, round(rate * plan.step_seconds)),
            workdir / f"step{i:02d}",
            [f"{prefix}{i:02d}{n:06d}" for n in range(calls)],
        )
        for i, rate in enumerate(plan.rates)
    ]

    async def at_its_time(step: Step) -> None:
        start = t0 + step.index * plan.step_seconds
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        await _citizen_step(settings, plan, step)

    await asyncio.gather(*(at_its_time(s) for s in steps))
    offered = sum(s.calls for s in steps)
    rows = await _settled(sessions, prefix, since, offered)
    elapsed = time.monotonic() - t0
    left_on_a_call = await _seats_left_on_a_call(sessions, [a.seat for a in agents])
    await asyncio.sleep(1.5)  # the API's last pops; PostgreSQL's statistics flush
    cpu1, db1 = _cpu(pids), await _db_counters(settings)
    reports = [_step_report(s, rows, _rtt_ms(s.workdir), plan) for s in steps]
    clean_prefix = 0.0
    for r in reports:  # the highest rate reached with every step up to it clean
        if r["failed"]:
            break
        clean_prefix = r["rate_cps"]
    cpu = {k: round(cpu1.get(k, 0.0) - cpu0.get(k, 0.0), 2) for k in cpu0}
    db = {k: db1[k] - db0[k] for k in _DB_COUNTERS}
    return {
        "steps": reports,
        "max_sustained_cps": clean_prefix,
        "clean_rates": [r["rate_cps"] for r in reports if r["failed"] == 0],
        "calls": offered,
        "elapsed_s": round(elapsed, 1),
        "seats_left_on_a_call": left_on_a_call,
        "cpu_seconds": cpu,
        "cpu_ms_per_call": {k: round(v * 1000 / offered, 2) for k, v in cpu.items()},
        "db_per_call": {k: round(v / offered, 2) for k, v in db.items()},
        "db_note": "pg_stat_database deltas of the instance's database (pg_stat_statements "
        "is not preloaded); xact_commit counts transactions, not statements",
        "rows": rows,
    }


# --------------------------------------------------------------------------- the stack


@contextlib.contextmanager
def bench_stack(offset: int, state_dir: Path, seats: int = 500) -> Iterator[Settings]:
    """The whole helpline as ``helpline up`` starts it, at ports shifted by ``offset``, on a
    fresh database that is dropped afterwards, with ``seats`` seats (at least the 500 of a
    fresh install)."""
    base = Settings.load(Path(os.environ.get("HELPLINE_STATE_DIR", ".helpline")))
    db_name = f"helpline_benchsipp_{os.getpid()}"
    url = make_url(base.database_url).set(database=db_name).render_as_string(hide_password=False)
    env = {
        "HELPLINE_INSTANCE": f"bsipp{offset}",
        "HELPLINE_AMI_PORT": str(26038 + offset),
        "HELPLINE_SIP_PORT": str(26060 + offset),
        "HELPLINE_AGI_PORT": str(26573 + offset),
        "HELPLINE_API_PORT": str(26000 + offset),
        "HELPLINE_WSS_PORT": str(26089 + offset),
        # Four ports per answered call (two channels, RTP + RTCP) plus the IVR's: the test
        # instances' 1,000 ports ran out at 250 calls up ("couldn't allocate a port for RTP").
        "HELPLINE_RTP_PORT_START": str(RTP_PORTS[0]),
        "HELPLINE_RTP_PORT_END": str(RTP_PORTS[1]),
        "HELPLINE_DATABASE_URL": url,
        # The dialer runs (its passes and heartbeats cost what they cost) but dials nobody:
        # the trunk here is our sipp citizens, which do not answer calls.
        "HELPLINE_DAILY_OUTBOUND_BUDGET": "0",
        "HELPLINE_SEAT_COUNT": str(max(500, seats)),
    }
    (state_dir / "instance.env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    settings = ensure_secrets(Settings.load(state_dir))
    prepare_database(settings)
    try:
        prepare_asterisk(settings, seed(settings))
        for name in services.SERVICES:
            services.start(settings, name)
        wait_healthy(settings, timeout=90)
        yield settings
    finally:
        for name in reversed(services.SERVICES):
            services.stop(settings, name)
        AsteriskInstance(settings).stop()
        asyncio.run(drop_database(url))


def day_rates(scale: float, compression: float) -> list[float]:
    """Calls/s of each IST hour of ``scale`` x the 88k inbound day (``bench.day.PROFILE``)
    with the clock ``compression`` times faster: 0.1 and 60 give 0.29 calls/s at 03-04 and
    20 calls/s at the 10-11 peak."""
    return [DAY_INBOUND * scale * share / 100 / 3600 * compression for share in PROFILE]


def run(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench sipp")
    parser.add_argument("--seats", type=int, default=500)
    parser.add_argument("--rates", default="10,15,20,25,30", help="calls/s of each step")
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument(
        "--talk",
        default="5,8",
        help="an agent talks MIN,MAX seconds (5-8: 500 agents carry ~40 calls/s, above the aim)",
    )
    parser.add_argument("--patience", type=float, default=20.0, help="seconds in the queue")
    parser.add_argument(
        "--answer-within",
        type=float,
        default=2.0,
        help="seconds from INVITE to Asterisk's 200 OK; a call answered later counts as failed",
    )
    parser.add_argument("--ring", type=float, default=1.0, help="seconds a seat rings")
    parser.add_argument("--keep", type=Path, help="keep sipp's files in this directory")
    parser.add_argument("--quick", action="store_true", help="20 seats, 2 calls/s for 15 s")
    parser.add_argument(
        "--no-peer", action="store_true", help="skip the peer's ladder (FastAGI server stopped)"
    )
    parser.add_argument(
        "--day",
        metavar="SCALE,COMPRESSION",
        help="replay the day's 24 hours instead of --rates: SCALE of the 88k inbound day "
        "(bench.day.PROFILE by hour), each hour a step of 3600/COMPRESSION s (0.1,60: 24 min)",
    )
    parser.add_argument(
        "--port-offset", type=int, default=int(os.environ.get("HELPLINE_TEST_PORT_OFFSET", "0"))
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seats, args.rates, args.step_seconds, args.talk = 20, "2", 15.0, "2,4"
        args.no_peer = True
    rates = [float(r) for r in args.rates.split(",")]
    if args.day:
        scale, compression = (float(x) for x in args.day.split(","))
        rates, args.step_seconds = day_rates(scale, compression), 3600 / compression
        args.no_peer = True
    plan = LoadPlan(
        seats=args.seats,
        rates=rates,
        step_seconds=args.step_seconds,
        talk=(float(args.talk.split(",")[0]), float(args.talk.split(",")[-1])),
        patience=args.patience,
        answer_within=args.answer_within,
        ring=args.ring,
        peer=not args.no_peer,
    )
    fds = raise_fd_limit()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="helpline-bench-sipp-") as tmp:
        state_dir = (args.keep or Path(tmp)) / "state"
        state_dir.mkdir(parents=True)
        with bench_stack(args.port_offset, state_dir, args.seats) as settings:
            workdir = args.keep or Path(tmp) / "sipp"
            workdir.mkdir(parents=True, exist_ok=True)
            result = asyncio.run(run_load(settings, plan, workdir))
    load = os.getloadavg()
    peer = result.get("peer")
    return {
        "bench": "sipp",
        **result,
        "ours": result["max_sustained_cps"],
        "peer_note": "the same stack with the FastAGI server stopped: every call takes the "
        "dialplan's fallback straight into the queue",
        "ratio": ratio(result["max_sustained_cps"], peer["max_sustained_cps"]) if peer else None,
        "wall_s": round(time.monotonic() - started, 1),
        "fd_limit": fds,
        "load_average_after": [round(x, 2) for x in load],
        "machine": machine(pinned=False),
    }
