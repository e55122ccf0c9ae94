"""Ownership: which objects a user may read, list and act on, beyond the route's roles.

:mod:`api.policy` says which roles may call a route; this module says, for the routes that
take or return objects, *which* of them. It is one table (:data:`OWNERSHIP`: subject x role ->
:class:`Reach`) and the SQL conditions derived from it; every route, list, report and
WebSocket that returns complaints, calls, recordings, screen-pops or an officer's reports asks
it, so a list and a read never disagree (tests/service/test_authz_matrix.py checks thousands
of (user, object) pairs of every route against an oracle written from the issue's rules).

Reaches:

- ``all``: every object of the subject.
- ``jurisdiction`` (officers, complaints): their post's department placed within its place (a
  thana officer: the thana; tehsil: the tehsil, and thanas the data puts in it; district: the
  district with its tehsils and thanas; division: its districts; state: the whole
  department), plus any complaint assigned to their post wherever it is. No post: nothing.
- ``handled`` (calls): the calls the user answered: ``calls.agent_user_id`` is theirs, or, when
  the queue manager recorded no agent, their seat login covered the moment the call was
  connected to that seat.
- ``own``: their own post (reports), seat (screen-pops) or click-to-call jobs.
- ``none``: nothing (the route's roles should already refuse).

An object outside the reach is "not found" (404) where its existence would be news (a
complaint, a recording), and "forbidden" (403) where the caller named it from a call they are
on (a call's uniqueid). Caller numbers are masked for :data:`api.policy.MASKED_ROLES` in every
answer but the audited unmask (:func:`caller_number_as_seen`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

from sqlalchemy import ColumnElement, and_, exists, false, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from api.policy import MASKED_ROLES, mask_caller_number
from api.services.errors import Forbidden
from core.db.models import AgentSession, Call, Complaint, RefDistrict, RefOfficer, RefThana, User
from core.domain.staff import Role
from core.reference import Level


class Subject(enum.StrEnum):
    #: A complaint: read, listed, its history, acted on, its caller's number unmasked.
    COMPLAINT = "complaint"
    #: A caller's call history (``GET /calls``).
    CALL_HISTORY = "call_history"
    #: Work on a call: file a complaint on it, wrap it up, read a number back, its read-backs.
    CALL_WORK = "call_work"
    #: The recordings of the call a complaint was filed on: listed and heard.
    RECORDING = "recording"
    #: An officer's scorecard and worklist.
    OFFICER_REPORT = "officer_report"
    #: ``/ws/agent``: the caller connected to a seat (with their complaints and callbacks).
    SCREEN_POP = "screen_pop"
    #: A click-to-call job's state (``GET /complaints/{number}/call``).
    CLICK_CALL = "click_call"


class Reach(enum.StrEnum):
    ALL = "all"
    JURISDICTION = "jurisdiction"
    HANDLED = "handled"
    OWN = "own"
    NONE = "none"


AG, SU, OF, CM, AD = Role.AGENT, Role.SUPERVISOR, Role.OFFICER, Role.CM_OFFICE, Role.ADMIN
ALL, JURISDICTION, HANDLED, OWN, NONE = Reach

#: Subject -> role -> how far the role reaches. Why each: agents take any caller and see
#: their history (complaints, earlier calls: the screen-pop shows them too) but work, and
#: hear, only the calls they answered (a colleague's recording is a citizen's voice they have
#: no reason to hear); officers act on grievances, not calls; the CM office reads everything
#: (numbers masked); supervisors and admins run the centre.
OWNERSHIP: Final[Mapping[Subject, Mapping[Role, Reach]]] = {
    Subject.COMPLAINT: {AG: ALL, SU: ALL, OF: JURISDICTION, CM: ALL, AD: ALL},
    Subject.CALL_HISTORY: {AG: ALL, SU: ALL, OF: NONE, CM: ALL, AD: ALL},
    Subject.CALL_WORK: {AG: HANDLED, SU: ALL, OF: NONE, CM: NONE, AD: ALL},
    Subject.RECORDING: {AG: HANDLED, SU: ALL, OF: JURISDICTION, CM: ALL, AD: ALL},
    Subject.OFFICER_REPORT: {AG: NONE, SU: ALL, OF: OWN, CM: ALL, AD: ALL},
    Subject.SCREEN_POP: {AG: OWN, SU: OWN, OF: NONE, CM: NONE, AD: OWN},
    Subject.CLICK_CALL: {AG: OWN, SU: OWN, OF: NONE, CM: NONE, AD: OWN},
}


#: How each subject reads in the generated docs (docs/lifecycle.md, ``python -m api.policy``).
SUBJECT_LABELS: Final[Mapping[Subject, str]] = {
    Subject.COMPLAINT: "complaint (read, list, history, act, unmask)",
    Subject.CALL_HISTORY: "call history (`GET /calls?caller=`)",
    Subject.CALL_WORK: "call work (file on, wrap up, read back, read-backs)",
    Subject.RECORDING: "recording (list, audio)",
    Subject.OFFICER_REPORT: "officer report (scorecard, worklist)",
    Subject.SCREEN_POP: "screen-pop (`/ws/agent`: the call at their seat)",
    Subject.CLICK_CALL: "click-to-call job (`GET /complaints/{number}/call`)",
}


def render_ownership(roles: tuple[Role, ...]) -> list[str]:
    """:data:`OWNERSHIP` as Markdown table lines, one row per subject."""
    lines = [
        "| subject | " + " | ".join(role.value for role in roles) + " |",
        "|---|" + "---|" * len(roles),
    ]
    for subject, row in OWNERSHIP.items():
        cells = " | ".join(row[role].value for role in roles)
        lines.append(f"| {SUBJECT_LABELS[subject]} | {cells} |")
    return lines


def reach(user: User, subject: Subject) -> Reach:
    """How far ``user``'s role reaches into ``subject`` (an unknown role: nowhere)."""
    try:
        return OWNERSHIP[subject][Role(user.role)]
    except (KeyError, ValueError):
        return Reach.NONE


