"""Complaints, routed and stored exactly once (:mod:`api.services.complaints`), and their
actions (:mod:`api.services.transitions`: 409 illegal, 403 forbidden, 422 invalid): 201 when
stored now, 200 with the original for a replay, 422 for an unknown code or an
``Idempotency-Key`` reused for another body, 403 on a call another agent handled, 429 when the
caller's monthly cap is reached."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status

from api.deps import AgentUser, ReferenceDep, SessionDep, SettingsDep, StaffUser
from api.schemas import (
    ComplaintCheckOut,
    ComplaintDetailOut,
    ComplaintIn,
    ComplaintOut,
    TransitionIn,
)
from api.services import complaints, transitions
from core.domain.phone import CallerNumber

router = APIRouter(prefix="/complaints", tags=["complaints"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"description": "a replay: the complaint stored before", "model": ComplaintOut},
        403: {"description": "the call was handled by another agent"},
        409: {"description": "no current call and no caller_number"},
        429: {"description": "the caller's complaints this month reached the cap"},
    },
)
async def create_complaint(
    body: ComplaintIn,
    user: AgentUser,
    session: SessionDep,
    settings: SettingsDep,
    reference: ReferenceDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
) -> ComplaintOut:
    registered = await complaints.register(
        session, settings, reference, user, body, idempotency_key
    )
    if not registered.created:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/complaints/{registered.complaint.number}"
    return registered.complaint


@router.get("/check")
async def check_complaint(
    caller: CallerNumber,
    category: str,
    user: AgentUser,
    session: SessionDep,
    settings: SettingsDep,
    reference: ReferenceDep,
) -> ComplaintCheckOut:
    """Before filing: an open complaint of this caller and category, and the monthly count."""
    return await complaints.check(session, settings, reference, caller, category)


@router.get("/{number}")
async def get_complaint(
    number: str, user: StaffUser, session: SessionDep, reference: ReferenceDep
) -> ComplaintDetailOut:
    """Status, officer, level, due date, resolution, reopen count and the history."""
    return await transitions.detail(session, reference, number)


@router.post(
    "/{number}/transitions",
    responses={
        403: {"description": "the action is legal, but not for this user"},
        404: {"description": "no such complaint"},
        409: {"description": "the complaint's status does not allow the action (reason given)"},
        422: {"description": "a note, officer or duplicate number the action needs is missing"},
    },
)
async def transition_complaint(
    number: str,
    body: TransitionIn,
    user: StaffUser,
    session: SessionDep,
    reference: ReferenceDep,
) -> ComplaintDetailOut:
    """Take an action on the complaint (start, resolve, reopen, reassign...): the complaint as
    it now stands, with its history."""
    return await transitions.act(session, reference, user, number, body)


@router.get("")
async def list_complaints(
    user: StaffUser,
    session: SessionDep,
    reference: ReferenceDep,
    caller: CallerNumber | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    unroutable: Annotated[bool, Query(description="only those no rule placed")] = False,
) -> list[ComplaintOut]:
    return await complaints.latest(
        session, reference, caller=caller, limit=limit, unroutable=unroutable
    )
