"""Authorisation as a generated matrix: a realistic spread of users (agents at seats, supervisors,
officers at every level of police, health and other departments, the CM office, an admin,
disabled users) and of objects (complaints across districts, tehsils and thanas; calls answered
at seats; recordings; callbacks; wrap-ups; click-to-call jobs), and every route that takes or
lists those objects asked as every user, through the ASGI app: reads, writes, lists, reports,
recordings' audio, ``/ws/agent`` and ``/ws/stats``.

The expected answer of every (user, object, action) comes from :class:`Oracle`, written here
from the issue's rules in plain Python over the seeded rows (never by asking api.services.access);
a crossing is an answer that gives a user more than the oracle does (or a full caller number to
a role that sees it masked). The counts are printed; the crossings must be 0. Disabling a user
(``PUT /users/{username}/active``) is shown at the end: tokens and WebSockets end at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from core.config import Settings
from core.db.models import (
    AgentSession,
    ApiToken,
    AuditLog,
    Call,
    CallbackRequest,
    CallWrapup,
    Complaint,
    DialerJob,
    Recording,
    RefOfficer,
    SeatStatus,
    User,
)
from core.domain.calls import CallbackReason, WrapupCode
from core.domain.complaints import SEQUENCE_START, ComplaintStatus, complaint_number
from core.domain.credentials import hash_password, new_token, token_digest
from core.domain.dialing import Campaign
from core.domain.recordings import recording_path
from core.domain.staff import Role
from core.reference import Level, Officer, Reference
from helpline.seed import seed_seats
from tests.api_app import stand_in_ami
from tests.service.test_access import Generator, in_jurisdiction, websocket_close_code

AG, SU, OF, CM, AD = Role.AGENT, Role.SUPERVISOR, Role.OFFICER, Role.CM_OFFICE, Role.ADMIN
DESK = {AG, SU, AD}
#: The issue's rule for numbers: officers and the CM office act on grievances, not calls.
MASKED = {OF, CM}
#: Statuses an officer's worklist leaves out (settled, or waiting for a closure's approval).
OFF_WORKLIST = {
    ComplaintStatus.RESOLVED,
    ComplaintStatus.CLOSED,
    ComplaintStatus.REJECTED_DUPLICATE,
    ComplaintStatus.CLOSURE_REQUESTED,
}
CALLERS = [f"98{i:08d}" for i in range(11, 23)]
NOW = datetime.now(UTC)
#: The suite's size: about 10,000 (user, object, action) checks. ``HELPLINE_AUTHZ_MATRIX=full``
#: seeds two posts of each level, twice the complaints and calls (about 30,000 checks).
FULL = os.environ.get("HELPLINE_AUTHZ_MATRIX") == "full"
POSTS_PER_LEVEL = 2 if FULL else 1
SCATTERED_COMPLAINTS = 25 if FULL else 8
CALLS = 60 if FULL else 36


def masked(number: str) -> str:
    return number[:2] + "X" * (len(number) - 5) + number[-3:]


# ----------------------------------------------------------------------------- the world


@dataclass
class Person:
    user: User
    token: str
    post: Officer | None = None
    #: (seat, logged in, logged out or None): the agent's seat logins.
    logins: list[tuple[str, datetime, datetime | None]] = field(default_factory=list)

    @property
    def role(self) -> Role:
        return Role(self.user.role)

    @property
    def active(self) -> bool:
        return bool(self.user.active)

    @property
    def seat_now(self) -> str | None:
        return next((seat for seat, _, out in self.logins if out is None), None)


@dataclass
class World:
    people: list[Person]
    complaints: list[Complaint]
    calls: list[Call]
    recordings: dict[int, Recording]  # by call id
    callbacks: list[CallbackRequest]
    jobs: list[DialerJob]
    seat_calls: dict[str, str]  # seat -> uniqueid of the call connected now


class Oracle:
    """The issue's rules, written out over the seeded rows."""

    def __init__(self, world: World, reference: Reference) -> None:
        self.world = world
        self.reference = reference
        self.calls_by_id = {call.id: call for call in world.calls}
        self.by_id = {person.user.id: person for person in world.people}

    def reads_complaint(self, person: Person, complaint: Complaint) -> bool:
        """Agents, supervisors, the CM office and admins: every complaint; an officer: their
        department within their post's place, or assigned to their post."""
        if person.role is OF:
            return in_jurisdiction(self.reference, person.post, complaint)
        return True

    def answered(self, person: Person, call: Call) -> bool:
        """The agent answered the call: recorded as its agent, or (no agent recorded) their
        seat login covered the moment it was connected to that seat."""
        if call.agent_user_id is not None:
            return call.agent_user_id == person.user.id
        if call.agent_seat is None or call.agent_connected_at is None:
            return False
        at = call.agent_connected_at
        return any(
            seat == call.agent_seat and start <= at and (end is None or end >= at)
            for seat, start, end in person.logins
        )

    def works_call(self, person: Person, call: Call) -> bool:
        """File on it, wrap it up, read back to its caller: its agent, supervisors, admins."""
        return person.role in (SU, AD) or (person.role is AG and self.answered(person, call))

    def hears(self, person: Person, complaint: Complaint) -> bool:
        """The recordings of the call a complaint was filed on: supervisors, the CM office,
        admins; officers within their jurisdiction; agents only their own calls."""
        call = self.calls_by_id.get(complaint.call_id or 0)
        if call is None or call.id not in self.world.recordings:
            return False
        if person.role is OF:
            return self.reads_complaint(person, complaint)
        if person.role is AG:
            return self.answered(person, call)
        return True

    def sees_number(self, person: Person, number: str | None) -> str | None:
        return None if number is None else masked(number) if person.role in MASKED else number


