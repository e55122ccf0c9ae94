"""Call history, for an agent who wants to see what a caller went through before."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.schemas import CallOut
from api.services.access import Subject, call_scope
from core.db.models import Call, User
from core.domain.phone import CallerNumber


async def of_caller(
    session: AsyncSession, caller: CallerNumber, *, limit: int, viewer: User
) -> list[CallOut]:
    """Calls from ``caller`` within ``viewer``'s reach (access.OWNERSHIP's ``call_history``),
    newest first. The number is not masked for anyone: it is the one the asker searched by."""
    rows = (
        await session.execute(
            select(Call)
            .where(Call.caller_number == caller, call_scope(viewer, Subject.CALL_HISTORY))
            .order_by(Call.id.desc())
            .limit(limit)
        )
    ).scalars()
    return [CallOut.model_validate(row) for row in rows]
