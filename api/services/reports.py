"""The accountability reports for the API: who may see which officer's scorecard and worklist,
the month asked for, and the queries of :mod:`lifecycle.reports`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.services.access import Reach, Subject, reach
from api.services.errors import Forbidden, InvalidField, NotFound
from core.db.models import RefOfficer, User
from core.reference import Reference
from lifecycle import reports
from lifecycle.reports import Metric, Month


def month(text: str | None, now: datetime | None = None) -> Month:
    try:
        return reports.month_of(text, now)
    except reports.MonthError as error:
        raise InvalidField("month", str(error), where="query") from None


async def officer_post(
    session: AsyncSession, reference: Reference, asker: User, username: str
) -> str:
    """The post (officer code) whose reports ``asker`` asks for by ``username``: the post the
    user of that name holds, or a post's code itself (posts nobody has logged in to yet).
    An officer may ask only for their own post."""
    linked = (
        await session.execute(
            select(RefOfficer.code)
            .join(User, User.id == RefOfficer.user_id)
            .where(User.username == username)
        )
    ).scalar_one_or_none()
    post = linked if linked is not None else username
    if post not in reference.officers:
        raise NotFound(f"no officer {username!r}")
    # Whose reports: api.services.access.OWNERSHIP's officer_report row (an officer: own).
    if reach(asker, Subject.OFFICER_REPORT) is not Reach.ALL:
        own = (
            await session.execute(select(RefOfficer.code).where(RefOfficer.user_id == asker.id))
        ).scalar_one_or_none()
        if own is None or own != post:
            raise Forbidden("an officer may see only their own scorecard and worklist")
    return post


async def scorecard(
    session: AsyncSession,
    reference: Reference,
    asker: User,
    username: str,
    month_text: str | None,
    scope: ColumnElement[bool] | None = None,
) -> dict[str, Any]:
    post = await officer_post(session, reference, asker, username)
    card = await reports.scorecard(session, post, month(month_text), scope=scope)
    return card.as_dict(reference)


async def worklist(
    session: AsyncSession,
    reference: Reference,
    asker: User,
    username: str,
    scope: ColumnElement[bool] | None = None,
) -> list[dict[str, Any]]:
    post = await officer_post(session, reference, asker, username)
    return await reports.worklist(session, reference, post, scope=scope)


async def monthly(
    session: AsyncSession,
    reference: Reference,
    month_text: str | None,
    metric: Metric,
    threshold: int,
    scope: ColumnElement[bool] | None = None,
) -> reports.Review:
    return await reports.monthly_review(
        session, month(month_text), metric=metric, threshold=threshold, scope=scope
    )
