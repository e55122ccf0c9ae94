"""The one service that writes a complaint's history and the caller's SMS: the filing
(:func:`filing_writes`, with the routing that follows it), an officer's, supervisor's or agent's
action through the API, and the SLA pass's escalation take the same path (:func:`store`).

Each change is one transaction: the complaint row is locked (``SELECT ... FOR UPDATE``), the
pure lifecycle (:func:`core.domain.lifecycle.apply`) decides from its snapshot, and the new
state, the ``complaint_history`` row, the ACR ledger's breach (``acr_breaches``, at most once
per assignment by its UNIQUE) and the caller's SMS (:func:`lifecycle.notifications.sms_row`)
are written together: the caller commits, or nothing of it happened. The state, the history
row and the SMS go in one statement (:func:`_writes`, data-modifying CTEs): one round trip
where they were three.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    CTE,
    ColumnElement,
    FromClause,
    Select,
    Table,
    bindparam,
    func,
    null,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from core.db.models import AcrBreach, Complaint, ComplaintHistory, RefOfficer, User
from core.domain.complaints import ComplaintStatus, HistoryAction
from core.domain.lifecycle import (
    SYSTEM,
    Action,
    Actor,
    ComplaintView,
    Effect,
    Refusal,
    RefusalKind,
    Transition,
    apply,
)
from core.domain.notifications import SmsKind, SmsStatus
from core.domain.phone import CallerNumber
from core.domain.staff import Role
from core.reference import Reference
from lifecycle.notifications import (
    Enqueued,
    enqueued,
    queued_after,
    sms_row,
    wake_sender,
)

#: History actions that hand the complaint to an officer (its ``assigned_at`` is the newest).
_HANDOVERS = (
    HistoryAction.ASSIGN,
    HistoryAction.REASSIGN,
    HistoryAction.REOPEN,
    HistoryAction.ESCALATE,
)


class TransitionRefused(Exception):
    """The lifecycle refused the action: ``kind`` says how (illegal 409, forbidden 403,
    invalid 422), ``reason`` why, in words for the person who asked."""

    def __init__(self, kind: RefusalKind, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class ComplaintMissing(LookupError):
    """No complaint has that number."""


@dataclass(frozen=True, slots=True)
class Applied:
    """A transition as stored: its history row, whether a breach went to the ACR ledger (False
    when there was none, or the ledger already had it), and the SMS queued."""

    transition: Transition
    history_id: int
    breach_recorded: bool
    sms: tuple[tuple[SmsKind, Enqueued], ...]


async def lock_complaint(
    session: AsyncSession, number: str, *, skip_locked: bool = False
) -> Complaint | None:
    """The complaint, its row locked until the transaction ends (None if there is none, or,
    with ``skip_locked``, if another transaction holds it)."""
    query = (
        select(Complaint)
        .where(Complaint.number == number)
        .with_for_update(skip_locked=skip_locked)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def view_of(session: AsyncSession, complaint: Complaint) -> ComplaintView:
    """The lifecycle's snapshot of ``complaint``: since when its officer holds it and how often
    it escalated come from its history (one query)."""
    handed, escalations = (
        await session.execute(
            select(
                func.max(ComplaintHistory.at).filter(ComplaintHistory.action.in_(_HANDOVERS)),
                func.count().filter(ComplaintHistory.action == HistoryAction.ESCALATE),
            ).where(ComplaintHistory.complaint_id == complaint.id)
        )
    ).one()
    officer = complaint.assigned_officer
    assigned_at = None
    if officer is not None:
        assigned_at = handed if handed is not None else complaint.created_at
        # A due date moved before the handover by hand still makes a valid snapshot: the
        # lifecycle reads the due date, never the handover time.
        assigned_at = min(assigned_at, complaint.due_at - timedelta(microseconds=1))
    return ComplaintView(
        complaint.number,
        complaint.status,
        category=complaint.category,
        district=complaint.district,
        tehsil=complaint.tehsil,
        thana=complaint.thana,
        level=complaint.level if officer is not None else None,
        officer=officer,
        assigned_at=assigned_at,
        due_at=complaint.due_at if officer is not None else None,
        escalations=escalations,
        reopens=complaint.reopen_count,
    )


async def actor_of(session: AsyncSession, user: User, assigned_officer: str | None) -> Actor:
    """``user`` as the lifecycle sees them: role, and for officers the post they hold (the one
    the complaint is assigned to, when they hold several)."""
    role = Role(user.role)
    posts: list[str] = []
    if role in (Role.OFFICER, Role.CM_OFFICE):
        posts = list(
            (
                await session.execute(
                    select(RefOfficer.code)
                    .where(RefOfficer.user_id == user.id)
                    .order_by(RefOfficer.code)
                )
            ).scalars()
        )
    post = assigned_officer if assigned_officer in posts else (posts[0] if posts else None)
    return Actor(role, user.username, officer=post)


async def apply_action(
    session: AsyncSession,
    *,
    number: str,
    action: Action | str,
    actor_user: User | None,
    note: str,
    officer_code: str | None = None,
    duplicate_of: str | None = None,
    now: datetime,
    reference: Reference,
) -> Applied:
    """Take ``action`` on complaint ``number`` at ``now`` as ``actor_user`` (None: the helpline
    itself), in ``session``'s transaction (the caller commits). Raises
    :class:`ComplaintMissing`, or :class:`TransitionRefused` with the lifecycle's reason."""
    complaint = await lock_complaint(session, number)
    if complaint is None:
        raise ComplaintMissing(number)
    view = await view_of(session, complaint)
    actor = (
        SYSTEM
        if actor_user is None
        else await actor_of(session, actor_user, complaint.assigned_officer)
    )
    decided = apply(
        view,
        action,
        actor,
        now,
        reference=reference,
        note=note,
        officer=officer_code,
        duplicate_of=duplicate_of,
    )
    if isinstance(decided, Refusal):
        raise TransitionRefused(decided.kind, decided.reason)
    return await store(
        session,
        complaint,
        decided,
        actor_user_id=actor_user.id if actor_user is not None else None,
        reference=reference,
    )