# ----------------------------------------------------------------------------- seeding


async def seed_world(
    sessions: async_sessionmaker[AsyncSession], reference: Reference, settings: Settings, seed: int
) -> World:
    """Users of every role (some disabled), their tokens, seat logins, calls, recordings (with
    files), complaints placed in and around the officers' posts, callbacks, wrap-ups and
    click-to-call jobs, all from one seeded RNG."""
    ref = reference
    gen = Generator(ref, seed)
    rng = gen.rng
    # Posts: two of each level, and police and health at thana, district and division.
    posts: list[Officer] = []
    for level in (Level.THANA, Level.TEHSIL, Level.DISTRICT, Level.DIVISION, Level.STATE):
        candidates = sorted(
            (o for o in ref.officers.values() if o.level is level and o.department),
            key=lambda o: o.code,
        )
        posts += rng.sample(candidates, min(POSTS_PER_LEVEL, len(candidates)))
    for department, level, place in (
        ("police", Level.THANA, "lucknow_hazratganj"),
        ("police", Level.DISTRICT, "lucknow"),
        ("health", Level.DISTRICT, "varanasi"),
        ("health", Level.DISTRICT, "lucknow"),
    ):
        post = ref.officer_at(department, level, place)
        if post is not None and post not in posts:
            posts.append(post)
    assert {p.department for p in posts} >= {"police", "health"}

    people: list[Person] = []
    async with sessions() as session:
        await seed_seats(session, 8)

        def add(name: str, role: Role, *, active: bool = True) -> User:
            user = User(username=name, full_name=name, role=role, password_hash="x", active=active)
            session.add(user)
            return user

        staff: list[tuple[User, Officer | None]] = []
        for i in range(6):
            staff.append((add(f"agent_{i}", AG), None))
        staff.append((add("agent_gone", AG, active=False), None))
        staff += [(add("supervisor_0", SU), None), (add("supervisor_1", SU), None)]
        staff.append((add("supervisor_gone", SU, active=False), None))
        staff += [(add("cm_office_0", CM), None), (add("admin_0", AD), None)]
        for i, post in enumerate(posts):
            staff.append((add(f"officer_{i}", OF), post))
        staff.append((add("officer_without_post", OF), None))
        gone_post = next(
            o
            for o in sorted(ref.officers.values(), key=lambda o: o.code)
            if o.department == "police" and o.level is Level.DISTRICT and o not in posts
        )
        staff.append((add("officer_gone", OF, active=False), gone_post))
        await session.flush()
        for user, post in staff:
            if post is not None:
                await session.execute(
                    update(RefOfficer).where(RefOfficer.code == post.code).values(user_id=user.id)
                )
            token = new_token()
            session.add(
                ApiToken(
                    token_hash=token_digest(token),
                    user_id=user.id,
                    expires_at=NOW + timedelta(hours=8),
                )
            )
            people.append(Person(user, token, post))

        # Seat logins: yesterday's shift at one seat (closed), today's at the next (open).
        agents = [p for p in people if p.role is AG]
        earlier, later = NOW - timedelta(hours=6), NOW - timedelta(hours=2)
        for i, person in enumerate(agents):
            first = f"agent{i + 1:04d}"
            person.logins.append((first, earlier, later - timedelta(minutes=30)))
            if i < 5:
                person.logins.append((f"agent{(i + 1) % 7 + 1:04d}", later, None))
        for person in agents:
            for seat, start, end in person.logins:
                session.add(
                    AgentSession(
                        user_id=person.user.id, seat=seat, logged_in_at=start, logged_out_at=end
                    )
                )

        # Calls: connected to a seat while someone sat there (their agent recorded, or not:
        # the queue manager's row may lack it), or never answered.
        calls: list[Call] = []
        logins = [(p, *login) for p in agents for login in p.logins]
        for j in range(CALLS):
            caller = rng.choice(CALLERS)
            uniqueid = f"{int(NOW.timestamp()) - 7200 + j}.{j + 1}"
            call = Call(
                uniqueid=uniqueid,
                caller_number=caller,
                channel=f"PJSIP/trunk-{j:08x}",
                started_at=NOW - timedelta(hours=5),
            )
            if rng.random() < 0.85:
                person, seat, start, end = rng.choice(logins)
                span = ((end or NOW) - start).total_seconds()
                call.agent_seat = seat
                call.agent_connected_at = start + timedelta(seconds=rng.uniform(60, span - 60))
                call.agent_user_id = person.user.id if rng.random() < 0.7 else None
                call.ended_at = call.agent_connected_at + timedelta(minutes=4)
            else:
                call.ended_at = call.started_at + timedelta(minutes=1)
            calls.append(call)
        session.add_all(calls)
        await session.flush()
        # The call connected now at each open seat (its screen-pop).
        seat_calls: dict[str, str] = {}
        for person in agents:
            seat = person.seat_now
            if seat is None:
                continue
            j = len(calls)
            call = Call(
                uniqueid=f"{int(NOW.timestamp())}.{900 + j}",
                caller_number=rng.choice(CALLERS),
                channel=f"PJSIP/trunk-now{j}",
                started_at=NOW - timedelta(minutes=2),
                agent_seat=seat,
                agent_user_id=person.user.id,
                agent_connected_at=NOW - timedelta(minutes=1),
            )
            session.add(call)
            calls.append(call)
            seat_calls[seat] = call.uniqueid
            session.add(SeatStatus(seat=seat, in_queue=True, current_call_uniqueid=call.uniqueid))
        await session.flush()

        # Recordings of most answered calls, each with a small file.
        recordings: dict[int, Recording] = {}
        for call in calls:
            if call.agent_connected_at is None or call.ended_at is None or rng.random() < 0.3:
                continue
            path = recording_path(call.uniqueid)
            assert path is not None
            file = settings.recordings_dir / path
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(b"RIFF" + bytes(60))
            recording = Recording(
                call_id=call.id,
                path=path,
                started_at=call.agent_connected_at,
                ended_at=call.ended_at,
                bytes=64,
            )
            session.add(recording)
            recordings[call.id] = recording

        # Complaints: in, near and outside each post (other departments, assigned elsewhere),
        # some filed on a call (with its caller's number), some assigned to a post.
        placed: list[tuple[str, tuple[str, str | None, str | None], str | None]] = []
        for post in posts:
            assert post.department is not None
            placed.append((post.department, gen.place_within(post), None))
            placed.append((post.department, gen.place_near(post), None))
            placed.append((gen.other_department(post.department), gen.place_within(post), None))
            elsewhere = gen.place_in_district(rng.choice(list(ref.districts)))
            placed.append((gen.other_department(None), elsewhere, post.code))
        for _ in range(SCATTERED_COMPLAINTS):
            district = rng.choice(list(ref.districts))
            placed.append((gen.other_department(None), gen.place_in_district(district), None))
        answered = [c for c in calls if c.agent_connected_at is not None]
        complaints: list[Complaint] = []
        for i, (department, (district, tehsil, thana), assigned) in enumerate(placed):
            call = rng.choice(answered) if rng.random() < 0.6 else None
            status = ComplaintStatus.REGISTERED
            level = None
            if assigned is not None:
                status = rng.choice(
                    [ComplaintStatus.ASSIGNED, ComplaintStatus.IN_PROGRESS, ComplaintStatus.CLOSED]
                )
                level = ref.officers[assigned].level
            complaint = Complaint(
                number=complaint_number(SEQUENCE_START + i),
                caller_number=call.caller_number if call else rng.choice(CALLERS),
                description=f"generated grievance {i}",
                call_id=call.id if call else None,
                created_by=agents[i % len(agents)].user.id,
                created_at=NOW - timedelta(minutes=i),
                due_at=NOW + timedelta(days=3),
                department=department,
                category=ref.categories_of(department)[0].code,
                district=district,
                tehsil=tehsil,
                thana=thana,
                assigned_officer=assigned,
                level=level,
                status=status,
            )
            complaints.append(complaint)
        session.add_all(complaints)
        await session.flush()

        callbacks = [
            CallbackRequest(
                uniqueid=f"cb-{i}",
                caller_number=caller,
                lang="hi",
                reason=CallbackReason.ASKED,
            )
            for i, caller in enumerate(rng.sample(CALLERS, 5))
        ]
        session.add_all(callbacks)
        for call in rng.sample(answered, 15):
            assert call.agent_user_id is None or call.agent_user_id in {p.user.id for p in agents}
            session.add(
                CallWrapup(call_id=call.id, code=WrapupCode.STATUS_GIVEN, user_id=agents[0].user.id)
            )
        jobs: list[DialerJob] = []
        desk = [p for p in people if p.role in DESK]
        for i, complaint in enumerate(rng.sample(complaints, 20)):
            asker = rng.choice(desk)
            jobs.append(
                DialerJob(
                    campaign=Campaign.CLICK,
                    complaint_id=complaint.id,
                    dedupe_key=f"click:{i}",
                    number=complaint.caller_number,
                    seat="agent0001",
                    requested_by=asker.user.id,
                )
            )
        session.add_all(jobs)
        await session.commit()
    return World(people, complaints, calls, recordings, callbacks, jobs, seat_calls)


