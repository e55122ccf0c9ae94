"""Seats as data, for admins (:mod:`api.services.seats`): how many SIP seats exist and their
credentials."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from api.deps import CurrentUser, NotificationsDep, SessionDep, SettingsDep
from api.schemas import CredentialsOut, SeatCountIn, SeatsOut
from api.services import seats

router = APIRouter(prefix="/seats", tags=["seats"])


@router.get("")
async def get_seats(user: CurrentUser, session: SessionDep) -> SeatsOut:
    return await seats.state(session)


@router.put("/count", responses={409: {"description": "a seat to remove is in use"}})
async def set_seat_count(
    body: SeatCountIn, user: CurrentUser, session: SessionDep, notifications: NotificationsDep
) -> SeatsOut:
    """Grow or shrink to ``count`` seats. New seats get generated SIP passwords. Answers once
    Asterisk has the new endpoints (``applied: true``), or with ``applied: false`` after 15 s
    (the change is stored and will be applied; see ``error``)."""
    return await seats.set_count(session, user, body.count, notifications=notifications)


@router.get("/{name}/credentials", responses={404: {"description": "no such seat"}})
async def seat_credentials(
    name: Annotated[str, Path(pattern=r"^agent\d{4}$")],
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
) -> CredentialsOut:
    """The SIP user name and password an agent's softphone needs (admins only; audited)."""
    return await seats.credentials(session, settings, user, name)
