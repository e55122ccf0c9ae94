"""Agents sit at seats. The API stores the intent; queue_manager applies it to app_queue and
reports back in ``seat_status``, so the intent survives AMI reconnects and Asterisk restarts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, status
from pydantic import BaseModel, Field
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import AgentUser, SessionDep, require_role
from api.schemas import AgentStateOut, CallOut, SeatLoginIn
from core.db.channels import AGENT_INTENT_CHANNEL
from core.db.models import AgentSession, AuditLog, Call, Seat, SeatStatus, User
from core.domain.queues import PauseReason, Skill

router = APIRouter(prefix="/agents", tags=["agents"])

#: How long login/logout waits for queue_manager to confirm before answering "pending".
CONFIRM_WAIT_SECONDS = 5.0


async def notify_intent(session: AsyncSession, seat: str) -> None:
    """Tell the queue manager, in the same transaction, that ``seat``'s intent changed."""
    await session.execute(
        text("SELECT pg_notify(:channel, :seat)"), {"channel": AGENT_INTENT_CHANNEL, "seat": seat}
    )


async def open_session(session: AsyncSession, user_id: int) -> AgentSession | None:
    return (
        await session.execute(
            select(AgentSession).where(
                AgentSession.user_id == user_id, AgentSession.logged_out_at.is_(None)
            )
        )
    ).scalar_one_or_none()


async def current_call(session: AsyncSession, agent_session: AgentSession) -> Call | None:
    """The latest call connected to the agent's seat during this login (up or just ended)."""
    return (
        await session.execute(
            select(Call)
            .where(
                Call.agent_seat == agent_session.seat,
                Call.agent_connected_at >= agent_session.logged_in_at,
            )
            .order_by(Call.agent_connected_at.desc())
            .limit(1)
        )
    ).scalar_one_or_none()


async def _state(session: AsyncSession, user: User) -> AgentStateOut:
    agent_session = await open_session(session, user.id)
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


async def _wait_confirmed(
    session: AsyncSession,
    user: User,
    want: str,
    done: Callable[[AgentStateOut], bool] | None = None,
) -> AgentStateOut:
    deadline = time.monotonic() + CONFIRM_WAIT_SECONDS
    while True:
        state = await _state(session, user)
        await session.commit()  # end the snapshot so the next read sees queue_manager's write
        confirmed = state.state == want and (done is None or done(state))
        if confirmed or time.monotonic() >= deadline:
            return state
        await asyncio.sleep(0.1)


@router.get("/me")
async def my_state(user: AgentUser, session: SessionDep) -> AgentStateOut:
    return await _state(session, user)


@router.post("/me/login")
async def login_to_seat(body: SeatLoginIn, user: AgentUser, session: SessionDep) -> AgentStateOut:
    """Sit at ``seat``: answers once app_queue has the seat as a member, or ``pending`` after
    5 s (the intent is stored and will be applied as soon as Asterisk is reachable)."""
    seat = await session.get(Seat, body.seat)
    if seat is None or not seat.enabled:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no seat {body.seat}")
    existing = await open_session(session, user.id)
    if existing is not None and existing.seat != body.seat:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"already logged in at {existing.seat}; log out first"
        )
    if existing is None:
        session.add(AgentSession(user_id=user.id, seat=body.seat))
        try:
            await session.flush()
        except IntegrityError:
            await session.rollback()
            raise HTTPException(
                status.HTTP_409_CONFLICT, f"seat {body.seat} is taken by another agent"
            ) from None
        session.add(
            AuditLog(
                service="api",
                actor_user_id=user.id,
                action="agent_login",
                entity="seat",
                entity_id=body.seat,
            )
        )
        await notify_intent(session, body.seat)
        await session.commit()
    return await _wait_confirmed(session, user, "in_queue")


@router.post("/me/logout")
async def logout_from_seat(user: AgentUser, session: SessionDep) -> AgentStateOut:
    existing = await open_session(session, user.id)
    if existing is not None:
        existing.logged_out_at = func.now()
        session.add(
            AuditLog(
                service="api",
                actor_user_id=user.id,
                action="agent_logout",
                entity="seat",
                entity_id=existing.seat,
            )
        )
        await notify_intent(session, existing.seat)
        await session.commit()
    return await _wait_confirmed(session, user, "logged_out")


class PauseIn(BaseModel):
    reason: PauseReason


async def _set_pause(
    session: AsyncSession, user: User, paused: bool, reason: PauseReason | None
) -> AgentStateOut:
    existing = await open_session(session, user.id)
    if existing is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "not logged in at a seat; log in first")
    existing.paused = paused
    existing.pause_reason = reason if paused else None
    session.add(
        AuditLog(
            service="api",
            actor_user_id=user.id,
            action="agent_pause" if paused else "agent_unpause",
            entity="seat",
            entity_id=existing.seat,
            detail={"reason": reason} if paused else {},
        )
    )
    await notify_intent(session, existing.seat)
    await session.commit()
    return await _wait_confirmed(
        session,
        user,
        "in_queue",
        lambda s: s.paused == paused and (not paused or s.pause_reason == reason),
    )


@router.post("/me/pause", responses={409: {"description": "not logged in at a seat"}})
async def pause(body: PauseIn, user: AgentUser, session: SessionDep) -> AgentStateOut:
    """Stop receiving calls for ``reason`` (break, training, meeting, after_call_work); the
    pause is kept in the database and survives Asterisk restarts."""
    return await _set_pause(session, user, True, body.reason)


@router.post("/me/unpause", responses={409: {"description": "not logged in at a seat"}})
async def unpause(user: AgentUser, session: SessionDep) -> AgentStateOut:
    return await _set_pause(session, user, False, None)


class RoutingIn(BaseModel):
    #: Base member penalty: lower rings first (0 = first choice).
    penalty: int | None = Field(default=None, ge=0, le=9)
    skills: list[Skill] | None = None


class RoutingOut(BaseModel):
    username: str
    skills: list[str]
    penalty: int | None
    seat: str | None


@router.put("/{username}/routing")
async def set_routing(
    username: Annotated[str, Path(max_length=64)],
    body: RoutingIn,
    supervisor: Annotated[User, Depends(require_role("supervisor", "admin"))],
    session: SessionDep,
) -> RoutingOut:
    """Set an agent's skills (general, police, health: skill queues ring skilled agents first)
    and, while logged in, the penalty; applied to app_queue at once."""
    agent = (
        await session.execute(select(User).where(User.username == username))
    ).scalar_one_or_none()
    if agent is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no user {username}")
    if body.skills is not None:
        agent.skills = sorted(set(body.skills) | {"general"})
    existing = await open_session(session, agent.id)
    if body.penalty is not None:
        if existing is None:
            raise HTTPException(
                status.HTTP_409_CONFLICT, f"{username} is not logged in; a penalty needs a seat"
            )
        existing.penalty = body.penalty
    session.add(
        AuditLog(
            service="api",
            actor_user_id=supervisor.id,
            action="agent_routing",
            entity="user",
            entity_id=str(agent.id),
            detail=body.model_dump(exclude_none=True),
        )
    )
    if existing is not None:
        await notify_intent(session, existing.seat)
    await session.commit()
    return RoutingOut(
        username=agent.username,
        skills=list(agent.skills),
        penalty=existing.penalty if existing else None,
        seat=existing.seat if existing else None,
    )