# ----------------------------------------------------------------------------- the app


@pytest.fixture
def settings(db_settings: Settings, tmp_path: Path) -> Settings:
    return db_settings.model_copy(update={"asterisk_root": tmp_path / "root"})


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings, ami=stand_in_ami())
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        yield http


class Socket:
    """A WebSocket on the ASGI app, held open: its messages as they come, its close code."""

    def __init__(self, app: FastAPI, path: str, token: str | None) -> None:
        self.app, self.path, self.token = app, path, token
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.texts: list[str] = []
        self.close_code: int | None = None
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.send":
            self.texts.append(message["text"])
        elif message["type"] == "websocket.close":
            self.close_code = message.get("code", 1000)
        self.changed.set()

    async def open(self) -> Socket:
        scope = {
            "type": "websocket",
            "asgi": {"version": "3.0"},
            "scheme": "ws",
            "path": self.path,
            "raw_path": self.path.encode(),
            "root_path": "",
            "query_string": f"token={self.token}".encode() if self.token else b"",
            "headers": [(b"host", b"api")],
            "server": ("api", 80),
            "client": ("test", 1),
            "subprotocols": [],
        }
        await self.inbox.put({"type": "websocket.connect"})
        self.task = asyncio.create_task(self.app(scope, self.inbox.get, self._send))
        return self

    async def until(self, done: Callable[[], bool], seconds: float = 5.0) -> bool:
        deadline = time.monotonic() + seconds
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)
        return True

    async def close(self) -> None:
        await self.inbox.put({"type": "websocket.disconnect", "code": 1000})
        if self.task is not None:
            await asyncio.wait_for(self.task, 10)


