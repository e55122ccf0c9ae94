"""Click-to-call: an agent (or supervisor) at the desk has the dialer call a citizen about a
complaint. The only way out for a seat (the ``[agents]`` context refuses every number): the
call is a job of the dialer's ``click`` campaign, claimed at once (ahead of every other job) by
whichever dialer process polls next, under the same atomic limits as every outbound call
(``outbound_dialer.store.claim_jobs``: budget and pacing, channels, attempts per number and
day, do-not-call, the 72 h rule). The seat rings first; when the agent answers the citizen is
dialled with the helpline's caller ID and bridged (docs/dialer.md says why in that order).

The checks here answer the agent at once and clearly (422 a number the dialer may not dial,
409 outside the window / on the do-not-call list / not at a seat / a call already on its way,
429 the day's budget, the channels or the number's attempts spent); the claim is what enforces
them, atomically, whatever passed here (a race can still leave the job undialled: it is then
stopped after ``CLICK_STALE``, never dialled later).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.services.errors import Conflict, Invalid, NotFound, TooMany
from core.config import Settings
from core.db.audit import audit
from core.db.models import (
    AgentSession,
    Complaint,
    DialerAttempt,
    DialerBudget,
    DialerCampaign,
    DialerJob,
    DialerNumberDay,
    DoNotCall,
    User,
)
from core.domain.clock import helpline_day
from core.domain.dialing import ABANDON_QUIET, Campaign, JobState, dialable
from core.domain.staff import Role
from outbound_dialer.store import DialRules

SERVICE = "api"


async def call_complaint(
    session: AsyncSession, settings: Settings, user: User, complaint_number: str, now: datetime
) -> dict[str, Any]:
    """Queue a click-to-call of the complaint's caller from ``user``'s seat (audited); the
    caller commits. Returns the job's id and the seat that will ring."""
    complaint = (
        await session.execute(select(Complaint).where(Complaint.number == complaint_number))
    ).scalar_one_or_none()
    if complaint is None:
        raise NotFound(f"no complaint {complaint_number}")
    number = complaint.caller_number
    if number is None:
        raise Invalid("the complaint has no caller number to call")
    if not dialable(str(number)):
        raise Invalid("the caller's number is not one the dialer may call (mobile or landline)")
    seat = (
        await session.execute(
            select(AgentSession.seat).where(
                AgentSession.user_id == user.id, AgentSession.logged_out_at.is_(None)
            )
        )
    ).scalar_one_or_none()
    if seat is None:
        raise Conflict("you are not logged in at a seat: its phone is what rings first")
    rules = DialRules.from_settings(settings)
    if not rules.window.contains(now):
        start, end = settings.dialer_window_start, settings.dialer_window_end
        raise Conflict(f"outside the calling window ({start:%H:%M}-{end:%H:%M} IST)")
    if (await session.execute(select(exists().where(DoNotCall.number == number)))).scalar():
        raise Conflict("the number is on the do-not-call list")
    abandoned = await session.scalar(
        select(func.max(DialerAttempt.started_at)).where(
            DialerAttempt.number == number,
            DialerAttempt.abandoned.is_(True),
            DialerAttempt.started_at > now - ABANDON_QUIET,
        )
    )
    if abandoned is not None:
        raise Conflict("a call to this number was abandoned in the last 72 h")
    paused = await session.scalar(
        select(DialerCampaign.paused).where(DialerCampaign.name == Campaign.CLICK)
    )
    if paused is None or paused:
        raise Conflict("click-to-call is paused by a supervisor")
    on_its_way = await session.scalar(
        select(
            exists().where(
                DialerJob.campaign == Campaign.CLICK,
                DialerJob.complaint_id == complaint.id,
                DialerJob.state.in_([JobState.PENDING, JobState.DIALING]),
            )
        )
    )
    if on_its_way:
        raise Conflict("a call about this complaint is already on its way")
    day = helpline_day(now)
    used = (
        await session.execute(
            select(DialerBudget.used, DialerBudget.active).where(
                DialerBudget.day == day, DialerBudget.scope == "all"
            )
        )
    ).one_or_none()
    used_now, active_now = (used[0], used[1]) if used is not None else (0, 0)
    allowed = rules.pacing.allowed(now)
    if used_now >= allowed:
        raise TooMany("the outbound budget allowed by now is spent; try later", retry_after=60)
    if active_now >= rules.max_channels:
        raise TooMany("all outbound channels are busy; try in a minute", retry_after=30)
    tried = await session.scalar(
        select(DialerNumberDay.attempts).where(
            DialerNumberDay.number == number, DialerNumberDay.day == day
        )
    )
    if tried is not None and tried >= rules.per_number_day:
        raise TooMany("this number was called as often as allowed today", retry_after=None)

    job = DialerJob(
        campaign=Campaign.CLICK,
        complaint_id=complaint.id,
        dedupe_key=f"click:{uuid.uuid4().hex}",
        number=number,
        not_before=now,
        seat=seat,
        requested_by=user.id,
    )
    session.add(job)
    await session.flush()
    audit(
        session,
        service=SERVICE,
        actor_user_id=user.id,
        action="complaint.call",
        entity="complaint",
        entity_id=complaint_number,
        detail={"job": job.id, "seat": seat, "role": Role(user.role).value},
    )
    return {"job": job.id, "seat": seat, "state": JobState.PENDING.value}


async def last_call(session: AsyncSession, complaint_number: str, user: User) -> dict[str, Any]:
    """Where ``user``'s latest click-to-call about the complaint stands: pending, dialing,
    done (the citizen answered), unreachable, stopped; with its outcome."""
    job = (
        await session.execute(
            select(DialerJob)
            .join(Complaint, Complaint.id == DialerJob.complaint_id)
            .where(
                Complaint.number == complaint_number,
                DialerJob.campaign == Campaign.CLICK,
                DialerJob.requested_by == user.id,
            )
            .order_by(DialerJob.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if job is None:
        raise NotFound(f"no call of yours about complaint {complaint_number}")
    return {
        "job": job.id,
        "seat": job.seat,
        "state": job.state.value,
        "outcome": job.last_outcome.value if job.last_outcome else None,
    }
