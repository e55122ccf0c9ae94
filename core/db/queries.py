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


def inbound_today_count(now: datetime, *, besides: str | None = None) -> ColumnElement[int]:
    """Citizens' calls recorded on the helpline's day (IST) of ``now`` -- the daily inbound
    budget's count -- leaving out the call ``besides`` (the IVR asks during that call), as a
    column to select (alone, or beside the IVR's other figures in one statement).

    Two primary-key lookups whatever the hour: the day's ``inbound_budget`` row (the queue
    manager counts each call in the statement that records it), less one if ``besides`` is
    among them.
    """
    if besides is None:
        return _inbound_today(helpline_day(now), None, None, None)
    start = day_start(now)
    return _inbound_today(helpline_day(now), start, start + timedelta(days=1), besides)


def inbound_today_params(now: datetime, besides: str) -> dict[str, Any]:
    """The values :data:`INBOUND_TODAY_BESIDES` binds."""
    start = day_start(now)
    return {
        "inbound_day": helpline_day(now),
        "inbound_from": start,
        "inbound_to": start + timedelta(days=1),
        "inbound_besides": besides,
    }


def _inbound_today(day: Any, start: Any, end: Any, besides: Any) -> ColumnElement[int]:
    used = func.coalesce(
        select(InboundBudget.used).where(InboundBudget.day == day).scalar_subquery(), 0
    )
    if besides is None:
        return used
    counted = (
        select(Call.uniqueid)
        .where(
            Call.uniqueid == besides,
            Call.dialer_attempt_id.is_(None),
            Call.started_at >= start,
            Call.started_at < end,
        )
        .exists()
    )
    return used - case((counted, 1), else_=0)


#: :func:`inbound_today_count` besides one call, with bind parameters (their values from
#: :func:`inbound_today_params`): the IVR asks it for every call, in a statement built once.
INBOUND_TODAY_BESIDES: ColumnElement[int] = _inbound_today(
    bindparam("inbound_day", type_=InboundBudget.__table__.c.day.type),
    bindparam("inbound_from", type_=Call.__table__.c.started_at.type),
    bindparam("inbound_to", type_=Call.__table__.c.started_at.type),
    bindparam("inbound_besides", type_=Call.__table__.c.uniqueid.type),
)


async def inbound_calls_today(
    session: AsyncSession, now: datetime, *, besides: str | None = None
) -> int:
    """:func:`inbound_today_count` read on its own."""
    return int(await session.scalar(select(inbound_today_count(now, besides=besides))) or 0)


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
