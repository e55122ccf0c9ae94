"""Queries more than one service asks the same question with (one question, one query)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, bindparam, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import Call, DialerAttempt, DialerBudget, InboundBudget, SeatStatus
from core.domain.clock import day_start, helpline_day
from core.domain.queues import WRAPUP_SECONDS

#: Citizens' calls recorded on the helpline's day (IST) -- the daily inbound budget's count --
#: as a column to select (alone, or beside other figures in one statement), built once with
#: bind parameters (their values: :func:`inbound_today_params`). One primary-key lookup
#: whatever the hour: the day's ``inbound_budget`` row, which the queue manager counts each
#: call into in the statement that records it.
INBOUND_TODAY: ColumnElement[int] = func.coalesce(
    select(InboundBudget.used)
    .where(InboundBudget.day == bindparam("inbound_day", type_=InboundBudget.__table__.c.day.type))
    .scalar_subquery(),
    0,
)
#: :data:`INBOUND_TODAY` less the call ``inbound_besides`` if it is among them (the IVR asks
#: during that call): a second primary-key lookup.
INBOUND_TODAY_BESIDES: ColumnElement[int] = INBOUND_TODAY - case(
    (
        select(Call.uniqueid)
        .where(
            Call.uniqueid == bindparam("inbound_besides", type_=Call.__table__.c.uniqueid.type),
            Call.dialer_attempt_id.is_(None),
            Call.started_at >= bindparam("inbound_from", type_=Call.__table__.c.started_at.type),
            Call.started_at < bindparam("inbound_to", type_=Call.__table__.c.started_at.type),
        )
        .exists(),
        1,
    ),
    else_=0,
)


def inbound_today_params(now: datetime, besides: str | None = None) -> dict[str, Any]:
    """The values :data:`INBOUND_TODAY` (``besides`` None) or :data:`INBOUND_TODAY_BESIDES`
    binds for the helpline's day of ``now``."""
    params: dict[str, Any] = {"inbound_day": helpline_day(now)}
    if besides is not None:
        start = day_start(now)
        params |= {
            "inbound_from": start,
            "inbound_to": start + timedelta(days=1),
            "inbound_besides": besides,
        }
    return params


async def inbound_calls_today(
    session: AsyncSession, now: datetime, *, besides: str | None = None
) -> int:
    """:data:`INBOUND_TODAY` (or, ``besides`` one call, :data:`INBOUND_TODAY_BESIDES`) read on
    its own."""
    count = INBOUND_TODAY if besides is None else INBOUND_TODAY_BESIDES
    return int(await session.scalar(select(count), inbound_today_params(now, besides)) or 0)


@dataclass(frozen=True, slots=True)
class CampaignDay:
    """One campaign's (or all campaigns') outbound calls on one IST day."""

    attempts: int = 0
    connected: int = 0
    abandoned: int = 0
    #: Channels on the line now.
    active: int = 0


async def outbound_today(session: AsyncSession, now: datetime) -> dict[str, CampaignDay]:
    """Today's (IST) outbound attempts, answered and abandoned ones, and live channels, by
    campaign and under ``"all"``: what ``/stats``, ``/metrics`` and ``GET /campaigns`` show.
    ``attempts`` of ``"all"`` is the budget counter itself (``dialer_budget.used``)."""
    day = helpline_day(now)
    rows = await session.execute(
        select(
            DialerAttempt.campaign,
            func.count(),
            func.count().filter(DialerAttempt.answered.is_(True)),
            func.count().filter(DialerAttempt.abandoned.is_(True)),
            func.count().filter(DialerAttempt.ended_at.is_(None)),
        )
        .where(DialerAttempt.day == day)
        .group_by(DialerAttempt.campaign)
    )
    out = {str(row[0]): CampaignDay(*row[1:]) for row in rows}
    used = (
        await session.execute(
            select(DialerBudget.used, DialerBudget.active).where(
                DialerBudget.day == day, DialerBudget.scope == "all"
            )
        )
    ).one_or_none()
    out["all"] = CampaignDay(
        used[0] if used is not None else 0,
        sum(c.connected for c in out.values()),
        sum(c.abandoned for c in out.values()),
        used[1] if used is not None else 0,
    )
    return out


#: app_queue's member status "not in use" (AST_DEVICE_NOT_INUSE): a seat that could take a call.
DEVICE_NOT_INUSE = 1


async def free_agents(session: AsyncSession, now: datetime) -> int:
    """Seats in the queue that could take a call now: not paused, not in use, not ringing,
    past their wrap-up (the callback campaign dials no more citizens than this)."""
    wrapped = now - timedelta(seconds=WRAPUP_SECONDS)
    query = select(func.count()).where(
        SeatStatus.in_queue.is_(True),
        SeatStatus.paused.is_(False),
        SeatStatus.current_call_uniqueid.is_(None),
        SeatStatus.device_status == DEVICE_NOT_INUSE,
        or_(SeatStatus.last_call_ended_at.is_(None), SeatStatus.last_call_ended_at < wrapped),
    )
    return int(await session.scalar(query) or 0)
