"""Call history, for an agent who wants to see what a caller went through before."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.schemas import CallOut
from core.db.models import Call
from core.domain.phone import CallerNumber


async def of_caller(session: AsyncSession, caller: CallerNumber, *, limit: int) -> list[CallOut]:
    """Calls from ``caller``, newest first."""
    rows = (
        await session.execute(
            select(Call).where(Call.caller_number == caller).order_by(Call.id.desc()).limit(limit)
        )
    ).scalars()
    return [CallOut.model_validate(row) for row in rows]
