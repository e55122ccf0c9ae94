"""The services behind the API, called directly (no HTTP) on a real PostgreSQL: what the CLI,
the workers and the routers all rely on. The queue manager's part (confirming a seat in
``seat_status`` and NOTIFYing) is played by the test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.schemas import ComplaintIn, RoutingIn
from api.services import agents, auth, complaints, seats
from api.services.errors import Conflict, Forbidden, Invalid, NotFound, Unauthenticated
from api.services.notify import Notifications
from core.config import Settings
from core.db.audit import audit
from core.db.channels import STATS_CHANNEL
from core.db.models import AgentSession, AuditLog, Call, Complaint, SeatStatus, User
from core.reference import Reference

#: Long enough that a wait ended by its deadline, not by a NOTIFY, fails the hang guard.
NEVER = 3600.0
HANG_GUARD = 10.0


@dataclass
class Desk:
    sessions: async_sessionmaker[AsyncSession]
    settings: Settings
    agent: User
    other_agent: User
    supervisor: User
    reference: Reference


#: What a complaint is about and where: a thana police complaint in Lucknow.
WHAT_WHERE = {
    "department": "police",
    "category": "police.harassment",
    "district": "lucknow",
    "thana": "lucknow_hazratganj",
}


@pytest.fixture
async def desk(
    db_settings: Settings, sessions: async_sessionmaker[AsyncSession], reference_data: Reference
) -> AsyncIterator[Desk]:
    async with sessions() as session:
        await seats.add_missing(session, (seats.seat_name(i) for i in range(1, 4)))
        people = [
            await auth.create_user(
                session, username=name, full_name=name.title(), role=role, password="pw-" + name
            )
            for name, role in (
                ("asha", "agent"),
                ("bhanu", "agent"),
                ("chitra", "supervisor"),
            )
        ]
        await session.commit()
    yield Desk(sessions, db_settings, *people, reference_data)


@pytest.fixture
async def notifications(db_settings: Settings) -> AsyncIterator[Notifications]:
    listener = Notifications(db_settings, (STATS_CHANNEL,))
    await listener.start()
    async with asyncio.timeout(HANG_GUARD):
        await listener.listening.wait()
    yield listener
    await listener.close()


async def confirm_seat(desk: Desk, *, paused: bool = False, reason: str | None = None) -> None:
    """Play queue_manager: app_queue has every open session's seat; then NOTIFY, after the
    commit, as the queue manager does."""
    async with desk.sessions() as session:
        rows = (
            await session.execute(select(AgentSession).where(AgentSession.logged_out_at.is_(None)))
        ).scalars()
        for row in rows:
            await session.merge(
                SeatStatus(
                    seat=row.seat,
                    in_queue=True,
                    agent_session_id=row.id,
                    paused=paused,
                    pause_reason=reason,
                )
            )
        await session.commit()
        await session.execute(text("SELECT pg_notify(:c, '')"), {"c": STATS_CHANNEL})
        await session.commit()


async def actions(desk: Desk) -> list[tuple[str, str | None]]:
    async with desk.sessions() as session:
        rows = await session.execute(select(AuditLog.action, AuditLog.entity_id).order_by("id"))
        return [(action, entity_id) for action, entity_id in rows.all()]


async def put_call(desk: Desk, seat: str, uniqueid: str, caller_number: str | None) -> None:
    now = datetime.now(UTC) + timedelta(seconds=1)
    async with desk.sessions() as session:
        session.add(
            Call(
                uniqueid=uniqueid,
                caller_number=caller_number,
                caller_name="सीता देवी",
                dnis="1076",
                started_at=now,
                agent_seat=seat,
                agent_connected_at=now,
            )
        )
        await session.commit()


# ----------------------------------------------------------------------------- agent sessions


async def test_login_answers_when_the_queue_manager_notifies(
    desk: Desk, notifications: Notifications
) -> None:
    async def log_in() -> str:
        async with desk.sessions() as session:
            state = await agents.login(
                session, desk.agent, "agent0001", notifications=notifications, wait=NEVER
            )
            return state.state

    login = asyncio.create_task(log_in())
    async with desk.sessions() as session, asyncio.timeout(HANG_GUARD):
        while (await agents.state(session, desk.agent)).state != "pending":
            await session.commit()
            await asyncio.sleep(0.01)
    assert not login.done()  # stored, not yet confirmed: the login waits
    await confirm_seat(desk)
    async with asyncio.timeout(HANG_GUARD):  # woken by the NOTIFY, not by its deadline
        assert await login == "in_queue"
    assert await actions(desk) == [("agent_login", "agent0001")]


async def test_login_without_confirmation_answers_pending_and_is_idempotent(desk: Desk) -> None:
    async with desk.sessions() as session:
        first = await agents.login(session, desk.agent, "agent0002", notifications=None, wait=0)
        assert (first.seat, first.state) == ("agent0002", "pending")
        again = await agents.login(session, desk.agent, "agent0002", notifications=None, wait=0)
        assert again.state == "pending"
        with pytest.raises(Conflict, match="already logged in at agent0002"):
            await agents.login(session, desk.agent, "agent0003", notifications=None, wait=0)
        with pytest.raises(NotFound, match="no seat agent0009"):
            await agents.login(session, desk.agent, "agent0009", notifications=None, wait=0)
    assert await actions(desk) == [("agent_login", "agent0002")]


async def test_a_seat_holds_one_agent_even_when_both_race(desk: Desk) -> None:
    async def sit(user: User) -> str:
        async with desk.sessions() as session:
            try:
                await agents.login(session, user, "agent0003", notifications=None, wait=0)
            except Conflict as refused:
                return refused.message
            return "seated"

    results = await asyncio.gather(sit(desk.agent), sit(desk.other_agent))
    assert sorted(results) == ["seat agent0003 is taken by another agent", "seated"]
    async with desk.sessions() as session:
        count = select(func.count()).select_from(AgentSession)
        assert (await session.execute(count)).scalar() == 1


async def test_pause_logout_and_routing(desk: Desk, notifications: Notifications) -> None:
    async with desk.sessions() as session:
        with pytest.raises(Conflict, match="not logged in"):
            await agents.set_pause(session, desk.agent, "break", notifications=None, wait=0)
        with pytest.raises(Conflict, match="a penalty needs a seat"):
            await agents.set_routing(session, desk.supervisor, "asha", RoutingIn(penalty=2))
        with pytest.raises(NotFound, match="no user nobody"):
            await agents.set_routing(session, desk.supervisor, "nobody", RoutingIn(penalty=2))
        await agents.login(session, desk.agent, "agent0001", notifications=None, wait=0)
        await confirm_seat(desk)
        pausing = asyncio.create_task(
            agents.set_pause(
                session, desk.agent, "training", notifications=notifications, wait=NEVER
            )
        )
        await asyncio.sleep(0)
        await confirm_seat(desk, paused=True, reason="training")
        async with asyncio.timeout(HANG_GUARD):
            paused = await pausing
        assert (paused.state, paused.paused, paused.pause_reason) == ("in_queue", True, "training")
        open_session = (
            await session.execute(select(AgentSession).where(AgentSession.user_id == desk.agent.id))
        ).scalar_one()
        assert (open_session.paused, open_session.pause_reason) == (True, "training")

        routed = await agents.set_routing(
            session, desk.supervisor, "asha", RoutingIn(penalty=3, skills=["health"])
        )
        assert (routed.skills, routed.penalty, routed.seat) == (
            ["general", "health"],
            3,
            "agent0001",
        )

        gone = await agents.logout(session, desk.agent, notifications=None, wait=0)
        assert gone.state == "logged_out"
    audited = await actions(desk)
    assert [action for action, _ in audited] == [
        "agent_login",
        "agent_pause",
        "agent_routing",
        "agent_logout",
    ]
    assert audited[2] == ("agent_routing", str(desk.agent.id))


# ----------------------------------------------------------------------------- complaints


async def test_concurrent_registrations_for_one_call_store_one_complaint(desk: Desk) -> None:
    async with desk.sessions() as session:
        await agents.login(session, desk.agent, "agent0001", notifications=None, wait=0)
    await put_call(desk, "agent0001", "1732870100.1", "9876543210")
    body = ComplaintIn(description="नाली का पानी सड़क पर बह रहा है", **WHAT_WHERE)

    async def register() -> complaints.Registered:
        async with desk.sessions() as session:
            return await complaints.register(
                session, desk.settings, desk.reference, desk.agent, body
            )

    results = await asyncio.gather(*(register() for _ in range(5)))
    assert sorted(r.created for r in results) == [False, False, False, False, True]
    assert len({r.complaint.number for r in results}) == 1
    created = next(r.complaint for r in results if r.created)
    assert (created.call_uniqueid, created.caller_number, created.created_by) == (
        "1732870100.1",
        "9876543210",
        "asha",
    )
    async with desk.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(Complaint))).scalar() == 1
        found = await complaints.by_number(
            session, desk.reference, created.number, viewer=desk.supervisor
        )
    assert found == created
    assert [action for action, _ in await actions(desk)] == ["agent_login", "complaint_created"]


async def test_idempotency_key_replays_and_refuses_another_body(desk: Desk) -> None:
    body = ComplaintIn(
        description="Street light broken", caller_number="+91 98765 43210", **WHAT_WHERE
    )
    async with desk.sessions() as session:
        first = await complaints.register(
            session, desk.settings, desk.reference, desk.agent, body, "desk-7"
        )
        replay = await complaints.register(
            session, desk.settings, desk.reference, desk.agent, body, "desk-7"
        )
        assert first.created and not replay.created
        assert replay.complaint.number == first.complaint.number
        assert first.complaint.caller_number == "9876543210"
        changed = ComplaintIn(
            description="Something else", caller_number="9876543210", **WHAT_WHERE
        )
        with pytest.raises(Invalid, match="Idempotency-Key was used for a different complaint"):
            await complaints.register(
                session, desk.settings, desk.reference, desk.agent, changed, "desk-7"
            )
        # The same body from another agent is another request, too.
        with pytest.raises(Invalid):
            await complaints.register(
                session, desk.settings, desk.reference, desk.other_agent, body, "desk-7"
            )


async def test_withheld_caller_number_is_taken_from_the_agent(desk: Desk) -> None:
    async with desk.sessions() as session:  # the calls below are taken at asha's seat
        await agents.login(session, desk.agent, "agent0002", notifications=None, wait=0)
    await put_call(desk, "agent0002", "1732870200.1", None)
    await put_call(desk, "agent0002", "1732870200.2", "9123456780")
    async with desk.sessions() as session:
        withheld = await complaints.register(
            session,
            desk.settings,
            desk.reference,
            desk.agent,
            ComplaintIn(
                description="caller withheld the number",
                call_uniqueid="1732870200.1",
                caller_number="0 91234 56789",
                **WHAT_WHERE,
            ),
        )
        assert withheld.complaint.caller_number == "9123456789"
        # A call that has its number keeps it, whatever the agent typed.
        known = await complaints.register(
            session,
            desk.settings,
            desk.reference,
            desk.agent,
            ComplaintIn(
                description="caller gave another number",
                call_uniqueid="1732870200.2",
                caller_number="9999999999",
                **WHAT_WHERE,
            ),
        )
        assert known.complaint.caller_number == "9123456780"
        stored = (
            await session.execute(select(Complaint.caller_number).order_by(Complaint.id))
        ).scalars()
        assert list(stored) == ["9123456789", "9123456780"]


async def test_complaint_refusals(desk: Desk) -> None:
    async with desk.sessions() as session:
        with pytest.raises(Conflict, match="no current call"):
            await complaints.register(
                session,
                desk.settings,
                desk.reference,
                desk.agent,
                ComplaintIn(description="no call at all", **WHAT_WHERE),
            )
        with pytest.raises(NotFound, match="no call nope"):
            await complaints.register(
                session,
                desk.settings,
                desk.reference,
                desk.agent,
                ComplaintIn(description="unknown call", call_uniqueid="nope", **WHAT_WHERE),
            )
        # A caller number is a type: a bad one is refused where the body is parsed.
        with pytest.raises(ValidationError, match="caller_number"):
            ComplaintIn(description="bad number", caller_number="12", **WHAT_WHERE)
        with pytest.raises(Invalid, match="check digit"):
            await complaints.by_number(
                session, desk.reference, "1234567891", viewer=desk.supervisor
            )
        with pytest.raises(NotFound):
            await complaints.by_number(
                session, desk.reference, "1000000009", viewer=desk.supervisor
            )
        assert (await session.execute(select(func.count()).select_from(Complaint))).scalar() == 0


# ----------------------------------------------------------------------------- auth, audit


async def test_tokens_and_roles(desk: Desk) -> None:
    async with desk.sessions() as session:
        with pytest.raises(Unauthenticated, match="wrong username or password"):
            await auth.issue_token(session, desk.settings, "asha", "wrong")
        issued = await auth.issue_token(session, desk.settings, "asha", "pw-asha")
        user = await auth.user_of_token(session, issued.access_token)
        assert (user.username, issued.role) == ("asha", "agent")
        auth.check_role(user, ("agent", "admin"))
        with pytest.raises(Forbidden, match="needs role: supervisor, admin"):
            auth.check_role(user, ("supervisor", "admin"))
        with pytest.raises(Unauthenticated, match="invalid or expired token"):
            await auth.user_of_token(session, issued.access_token + "x")
        # Disabled with its token still stored: refused all the same (the user handed back
        # is a transient copy, so the change is a statement).
        await session.execute(update(User).where(User.id == user.id).values(active=False))
        await session.commit()
        with pytest.raises(Unauthenticated):
            await auth.user_of_token(session, issued.access_token)
    assert await actions(desk) == [("login", str(desk.agent.id))]


async def test_audit_goes_with_the_callers_transaction(desk: Desk) -> None:
    async with desk.sessions() as session:
        audit(session, service="cli", actor_user_id=None, action="dropped", entity="seat")
        await session.rollback()
        audit(
            session,
            service="cli",
            actor_user_id=desk.supervisor.id,
            action="kept",
            entity="seat",
            entity_id="agent0001",
            detail={"why": "test"},
        )
        await session.commit()
        rows = (await session.execute(select(AuditLog))).scalars().all()
    assert [(r.service, r.action, r.entity_id, r.detail) for r in rows] == [
        ("cli", "kept", "agent0001", {"why": "test"})
    ]
