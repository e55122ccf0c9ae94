"""Issue 15's database faults, on the real service processes, while work flows.

The helpline's services (``python -m helpline api|queue-manager|agi|dialer|sla``) run against a
PostgreSQL cluster of this test's own (Debian's initdb/pg_ctl, a temp dir, its own port: the
machine's server is never touched), through a TCP proxy in this process that can blackhole the
link (sockets held, nothing forwarded: what a cut network looks like, unlike a refusal). A fake
AMI server stands in for Asterisk (no calls are needed here). Agents' desks keep filing
complaints with Idempotency keys and retry every unacknowledged one with the same key, and read
acknowledged ones back by number. Meanwhile, at random (seeded) moments, one of:

* ``PostgreSQL restarted``: ``pg_ctl restart -m fast``;
* ``PostgreSQL killed -9``: SIGKILL to the postmaster, then started again (crash recovery);
* ``database unreachable``: the proxy blackholes every link for ``HELPLINE_DB_BLACKHOLE_SECONDS``
  (default 2 s, so that 20 fit the suite's budget; ``HELPLINE_FAULTS_FULL=1`` makes it the
  issue's 30 s, about 12 minutes for the 20);
* ``API killed between commit and response``: SIGKILL to the API while creates are in flight,
  then started again.

After each: exactly one complaint per idempotency key; every acknowledged complaint number
exists and reads back the same; while the database is down the API answers 503 (never another
5xx) and ``/health`` is degraded naming the database; once it is back, no 5xx at all, every
heartbeat written again within :data:`BEATS_WITHIN` s, ``/health`` ok, every service process
alive (none needed a restart). Counts go to the shared ledger (tests/faults.py).
``HELPLINE_FAULT_SEED`` replays a run; ``HELPLINE_DB_FAULT_COUNT`` sets the count of each fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from core.config import Settings
from core.db.heartbeat import EXPECTED_SERVICES
from core.db.migrate import upgrade
from core.db.session import ensure_database
from core.protocols.ami import AMIMessage
from core.transport.fake_ami import FakeAMIServer, FakeAMISession
from helpline import services
from helpline.cli import seed
from helpline.secrets import ensure_secrets
from tests import faults
from tests.conftest import seed_reference
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PORT_OFFSET = int(os.environ.get("HELPLINE_TEST_PORT_OFFSET", "0"))
#: Apart from tests/integration/conftest.py's instance (26xxx), which may run in the same session.
API_PORT = 28000 + PORT_OFFSET
AGI_PORT = 28001 + PORT_OFFSET
PG_PORT = 28002 + PORT_OFFSET
PROXY_PORT = 28003 + PORT_OFFSET
AMI_PORT = 28004 + PORT_OFFSET

FULL = os.environ.get("HELPLINE_FAULTS_FULL") == "1"
COUNT = int(os.environ.get("HELPLINE_DB_FAULT_COUNT", "20"))
BLACKHOLE_SECONDS = float(os.environ.get("HELPLINE_DB_BLACKHOLE_SECONDS", "30" if FULL else "2"))
SEED = int(os.environ.get("HELPLINE_FAULT_SEED", str(random.SystemRandom().randrange(10**6))))
#: Heartbeats in this suite are every 0.25 s; each service must have written its row again
#: within this many seconds of the database's return (its pool and LISTEN link reconnected).
BEATS_WITHIN = 10.0
DESKS = 3
#: /health's probes give up after 2 s; it answers within this, the database away or not.
HEALTH_WITHIN = 3.5
#: Seconds each step took, by step: printed at the end (what the suite's time is made of).
PHASES: dict[str, list[float]] = {}
#: The desks' answers while the database was away (0: none, the request timed out or the API
#: was down), by fault: printed at the end.
DURING: dict[str, Counter[int]] = {}


def phase(name: str, seconds: float) -> None:
    PHASES.setdefault(name, []).append(seconds)


RESTART = "PostgreSQL restarted"
KILL9 = "PostgreSQL killed -9"
BLACKHOLE = "database unreachable" + (" for 30 s" if FULL else f" ({BLACKHOLE_SECONDS:g} s)")
API_KILL = "API killed between commit and response"

WHAT_WHERE = {
    "department": "police",
    "category": "police.harassment",
    "district": "lucknow",
    "thana": "lucknow_hazratganj",
}


# ----------------------------------------------------------------------------- PostgreSQL
PR_SET_CHILD_SUBREAPER = 36


def subreaper(on: bool) -> bool:
    """Make this process (Linux) adopt its orphaned descendants, or stop. A postmaster killed
    with SIGKILL stays a zombie until its parent reaps it, and PostgreSQL will not start while
    the pid in its lock file exists: adopted, it is reaped at once instead of when this
    machine's init gets to it (a second or more, in a container)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def reap_postgres() -> None:
    """Reap the ``postgres`` processes of ours that have ended (adopted as their subreaper)."""
    me = os.getpid()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = stat.read_text()
            name = text[text.index("(") + 1 : text.rindex(")")]
            state, ppid = text[text.rindex(")") + 2 :].split()[:2]
            if int(ppid) == me and state == "Z" and name.startswith("postgres"):
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(int(stat.parent.name), 0)


