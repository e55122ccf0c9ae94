"""Agents sit at seats (:mod:`api.services.agents` holds the rules)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from api.deps import CurrentUser, NotificationsDep, SessionDep, SettingsDep
from api.schemas import (
    AgentStateOut,
    PauseIn,
    PhoneOut,
    RoutingIn,
    RoutingOut,
    SeatLoginIn,
    ShiftOut,
)
from api.services import agents, desk

router = APIRouter(prefix="/agents", tags=["agents"])


@router.get("/me")
async def my_state(user: CurrentUser, session: SessionDep) -> AgentStateOut:
    return await agents.state(session, user)


@router.get("/me/shift")
async def my_shift(user: CurrentUser, session: SessionDep) -> ShiftOut:
    """Your calls answered, complaints filed, average handle time and wrap-ups today (IST)."""
    return await desk.shift(session, user)


@router.post(
    "/me/login",
    responses={404: {"description": "no such seat"}, 409: {"description": "seat taken"}},
)
async def login_to_seat(
    body: SeatLoginIn, user: CurrentUser, session: SessionDep, notifications: NotificationsDep
) -> AgentStateOut:
    """Sit at ``seat``: answers once app_queue has the seat as a member, or ``pending`` after
    5 s (the intent is stored and will be applied as soon as Asterisk is reachable)."""
    return await agents.login(session, user, body.seat, notifications=notifications)


@router.get("/me/phone", responses={409: {"description": "not logged in at a seat"}})
async def my_phone(user: CurrentUser, session: SessionDep, settings: SettingsDep) -> PhoneOut:
    """The in-page phone's settings for the seat you sit at: the WSS URL, the SIP URI and the
    digest (HA1) of the seat's WebRTC endpoint (audited). Log in to a seat first."""
    return await agents.phone(session, settings, user)


@router.post("/me/logout")
async def logout_from_seat(
    user: CurrentUser, session: SessionDep, notifications: NotificationsDep
) -> AgentStateOut:
    return await agents.logout(session, user, notifications=notifications)


@router.post("/me/pause", responses={409: {"description": "not logged in at a seat"}})
async def pause(
    body: PauseIn, user: CurrentUser, session: SessionDep, notifications: NotificationsDep
) -> AgentStateOut:
    """Stop receiving calls for ``reason`` (break, training, meeting, after_call_work); the
    pause is kept in the database and survives Asterisk restarts."""
    return await agents.set_pause(session, user, body.reason, notifications=notifications)


@router.post("/me/unpause", responses={409: {"description": "not logged in at a seat"}})
async def unpause(
    user: CurrentUser, session: SessionDep, notifications: NotificationsDep
) -> AgentStateOut:
    return await agents.set_pause(session, user, None, notifications=notifications)


@router.put(
    "/{username}/routing",
    responses={404: {"description": "no such user"}, 409: {"description": "not logged in"}},
)
async def set_routing(
    username: Annotated[str, Path(max_length=64)],
    body: RoutingIn,
    supervisor: CurrentUser,
    session: SessionDep,
) -> RoutingOut:
    """Set an agent's skills (general, police, health: skill queues ring skilled agents first)
    and, while logged in, the penalty; applied to app_queue at once."""
    return await agents.set_routing(session, supervisor, username, body)
