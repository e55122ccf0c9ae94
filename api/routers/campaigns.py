"""The outbound dialer's campaigns, do-not-call list and feedback report (docs/dialer.md).
Supervisors and admins run the campaigns; the CM office reads the feedback report."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from api.deps import CurrentUser, SessionDep
from api.services import campaigns
from api.services.campaigns import CampaignIn, CampaignOut, DncIn

router = APIRouter(tags=["campaigns"])

CampaignName = Annotated[str, Path(min_length=1, max_length=16, examples=["feedback"])]
MonthQuery = Annotated[str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", examples=["2026-11"])]


@router.get("/campaigns")
async def list_campaigns(session: SessionDep) -> list[CampaignOut]:
    """Each campaign's switches and limits, pending jobs, and today's attempts (IST)."""
    return await campaigns.list_campaigns(session, datetime.now(UTC))


@router.put("/campaigns/{name}", responses={404: {"description": "no such campaign"}})
async def update_campaign(
    name: CampaignName, change: CampaignIn, user: CurrentUser, session: SessionDep
) -> CampaignOut:
    """Pause or resume a campaign, or change its limits (attempts per job, channels, a share
    of the day's budget); every dialer applies it at its next claim. Audited."""
    updated = await campaigns.update_campaign(session, name, change, user, datetime.now(UTC))
    await session.commit()
    return updated


@router.post("/dnc", status_code=201)
async def add_dnc(change: DncIn, user: CurrentUser, session: SessionDep) -> dict[str, Any]:
    """Put a number on the do-not-call list: no campaign dials it again. Audited."""
    added = await campaigns.add_dnc(session, change, user)
    await session.commit()
    return added


@router.get("/reports/feedback")
async def feedback_report(session: SessionDep, month: MonthQuery = None) -> dict[str, Any]:
    """Feedback coverage of the month's resolutions: asked, answered (after how many
    attempts), unreachable, satisfied %. ``month`` defaults to the current IST month."""
    return await campaigns.feedback_report(session, month)