_history = cast(Table, ComplaintHistory.__table__)
_complaints = cast(Table, Complaint.__table__)
#: A history row's columns besides its complaint's id, every one given (:func:`_writes`).
_HISTORY_COLUMNS = (
    "at",
    "actor_user_id",
    "action",
    "from_status",
    "to_status",
    "from_officer",
    "to_officer",
    "note",
)


async def store(
    session: AsyncSession,
    complaint: Complaint,
    transition: Transition,
    *,
    actor_user_id: int | None,
    reference: Reference,
    notify: bool = True,
) -> Applied:
    """Write ``transition`` of the locked ``complaint``: its new state, one history row, the
    ACR breach and the caller's SMS (none with ``notify=False``: the demo data's made-up
    numbers). The UPDATE applies only to the row still as the
    transition's ``before`` (status and due date), a guard besides the lock."""
    before, after, effects = transition.before, transition.after, transition.effects
    values: dict[str, object] = {"status": after.status}
    if Effect.ASSIGN_OFFICER in effects:
        values |= {"assigned_officer": after.officer, "level": after.level}
    if Effect.NEW_DUE_DATE in effects and after.due_at is not None:
        values["due_at"] = after.due_at
    if Effect.RECORD_RESOLUTION in effects:
        values |= {
            "resolution_text": transition.note,
            "resolved_at": transition.at,
            "resolved_by": actor_user_id,
        }
    if Effect.RECORD_DUPLICATE in effects and transition.duplicate_of is not None:
        original = (
            await session.execute(
                select(Complaint.id).where(Complaint.number == transition.duplicate_of)
            )
        ).scalar_one_or_none()
        if original is None:
            raise TransitionRefused(
                RefusalKind.INVALID, f"no complaint {transition.duplicate_of} to duplicate"
            )
        values["duplicate_of"] = original

    breach_recorded = False
    if transition.breach is not None and Effect.RECORD_BREACH in effects:
        key = transition.breach.key
        breach_id = (
            await session.execute(
                insert(AcrBreach)
                .values(
                    complaint_id=complaint.id,
                    officer_id=transition.breach.officer,
                    level=key.level,
                    due_at=key.due_at,
                    breached_at=transition.at,
                )
                .on_conflict_do_nothing(constraint="uq_acr_breaches_assignment")
                .returning(AcrBreach.id)
            )
        ).scalar_one_or_none()
        breach_recorded = breach_id is not None

    remarks = "; ".join(transition.remarks)
    note = "; ".join(part for part in (transition.note, remarks) if part) or None
    sms = _sms_of(complaint, transition, reference) if notify else None
    statement = _writes(
        tuple(values),
        reopen=transition.action is Action.REOPEN,
        due_guard=before.due_at is not None,
        sms=None if sms is None else sms[1]["status"],
    )
    params = _history_row(
        complaint.id,
        transition.at,
        actor_user_id,
        action=HistoryAction(transition.action),
        from_status=before.status,
        to_status=after.status,
        from_officer=before.officer,
        to_officer=after.officer,
        note=note,
        before_status=before.status,
        **{f"new_{name}": value for name, value in values.items()},
    )
    if before.due_at is not None:
        params["before_due_at"] = before.due_at
    if sms is not None:
        params |= {f"sms_{name}": value for name, value in sms[1].items()}
    row = (await session.execute(statement, params)).one_or_none()
    if row is None:  # cannot happen under the row lock; refuse rather than write twice
        raise TransitionRefused(
            RefusalKind.ILLEGAL, f"complaint {before.number} changed meanwhile: try again"
        )
    # The ORM object as the row now is (the statement is Core: the session does not sync it),
    # so a caller that takes the next snapshot from it sees this change.
    for name, value in values.items():
        set_committed_value(complaint, name, value)
    if transition.action is Action.REOPEN:
        set_committed_value(complaint, "reopen_count", complaint.reopen_count + 1)
    queued = () if sms is None else ((sms[0], enqueued(sms[1], row.sms_id)),)
    return Applied(transition, row.history_id, breach_recorded, queued)


