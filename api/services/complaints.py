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

import functools
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    String,
    Table,
    and_,
    bindparam,
    func,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.selectable import ExecutableReturnsRows

from api.schemas import (
    CallerNumberOut,
    ComplaintCheckOut,
    ComplaintDetailOut,
    ComplaintIn,
    ComplaintOut,
    HistoryEntryOut,
    OfficerOut,
    PlaceOut,
)
from api.services.access import caller_number_as_seen, check_call_work, complaint_scope
from api.services.errors import Conflict, Invalid, InvalidField, NotFound, TooMany
from api.services.lookups import agents_current_call
from core.config import Settings
from core.db.audit import audit, audit_params, audited_after
from core.db.models import (
    Call,
    Complaint,
    ComplaintHistory,
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
from core.reference import Category, Level, Reference
from lifecycle.transitions import filing_writes, store


@dataclass(frozen=True, slots=True)
class Registered:
    complaint: ComplaintOut
    #: False when this was a replay and ``complaint`` is the one stored before.
    created: bool


# ----------------------------------------------------------------------------- reading

# Every read is Core over the tables, each statement built once where it can be, and the
# answer is built straight from the row: the ORM's statement compilation and entity loading
# cost a read more CPU than PostgreSQL's answer (bench/api.py, docs/benchmarks.md).
_complaints = cast(Table, Complaint.__table__)
_users = User.__table__
_calls = Call.__table__
_duplicates = _complaints.alias("duplicate")
_history = ComplaintHistory.__table__
_actors = _users.alias("actor")

#: What an answer shows of a complaint, with its author's username, its call's uniqueid and
#: the number of the complaint it may duplicate: one query however many rows.
_SHOWN = (
    _complaints.c.number,
    _complaints.c.status,
    _complaints.c.caller_number,
    _complaints.c.caller_name,
    _complaints.c.description,
    _complaints.c.created_at,
    _complaints.c.due_at,
    _complaints.c.department,
    _complaints.c.category,
    _complaints.c.district,
    _complaints.c.tehsil,
    _complaints.c.thana,
    _complaints.c.assigned_officer,
    _complaints.c.level,
    _complaints.c.unroutable_reason,
    _complaints.c.reopen_count,
    _users.c.username.label("author"),
    _calls.c.uniqueid.label("call_uniqueid"),
    _duplicates.c.number.label("duplicate_number"),
)
_NAMED = (
    _complaints.outerjoin(_users, _users.c.id == _complaints.c.created_by)
    .outerjoin(_calls, _calls.c.id == _complaints.c.call_id)
    .outerjoin(_duplicates, _duplicates.c.id == _complaints.c.duplicate_of)
)


def _with_names(*extra: ColumnElement[Any]) -> Select[*tuple[Any, ...]]:
    return select(*_SHOWN, *extra).select_from(_NAMED)


#: The detail: the complaint and its history (with each actor's username), oldest first, in
#: one statement; a complaint without history has one row with ``history_id`` NULL.
_DETAIL = (
    select(
        *_SHOWN,
        _complaints.c.resolution_text,
        _complaints.c.resolved_at,
        _history.c.id.label("history_id"),
        _history.c.at,
        _history.c.action,
        _actors.c.username.label("actor"),
        _history.c.from_status,
        _history.c.to_status,
        _history.c.from_officer,
        _history.c.to_officer,
        _history.c.note,
    )
    .select_from(
        _NAMED.outerjoin(_history, _history.c.complaint_id == _complaints.c.id).outerjoin(
            _actors, _actors.c.id == _history.c.actor_user_id
        )
    )
    .where(_complaints.c.number == bindparam("number"))
    .order_by(_history.c.at, _history.c.id)
)
#: The newest complaints of one caller, for a viewer who sees every complaint.
_OF_CALLER = (
    _with_names()
    .where(_complaints.c.caller_number == bindparam("caller"))
    .order_by(_complaints.c.created_at.desc())
    .limit(bindparam("limit"))
)


class _Named(Protocol):
    """A reference record with names (department, category, district, tehsil, thana)."""

    @property
    def code(self) -> str: ...
    @property
    def name_en(self) -> str: ...
    @property
    def name_hi(self) -> str: ...


def _place(record: _Named | None) -> PlaceOut | None:
    return None if record is None else _place_out(record.code, record.name_en, record.name_hi)


@functools.lru_cache(maxsize=4096)
def _place_out(code: str, name_en: str, name_hi: str) -> PlaceOut:
    """One answer's place per distinct record (a complaint names five): validating a new one
    for every complaint of every answer cost more than the rest of the row. Shared, so never
    changed in place (an answer is copied with ``model_copy``)."""
    return PlaceOut(code=code, name_en=name_en, name_hi=name_hi)


@functools.lru_cache(maxsize=4096)
def _officer_out(code: str, designation_en: str, designation_hi: str, level: Level) -> OfficerOut:
    """As :func:`_place_out`, for the officer's post."""
    return OfficerOut(
        code=code, designation_en=designation_en, designation_hi=designation_hi, level=level
    )


@dataclass(frozen=True, slots=True)
class _FiledRow:
    """A just-filed complaint in the shape of a row of :data:`_SHOWN` (for :func:`_shown`)."""

    number: str
    status: str
    caller_number: str | None
    caller_name: str | None
    description: str
    created_at: datetime
    due_at: datetime | None
    department: str | None
    category: str | None
    district: str | None
    tehsil: str | None
    thana: str | None
    assigned_officer: str | None
    level: str | None
    unroutable_reason: str | None
    reopen_count: int
    author: str
    call_uniqueid: str | None
    duplicate_number: str | None


def _shown(
    reference: Reference, row: Row[*tuple[Any, ...]] | _FiledRow, viewer: User | None
) -> dict[str, Any]:
    """The fields of :class:`ComplaintOut` from a row of :data:`_SHOWN`; names come from the
    reference in memory, the caller's number as ``viewer`` may see it (None: in full)."""
    officer = reference.officers.get(row.assigned_officer) if row.assigned_officer else None
    return {
        "number": row.number,
        "status": row.status,
        "caller_number": row.caller_number
        if viewer is None
        else caller_number_as_seen(viewer, row.caller_number),
        "caller_name": row.caller_name,
        "description": row.description,
        "call_uniqueid": row.call_uniqueid,
        "created_by": row.author or "?",
        "created_at": row.created_at,
        "due_at": row.due_at,
        "department": _place(reference.departments.get(row.department or "")),
        "category": _place(reference.categories.get(row.category or "")),
        "district": _place(reference.districts.get(row.district or "")),
        "tehsil": _place(reference.tehsils.get(row.tehsil or "")),
        "thana": _place(reference.thanas.get(row.thana or "")),
        "assigned_officer": None
        if officer is None
        else _officer_out(
            officer.code, officer.designation_en, officer.designation_hi, officer.level
        ),
        "level": row.level,
        "unroutable_reason": row.unroutable_reason,
        "possible_duplicate_of": row.duplicate_number,
        "reopen_count": row.reopen_count,
    }


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
    _check_number(number)
    row = (
        await session.execute(
            _with_names().where(_in_scope(_complaints.c.number == number, viewer)).limit(1)
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"no complaint {number}")
    return ComplaintOut(**_shown(reference, row, viewer))


async def detail(
    session: AsyncSession, reference: Reference, number: str, *, viewer: User
) -> ComplaintDetailOut:
    """Complaint ``number`` as ``viewer`` may see it (scope and masking as :func:`by_number`),
    with resolution, reopen count and its history, oldest first: one statement."""
    _check_number(number)
    scope = complaint_scope(viewer)
    query = _DETAIL if scope is None else _DETAIL.where(scope)
    rows = (await session.execute(query, {"number": number})).all()
    if not rows:
        raise NotFound(f"no complaint {number}")
    history = [
        HistoryEntryOut(
            at=row.at,
            action=row.action,
            actor=row.actor,
            from_status=row.from_status,
            to_status=row.to_status,
            from_officer=row.from_officer,
            to_officer=row.to_officer,
            note=row.note,
        )
        for row in rows
        if row.history_id is not None
    ]
    first = rows[0]
    return ComplaintDetailOut(
        **_shown(reference, first, viewer),
        resolution_text=first.resolution_text,
        resolved_at=first.resolved_at,
        history=history,
    )


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
    scope = complaint_scope(viewer)
    if scope is None and caller is not None and not unroutable:
        # The desk's list of a caller's complaints: the statement built once.
        query = _OF_CALLER.params(caller=caller, limit=limit)
    else:
        query = _with_names().order_by(_complaints.c.created_at.desc()).limit(limit)
        if scope is not None:
            query = query.where(scope)
        if caller is not None:
            query = query.where(_complaints.c.caller_number == caller)
        if unroutable:
            query = query.where(
                _complaints.c.unroutable_reason.is_not(None),
                _complaints.c.assigned_officer.is_(None),
            )
    rows = (await session.execute(query)).all()
    return [ComplaintOut(**_shown(reference, row, viewer)) for row in rows]


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
    call = await agents_current_call(session, user.id)
    if call is not None:
        return call
    if body.caller_number is None:
        raise Conflict(
            "you have no current call: log in to a seat and take a call, "
            "or give call_uniqueid or caller_number"
        )
    return None


def _caller_number(call: Call | None, given: CallerNumber | None) -> CallerNumber | None:
    """The call's number wins; the agent's is used when the caller withheld theirs (or there
    is no call)."""
    if call is not None and call.caller_number:
        return call.caller_number
    return given


_LOCK_CALLER = select(
    func.pg_advisory_xact_lock(func.hashtextextended(bindparam("caller", type_=String), 0))
)


@dataclass(frozen=True, slots=True)
class _CallerMonth:
    #: The caller's complaints this helpline month (ix_complaints_caller_month).
    count: int
    #: The caller's newest open complaint of the category: (id, number).
    duplicate: tuple[int, str] | None
    #: The next value of the complaint number's sequence, drawn in the same round trip (a
    #: refused filing leaves a gap, as a rolled-back one always did).
    sequence: int


def _caller_month_statement() -> Select[*tuple[Any, ...]]:
    open_duplicate = (
        select(_complaints.c.id, _complaints.c.number)
        .where(
            _complaints.c.caller_number == bindparam("caller"),
            _complaints.c.category == bindparam("category"),
            _complaints.c.status.not_in(SETTLED_STATES),
        )
        .order_by(_complaints.c.created_at.desc())
        .limit(1)
        .subquery()
    )
    month_count = (
        select(func.count())
        .where(
            _complaints.c.caller_number == bindparam("caller"),
            _complaints.c.created_at >= bindparam("since"),
        )
        .scalar_subquery()
    )
    # The count's one row, with the duplicate's when there is one, and the next number.
    counted = select(
        month_count.label("n"), complaint_sequence.next_value().label("sequence")
    ).subquery()
    return select(
        counted.c.n, open_duplicate.c.id, open_duplicate.c.number, counted.c.sequence
    ).select_from(counted.outerjoin(open_duplicate, true()))


_CALLER_MONTH = _caller_month_statement()


async def _caller_month(
    session: AsyncSession, caller_number: str, category: str, now: datetime
) -> _CallerMonth:
    """What the monthly cap and the duplicate check need, and the filing's sequence value, in
    one round trip."""
    params = {"caller": caller_number, "category": category, "since": month_start(now)}
    count, duplicate_id, duplicate_number, sequence = (
        await session.execute(_CALLER_MONTH, params)
    ).one()
    duplicate = None if duplicate_id is None else (duplicate_id, duplicate_number)
    return _CallerMonth(count, duplicate, sequence)


async def _find_same(
    session: AsyncSession,
    reference: Reference,
    idempotency_key: str | None,
    call_id: int | None,
    request_hash: str,
    *,
    lock_caller: str | None = None,
) -> tuple[ComplaintOut, str | None, str | None] | None:
    """The stored complaint of this request: by its key first, else this request on this call
    (its id: the ORM's ``Call`` is expired after a rollback). With ``lock_caller``, that
    caller's filings are serialised until the transaction ends (cap and duplicates), the lock
    taken in the first look-up's round trip (:func:`_locked`)."""
    lookups: list[tuple[Select[*tuple[Any, ...]], dict[str, Any]]] = []
    if idempotency_key is not None:
        lookups.append((_BY_KEY, {"key": idempotency_key}))
    if call_id is not None:
        lookups.append((_BY_CALL_REQUEST, {"call": call_id, "hash": request_hash}))
    if lock_caller is not None:
        lock = {"caller": "complaint caller " + lock_caller}
        if not lookups:
            await session.execute(_LOCK_CALLER, lock)
            return None
        query, params = lookups[0]
        lookups[0] = (_LOCKED[query], params | lock)
    for query, params in lookups:
        found = await _stored(session, reference, query, params)
        if found is not None:
            return found
    return None


#: The filing's INSERT, built once (Core, bind parameters): a statement built per call costs
#: its construction and cache key on every filing. A conflict (the same key, or the same
#: request on the same call) inserts nothing and returns no row. It returns the whole row as
#: the ORM's ``Complaint`` (:data:`_FILED`), which the lifecycle's writer takes: reading it
#: back with a row lock was one more round trip, for a row no other transaction can see yet.
_FILE = (
    insert(_complaints)
    .values(
        {
            name: bindparam(name)
            for name in (
                "number",
                "caller_number",
                "caller_name",
                "description",
                "call_id",
                "created_by",
                "idempotency_key",
                "request_hash",
                "created_at",
                "due_at",
                "department",
                "category",
                "district",
                "tehsil",
                "thana",
                "status",
                "unroutable_reason",
                "duplicate_of",
            )
        }
    )
    .on_conflict_do_nothing()
    .returning(*_complaints.c)
    .cte("filed")
)
#: The filing's audit record, written with the INSERT (and only for a row it inserted).
_AUDITED = audited_after(_FILE.c.id)
#: The filing's whole statement as the ORM's ``Complaint``, by the lifecycle's statement's
#: shape (:func:`lifecycle.transitions.filing_writes`): built once each.
_FILED: dict[int, ExecutableReturnsRows] = {}


def _filed(statement: Select[Any]) -> ExecutableReturnsRows:
    if (built := _FILED.get(id(statement))) is None:
        built = _FILED[id(statement)] = select(Complaint).from_statement(
            statement.add_cte(_AUDITED)
        )
    return built


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
    call_id = call.id if call else None
    caller_number = _caller_number(call, body.caller_number)
    existing = await _find_same(
        session, reference, idempotency_key, call_id, request_hash, lock_caller=caller_number
    )
    if existing is not None:
        return _replay(*existing, idempotency_key, request_hash)

    # ``now`` is given only by the demo data (complaints filed weeks ago); the API never does.
    now = now or datetime.now(UTC)
    duplicate: tuple[int, str] | None = None
    if caller_number is not None:
        month = await _caller_month(session, caller_number, category.code, now)
        if month.count >= settings.complaints_per_caller_month:
            raise TooMany(
                f"caller {caller_number} has filed {month.count} complaints this month, the "
                f"most allowed ({settings.complaints_per_caller_month}); add to an open one "
                "instead"
            )
        duplicate, sequence = month.duplicate, month.sequence
    else:
        sequence = (await session.execute(select(complaint_sequence.next_value()))).scalar_one()
    number = complaint_number(sequence)
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
    # The complaint, its filing's history row, the "registered" SMS and the audit record:
    # one statement, one round trip.
    statement, filing = filing_writes(
        _FILE,
        complaint_number=number,
        caller_number=caller_number,
        created_at=now,
        actor_user_id=user.id,
        note=unroutable,
        sla_days=category.sla_days,
        notify=notify,
    )
    complaint = (
        await session.execute(
            _filed(statement),
            {
                "number": number,
                "caller_number": caller_number,
                "caller_name": body.caller_name or (call.caller_name if call else None),
                "description": body.description,
                "call_id": call_id,
                "created_by": user.id,
                "idempotency_key": idempotency_key,
                "request_hash": request_hash,
                "created_at": now,
                # As filed; the routing (store, below) moves it on, through the one writer.
                "due_at": resolution_due(now, category.sla_days),
                "department": body.department,
                "category": category.code,
                "district": body.district,
                "tehsil": body.tehsil,
                "thana": body.thana,
                "status": ComplaintStatus.REGISTERED,
                "unroutable_reason": unroutable,
                "duplicate_of": duplicate[0] if duplicate else None,
                **filing,
                **audit_params(
                    service="api",
                    actor_user_id=user.id,
                    action="complaint_created",
                    entity="complaint",
                ),
            },
        )
    ).scalar_one_or_none()
    if complaint is None:
        # A concurrent request with the same key, or the same request on this call, won.
        await session.rollback()
        winner = await _find_same(session, reference, idempotency_key, call_id, request_hash)
        assert winner is not None  # without key or call nothing can conflict
        return _replay(*winner, idempotency_key, request_hash)

    if not isinstance(routed, Refusal):
        # Routing is the helpline's own transition (not the agent's), through the one writer.
        await store(
            session, complaint, routed, actor_user_id=None, reference=reference, notify=notify
        )
    # The answer from what was written: the row the INSERT returned, which the lifecycle's
    # writer keeps as the routing moved it on. Reading it back cost a round trip for values
    # this function already holds (tests/service/test_routing.py checks the answer against a
    # later read).
    created = ComplaintOut(
        **_shown(
            reference,
            _FiledRow(
                number=complaint.number,
                status=complaint.status,
                caller_number=complaint.caller_number,
                caller_name=complaint.caller_name,
                description=complaint.description,
                created_at=complaint.created_at,
                due_at=complaint.due_at,
                department=complaint.department,
                category=complaint.category,
                district=complaint.district,
                tehsil=complaint.tehsil,
                thana=complaint.thana,
                assigned_officer=complaint.assigned_officer,
                level=complaint.level,
                unroutable_reason=complaint.unroutable_reason,
                reopen_count=complaint.reopen_count,
                author=user.username,
                call_uniqueid=call.uniqueid if call else None,
                duplicate_number=duplicate[1] if duplicate else None,
            ),
            None,
        )
    )
    await session.commit()  # the number is handed out only after this returned
    return Registered(created, created=True)


_WITH_KEY = _with_names(_complaints.c.idempotency_key, _complaints.c.request_hash)
#: A filing's replay, by its key or as the same request on the same call.
_BY_KEY = _WITH_KEY.where(_complaints.c.idempotency_key == bindparam("key")).limit(1)
_BY_CALL_REQUEST = _WITH_KEY.where(
    _complaints.c.call_id == bindparam("call"), _complaints.c.request_hash == bindparam("hash")
).limit(1)


def _locked(replay: Select[*tuple[Any, ...]]) -> Select[*tuple[Any, ...]]:
    """The caller's lock (:data:`_LOCK_CALLER`) and ``replay``'s row, if any, in one
    statement: one row, whose ``number`` is NULL when there is no replay.

    The lookup's snapshot is taken as the statement starts, before the lock is granted, so it
    may miss a replay committed while this waited. That is safe: such a replay's key (or call
    and request) is UNIQUE, so this filing's INSERT then inserts nothing and the winner is
    read after all (:func:`register`). The lock is for what only it protects, the monthly cap
    and the duplicate check, which the next statement reads under it."""
    lock = _LOCK_CALLER.subquery("locked")
    found = replay.subquery("replay")
    return select(*found.c).select_from(lock.outerjoin(found, true()))


#: Each replay look-up with the caller's lock.
_LOCKED = {query: _locked(query) for query in (_BY_KEY, _BY_CALL_REQUEST)}


async def _stored(
    session: AsyncSession,
    reference: Reference,
    query: Select[*tuple[Any, ...]],
    params: dict[str, Any],
) -> tuple[ComplaintOut, str | None, str | None] | None:
    """The stored complaint ``query`` finds, with its key and request hash."""
    row = (await session.execute(query, params)).one_or_none()
    if row is None or row.number is None:  # none, or the lock's row alone (_locked)
        return None
    return ComplaintOut(**_shown(reference, row, None)), row.idempotency_key, row.request_hash


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
    month = await _caller_month(session, caller, category, datetime.now(UTC))
    return ComplaintCheckOut(
        possible_duplicate_of=month.duplicate[1] if month.duplicate else None,
        complaints_this_month=month.count,
        monthly_cap=settings.complaints_per_caller_month,
    )
