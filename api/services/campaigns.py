"""The outbound dialer as operators see it: campaigns (pause, resume, limits), the do-not-call
list, and the feedback coverage report. The dialer (``outbound_dialer``) reads the campaign
rows on every claim, so a change here takes effect at the next claim of any dialer process."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy import and_, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from api.schemas import StrictInput
from api.services.errors import InvalidField, NotFound
from core.db.audit import audit
from core.db.models import (
    ComplaintHistory,
    DialerCampaign,
    DialerJob,
    DoNotCall,
    User,
)
from core.db.queries import outbound_today
from core.domain.complaints import HistoryAction
from core.domain.dialing import Campaign, DncSource, JobState, SurveyResult
from core.domain.phone import CallerNumber
from lifecycle.reports import MonthError, month_of

SERVICE = "api"


class CampaignToday(BaseModel):
    attempts: int
    connected: int
    abandoned: int
    active: int


class CampaignOut(BaseModel):
    name: Campaign
    paused: bool
    max_attempts: int
    max_concurrent: int | None
    daily_limit: int | None
    updated_at: datetime
    #: Jobs waiting to be dialled (due now or later).
    pending_jobs: int
    today: CampaignToday


class CampaignIn(StrictInput):
    """Only the fields sent change; ``null`` lifts a campaign's own cap (the global ones stay).
    ``max_attempts`` is no such cap: a number when sent, never ``null`` (so the schema leaves
    ``null`` out, and a ``null`` sent anyway is refused below)."""

    paused: bool | None = None
    max_attempts: Annotated[int, Field(gt=0, le=20)] | SkipJsonSchema[None] = None
    max_concurrent: int | None = Field(default=None, ge=0, le=10_000)
    daily_limit: int | None = Field(default=None, ge=0, le=10_000_000)


async def list_campaigns(session: AsyncSession, now: datetime) -> list[CampaignOut]:
    campaigns = (
        (await session.execute(select(DialerCampaign).order_by(DialerCampaign.name)))
        .scalars()
        .all()
    )
    pending = dict(
        (
            await session.execute(
                select(DialerJob.campaign, func.count())
                .where(DialerJob.state == JobState.PENDING)
                .group_by(DialerJob.campaign)
            )
        ).all()
    )
    today = await outbound_today(session, now)
    out = []
    for row in campaigns:
        day = today.get(str(row.name))
        out.append(
            CampaignOut(
                name=row.name,
                paused=row.paused,
                max_attempts=row.max_attempts,
                max_concurrent=row.max_concurrent,
                daily_limit=row.daily_limit,
                updated_at=row.updated_at,
                pending_jobs=int(pending.get(row.name, 0)),
                today=CampaignToday(
                    attempts=day.attempts if day else 0,
                    connected=day.connected if day else 0,
                    abandoned=day.abandoned if day else 0,
                    active=day.active if day else 0,
                ),
            )
        )
    return out


async def update_campaign(
    session: AsyncSession, name: str, change: CampaignIn, user: User, now: datetime
) -> CampaignOut:
    """Pause, resume or change a campaign's limits (audited); the caller commits."""
    try:
        campaign = Campaign(name)
    except ValueError:
        raise NotFound(f"no campaign {name!r}") from None
    row = (
        await session.execute(
            select(DialerCampaign).where(DialerCampaign.name == campaign).with_for_update()
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"no campaign {name!r}")
    sent = change.model_dump(exclude_unset=True)
    if sent.get("paused") is None:
        sent.pop("paused", None)
    if "max_attempts" in sent and sent["max_attempts"] is None:
        raise InvalidField("max_attempts", "must be a number of attempts")
    before = {key: getattr(row, key) for key in sent}
    for key, value in sent.items():
        setattr(row, key, value)
    row.updated_at = now
    row.updated_by = user.id
    audit(
        session,
        service=SERVICE,
        actor_user_id=user.id,
        action="campaign.update",
        entity="campaign",
        entity_id=campaign.value,
        detail={"before": before, "after": sent},
    )
    await session.flush()
    return next(c for c in await list_campaigns(session, now) if c.name == campaign)


class DncIn(StrictInput):
    #: Any Indian spelling (+91, 0, 091, spaces); stored as the 10-digit national number.
    number: CallerNumber
    note: str | None = Field(default=None, max_length=500)


async def add_dnc(session: AsyncSession, change: DncIn, user: User) -> dict[str, Any]:
    """A supervisor puts a number on the do-not-call list (audited); its pending jobs stop
    at their next claim (the dialer checks the list in the claim's transaction)."""
    number = change.number
    added = (
        await session.execute(
            insert(DoNotCall)
            .values(number=number, source=DncSource.SUPERVISOR, added_by=user.id, note=change.note)
            .on_conflict_do_nothing()
            .returning(DoNotCall.number)
        )
    ).scalar_one_or_none()
    audit(
        session,
        service=SERVICE,
        actor_user_id=user.id,
        action="dnc.add",
        entity="dnc",
        entity_id=number[-4:],  # the audit log needs no full number to say which
        detail={"new": added is not None},
    )
    return {"number": str(number), "added": added is not None}


async def feedback_report(session: AsyncSession, month_text: str | None) -> dict[str, Any]:
    """Of the resolutions in the IST month: how many were asked (a job), gave feedback, after
    how many attempts, were unreachable, are still being called, and satisfied %."""
    try:
        month = month_of(month_text)
    except MonthError as error:
        raise InvalidField("month", str(error), where="query") from None
    in_month = and_(ComplaintHistory.at >= month.start, ComplaintHistory.at < month.end)
    resolved = (
        await session.execute(
            select(func.count()).where(ComplaintHistory.action == HistoryAction.RESOLVE, in_month)
        )
    ).scalar_one()
    jobs = (
        select(DialerJob.state, DialerJob.result, DialerJob.attempts)
        .join(ComplaintHistory, ComplaintHistory.id == DialerJob.resolution_id)
        .where(DialerJob.campaign == Campaign.FEEDBACK, in_month)
        .subquery()
    )
    rows = (await session.execute(select(jobs))).all()
    answered = [r for r in rows if r.result is not None]
    satisfied = sum(1 for r in answered if r.result == SurveyResult.SATISFIED)
    histogram: dict[str, int] = {}
    for r in sorted(answered, key=lambda r: int(r.attempts)):
        histogram[str(r.attempts)] = histogram.get(str(r.attempts), 0) + 1
    return {
        "month": month.label,
        "resolved": resolved,
        "called": len(rows),
        #: Resolutions with no job: the caller's number is not known (or the job pass has not
        #: run yet).
        "not_callable": max(0, resolved - len(rows)),
        "gave_feedback": len(answered),
        "attempts_histogram": histogram,
        "unreachable": sum(1 for r in rows if r.state == JobState.UNREACHABLE),
        "in_progress": sum(1 for r in rows if r.state in (JobState.PENDING, JobState.DIALING)),
        "stopped": sum(1 for r in rows if r.state == JobState.STOPPED),
        "satisfied": satisfied,
        "not_satisfied": len(answered) - satisfied,
        "satisfied_pct": round(100.0 * satisfied / len(answered), 1) if answered else None,
        "coverage_pct": round(100.0 * len(answered) / resolved, 1) if resolved else None,
    }