# ----------------------------------------------------------------------------- the matrix


@dataclass
class Tally:
    pairs: int = 0
    #: Of ``pairs``, those the shared gate decided (disabled user, role not allowed).
    gate_checks: int = 0
    requests: int = 0
    crossings: list[str] = field(default_factory=list)
    denials: list[str] = field(default_factory=list)
    by_route: Counter[str] = field(default_factory=Counter)

    def check(self, route: str, crossed: bool, wrongly_denied: bool, what: str) -> None:
        self.pairs += 1
        self.by_route[route] += 1
        if crossed:
            self.crossings.append(f"{route}: {what}")
        elif wrongly_denied:
            self.denials.append(f"{route}: {what}")


async def bounded(jobs: list[Callable[[], Awaitable[None]]], width: int = 6) -> None:
    """Run ``jobs`` at most ``width`` at a time (the app's pool, not the test, is the limit)."""
    gate = asyncio.Semaphore(width)

    async def one(job: Callable[[], Awaitable[None]]) -> None:
        async with gate:
            await job()

    await asyncio.gather(*(one(job) for job in jobs))


async def test_every_user_reaches_exactly_what_the_rules_give_them(
    app: FastAPI,
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    reference_data: Reference,
    settings: Settings,
) -> None:
    started, cpu = time.monotonic(), time.process_time()
    world = await seed_world(sessions, reference_data, settings, seed=16)
    oracle = Oracle(world, reference_data)
    tally = Tally()
    people = world.people

    async def ask(person: Person, method: str, url: str, **kwargs: Any) -> httpx.Response:
        tally.requests += 1
        headers = {"Authorization": f"Bearer {person.token}"}
        return await client.request(method, url, headers=headers, **kwargs)

    def gate(person: Person, roles: set[Role], status: int) -> tuple[bool, bool] | None:
        """The part every route shares: a disabled user 401, a role outside ``roles`` 403.
        None when the route's own rule decides."""
        if person.active and person.role in roles:
            return None
        tally.gate_checks += 1
        return status != (403 if person.active else 401), False

    recording_of = {c.number: world.recordings.get(c.call_id or 0) for c in world.complaints}
    jobs_of: dict[tuple[int, int], bool] = {}
    for job in world.jobs:
        assert job.requested_by is not None and job.complaint_id is not None
        jobs_of[(job.requested_by, job.complaint_id)] = True
    everyone = set(Role)

    gated: set[tuple[int, str]] = set()

    async def probe(
        person: Person,
        roles: set[Role],
        route: str,
        who: str,
        decide: Callable[[httpx.Response], tuple[bool, bool]],
        method: str,
        url: str,
        **kwargs: Any,
    ) -> None:
        """Ask ``url`` as ``person`` and check the answer: the shared gate (disabled 401, role
        not in ``roles`` 403), else ``decide`` (crossed, wrongly refused). The gate does not
        look at the object, so a user it refuses is asked once per route, not once per object."""
        by_gate = not person.active or person.role not in roles
        if by_gate and (person.user.id, route) in gated:
            return
        gated.add((person.user.id, route))
        response = await ask(person, method, url, **kwargs)
        shared = gate(person, roles, response.status_code)
        if shared is None:
            shared = decide(response)
        tally.check(route, *shared, who)

    # --- one complaint, as one user: read, recordings (list and audio), unmask, act, its call.
    async def complaint_pair(person: Person, complaint: Complaint) -> None:
        number = complaint.number
        who = f"{person.user.username} -> {number}"
        reads = oracle.reads_complaint(person, complaint)
        hears = oracle.hears(person, complaint)
        recording = recording_of[number]

        def read(got: httpx.Response) -> tuple[bool, bool]:
            assert got.status_code in (200, 404), (who, got.text)
            shown = oracle.sees_number(person, complaint.caller_number)
            wrong_number = got.status_code == 200 and got.json()["caller_number"] != shown
            return (got.status_code == 200 and not reads) or wrong_number, (
                reads and got.status_code != 200
            )

        def recordings(got: httpx.Response) -> tuple[bool, bool]:
            ids = {r["id"] for r in got.json()} if got.status_code == 200 else set()
            expected = {recording.id} if hears and recording is not None else set()
            return (
                (got.status_code == 200 and not reads) or bool(ids - expected),
                (reads and got.status_code != 200) or bool(expected - ids),
            )

        def audio(got: httpx.Response) -> tuple[bool, bool]:
            assert got.status_code in (200, 404), (who, got.text)
            return got.status_code == 200 and not hears, hears and got.status_code != 200

        def unmask(got: httpx.Response) -> tuple[bool, bool]:
            assert got.status_code in (200, 404), (who, got.text)
            return got.status_code == 200 and not reads, reads and got.status_code != 200

        def act(got: httpx.Response) -> tuple[bool, bool]:
            # A write the lifecycle refuses from any of these statuses (409): reaching the
            # lifecycle at all is the crossing for someone out of scope (404 expected).
            assert got.status_code in (404, 409), (who, got.status_code, got.text)
            return got.status_code != 404 and not reads, reads and got.status_code == 404

        def own_call(got: httpx.Response) -> tuple[bool, bool]:
            own = jobs_of.get((person.user.id, complaint.id), False)
            assert got.status_code in (200, 404), (who, got.text)
            return got.status_code == 200 and not own, own and got.status_code != 200

        base = f"/complaints/{number}"
        await probe(person, everyone, "GET /complaints/{number}", who, read, "GET", base)
        await probe(
            person,
            everyone,
            "GET /complaints/{number}/recordings",
            who,
            recordings,
            "GET",
            f"{base}/recordings",
        )
        if recording is not None:
            await probe(
                person,
                everyone,
                "GET /complaints/{number}/recordings/{id}/audio",
                who,
                audio,
                "GET",
                f"{base}/recordings/{recording.id}/audio",
            )
        await probe(
            person,
            {OF, CM},
            "POST /complaints/{number}/unmask",
            who,
            unmask,
            "POST",
            f"{base}/unmask",
            json={"reason": "the citizen asked to be called back on this number"},
        )
        await probe(
            person,
            everyone,
            "POST /complaints/{number}/transitions",
            who,
            act,
            "POST",
            f"{base}/transitions",
            json={"action": "approve_closure"},
        )
        await probe(
            person, DESK, "GET /complaints/{number}/call", who, own_call, "GET", f"{base}/call"
        )

    # --- one call, as one user: its read-backs, a wrap-up, a read-back request.
    async def call_pair(person: Person, call: Call, complaint_on_it: str | None) -> None:
        uniqueid = call.uniqueid
        who = f"{person.user.username} -> call {uniqueid}"
        works = oracle.works_call(person, call)

        def work(got: httpx.Response) -> tuple[bool, bool]:
            assert got.status_code in (200, 403), (who, got.text)
            return got.status_code == 200 and not works, works and got.status_code != 200

        def read_back(got: httpx.Response) -> tuple[bool, bool]:
            # Allowed: refused later for the line's state (ended, or no Asterisk): 409.
            assert got.status_code in (403, 409), (who, got.text)
            return got.status_code != 403 and not works, works and got.status_code == 403

        base = f"/calls/{uniqueid}"
        await probe(
            person, DESK, "GET /calls/{uniqueid}/readbacks", who, work, "GET", f"{base}/readbacks"
        )
        await probe(
            person,
            DESK,
            "PUT /calls/{uniqueid}/wrapup",
            who,
            work,
            "PUT",
            f"{base}/wrapup",
            json={"code": "status_given"},
        )
        if complaint_on_it is not None:
            await probe(
                person,
                DESK,
                "POST /calls/{uniqueid}/readback",
                who,
                read_back,
                "POST",
                f"{base}/readback",
                json={"complaint": complaint_on_it},
            )

    jobs: list[Callable[[], Awaitable[None]]] = []
    on_call = {c.call_id: c.number for c in world.complaints if c.call_id is not None}
    for person in people:
        for complaint in world.complaints:
            jobs.append(lambda p=person, c=complaint: complaint_pair(p, c))
        for call in world.calls:
            jobs.append(lambda p=person, c=call: call_pair(p, c, on_call.get(c.id)))
    await bounded(jobs)

    # --- recordings heard through another complaint's number: never.
    rng = random.Random(16)
    heard = [c for c in world.complaints if recording_of[c.number] is not None]
    for person in [p for p in people if p.active]:
        for complaint in rng.sample(world.complaints, 12):
            other = rng.choice([c for c in heard if c.call_id != complaint.call_id])
            recording = recording_of[other.number]
            assert recording is not None
            url = f"/complaints/{complaint.number}/recordings/{recording.id}/audio"
            got = await ask(person, "GET", url)
            tally.check(
                "GET /complaints/{number}/recordings/{id}/audio (another's id)",
                got.status_code == 200,
                False,
                f"{person.user.username} -> {complaint.number} / {recording.id}",
            )

    # --- lists: every item listed is allowed, and nothing allowed is missing.
    for person in people:
        listed = await ask(person, "GET", "/complaints", params={"limit": 500})
        shared = gate(person, everyone, listed.status_code)
        if shared is None:
            expected = {
                c.number: oracle.sees_number(person, c.caller_number)
                for c in world.complaints
                if oracle.reads_complaint(person, c)
            }
            got_items = {c["number"]: c["caller_number"] for c in listed.json()}
            extra = {n for n in got_items if n not in expected or got_items[n] != expected[n]}
            shared = bool(extra), bool(set(expected) - set(got_items))
        tally.check("GET /complaints", *shared, person.user.username)
        for caller in CALLERS:
            who = f"{person.user.username} caller {caller}"
            by_caller = await ask(person, "GET", "/complaints", params={"caller": caller})
            shared = gate(person, everyone, by_caller.status_code)
            if shared is None:
                expected_numbers = {
                    c.number
                    for c in world.complaints
                    if c.caller_number == caller and oracle.reads_complaint(person, c)
                }
                got_numbers = {c["number"] for c in by_caller.json()}
                shared = bool(got_numbers - expected_numbers), bool(expected_numbers - got_numbers)
            tally.check("GET /complaints?caller=", *shared, who)

            history = await ask(person, "GET", "/calls", params={"caller": caller})
            shared = gate(person, {AG, SU, CM, AD}, history.status_code)
            if shared is None:
                expected_calls = {c.uniqueid for c in world.calls if c.caller_number == caller}
                got_calls = {c["uniqueid"] for c in history.json()}
                # The one full number a masked role sees unaudited: the one it searched by.
                wrong_number = any(c["caller_number"] != caller for c in history.json())
                shared = (
                    bool(got_calls - expected_calls) or wrong_number,
                    bool(expected_calls - got_calls),
                )
            tally.check("GET /calls?caller=", *shared, who)

    # --- reports: an officer's scorecard and worklist (their own only), the reviews.
    holders = [p for p in people if p.post is not None]
    for person in people:
        for holder in holders:
            assert holder.post is not None
            who = f"{person.user.username} -> {holder.user.username}"
            own = person.user.id == holder.user.id
            for kind in ("scorecard", "worklist"):
                got = await ask(person, "GET", f"/officers/{holder.user.username}/{kind}")
                shared = gate(person, {OF, SU, CM, AD}, got.status_code)
                if shared is None:
                    may = person.role is not OF or own
                    assert got.status_code in (200, 403), (who, got.text)
                    shared = got.status_code == 200 and not may, may and got.status_code != 200
                    if kind == "worklist" and got.status_code == 200:
                        expected_work = {
                            c.number
                            for c in world.complaints
                            if c.assigned_officer == holder.post.code
                            and c.status not in OFF_WORKLIST
                        }
                        numbers = {row["number"] for row in got.json()}
                        shared = (shared[0] or bool(numbers - expected_work), shared[1])
                tally.check(f"GET /officers/{{username}}/{kind}", *shared, who)
        for url in ("/reports/monthly", "/reports/feedback", "/stats"):
            got = await ask(person, "GET", url)
            shared = gate(person, {SU, CM, AD}, got.status_code)
            if shared is None:
                leaked = any(caller in got.text for caller in CALLERS)
                shared = (got.status_code == 200 and leaked), got.status_code != 200
            tally.check(f"GET {url}", *shared, person.user.username)

    # --- WebSockets: who may open which, and what /ws/agent greets each desk user with.
    pops_of = {
        call.uniqueid: call for call in world.calls if call.uniqueid in world.seat_calls.values()
    }
    for person in people:
        who = person.user.username
        code = await websocket_close_code(app, "/ws/stats", person.token)
        expected_code = 4401 if not person.active else None if person.role in (SU, CM, AD) else 4403
        tally.check(
            "WS /ws/stats", code != expected_code and code is None, code != expected_code, who
        )
        socket = await Socket(app, "/ws/agent", person.token).open()
        if not person.active or person.role not in DESK:
            await socket.until(lambda s=socket: s.close_code is not None)
            expected_code = 4401 if not person.active else 4403
            tally.check("WS /ws/agent", socket.close_code != expected_code, False, who)
            await socket.close()
            continue
        seat = person.seat_now
        uniqueid = world.seat_calls.get(seat or "")
        count = 2 if uniqueid else 1
        await socket.until(lambda s=socket, n=count: len(s.texts) >= n)
        await asyncio.sleep(0.05)
        messages = [json.loads(text) for text in socket.texts]
        hello = messages[0]
        pops = [m for m in messages if m["type"] == "screen_pop"]
        crossed = hello["seat"] != seat or any(m["uniqueid"] != uniqueid for m in pops)
        if uniqueid is not None and pops:
            pop = pops[0]
            call = pops_of[uniqueid]
            expected_previous = {
                c.number for c in world.complaints if c.caller_number == call.caller_number
            }
            previous = {c["number"] for c in pop["previous_complaints"]}
            pending = {cb.id for cb in world.callbacks if cb.caller_number == call.caller_number}
            crossed = crossed or bool(previous - expected_previous)
            crossed = crossed or bool({c["id"] for c in pop["pending_callbacks"]} - pending)
            crossed = crossed or pop["caller_number"] != oracle.sees_number(
                person, call.caller_number
            )
        tally.check("WS /ws/agent", crossed, bool(uniqueid) and not pops, who)
        await socket.close()

    # --- screen-pops pushed by the hub (agent_connect): only to the seat's user.
    desk_people = [p for p in people if p.active and p.role in DESK]
    sockets = {p.user.id: await Socket(app, "/ws/agent", p.token).open() for p in desk_people}
    for person in desk_people:
        await sockets[person.user.id].until(lambda s=sockets[person.user.id]: len(s.texts) >= 1)
    before = {uid: len(s.texts) for uid, s in sockets.items()}
    hub = app.state.live_hub
    for seat, uniqueid in world.seat_calls.items():
        hub._on_agent_connect(json.dumps({"seat": seat, "uniqueid": uniqueid}))
    for person in desk_people:
        socket = sockets[person.user.id]
        seat = person.seat_now
        if seat in world.seat_calls:
            await socket.until(lambda s=socket, n=before[person.user.id]: len(s.texts) > n)
    await asyncio.sleep(0.2)
    for person in desk_people:
        socket = sockets[person.user.id]
        pushed = [json.loads(t) for t in socket.texts[before[person.user.id] :]]
        expected_pop = world.seat_calls.get(person.seat_now or "")
        crossed = any(m.get("uniqueid") != expected_pop for m in pushed)
        tally.check(
            "WS /ws/agent (pushed)",
            crossed,
            expected_pop is not None and not pushed,
            person.user.username,
        )
        await socket.close()

    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
    print(
        f"\nauthz matrix: {len(people)} users ({sum(not p.active for p in people)} disabled),"
        f" {len(world.complaints)} complaints, {len(world.calls)} calls,"
        f" {len(world.recordings)} recordings; {tally.pairs} (user, object, action) pairs"
        f" over {len(tally.by_route)} routes in {tally.requests} requests, {elapsed:.1f} s"
        f" ({cpu:.1f} s CPU, load average {os.getloadavg()[0]:.1f});"
        f" ({tally.pairs - tally.gate_checks} decided by ownership, {tally.gate_checks} by"
        f" the role gate); crossings = {len(tally.crossings)},"
        f" wrongly refused = {len(tally.denials)}"
    )
    for route, count in sorted(tally.by_route.items()):
        print(f"  {count:6d}  {route}")
    assert tally.crossings == [], tally.crossings[:20]
    assert tally.denials == [], tally.denials[:20]
    assert tally.pairs - tally.gate_checks >= 4000