class Cluster:
    """A PostgreSQL 15 cluster of this test's own, run as the ``postgres`` user when we are
    root (initdb refuses root)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reaping = subreaper(True)
        self.root = Path(tempfile.mkdtemp(prefix="helpline-dbfaults-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._as, *args], capture_output=True, text=True, timeout=timeout, check=False
        )

    def _ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), *args)

    def init(self) -> None:
        done = self._run(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "-E", "UTF8", "--locale", "C.UTF-8",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        with (self.data / "postgresql.conf").open("a") as conf:
            # fsync only matters when the machine crashes, not a process: killing the
            # postmaster still leaves every acknowledged commit in the OS's page cache.
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\nfsync = off\n"
                "max_connections = 200\nshared_buffers = 32MB\n"
            )
        self.start()

    def start(self, within: float = 60) -> None:
        """Start; after a SIGKILL the orphaned backends may hold the shared memory for a
        moment, so a refusal is tried again until ``within``."""
        deadline = time.monotonic() + within
        while True:
            done = self._ctl("start", "-w", "-t", "30")
            reap_postgres()
            if done.returncode == 0:
                return
            assert time.monotonic() < deadline, (done.stdout, done.stderr, self.tail())
            time.sleep(0.2)

    def restart(self) -> None:
        done = self._ctl("restart", "-m", "fast", "-w", "-t", "30")
        reap_postgres()
        assert done.returncode == 0, (done.stdout, done.stderr, self.tail())

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def kill9(self) -> None:
        pid = self.postmaster_pid()
        os.kill(pid, signal.SIGKILL)
        if self.reaping:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        reap_postgres()

    def stop(self) -> None:
        self._ctl("stop", "-m", "immediate", "-w", "-t", "30")
        reap_postgres()
        if self.reaping:
            subreaper(False)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    def url(self, port: int | None = None, database: str = "helpline") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{port or self.port}/{database}"


# ----------------------------------------------------------------------------- the link
class Blackhole:
    """A TCP proxy in front of PostgreSQL. Open, it forwards both ways; blackholed, it keeps
    accepting and holding sockets but forwards nothing (the peer sees silence, not a refusal,
    as when a network path is cut). When it opens again, what was held flows on."""

    def __init__(self, port: int, upstream: int) -> None:
        self.port = port
        self.upstream = upstream
        self.open = asyncio.Event()
        self.open.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True
        )

    async def close(self) -> None:
        """Stop listening and cut every link; each link's task ends on its own (a cancelled
        one would be logged by asyncio's server as an error)."""
        if self._server is not None:
            self._server.close()
        self.open.set()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        me = asyncio.current_task()
        assert me is not None
        self._tasks.add(me)
        try:
            await self.open.wait()
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
            except OSError:  # PostgreSQL is down: the client sees its link closed
                return
            self._writers.add(up_writer)
            pumps = [
                asyncio.create_task(self._pump(reader, up_writer)),
                asyncio.create_task(self._pump(up_reader, writer)),
            ]
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            up_writer.transport.abort()
            self._writers.discard(up_writer)
        finally:
            writer.transport.abort()
            self._writers.discard(writer)
            self._tasks.discard(me)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(65536):
                await self.open.wait()  # blackholed: the bytes wait here, unforwarded
                sink.write(data)
                await sink.drain()


