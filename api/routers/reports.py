"""Accountability: an officer's scorecard and worklist, the CM's monthly review (JSON or CSV).
Officers see only their own; supervisors, the CM office and admins see any."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response

from api.deps import ReferenceDep, SessionDep, SettingsDep, require_role
from api.services import reports
from core.db.models import User
from lifecycle.reports import review_csv, review_json

router = APIRouter(tags=["reports"])

OfficerReportUser = Annotated[User, Depends(require_role(*reports.OFFICER_REPORT_ROLES))]
ReviewUser = Annotated[User, Depends(require_role(*reports.REVIEW_ROLES))]
MonthQuery = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$", examples=["2026-11"])]


@router.get("/officers/{username}/scorecard")
async def officer_scorecard(
    username: str,
    user: OfficerReportUser,
    session: SessionDep,
    reference: ReferenceDep,
    month: MonthQuery = None,
) -> dict[str, Any]:
    """For the ACR: assigned, resolved (within SLA), breached, reopened; satisfaction null
    until the feedback campaign exists. ``month`` defaults to the current IST month."""
    return await reports.scorecard(session, reference, user, username, month)


@router.get("/officers/{username}/worklist")
async def officer_worklist(
    username: str, user: OfficerReportUser, session: SessionDep, reference: ReferenceDep
) -> list[dict[str, Any]]:
    """The complaints the officer holds, overdue first, with the actions they may take."""
    return await reports.worklist(session, reference, user, username)


@router.get("/reports/monthly", response_model=None)
async def monthly_review(
    user: ReviewUser,
    session: SessionDep,
    settings: SettingsDep,
    reference: ReferenceDep,
    month: MonthQuery = None,
    format: Literal["json", "csv"] = "json",
    metric: Literal["overdue", "pending"] | None = None,
    threshold: Annotated[int | None, Query(ge=0)] = None,
) -> dict[str, Any] | Response:
    """The CM's monthly review by department and district, with the departments over the
    action threshold (default from settings: more than 100 complaints overdue)."""
    review = await reports.monthly(
        session,
        reference,
        month,
        metric or settings.review_action_metric,
        settings.review_action_threshold if threshold is None else threshold,
    )
    if format == "csv":
        return Response(
            review_csv(review, reference).encode("utf-8"),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": (
                    f'attachment; filename="monthly-review-{review.month.label}.csv"'
                )
            },
        )
    return review_json(review, reference)