# ----------------------------------------------------------------------------- disabling


async def test_disabling_a_user_ends_their_tokens_and_websockets_at_once(
    app: FastAPI, client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    password = "correct horse battery"
    async with sessions() as session:
        await seed_seats(session, 1)
        for name, role in (("boss", AD), ("desk", AG), ("watcher", SU), ("other_admin", AD)):
            session.add(
                User(
                    username=name,
                    full_name=name,
                    role=role,
                    password_hash=hash_password(password),
                )
            )
        await session.commit()

    async def login(name: str, secret: str = password) -> httpx.Response:
        return await client.post("/auth/token", data={"username": name, "password": secret})

    tokens: dict[str, list[str]] = {}
    for name in ("boss", "desk", "watcher"):
        tokens[name] = [(await login(name)).json()["access_token"] for _ in range(2)]
    auth = {name: {"Authorization": f"Bearer {t[0]}"} for name, t in tokens.items()}

    await asyncio.wait_for(app.state.notifications.listening.wait(), 10)
    agent_socket = await Socket(app, "/ws/agent", tokens["desk"][1]).open()
    stats_socket = await Socket(app, "/ws/stats", tokens["watcher"][1]).open()
    boss_socket = await Socket(app, "/ws/stats", tokens["boss"][1]).open()
    for socket in (agent_socket, stats_socket, boss_socket):
        assert await socket.until(lambda s=socket: len(s.texts) >= 1)

    # Only an admin may; not themselves; an unknown user is 404.
    url = "/users/{}/active"
    refused = await client.put(url.format("desk"), json={"active": False}, headers=auth["watcher"])
    assert refused.status_code == 403
    assert (
        await client.put(url.format("boss"), json={"active": False}, headers=auth["boss"])
    ).status_code == 409
    assert (
        await client.put(url.format("nobody"), json={"active": False}, headers=auth["boss"])
    ).status_code == 404
    assert (
        await client.put(url.format("desk"), json={"active": 0}, headers=auth["boss"])
    ).status_code == 422

    for name, socket in (("desk", agent_socket), ("watcher", stats_socket)):
        began = time.monotonic()
        done = await client.put(url.format(name), json={"active": False}, headers=auth["boss"])
        assert done.status_code == 200, done.text
        assert done.json() == {"username": name, "active": False, "tokens_ended": 2}
        assert await socket.until(lambda s=socket: s.close_code is not None, seconds=2.0)
        closed_in = time.monotonic() - began
        assert socket.close_code == 1008, (name, socket.close_code)
        print(f"\n{name}'s WebSocket closed (1008) {closed_in * 1000:.0f} ms after the disable")
        for token in tokens[name]:
            me = await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 401
        # A disabled user's right password answers as a wrong one does (no oracle).
        right, wrong = await login(name), await login(name, "not it")
        assert right.status_code == wrong.status_code == 401
        assert right.json() == wrong.json()
        gone = await websocket_close_code(app, "/ws/stats", tokens[name][0])
        assert gone == 4401
    # Someone else's socket stays open.
    assert boss_socket.close_code is None
    for socket in (agent_socket, stats_socket, boss_socket):
        await socket.close()

    async with sessions() as session:
        rows = (
            await session.execute(
                select(AuditLog.action, AuditLog.detail)
                .where(AuditLog.action.in_(["user_disabled", "user_enabled"]))
                .order_by(AuditLog.id)
            )
        ).all()
        assert [(a, d["username"], d["tokens_ended"]) for a, d in rows] == [
            ("user_disabled", "desk", 2),
            ("user_disabled", "watcher", 2),
        ]
        assert (
            await session.scalar(
                select(func.count()).select_from(ApiToken).join(User).where(User.username == "desk")
            )
        ) == 0

    # Enabled again: the right password works, old tokens stay ended.
    again = await client.put(url.format("desk"), json={"active": True}, headers=auth["boss"])
    assert again.json() == {"username": "desk", "active": True, "tokens_ended": 0}
    assert (await login("desk")).status_code == 200
    old = await client.get("/auth/me", headers={"Authorization": f"Bearer {tokens['desk'][0]}"})
    assert old.status_code == 401
