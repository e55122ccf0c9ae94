"""Which complaints a user may read, list and act on.

An officer's jurisdiction is their post (``officers`` row whose ``user_id`` is theirs): its
department, level and place. They see the complaints of that department placed within the
place (a thana officer: the thana; tehsil: the tehsil, and thanas the data puts in it;
district: the district with its tehsils and thanas; division: its districts; state: the whole
department), plus any complaint assigned to their post wherever it is. An officer with no post
sees nothing. Agents, supervisors, the CM office and admins are not limited by place (what they
may do is the access table's and the transition table's business).

The rule is one SQL condition (:func:`complaint_scope`) applied by every read and list of
complaints, so a list and a read can never disagree; :func:`can_read_complaint` and
:func:`can_act_on` ask the database the same question about one complaint.

Calls: only the agent who handled a call (or a supervisor or admin) may file on it, wrap it up
or have a number read to its caller (:func:`check_handled_call`).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.services.errors import Forbidden
from core.db.models import AgentSession, Call, Complaint, RefDistrict, RefOfficer, RefThana, User
from core.domain.staff import Role
from core.reference import Level


def complaint_scope(user: User) -> ColumnElement[bool] | None:
    """A WHERE condition on :class:`Complaint` limiting ``user`` to their jurisdiction, or
    None when their role sees every complaint."""
    if user.role != Role.OFFICER:
        return None
    post = select(RefOfficer).where(RefOfficer.user_id == user.id).subquery("post")
    thana_in_tehsil = select(RefThana.code).where(RefThana.tehsil == post.c.place)
    district_in_division = select(RefDistrict.code).where(RefDistrict.division == post.c.place)
    within = or_(
        and_(post.c.level == Level.THANA, Complaint.thana == post.c.place),
        and_(
            post.c.level == Level.TEHSIL,
            or_(Complaint.tehsil == post.c.place, Complaint.thana.in_(thana_in_tehsil)),
        ),
        and_(post.c.level == Level.DISTRICT, Complaint.district == post.c.place),
        and_(post.c.level == Level.DIVISION, Complaint.district.in_(district_in_division)),
        post.c.level == Level.STATE,
    )
    return or_(
        exists().where(Complaint.department == post.c.department, within),
        exists().where(Complaint.assigned_officer == post.c.code),
    )


async def can_read_complaint(session: AsyncSession, user: User, complaint: Complaint) -> bool:
    """Whether ``complaint`` is within what ``user`` may read (the list's condition)."""
    scope = complaint_scope(user)
    if scope is None:
        return True
    query = select(exists().where(Complaint.id == complaint.id, scope))
    return bool((await session.execute(query)).scalar_one())


async def can_act_on(session: AsyncSession, user: User, complaint: Complaint) -> bool:
    """Whether ``user`` may take any action on ``complaint`` at all: exactly when they may read
    it (an officer outside their jurisdiction may do nothing); which action is allowed is the
    transition table's decision (:func:`core.domain.lifecycle.apply`)."""
    return await can_read_complaint(session, user, complaint)


#: Roles that may act on any call (an agent only on the calls they handled).
FILE_ON_ANY_CALL = frozenset({Role.SUPERVISOR, Role.ADMIN})


async def check_handled_call(session: AsyncSession, user: User, call: Call) -> None:
    """An agent may act on a call (file on it, wrap it up, read a number to its caller) only
    if their seat took it while they were logged in to it; else :class:`Forbidden`."""
    if user.role in FILE_ON_ANY_CALL or call.agent_user_id == user.id:
        return
    if call.agent_seat is not None and call.agent_connected_at is not None:
        handled = (
            await session.execute(
                select(
                    exists().where(
                        AgentSession.user_id == user.id,
                        AgentSession.seat == call.agent_seat,
                        AgentSession.logged_in_at <= call.agent_connected_at,
                        or_(
                            AgentSession.logged_out_at.is_(None),
                            AgentSession.logged_out_at >= call.agent_connected_at,
                        ),
                    )
                )
            )
        ).scalar_one()
        if handled:
            return
    raise Forbidden(
        f"call {call.uniqueid} was handled by another seat: only its agent, "
        "or a supervisor, may act on it"
    )
