"""Accountability: an officer's scorecard and worklist, the CM's monthly review (JSON or CSV).
Who may call each is the access table's (api.policy); an officer sees only their own post."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response

from api.deps import CurrentUser, ReferenceDep, SessionDep, SettingsDep
from api.services import reports
from lifecycle.reports import review_csv, review_json

router = APIRouter(tags=["reports"])

#: Answered when the post is unknown (403 when an officer asks for another's: the gate's).
NO_OFFICER: dict[int | str, dict[str, Any]] = {404: {"description": "no such officer or post"}}
#: A user name or a post's code (the longest is under 64 characters, like users.username).
Username = Annotated[str, Path(min_length=1, max_length=64)]
MonthQuery = Annotated[str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", examples=["2026-11"])]


@router.get("/officers/{username}/scorecard", responses=NO_OFFICER)
async def officer_scorecard(
    username: Username,
    user: CurrentUser,
    session: SessionDep,
    reference: ReferenceDep,
    month: MonthQuery = None,
) -> dict[str, Any]:
    """For the ACR: assigned, resolved (within SLA), breached, reopened; satisfaction null
    until the feedback campaign exists. ``month`` defaults to the current IST month."""
    return await reports.scorecard(session, reference, user, username, month)


@router.get("/officers/{username}/worklist", responses=NO_OFFICER)
async def officer_worklist(
    username: Username, user: CurrentUser, session: SessionDep, reference: ReferenceDep
) -> list[dict[str, Any]]:
    """The complaints the officer holds, overdue first, with the actions they may take."""
    return await reports.worklist(session, reference, user, username)


@router.get(
    "/reports/monthly",
    response_model=None,
    responses={
        200: {
            "description": "the review as JSON, or as CSV with `format=csv`",
            "content": {"application/json": {}, "text/csv": {}},
        }
    },
)
async def monthly_review(
    user: CurrentUser,
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
