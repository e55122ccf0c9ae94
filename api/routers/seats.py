"""Seats as data: how many SIP seats exist (500 at first, grown to 1000 or shrunk) and their
credentials, for admins only.

The API writes ``seats``; the queue manager renders the PJSIP endpoints and reloads Asterisk's
PJSIP module (calls in progress are kept) and records what it applied in ``seat_config_state``;
``PUT /seats/count`` waits for that, up to :data:`APPLY_WAIT_SECONDS`. Shrinking only ever
disables the highest-numbered seats, and never one with an agent logged in or a call up.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, status
from pydantic import BaseModel, Field
from sqlalchemy import or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import SessionDep, SettingsDep, require_role
from core.db.channels import SEAT_CONFIG_CHANNEL
from core.db.models import AgentSession, AuditLog, Seat, SeatConfigState, SeatStatus, User
from core.domain.credentials import generate_secret
from core.domain.queues import seats_digest

router = APIRouter(prefix="/seats", tags=["seats"])

AdminUser = Annotated[User, Depends(require_role("admin"))]
StaffAdmin = Annotated[User, Depends(require_role("supervisor", "admin"))]

MAX_SEATS = 9999
APPLY_WAIT_SECONDS = 15.0


class SeatCountIn(BaseModel):
    count: int = Field(ge=1, le=MAX_SEATS, examples=[1000])


class SeatsOut(BaseModel):
    #: Enabled seats (``agent0001`` … ``agentNNNN``).
    count: int
    #: Whether Asterisk's PJSIP config holds exactly these seats.
    applied: bool
    applied_count: int | None
    applied_at: str | None
    reload_seconds: float | None
    error: str | None


class CredentialsOut(BaseModel):
    seat: str
    username: str
    password: str
    sip_server: str
    sip_port: int
    transport: str = "udp"


def seat_name(index: int) -> str:
    return f"agent{index:04d}"


async def _seats_state(session: AsyncSession) -> SeatsOut:
    rows = (
        await session.execute(select(Seat.name, Seat.sip_password).where(Seat.enabled.is_(True)))
    ).all()
    state = await session.get(SeatConfigState, "pjsip", populate_existing=True)
    digest = seats_digest((name, password) for name, password in rows)
    return SeatsOut(
        count=len(rows),
        applied=state is not None and state.seats_hash == digest and state.error is None,
        applied_count=state.seat_count if state else None,
        applied_at=state.applied_at.isoformat() if state and state.applied_at else None,
        reload_seconds=state.reload_seconds if state else None,
        error=state.error if state else None,
    )


@router.get("")
async def get_seats(user: StaffAdmin, session: SessionDep) -> SeatsOut:
    return await _seats_state(session)


@router.put("/count", responses={409: {"description": "a seat to remove is in use"}})
async def set_seat_count(body: SeatCountIn, user: AdminUser, session: SessionDep) -> SeatsOut:
    """Grow or shrink to ``count`` seats. New seats get generated SIP passwords. Answers once
    Asterisk has the new endpoints (``applied: true``), or with ``applied: false`` after 15 s
    (the change is stored and will be applied; see ``error``)."""
    # One resize at a time, across API processes.
    await session.execute(text("SELECT pg_advisory_xact_lock(1076005)"))
    keep = {seat_name(i) for i in range(1, body.count + 1)}
    enabled = set(
        (await session.execute(select(Seat.name).where(Seat.enabled.is_(True)))).scalars()
    )
    removing = sorted(enabled - keep)
    if removing:
        busy = (
            (
                await session.execute(
                    select(Seat.name)
                    .outerjoin(SeatStatus, SeatStatus.seat == Seat.name)
                    .outerjoin(
                        AgentSession,
                        (AgentSession.seat == Seat.name) & AgentSession.logged_out_at.is_(None),
                    )
                    .where(Seat.name.in_(removing))
                    .where(
                        or_(
                            AgentSession.id.is_not(None),
                            SeatStatus.current_call_uniqueid.is_not(None),
                        )
                    )
                    .order_by(Seat.name)
                )
            )
            .scalars()
            .all()
        )
        if busy:
            await session.rollback()
            shown = ", ".join(busy[:10]) + (" …" if len(busy) > 10 else "")
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"cannot shrink to {body.count} seats: {len(busy)} of the seats to remove have "
                f"an agent logged in or a call up ({shown}); log them out first",
            )
        await session.execute(update(Seat).where(Seat.name.in_(removing)).values(enabled=False))
    adding = sorted(keep - enabled)
    if adding:
        statement = insert(Seat).values(
            [{"name": name, "sip_password": generate_secret(20)} for name in adding]
        )
        await session.execute(
            statement.on_conflict_do_update(index_elements=["name"], set_={"enabled": True})
        )
    session.add(
        AuditLog(
            service="api",
            actor_user_id=user.id,
            action="seat_count",
            entity="seats",
            entity_id=str(body.count),
            detail={"added": len(adding), "removed": len(removing)},
        )
    )
    await session.execute(text("SELECT pg_notify(:c, '')"), {"c": SEAT_CONFIG_CHANNEL})
    await session.commit()
    deadline = time.monotonic() + APPLY_WAIT_SECONDS
    while True:
        state = await _seats_state(session)
        await session.commit()
        if state.applied or time.monotonic() >= deadline:
            return state
        await asyncio.sleep(0.1)


@router.get("/{name}/credentials")
async def seat_credentials(
    name: Annotated[str, Path(pattern=r"^agent\d{4}$")],
    user: AdminUser,
    session: SessionDep,
    settings: SettingsDep,
) -> CredentialsOut:
    """The SIP user name and password an agent's softphone needs (admins only; audited)."""
    seat = await session.get(Seat, name)
    if seat is None or not seat.enabled:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no seat {name}")
    session.add(
        AuditLog(
            service="api",
            actor_user_id=user.id,
            action="seat_credentials_read",
            entity="seat",
            entity_id=name,
        )
    )
    await session.commit()
    return CredentialsOut(
        seat=name,
        username=name,
        password=seat.sip_password,
        sip_server=settings.sip_host,
        sip_port=settings.sip_port,
    )
