"""Call history, for an agent who wants to see what a caller went through before."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import CurrentUser, SessionDep
from api.schemas import CallOut
from api.services import calls
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
    return await calls.of_caller(session, caller, limit=limit)
