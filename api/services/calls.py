"""Call history, for an agent who wants to see what a caller went through before."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.schemas import CallOut
from api.services.errors import Invalid
from core.db.models import Call
from core.domain.phone import normalise_caller_number


async def of_caller(session: AsyncSession, caller: str, *, limit: int) -> list[CallOut]:
    """Calls from ``caller`` (any Indian format: +91…, 0…, 10 digits), newest first."""
    number = normalise_caller_number(caller)
    if number is None:
        raise Invalid("caller is not an Indian phone number (10 digits, +91 or 0 prefix allowed)")
    rows = (
        await session.execute(
            select(Call).where(Call.caller_number == number).order_by(Call.id.desc()).limit(limit)
        )
    ).scalars()
    return [CallOut.model_validate(row) for row in rows]
