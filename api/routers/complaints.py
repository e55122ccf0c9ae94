"""Complaints, stored exactly once (:mod:`api.services.complaints`): 201 when stored now, 200
with the original for a replay, 422 for an ``Idempotency-Key`` reused for another body."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status

from api.deps import AgentUser, SessionDep, SettingsDep, StaffUser
from api.schemas import ComplaintIn, ComplaintOut
from api.services import complaints
from core.domain.phone import CallerNumber

router = APIRouter(prefix="/complaints", tags=["complaints"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"description": "a replay: the complaint stored before", "model": ComplaintOut},
        409: {"description": "no current call and no caller_number"},
    },
)
async def create_complaint(
    body: ComplaintIn,
    user: AgentUser,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
) -> ComplaintOut:
    registered = await complaints.register(session, settings, user, body, idempotency_key)
    if not registered.created:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/complaints/{registered.complaint.number}"
    return registered.complaint


@router.get("/{number}")
async def get_complaint(number: str, user: StaffUser, session: SessionDep) -> ComplaintOut:
    return await complaints.by_number(session, number)


@router.get("")
async def list_complaints(
    user: StaffUser,
    session: SessionDep,
    caller: CallerNumber | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[ComplaintOut]:
    return await complaints.latest(session, caller=caller, limit=limit)