#: The write statements built so far, by their shape (:func:`_writes`).
_WRITES: dict[tuple[object, ...], Select[tuple[int, int | None]]] = {}


def _writes(
    change: tuple[str, ...] | None,
    *,
    reopen: bool = False,
    due_guard: bool = False,
    sms: SmsStatus | None,
    filed: CTE | None = None,
) -> Select[tuple[int, int | None]]:
    """A history row and what goes with it, in one statement (one round trip):

    * ``change``: the complaint's UPDATE of these columns (bind parameters ``new_<column>``;
      ``reopen`` adds one to ``reopen_count``), only while the row is as the transition's
      ``before`` (status, and due date with ``due_guard``); the history row is written only
      if the UPDATE was, and the statement returns no row if it matched none. None: the
      history row alone, the filing's, of the complaint ``filed`` (an INSERT as a CTE
      returning the whole row, whose columns then lead the statement's row; nothing more is
      written if it inserted nothing).
    * the history row (bind parameters named as its columns), and
    * ``sms``: the caller's SMS (:func:`lifecycle.notifications.queued_after`, parameters
      ``sms_<column>``; a ``pending`` one wakes the sender by NOTIFY), None for none.

    Its row: the history row's id and the SMS row's (None: queued before, or none). Built
    once per shape: a statement built per call costs its construction and cache key every
    time."""
    shape = (change, reopen, due_guard, sms, filed)
    if (built := _WRITES.get(shape)) is not None:
        return built
    history = [_history.c[name] for name in _HISTORY_COLUMNS]
    values = [bindparam(column.name, type_=column.type) for column in history]
    if change is None:
        assert filed is not None, "a history row without a change is a filing's"
        source = select(filed.c.id, *values)
        joined: FromClause = filed
    else:
        table = _complaints
        guard = [
            table.c.id == bindparam("complaint_id"),
            table.c.status == bindparam("before_status"),
        ]
        if due_guard:
            guard.append(table.c.due_at == bindparam("before_due_at", type_=table.c.due_at.type))
        new: dict[str, object] = {
            name: bindparam(f"new_{name}", type_=table.c[name].type) for name in change
        }
        if reopen:
            new["reopen_count"] = table.c.reopen_count + 1
        changed = update(table).where(*guard).values(new).returning(table.c.id).cte("changed")
        source = select(changed.c.id, *values)
        joined = changed
    recorded = (
        insert(_history)
        .from_select(["complaint_id", *(column.name for column in history)], source)
        .returning(_history.c.id)
        .cte("recorded")
    )
    joined = joined.join(recorded, true())
    columns: list[ColumnElement[Any]] = [] if filed is None else list(filed.c)
    columns.append(recorded.c.id.label("history_id"))
    if sms is None:
        columns.append(null().label("sms_id"))
    else:
        queued = queued_after(recorded.c.id, "sms_")
        joined = joined.outerjoin(queued, true())
        columns.append(queued.c.id.label("sms_id"))
        if sms is SmsStatus.PENDING:
            columns.append(wake_sender(queued.c.id))
    statement: Select[tuple[int, int | None]] = select(*columns).select_from(joined)
    _WRITES[shape] = statement
    return statement


