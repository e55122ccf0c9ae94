"""Call history, for an agent who wants to see what a caller went through before."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from api.deps import SessionDep, StaffUser
from api.schemas import CallOut
from core.db.models import Call
from core.domain.phone import CallerNumber

router = APIRouter(prefix="/calls", tags=["calls"])


@router.get("")
async def list_calls(
    user: StaffUser, session: SessionDep, caller: CallerNumber, limit: int = 50
) -> list[CallOut]:
    """Calls from ``caller`` (any Indian format: +91…, 0…, 10 digits), newest first."""
    rows = (
        await session.execute(
            select(Call)
            .where(Call.caller_number == caller)
            .order_by(Call.id.desc())
            .limit(min(max(limit, 1), 500))
        )
    ).scalars()
    return [CallOut.model_validate(row) for row in rows]
