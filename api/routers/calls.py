"""Call history, for an agent who wants to see what a caller went through before; and what
the desk does on a call (:mod:`api.services.desk`): the agent's wrap-up and the read-back of
a complaint number to the caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import AmiDep, CurrentUser, SessionDep
from api.schemas import (
    CallOut,
    ReadbackIn,
    ReadbackOut,
    ReadbackSessionOut,
    WrapupIn,
    WrapupOut,
)
from api.services import calls, desk
from core.domain.phone import CallerNumber

router = APIRouter(prefix="/calls", tags=["calls"])


@router.get("")
async def list_calls(
    user: CurrentUser,
    session: SessionDep,
    caller: CallerNumber,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[CallOut]:
    """Calls from ``caller`` (any Indian format: +91…, 0…, 10 digits), newest first."""
    return await calls.of_caller(session, caller, limit=limit, viewer=user)


#: An Asterisk channel's uniqueid (``helpline-demo-1733456789.42``: asterisk.conf's systemname).
Uniqueid = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


@router.put(
    "/{uniqueid}/wrapup",
    responses={
        403: {"description": "the call was handled by another agent"},
        404: {"description": "no such call"},
    },
)
async def wrap_up(
    uniqueid: Uniqueid, body: WrapupIn, user: CurrentUser, session: SessionDep
) -> WrapupOut:
    """The agent's wrap-up code (and note) for the call, stored or corrected; the queue
    manager's ``disposition`` of the call is kept as it is."""
    return await desk.wrap_up(session, user, uniqueid, body)


@router.post(
    "/{uniqueid}/readback",
    status_code=202,
    responses={
        403: {"description": "the call was handled by another agent"},
        404: {"description": "no such call or complaint"},
        409: {
            "description": "the complaint is not of this call, the call ended or is not "
            "connected to its seat, or Asterisk is not reachable"
        },
    },
)
async def read_back(
    uniqueid: Uniqueid, body: ReadbackIn, user: CurrentUser, session: SessionDep, ami: AmiDep
) -> ReadbackOut:
    """Have the complaint number read to the caller (digit by digit in their language, twice,
    with the due date), then bring the caller back to you or end the call (``then``). Accepted
    once Asterisk took the redirect; ``GET /calls/{uniqueid}/readbacks`` shows what was said."""
    return await desk.read_back(session, ami, user, uniqueid, body)


@router.get(
    "/{uniqueid}/readbacks",
    responses={
        403: {"description": "the call was handled by another agent"},
        404: {"description": "no such call"},
    },
)
async def list_readbacks(
    uniqueid: Uniqueid, user: CurrentUser, session: SessionDep
) -> list[ReadbackSessionOut]:
    """The call's read-backs, as the ``readback`` script stored them."""
    return await desk.readbacks(session, user, uniqueid)
