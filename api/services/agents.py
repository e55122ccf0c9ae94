"""Agent sessions: an agent sits at a seat, pauses, is routed by skills and penalty.

The API stores the intent (``agent_sessions``) and NOTIFYs the queue manager in the same
transaction; the queue manager applies it to app_queue and reports back in ``seat_status``,
so the intent survives AMI reconnects and Asterisk restarts. Login, logout and pause wait for
that report (woken by the queue manager's NOTIFY) up to :data:`CONFIRM_WAIT_SECONDS`.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.schemas import AgentStateOut, CallOut, PhoneOut, RoutingIn, RoutingOut
from api.services.errors import Conflict, NotFound
from api.services.lookups import current_call, open_agent_session
from api.services.notify import Notifications, wait_until
from core.config import Settings
from core.db.audit import audit
from core.db.channels import AGENT_INTENT_CHANNEL, STATS_CHANNEL
from core.db.models import AgentSession, Seat, SeatStatus, User
from core.domain.credentials import SIP_REALM, sip_ha1
from core.domain.queues import PauseReason, Skill, webrtc_endpoint

#: How long login/logout/pause wait for queue_manager to confirm before answering as it is.
CONFIRM_WAIT_SECONDS = 5.0


async def _notify_intent(session: AsyncSession, seat: str) -> None:
    """Tell the queue manager, in the same transaction, that ``seat``'s intent changed."""
    await session.execute(
        text("SELECT pg_notify(:channel, :seat)"), {"channel": AGENT_INTENT_CHANNEL, "seat": seat}
    )


async def state(session: AsyncSession, user: User) -> AgentStateOut:
    """Where the agent sits and whether app_queue has confirmed it (``pending`` until then)."""
    agent_session = await open_agent_session(session, user.id)
    if agent_session is None:
        return AgentStateOut(username=user.username, seat=None, state="logged_out")
    seat_status = await session.get(SeatStatus, agent_session.seat, populate_existing=True)
    confirmed = (
        seat_status is not None
        and seat_status.in_queue
        and seat_status.agent_session_id == agent_session.id
    )
    call = await current_call(session, agent_session)
    return AgentStateOut(
        username=user.username,
        seat=agent_session.seat,
        state="in_queue" if confirmed else "pending",
        paused=bool(seat_status and seat_status.paused),
        pause_reason=seat_status.pause_reason if seat_status and seat_status.paused else None,
        current_call=CallOut.model_validate(call) if call else None,
    )


async def _confirmed(
    session: AsyncSession,
    user: User,
    notifications: Notifications | None,
    wait: float,
    done: Callable[[AgentStateOut], bool],
) -> AgentStateOut:
    async def read() -> AgentStateOut:
        current = await state(session, user)
        await session.commit()  # hand the connection back to the pool while waiting
        return current

    # The queue manager NOTIFYs queue_stats after each write of seat_status.
    return await wait_until(notifications, STATS_CHANNEL, read, done, wait)


async def login(
    session: AsyncSession,
    user: User,
    seat: str,
    *,
    notifications: Notifications | None,
    wait: float = CONFIRM_WAIT_SECONDS,
) -> AgentStateOut:
    """Sit at ``seat``; idempotent for the same seat. A seat holds one agent and an agent one
    seat: the database's unique indexes decide a race, not this check."""
    row = await session.get(Seat, seat)
    if row is None or not row.enabled:
        raise NotFound(f"no seat {seat}")
    existing = await open_agent_session(session, user.id)
    if existing is not None and existing.seat != seat:
        raise Conflict(f"already logged in at {existing.seat}; log out first")
    if existing is None:
        session.add(AgentSession(user_id=user.id, seat=seat))
        try:
            await session.flush()
        except IntegrityError:
            await session.rollback()
            raise Conflict(f"seat {seat} is taken by another agent") from None
        audit(
            session,
            service="api",
            actor_user_id=user.id,
            action="agent_login",
            entity="seat",
            entity_id=seat,
        )
        await _notify_intent(session, seat)
        await session.commit()
    return await _confirmed(session, user, notifications, wait, lambda s: s.state == "in_queue")


