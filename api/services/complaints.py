"""Complaints: checked against the reference data, routed to an officer, stored exactly once
with their history, numbered only after the row is committed.

Exactly once comes from the database, not from the client being careful: a complaint is unique
on the client's ``Idempotency-Key`` and on (call, request hash), so the same request twice on
one call is one complaint, while a caller with two problems gets two. A replay returns the
original; a key reused for a different request is refused (:class:`Invalid`).

Only the agent who handled the call (or a supervisor or admin) may file on it. A caller's
complaints are serialised by a transaction-scoped advisory lock on their number, so the
monthly cap and the duplicate check see every complaint committed before.

Every read and list is limited to the reader's scope (:mod:`api.services.access`: officers see
their department within their jurisdiction); a complaint out of scope is "not found", so
numbers do not leak. Officers and the CM office see caller numbers masked
(:data:`api.policy.MASKED_ROLES`); :func:`unmask` gives one number and audits it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, Select, and_, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from api.schemas import (
    CallerNumberOut,
    ComplaintCheckOut,
    ComplaintIn,
    ComplaintOut,
    OfficerOut,
    PlaceOut,
)
from api.services.access import caller_number_as_seen, check_call_work, complaint_scope
from api.services.errors import Conflict, Invalid, InvalidField, NotFound, TooMany
from api.services.lookups import current_call, open_agent_session
from core.config import Settings
from core.db.audit import audit
from core.db.models import (
    Call,
    Complaint,
    User,
    complaint_sequence,
)
from core.domain.clock import month_start
from core.domain.complaints import (
    SETTLED_STATES,
    ComplaintStatus,
    complaint_number,
    is_valid_complaint_number,
    resolution_due,
)
from core.domain.lifecycle import SYSTEM, Action, ComplaintView, Refusal, apply
from core.domain.phone import CallerNumber
from core.reference import Category, Reference
from lifecycle.transitions import lock_complaint, store_filing


@dataclass(frozen=True, slots=True)
class Registered:
    complaint: ComplaintOut
    #: False when this was a replay and ``complaint`` is the one stored before.
    created: bool


# ----------------------------------------------------------------------------- reading

_Duplicate = aliased(Complaint)


def _with_names() -> Select[Complaint, str, str, str]:
    """Complaints with their author's username, call's uniqueid and the number of the one
    they may duplicate: one query however many rows."""
    return (
        select(Complaint, User.username, Call.uniqueid, _Duplicate.number)
        .outerjoin(User, User.id == Complaint.created_by)
        .outerjoin(Call, Call.id == Complaint.call_id)
        .outerjoin(_Duplicate, _Duplicate.id == Complaint.duplicate_of)
    )


def _place(record: object | None) -> PlaceOut | None:
    return None if record is None else PlaceOut.model_validate(record)


def complaint_out(
    reference: Reference,
    complaint: Complaint,
    author: str | None,
    call_uniqueid: str | None,
    duplicate_number: str | None,
) -> ComplaintOut:
    """A stored complaint for the desk; names come from the reference in memory."""
    officer = (
        reference.officers.get(complaint.assigned_officer) if complaint.assigned_officer else None
    )
    return ComplaintOut(
        number=complaint.number,
        status=complaint.status,
        caller_number=complaint.caller_number,
        caller_name=complaint.caller_name,
        description=complaint.description,
        call_uniqueid=call_uniqueid,
        created_by=author or "?",
        created_at=complaint.created_at,
        due_at=complaint.due_at,
        department=_place(reference.departments.get(complaint.department or "")),
        category=_place(reference.categories.get(complaint.category or "")),
        district=_place(reference.districts.get(complaint.district or "")),
        tehsil=_place(reference.tehsils.get(complaint.tehsil or "")),
        thana=_place(reference.thanas.get(complaint.thana or "")),
        assigned_officer=None
        if officer is None
        else OfficerOut(
            code=officer.code,
            designation_en=officer.designation_en,
            designation_hi=officer.designation_hi,
            level=officer.level,
        ),
        level=complaint.level,
        unroutable_reason=complaint.unroutable_reason,
        possible_duplicate_of=duplicate_number,
        reopen_count=complaint.reopen_count,
    )


def _masked(complaint: ComplaintOut, viewer: User) -> ComplaintOut:
    """The complaint as ``viewer`` may see it: the caller's number masked for the roles that
    do not work the calls."""
    shown = caller_number_as_seen(viewer, complaint.caller_number)
    if shown == complaint.caller_number:
        return complaint
    return complaint.model_copy(update={"caller_number": shown})


async def _one(
    session: AsyncSession, reference: Reference, condition: ColumnElement[bool]
) -> ComplaintOut | None:
    row = (await session.execute(_with_names().where(condition).limit(1))).one_or_none()
    return None if row is None else complaint_out(reference, *row)


def _in_scope(condition: ColumnElement[bool], viewer: User) -> ColumnElement[bool]:
    scope = complaint_scope(viewer)
    return condition if scope is None else and_(condition, scope)


def _check_number(number: str) -> None:
    if not is_valid_complaint_number(number):
        raise Invalid(f"{number!r} is not a complaint number (10 digits with a valid check digit)")


async def by_number(
    session: AsyncSession, reference: Reference, number: str, *, viewer: User
) -> ComplaintOut:
    """The complaint ``number`` as ``viewer`` may see it; :class:`NotFound` also when it lies
    outside their scope (a 403 would tell them the number exists)."""
    return (await stored_by_number(session, reference, number, viewer=viewer))[0]


async def stored_by_number(
    session: AsyncSession, reference: Reference, number: str, *, viewer: User
) -> tuple[ComplaintOut, Complaint]:
    """:func:`by_number` and the row it was read from (its id, resolution...), in one query."""
    _check_number(number)
    row = (
        await session.execute(
            _with_names().where(_in_scope(Complaint.number == number, viewer)).limit(1)
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"no complaint {number}")
    return _masked(complaint_out(reference, *row), viewer), row[0]


async def latest(
    session: AsyncSession,
    reference: Reference,
    *,
    viewer: User,
    caller: CallerNumber | None,
    limit: int,
    unroutable: bool = False,
) -> list[ComplaintOut]:
    """The newest ``limit`` complaints within ``viewer``'s scope, of one caller (any Indian
    format) if given; with ``unroutable``, only those no rule placed that nobody has assigned
    since (the review page's list)."""
    query = _with_names().order_by(Complaint.created_at.desc()).limit(limit)
    scope = complaint_scope(viewer)
    if scope is not None:
        query = query.where(scope)
    if caller is not None:
        query = query.where(Complaint.caller_number == caller)
    if unroutable:
        query = query.where(
            Complaint.unroutable_reason.is_not(None), Complaint.assigned_officer.is_(None)
        )
    rows = (await session.execute(query)).all()
    return [_masked(complaint_out(reference, *row), viewer) for row in rows]


async def unmask(
    session: AsyncSession, number: str, *, viewer: User, reason: str
) -> CallerNumberOut:
    """The caller's number of complaint ``number`` in full, for a viewer who sees it masked;
    every call writes an audit row (who, which complaint, why), committed before the number is
    returned: if the audit cannot be written, nobody sees the number."""
    _check_number(number)
    row = (
        await session.execute(
            select(Complaint.id, Complaint.caller_number).where(
                _in_scope(Complaint.number == number, viewer)
            )
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"no complaint {number}")
    audit(
        session,
        service="api",
        actor_user_id=viewer.id,
        action="caller_number_unmasked",
        entity="complaint",
        entity_id=str(row.id),
        detail={"number": number, "role": viewer.role, "reason": reason},
    )
    await session.commit()
    return CallerNumberOut(number=number, caller_number=row.caller_number)


# ----------------------------------------------------------------------------- filing


def _request_hash(body: ComplaintIn, user_id: int) -> str:
    canonical = json.dumps([user_id, body.model_dump()], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_codes(reference: Reference, body: ComplaintIn) -> Category:
    """The complaint's category, once every code is known and they fit together; otherwise
    :class:`InvalidField` naming the first field that does not."""
    if body.department not in reference.departments:
        raise InvalidField("department", f"unknown department {body.department!r}")
    category = reference.categories.get(body.category)
    if category is None:
        raise InvalidField("category", f"unknown category {body.category!r}")
    if category.department != body.department:
        raise InvalidField(
            "category",
            f"category {body.category!r} is of department {category.department!r}, "
            f"not {body.department!r}",
        )
    if body.district not in reference.districts:
        raise InvalidField("district", f"unknown district {body.district!r}")
    if body.tehsil is not None:
        tehsil = reference.tehsils.get(body.tehsil)
        if tehsil is None:
            raise InvalidField("tehsil", f"unknown tehsil {body.tehsil!r}")
        if tehsil.district != body.district:
            raise InvalidField(
                "tehsil", f"tehsil {body.tehsil!r} is in district {tehsil.district!r}"
            )
    if body.thana is not None:
        thana = reference.thanas.get(body.thana)
        if thana is None:
            raise InvalidField("thana", f"unknown thana {body.thana!r}")
        if thana.district != body.district:
            raise InvalidField("thana", f"thana {body.thana!r} is in district {thana.district!r}")
        if body.tehsil is not None and thana.tehsil not in (None, body.tehsil):
            raise InvalidField("thana", f"thana {body.thana!r} is in tehsil {thana.tehsil!r}")
    return category


async def _resolve_call(session: AsyncSession, user: User, body: ComplaintIn) -> Call | None:
    """The call named (which the user must have handled), else the agent's current (or
    just-ended) call, else none (then the caller's number must be given)."""
    if body.call_uniqueid is not None:
        call = (
            await session.execute(select(Call).where(Call.uniqueid == body.call_uniqueid))
        ).scalar_one_or_none()
        if call is None:
            raise NotFound(f"no call {body.call_uniqueid}")
        await check_call_work(session, user, call)
        return call
    agent_session = await open_agent_session(session, user.id)
    if agent_session is not None:
        call = await current_call(session, agent_session)
        if call is not None:
            return call
    if body.caller_number is None:
        raise Conflict(
            "you have no current call: log in to a seat and take a call, "
            "or give call_uniqueid or caller_number"
        )
    return None


def _caller_number(call: Call | None, given: CallerNumber | None) -> str | None:
    """The call's number wins; the agent's is used when the caller withheld theirs (or there
    is no call)."""
    if call is not None and call.caller_number:
        return call.caller_number
    return given


async def _lock_caller(session: AsyncSession, caller_number: str) -> None:
    """Serialise this caller's filings until the transaction ends (cap and duplicates)."""
    key = func.hashtextextended("complaint caller " + caller_number, 0)
    await session.execute(select(func.pg_advisory_xact_lock(key)))


async def _month_count(session: AsyncSession, caller_number: str, now: datetime) -> int:
    """The caller's complaints this helpline month (ix_complaints_caller_month)."""
    return (
        await session.execute(
            select(func.count()).where(
                Complaint.caller_number == caller_number,
                Complaint.created_at >= month_start(now),
            )
        )
    ).scalar_one()


async def _open_duplicate(
    session: AsyncSession, caller_number: str, category: str
) -> tuple[int, str] | None:
    """The caller's newest open complaint of the category: (id, number)."""
    row = (
        await session.execute(
            select(Complaint.id, Complaint.number)
            .where(
                Complaint.caller_number == caller_number,
                Complaint.category == category,
                Complaint.status.not_in(SETTLED_STATES),
            )
            .order_by(Complaint.created_at.desc())
            .limit(1)
        )
    ).one_or_none()
    return None if row is None else (row.id, row.number)


async def _find_same(
    session: AsyncSession,
    reference: Reference,
    idempotency_key: str | None,
    call: Call | None,
    request_hash: str,
) -> tuple[ComplaintOut, str | None, str | None] | None:
    """The stored complaint of this request: by its key first, else this request on this call."""
    if idempotency_key is not None:
        found = await _stored(session, reference, Complaint.idempotency_key == idempotency_key)
        if found is not None:
            return found
    if call is not None:
        return await _stored(
            session,
            reference,
            and_(Complaint.call_id == call.id, Complaint.request_hash == request_hash),
        )
    return None


async def register(
    session: AsyncSession,
    settings: Settings,
    reference: Reference,
    user: User,
    body: ComplaintIn,
    idempotency_key: str | None = None,
    *,
    now: datetime | None = None,
    notify: bool = True,
) -> Registered:
    """Check, route and store the complaint once, with its history rows, in one transaction.

    ``notify=False`` queues no SMS to the caller: only the demo data uses it (its numbers are
    made up and must never be texted).

    A replay (same key, or the same request on the same call) returns the stored one, also
    when it races this request: the UNIQUE constraints decide. Refusals: unknown codes
    (:class:`InvalidField`), a call the user did not handle (:class:`Forbidden`), the caller's
    monthly cap (:class:`TooMany`).
    """
    category = check_codes(reference, body)
    request_hash = _request_hash(body, user.id)
    call = await _resolve_call(session, user, body)
    caller_number = _caller_number(call, body.caller_number)
    if caller_number is not None:
        await _lock_caller(session, caller_number)

    existing = await _find_same(session, reference, idempotency_key, call, request_hash)
    if existing is not None:
        return _replay(*existing, idempotency_key, request_hash)

    # ``now`` is given only by the demo data (complaints filed weeks ago); the API never does.
    now = now or datetime.now(UTC)
    duplicate: tuple[int, str] | None = None
    if caller_number is not None:
        count = await _month_count(session, caller_number, now)
        if count >= settings.complaints_per_caller_month:
            raise TooMany(
                f"caller {caller_number} has filed {count} complaints this month, the most "
                f"allowed ({settings.complaints_per_caller_month}); add to an open one instead"
            )
        duplicate = await _open_duplicate(session, caller_number, category.code)

    number = complaint_number(
        (await session.execute(select(complaint_sequence.next_value()))).scalar_one()
    )
    filed = ComplaintView(
        number,
        ComplaintStatus.REGISTERED,
        category=category.code,
        district=body.district,
        tehsil=body.tehsil,
        thana=body.thana,
    )
    # Routing is the lifecycle's first action, taken by the helpline itself.
    routed = apply(filed, Action.ASSIGN, SYSTEM, now, reference=reference)
    unroutable = routed.reason if isinstance(routed, Refusal) else None
    inserted = (
        await session.execute(
            insert(Complaint)
            .values(
                number=number,
                caller_number=caller_number,
                caller_name=body.caller_name or (call.caller_name if call else None),
                description=body.description,
                call_id=call.id if call else None,
                created_by=user.id,
                idempotency_key=idempotency_key,
                request_hash=request_hash,
                created_at=now,
                # As filed; the routing (store_filing) moves it on, through the one writer.
                due_at=resolution_due(now, category.sla_days),
                department=body.department,
                category=category.code,
                district=body.district,
                tehsil=body.tehsil,
                thana=body.thana,
                status=ComplaintStatus.REGISTERED,
                unroutable_reason=unroutable,
                duplicate_of=duplicate[0] if duplicate else None,
            )
            .on_conflict_do_nothing()
            .returning(Complaint.id)
        )
    ).scalar_one_or_none()
    if inserted is None:
        # A concurrent request with the same key, or the same request on this call, won.
        await session.rollback()
        winner = await _find_same(session, reference, idempotency_key, call, request_hash)
        assert winner is not None  # without key or call nothing can conflict
        return _replay(*winner, idempotency_key, request_hash)

    # The filing's and the routing's history rows and SMS: the lifecycle's one writer.
    complaint = await lock_complaint(session, number)
    assert complaint is not None  # inserted above, in this transaction
    await store_filing(
        session,
        complaint,
        routed,
        actor_user_id=user.id,
        reference=reference,
        sla_days=category.sla_days,
        notify=notify,
    )
    audit(
        session,
        service="api",
        actor_user_id=user.id,
        action="complaint_created",
        entity="complaint",
        entity_id=str(inserted),
    )
    await session.commit()  # the number is handed out only after this returned
    created = await _one(session, reference, Complaint.id == inserted)
    assert created is not None
    return Registered(created, created=True)


async def _stored(
    session: AsyncSession, reference: Reference, condition: ColumnElement[bool]
) -> tuple[ComplaintOut, str | None, str | None] | None:
    """The stored complaint matching ``condition`` with its key and request hash."""
    row = (await session.execute(_with_names().where(condition).limit(1))).one_or_none()
    if row is None:
        return None
    complaint, author, call_uniqueid, duplicate_number = row
    return (
        complaint_out(reference, complaint, author, call_uniqueid, duplicate_number),
        complaint.idempotency_key,
        complaint.request_hash,
    )


def _replay(
    existing: ComplaintOut,
    stored_key: str | None,
    stored_hash: str | None,
    idempotency_key: str | None,
    request_hash: str,
) -> Registered:
    if (
        idempotency_key is not None
        and stored_key == idempotency_key
        and stored_hash != request_hash
    ):
        raise Invalid("this Idempotency-Key was used for a different complaint")
    return Registered(existing, created=False)


async def check(
    session: AsyncSession,
    settings: Settings,
    reference: Reference,
    caller: CallerNumber,
    category: str,
) -> ComplaintCheckOut:
    """What filing a complaint of ``category`` for ``caller`` would meet: an open complaint
    it may duplicate, and how much of the monthly cap is used."""
    if category not in reference.categories:
        raise InvalidField("category", f"unknown category {category!r}")
    duplicate = await _open_duplicate(session, caller, category)
    return ComplaintCheckOut(
        possible_duplicate_of=duplicate[1] if duplicate else None,
        complaints_this_month=await _month_count(session, caller, datetime.now(UTC)),
        monthly_cap=settings.complaints_per_caller_month,
    )
