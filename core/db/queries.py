"""Queries more than one service asks the same question with (one question, one query)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import Call
from core.domain.clock import day_start


async def inbound_calls_today(
    session: AsyncSession, now: datetime, *, besides: str | None = None
) -> int:
    """Citizens' calls that arrived since the helpline's day began (IST) -- the daily inbound
    budget's count -- leaving out the call ``besides`` (the IVR asks during that call).

    An index scan on ``ix_calls_started_at_budget``: the IVR asks before every queued call.
    """
    query = select(func.count()).select_from(Call).where(Call.started_at >= day_start(now))
    if besides is not None:
        query = query.where(Call.uniqueid != besides)
    return int(await session.scalar(query) or 0)