async def logout(
    session: AsyncSession,
    user: User,
    *,
    notifications: Notifications | None,
    wait: float = CONFIRM_WAIT_SECONDS,
) -> AgentStateOut:
    """Leave the seat (nothing to do if not logged in)."""
    existing = await open_agent_session(session, user.id)
    if existing is not None:
        existing.logged_out_at = func.now()
        audit(
            session,
            service="api",
            actor_user_id=user.id,
            action="agent_logout",
            entity="seat",
            entity_id=existing.seat,
        )
        await _notify_intent(session, existing.seat)
        await session.commit()
    return await _confirmed(session, user, notifications, wait, lambda s: s.state == "logged_out")


async def set_pause(
    session: AsyncSession,
    user: User,
    reason: PauseReason | None,
    *,
    notifications: Notifications | None,
    wait: float = CONFIRM_WAIT_SECONDS,
) -> AgentStateOut:
    """Pause for ``reason`` (break, training, …), or resume with ``None``. Kept in the
    database, so the pause survives Asterisk restarts."""
    paused = reason is not None
    existing = await open_agent_session(session, user.id)
    if existing is None:
        raise Conflict("not logged in at a seat; log in first")
    existing.paused = paused
    existing.pause_reason = reason
    audit(
        session,
        service="api",
        actor_user_id=user.id,
        action="agent_pause" if paused else "agent_unpause",
        entity="seat",
        entity_id=existing.seat,
        detail={"reason": reason} if paused else {},
    )
    await _notify_intent(session, existing.seat)
    await session.commit()
    return await _confirmed(
        session,
        user,
        notifications,
        wait,
        lambda s: s.state == "in_queue" and s.paused == paused and s.pause_reason == reason,
    )


async def set_routing(
    session: AsyncSession, supervisor: User, username: str, routing: RoutingIn
) -> RoutingOut:
    """Set an agent's skills (``general`` is always kept) and, while logged in, the penalty;
    the queue manager applies it to app_queue at once."""
    agent = (
        await session.execute(select(User).where(User.username == username))
    ).scalar_one_or_none()
    if agent is None:
        raise NotFound(f"no user {username}")
    if routing.skills is not None:
        agent.skills = sorted(set(routing.skills) | {Skill.GENERAL})
    existing = await open_agent_session(session, agent.id)
    if routing.penalty is not None:
        if existing is None:
            raise Conflict(f"{username} is not logged in; a penalty needs a seat")
        existing.penalty = routing.penalty
    audit(
        session,
        service="api",
        actor_user_id=supervisor.id,
        action="agent_routing",
        entity="user",
        entity_id=str(agent.id),
        detail=routing.model_dump(exclude_none=True),
    )
    if existing is not None:
        await _notify_intent(session, existing.seat)
    await session.commit()
    return RoutingOut(
        username=agent.username,
        skills=list(agent.skills),
        penalty=existing.penalty if existing else None,
        seat=existing.seat if existing else None,
    )


async def phone(session: AsyncSession, settings: Settings, user: User) -> PhoneOut:
    """The in-page phone's settings for the seat the agent sits at (409 when at none): the
    seat's WebRTC endpoint and its digest HA1. The HA1 is keyed to that endpoint's user name,
    so it registers the desk phone only, never the seat's SIP softphone endpoint; each read is
    audited, as an admin's read of a seat's password is."""
    existing = await open_agent_session(session, user.id)
    if existing is None:
        raise Conflict("not logged in at a seat; log in first")
    seat = await session.get(Seat, existing.seat)
    if seat is None or not seat.enabled:
        raise NotFound(f"no seat {existing.seat}")
    endpoint = webrtc_endpoint(seat.name)
    audit(
        session,
        service="api",
        actor_user_id=user.id,
        action="phone_settings_read",
        entity="seat",
        entity_id=seat.name,
    )
    await session.commit()
    host = f"[{settings.sip_host}]" if ":" in settings.sip_host else settings.sip_host
    return PhoneOut(
        seat=seat.name,
        wss_url=settings.wss_url,
        sip_uri=f"sip:{endpoint}@{host}",
        authorization_user=endpoint,
        realm=SIP_REALM,
        ha1=sip_ha1(endpoint, SIP_REALM, seat.sip_password),
        display_name=seat.name,
    )