class AnyServiceAMI(FakeAMIServer):
    """The fake AMI server accepting each service's own AMI user (the API's, the queue
    manager's, the dialer's)."""

    def __init__(self, settings: Settings, port: int) -> None:
        super().__init__(port=port, queues=(settings.queue_name,))
        self.users = {
            settings.ami_username(name): settings.ami_secret(name)
            for name in ("api", "queue_manager", "outbound_dialer")
        }

    async def _login(self, session: FakeAMISession, action: AMIMessage) -> None:
        user = action.get("Username") or ""
        self.username, self.secret = user, self.users.get(user, "\x00never")
        await super()._login(session, action)


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if not (PG_BIN / "pg_ctl").exists():
        pytest.skip("PostgreSQL 15 server binaries are not installed")
    own = Cluster(PG_PORT)
    try:
        own.init()
        yield own
    finally:
        own.stop()
        shutil.rmtree(own.root, ignore_errors=True)


@pytest.fixture(scope="module")
def instance(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The services' settings: the database through the proxy, heartbeats every 0.25 s."""
    state_dir = tmp_path_factory.mktemp("helpline-dbfaults")
    env = {
        "HELPLINE_INSTANCE": f"dbfaults{PORT_OFFSET or ''}",
        "HELPLINE_API_PORT": API_PORT,
        "HELPLINE_AGI_PORT": AGI_PORT,
        "HELPLINE_AMI_PORT": AMI_PORT,
        "HELPLINE_DATABASE_URL": cluster.url(PROXY_PORT),
        "HELPLINE_HEARTBEAT_SECONDS": 0.25,
        "HELPLINE_DAILY_OUTBOUND_BUDGET": 0,
        "HELPLINE_SEAT_COUNT": 5,
    }
    (state_dir / "instance.env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    settings = ensure_secrets(Settings.load(state_dir))
    direct = settings.model_copy(update={"database_url": cluster.url()})
    asyncio.run(ensure_database(direct))
    upgrade(direct)
    asyncio.run(seed_reference(direct))
    seed(direct)
    return settings


@dataclass
class Desks:
    """Agents filing complaints with Idempotency keys, each retried with its key until acked."""

    api: httpx.AsyncClient
    headers: dict[str, str]
    rng: random.Random
    #: key -> (number, the body sent)
    acked: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    sent: set[str] = field(default_factory=set)
    #: (monotonic time the request started, status or 0 for no answer)
    answers: list[tuple[float, int]] = field(default_factory=list)
    stopping: bool = False
    serial: int = 0

    async def desk(self, n: int) -> None:
        while not self.stopping:
            self.serial += 1
            key = f"dbf-{SEED}-{n}-{self.serial}"
            body = {
                # The key in the text too: a complaint filed twice is found even if the key
                # itself was not stored.
                "description": f"street light broken ({key})",
                "caller_number": f"9{self.rng.randrange(10**9):09d}",
            } | WHAT_WHERE
            self.sent.add(key)
            while True:
                started = time.monotonic()
                try:
                    answer = await self.api.post(
                        "/complaints", json=body, headers=self.headers | {"Idempotency-Key": key}
                    )
                    status = answer.status_code
                except httpx.HTTPError:
                    status = 0
                self.answers.append((started, status))
                if status in (200, 201):
                    self.acked[key] = (answer.json()["number"], body)
                    break
                await asyncio.sleep(0.1)

    def answers_since(self, since: float) -> Counter[int]:
        return Counter(status for started, status in self.answers if started >= since)


async def health(api: httpx.AsyncClient) -> tuple[int, dict[str, Any]]:
    try:
        answer = await api.get("/health", timeout=10)
    except httpx.HTTPError as error:
        return 0, {"error": repr(error)}
    return answer.status_code, answer.json()


class Direct:
    """This test's own look at the database, past the proxy: a new connection per question
    (the faults end every connection)."""

    def __init__(self, cluster: Cluster) -> None:
        self.dsn = f"postgresql://postgres@127.0.0.1:{cluster.port}/helpline"

    async def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.dsn, timeout=10)
        try:
            rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
            return rows
        finally:
            await conn.close()


async def stale_services(conn: Direct, since: float) -> set[str]:
    """Services whose heartbeat row was not written after ``since`` (epoch seconds)."""
    rows = await conn.fetch(
        "SELECT service FROM service_heartbeats WHERE seen_at > to_timestamp($1)", since
    )
    return set(EXPECTED_SERVICES) - {row["service"] for row in rows}


@contextlib.asynccontextmanager
async def running_stack(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    t0 = time.monotonic()
    try:
        for name in services.SERVICES:
            services.start(settings, name)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{API_PORT}", timeout=15) as api:
            await wait_for(
                lambda: _ok(api), 90, interval=0.5, what="the services healthy on the own cluster"
            )
            print(f"stack up in {time.monotonic() - t0:.1f} s")
            yield api
    finally:
        t0 = time.monotonic()
        for name in reversed(services.SERVICES):
            # In a thread: this loop serves the proxy and the fake AMI they drain through.
            await asyncio.to_thread(services.stop, settings, name)
        print(f"stack down in {time.monotonic() - t0:.1f} s")


async def _ok(api: httpx.AsyncClient) -> bool:
    code, _ = await health(api)
    return code == 200


# ----------------------------------------------------------------------------- the suite
async def test_database_faults_while_complaints_flow(cluster: Cluster, instance: Settings) -> None:
    settings = instance
    rng = random.Random(SEED)
    print(f"\ndatabase faults: seed {SEED} (HELPLINE_FAULT_SEED={SEED} replays it)")
    proxy = Blackhole(PROXY_PORT, cluster.port)
    await proxy.start()
    ami = AnyServiceAMI(settings, AMI_PORT)
    await ami.start()
    direct = Direct(cluster)
    workers: list[asyncio.Task[None]] = []
    ledgers = {kind: faults.fault(kind) for kind in (RESTART, KILL9, BLACKHOLE, API_KILL)}
    try:
        async with running_stack(settings) as api:
            users = json.loads((settings.state_dir / "demo-credentials.json").read_text())
            agent = users["agent"][0]
            login = await api.post(
                "/auth/token", data={"username": agent["username"], "password": agent["password"]}
            )
            assert login.status_code == 200, login.text
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            desks = Desks(api, headers, random.Random(SEED + 1))
            workers += [asyncio.create_task(desks.desk(n)) for n in range(DESKS)]
            pids = {name: services.state(settings, name).pid for name in services.SERVICES}
            # The database faults in a random order; the API is killed at the start of COUNT
            # random rounds (creates in flight), and starts while that round's database fault
            # happens: both are injected in one round's time.
            plan = [kind for kind in (RESTART, KILL9, BLACKHOLE) for _ in range(COUNT)]
            rng.shuffle(plan)
            # In rounds where the database stays away for a while (its start after a kill, or
            # a blackhole), so that the API's own start overlaps it instead of adding to it.
            long_rounds = [i for i, kind in enumerate(plan) if kind != RESTART]
            api_rounds = set(rng.sample(long_rounds, min(COUNT, len(long_rounds))))
            started = time.monotonic()
            timings: dict[str, list[float]] = {kind: [] for kind in ledgers}
            for round_, kind in enumerate(plan):
                await asyncio.sleep(rng.uniform(0.05, 0.4))  # work flows; a random moment
                api_killed = round_ in api_rounds
                where = (
                    f"seed {SEED}, round {round_} ({kind}{', API killed' if api_killed else ''})"
                )
                this = Round(where, [ledgers[kind]] + ([ledgers[API_KILL]] if api_killed else []))
                t0 = down_at = time.monotonic()
                if api_killed:
                    old = services.state(settings, "api").pid
                    await asyncio.to_thread(services.kill, settings, "api")
                    pids["api"] = services.start(settings, "api").pid
                    assert pids["api"] != old
                    ledgers[API_KILL].injected += 1
                if kind == RESTART:
                    await asyncio.to_thread(cluster.restart)
                elif kind == KILL9:
                    cluster.kill9()
                    if not api_killed:
                        await degraded(this, api, "PostgreSQL is dead")
                    await asyncio.to_thread(cluster.start)
                else:
                    proxy.open.clear()
                    if not api_killed:
                        await degraded(this, api, "the database is unreachable")
                    await asyncio.sleep(max(0.0, BLACKHOLE_SECONDS - (time.monotonic() - t0)))
                    proxy.open.set()
                ledgers[kind].injected += 1
                phase(f"inject {kind[:12]}", time.monotonic() - t0)
                await check_after(this, settings, api, direct, desks, pids, down_at)
                timings[kind].append(time.monotonic() - t0)
            desks.stopping = True
            t1 = time.monotonic()
            await asyncio.wait_for(asyncio.gather(*workers), 60)
            print(f"desks stopped in {time.monotonic() - t1:.1f} s")
            end = Round(f"seed {SEED}, the end", [ledgers[API_KILL]])
            await check_idempotency(end, api, direct, desks)
            print(
                f"database faults: {len(plan)} injected in {time.monotonic() - started:.0f} s; "
                f"{len(desks.acked)} complaints acknowledged; answers "
                f"{dict(sorted(Counter(s for _, s in desks.answers).items()))}; mean s per fault "
                + ", ".join(f"{k}: {sum(v) / len(v):.1f}" for k, v in timings.items() if v)
            )
            print(
                "answers while down: "
                + "; ".join(f"{k} {dict(sorted(v.items()))}" for k, v in DURING.items())
            )
            print(
                "steps (mean/max s): "
                + "; ".join(f"{k} {sum(v) / len(v):.2f}/{max(v):.2f}" for k, v in PHASES.items())
            )
    finally:
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        await ami.close()
        await proxy.close()
    for ledger in ledgers.values():
        for violation in ledger.violations:
            print(f"violation: {ledger.name}: {violation}")
    for ledger in ledgers.values():
        ledger.assert_clean()


@dataclass
class Round:
    """One round's faults: each invariant counts in the ledger of every fault injected."""

    where: str
    ledgers: list[faults.Fault]

    def check(self, holds: bool, violation: str) -> bool:
        for ledger in self.ledgers:
            ledger.check(holds, f"{self.where}: {violation}")
        return holds


async def degraded(this: Round, api: httpx.AsyncClient, why: str) -> None:
    t0 = time.monotonic()
    code, body = await health(api)
    took = time.monotonic() - t0
    phase(f"/health while {why}", took)
    this.check(
        code == 503 and "database" in body.get("failing", ()),
        f"/health while {why}: {code} {body}",
    )
    # An operator's monitor waits a few seconds, not for ever: /health answers within its
    # probes' timeout (2 s) and a little.
    this.check(took < HEALTH_WITHIN, f"/health while {why} took {took:.1f} s")


async def check_after(
    this: Round,
    settings: Settings,
    api: httpx.AsyncClient,
    direct: Direct,
    desks: Desks,
    pids: dict[str, int | None],
    down_at: float,
) -> None:
    """The invariants after one round (the database is back, the API started again)."""
    back = time.time()
    back_mono = time.monotonic()
    late = ""
    try:
        await wait_for(
            lambda: _no_stale(direct, back), BEATS_WITHIN, interval=0.05, what="every heartbeat"
        )
    except TimeoutError as error:
        late = str(error)
    fresh = not late
    phase(f"beats {this.ledgers[0].name[:12]}", time.monotonic() - back_mono)
    this.check(fresh, f"heartbeats not all fresh {BEATS_WITHIN} s after: {late}")
    try:
        await wait_for(lambda: _ok(api), 15, interval=0.05, what="/health ok")
    except TimeoutError as error:
        this.check(False, f"{error}; {await health(api)}")
    else:
        this.check(True, "")
    healthy = time.monotonic()
    phase(f"healthy {this.ledgers[0].name[:12]}", healthy - back_mono)
    for name in services.SERVICES:
        now = services.state(settings, name)
        if not this.check(
            now.running and now.pid == pids[name],
            f"{name} was pid {pids[name]}, now {now.pid} running={now.running}",
        ):
            services.start(settings, name)
            pids[name] = services.state(settings, name).pid
    # While it was down: 503, or no answer (the API itself down, or a request still waiting);
    # never another 5xx.
    during = Counter(status for started, status in desks.answers if down_at <= started < back_mono)
    DURING.setdefault(this.ledgers[0].name, Counter()).update(during)
    this.check(
        not any(code >= 500 and code != 503 for code in during),
        f"answers while down {dict(during)}",
    )
    # Once healthy again: no 5xx at all (a probe of our own, and the desks' answers).
    await check_idempotency(this, api, direct, desks)
    phase(f"checked {this.ledgers[0].name[:12]}", time.monotonic() - back_mono)
    after = desks.answers_since(healthy)
    this.check(
        not any(code >= 500 or code == 0 for code in after),
        f"answers once back {dict(after)}",
    )


async def _no_stale(direct: Direct, since: float) -> bool:
    return not await stale_services(direct, since)


async def check_idempotency(
    this: Round,
    api: httpx.AsyncClient,
    direct: Direct,
    desks: Desks,
) -> None:
    """Exactly one complaint per key sent; every acknowledged number stored under its key;
    the latest acknowledged ones read back the same through the API."""
    # The desks keep filing meanwhile: only an acknowledgement seen before the query must be in
    # its answer (one that arrives while it runs was committed after its snapshot, maybe).
    acked = dict(desks.acked)
    rows = await direct.fetch(
        "SELECT idempotency_key, description, number FROM complaints "
        "WHERE idempotency_key LIKE $1 OR description LIKE $2",
        f"dbf-{SEED}-%",
        f"%(dbf-{SEED}-%",
    )
    stored: dict[str, list[str]] = {}
    misfiled = []
    for row in rows:
        key = row["description"].rpartition("(")[2].rstrip(")")
        stored.setdefault(key, []).append(row["number"])
        if row["idempotency_key"] != key:
            misfiled.append((row["number"], key, row["idempotency_key"]))
    this.check(not misfiled, f"stored under another key (number, sent, stored): {misfiled}")
    twice = {key: numbers for key, numbers in stored.items() if len(numbers) > 1}
    this.check(not twice, f"keys stored more than once: {twice}")
    strangers = set(stored) - desks.sent
    this.check(not strangers, f"complaints under keys never sent: {strangers}")
    lost = {
        key: (number, stored.get(key))
        for key, (number, _body) in acked.items()
        if stored.get(key) != [number]
    }
    this.check(not lost, f"acknowledged, stored otherwise or not at all: {lost}")
    for key, (number, body) in list(desks.acked.items())[-1:]:
        read = await api.get(f"/complaints/{number}", headers=desks.headers)
        same = read.status_code == 200 and all(
            read.json().get(name) == body[name] for name in ("description", "caller_number")
        )
        this.check(same, f"{key} -> {number} reads back {read.status_code} {read.text}")