def _history_row(
    complaint_id: int, at: datetime, actor_user_id: int | None, **row: object
) -> dict[str, object]:
    """The bind parameters of a history row for :func:`_writes`."""
    return {"complaint_id": complaint_id, "at": at, "actor_user_id": actor_user_id, **row}


def filing_writes(
    filed: CTE,
    *,
    complaint_number: str,
    caller_number: CallerNumber | None,
    created_at: datetime,
    actor_user_id: int,
    note: str | None,
    sla_days: int,
    notify: bool = True,
) -> tuple[Select[Any], dict[str, object]]:
    """The statement that files a complaint, and its parameters besides the INSERT's own:
    ``filed`` (the complaint's INSERT as a CTE returning the whole row), with its history row
    (filed by ``actor_user_id``; ``note`` says why no rule placed it, if none did) and the
    caller's "registered" SMS (none with ``notify=False``), in one round trip (:func:`_writes`).
    Its row leads with the complaint's columns; none when the INSERT inserted nothing. The
    routing that follows is the helpline's own transition, through :func:`store`, whose SMS
    ("assigned") is queued after this one."""
    registered = (
        sms_row(
            kind=SmsKind.REGISTERED,
            complaint_number=complaint_number,
            caller_number=caller_number,
            params={"days": str(sla_days)},
            dedupe_key="register",
        )
        if notify
        else None
    )
    params: dict[str, object] = {  # the history row's; its complaint_id is the INSERT's
        "at": created_at,
        "actor_user_id": actor_user_id,
        "action": HistoryAction.REGISTER,
        "from_status": None,
        "to_status": ComplaintStatus.REGISTERED,
        "from_officer": None,
        "to_officer": None,
        "note": note,
    }
    if registered is not None:
        params |= {f"sms_{name}": value for name, value in registered.items()}
    statement = _writes(None, sms=None if registered is None else registered["status"], filed=filed)
    return statement, params


def officer_params(reference: Reference, code: str | None) -> dict[str, str]:
    """The SMS placeholders naming officer ``code``'s post."""
    officer = reference.officers.get(code or "")
    if officer is None:
        return {"officer_hi": code or "", "officer_en": code or ""}
    return {"officer_hi": officer.designation_hi, "officer_en": officer.designation_en}


def _sms_of(
    complaint: Complaint, transition: Transition, reference: Reference
) -> tuple[SmsKind, dict[str, Any]] | None:
    """The caller hears of a new officer (assigned; escalated when overdue, keyed by the
    breach) and of the resolution; other transitions are internal to the departments. The
    SMS row (:func:`lifecycle.notifications.sms_row`); its dedupe key, unless the breach's, is
    the history row's id (NULL here: :func:`_writes` fills it in)."""
    effects, after = transition.effects, transition.after
    kind: SmsKind | None = None
    dedupe: str | None = None
    params: dict[str, str] = {}
    if transition.action is Action.ESCALATE:
        if Effect.ASSIGN_OFFICER in effects:
            kind, params = SmsKind.ESCALATED, officer_params(reference, after.officer)
            if transition.breach is not None:
                key = transition.breach.key
                dedupe = f"breach {key.level} {key.due_at.isoformat()}"
    elif Effect.ASSIGN_OFFICER in effects:
        kind, params = SmsKind.ASSIGNED, officer_params(reference, after.officer)
    elif Effect.RECORD_RESOLUTION in effects:
        kind = SmsKind.RESOLVED
    if kind is None:
        return None
    row = sms_row(
        kind=kind,
        complaint_number=complaint.number,
        caller_number=complaint.caller_number,
        params=params,
        dedupe_key=dedupe,
    )
    return kind, row