def caller_number_as_seen(user: User, number: str | None) -> str | None:
    """A caller's number as ``user`` may see it in any answer (masked for MASKED_ROLES)."""
    return mask_caller_number(number) if user.role in MASKED_ROLES else number


# ----------------------------------------------------------------------------- complaints


def _jurisdiction(user: User) -> ColumnElement[bool]:
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


def complaint_scope(user: User, subject: Subject = Subject.COMPLAINT) -> ColumnElement[bool] | None:
    """A WHERE condition on :class:`Complaint` limiting ``user`` to what ``subject``'s reach
    gives them of complaints, or None when it is every complaint."""
    match reach(user, subject):
        case Reach.JURISDICTION:
            return _jurisdiction(user)
        case Reach.NONE:
            return false()
        case _:  # ALL; HANDLED and OWN are about calls and posts, not complaints' places
            return None


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


# ----------------------------------------------------------------------------- calls


def handled_by(user: User) -> ColumnElement[bool]:
    """A condition on :class:`Call`: ``user`` answered it (see the module's ``handled``)."""
    covering_login = exists().where(
        AgentSession.user_id == user.id,
        AgentSession.seat == Call.agent_seat,
        AgentSession.logged_in_at <= Call.agent_connected_at,
        or_(
            AgentSession.logged_out_at.is_(None),
            AgentSession.logged_out_at >= Call.agent_connected_at,
        ),
    )
    return or_(
        Call.agent_user_id == user.id,
        and_(
            Call.agent_user_id.is_(None),
            Call.agent_seat.is_not(None),
            Call.agent_connected_at.is_not(None),
            covering_login,
        ),
    )


def call_scope(user: User, subject: Subject) -> ColumnElement[bool]:
    """A WHERE condition on :class:`Call` limiting ``user`` to ``subject``'s reach."""
    match reach(user, subject):
        case Reach.ALL | Reach.JURISDICTION:
            return true()
        case Reach.HANDLED:
            return handled_by(user)
        case _:
            return false()


async def check_call_work(session: AsyncSession, user: User, call: Call) -> None:
    """An agent may work on a call (file on it, wrap it up, read a number to its caller, see
    its read-backs) only if they answered it; supervisors and admins any; else
    :class:`Forbidden`."""
    condition = call_scope(user, Subject.CALL_WORK)
    query = select(exists().where(Call.id == call.id, condition))
    allowed = (await session.execute(query)).scalar()
    if not allowed:
        raise Forbidden(
            f"call {call.uniqueid} was handled by another seat: only its agent, "
            "or a supervisor, may act on it"
        )


def recording_scope(user: User) -> ColumnElement[bool]:
    """A condition on a complaint joined (outer) with the call it was filed on: ``user`` may
    list and hear that call's recordings (officers by the complaint's place, agents by the
    call they answered)."""
    match reach(user, Subject.RECORDING):
        case Reach.ALL:
            return true()
        case Reach.JURISDICTION:
            return _jurisdiction(user)
        case Reach.HANDLED:
            return and_(Call.id.is_not(None), handled_by(user))
        case _:
            return false()
