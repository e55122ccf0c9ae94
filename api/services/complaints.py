"""Complaints: stored exactly once, numbered only after the row is committed.

Exactly once comes from the database, not from the client being careful: a complaint is unique
on its call and on the client's ``Idempotency-Key``; a replay returns the original and a key
reused for a different request is refused (:class:`Invalid`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from api.schemas import ComplaintIn, ComplaintOut
from api.services.errors import Conflict, Invalid, NotFound
from api.services.lookups import current_call, open_agent_session
from core.config import Settings
from core.db.audit import audit
from core.db.models import Call, Complaint, User, complaint_sequence
from core.domain.complaints import complaint_number, is_valid_complaint_number, resolution_due
from core.domain.phone import CallerNumber


@dataclass(frozen=True, slots=True)
class Registered:
    complaint: ComplaintOut
    #: False when this was a replay and ``complaint`` is the one stored before.
    created: bool


async def complaint_out(session: AsyncSession, complaint: Complaint) -> ComplaintOut:
    author = await session.get(User, complaint.created_by)
    call = await session.get(Call, complaint.call_id) if complaint.call_id is not None else None
    return ComplaintOut(
        number=complaint.number,
        status=complaint.status,
        caller_number=complaint.caller_number,
        caller_name=complaint.caller_name,
        description=complaint.description,
        call_uniqueid=call.uniqueid if call else None,
        created_by=author.username if author else "?",
        created_at=complaint.created_at,
        due_at=complaint.due_at,
    )


def _request_hash(body: ComplaintIn, user_id: int) -> str:
    canonical = json.dumps([user_id, body.model_dump()], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def _resolve_call(session: AsyncSession, user: User, body: ComplaintIn) -> Call | None:
    """The call named, else the agent's current (or just-ended) call, else none (then the
    caller's number must be given)."""
    if body.call_uniqueid is not None:
        call = (
            await session.execute(select(Call).where(Call.uniqueid == body.call_uniqueid))
        ).scalar_one_or_none()
        if call is None:
            raise NotFound(f"no call {body.call_uniqueid}")
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


async def register(
    session: AsyncSession,
    settings: Settings,
    user: User,
    body: ComplaintIn,
    idempotency_key: str | None = None,
) -> Registered:
    """Store the complaint once. A replay (same key, or another complaint for the same call)
    returns the stored one, also when it races this request: the UNIQUE constraints decide."""
    request_hash = _request_hash(body, user.id)
    call = await _resolve_call(session, user, body)

    conditions = []
    if idempotency_key is not None:
        conditions.append(Complaint.idempotency_key == idempotency_key)
    if call is not None:
        conditions.append(Complaint.call_id == call.id)
    if conditions:
        existing = (
            await session.execute(select(Complaint).where(or_(*conditions)).limit(1))
        ).scalar_one_or_none()
        if existing is not None:
            return await _replay(session, existing, idempotency_key, request_hash)

    caller_number = _caller_number(call, body.caller_number)
    sequence = (await session.execute(select(complaint_sequence.next_value()))).scalar_one()
    now = datetime.now(UTC)
    inserted = (
        await session.execute(
            insert(Complaint)
            .values(
                number=complaint_number(sequence),
                caller_number=caller_number,
                caller_name=body.caller_name or (call.caller_name if call else None),
                description=body.description,
                call_id=call.id if call else None,
                created_by=user.id,
                idempotency_key=idempotency_key,
                request_hash=request_hash,
                created_at=now,
                due_at=resolution_due(now, settings.resolution_days),
            )
            .on_conflict_do_nothing()
            .returning(Complaint.id)
        )
    ).scalar_one_or_none()
    if inserted is None:
        # A concurrent request for the same call or key won the race: answer with its row.
        await session.rollback()
        existing = (
            await session.execute(select(Complaint).where(or_(*conditions)).limit(1))
        ).scalar_one()
        return await _replay(session, existing, idempotency_key, request_hash)
    audit(
        session,
        service="api",
        actor_user_id=user.id,
        action="complaint_created",
        entity="complaint",
        entity_id=str(inserted),
    )
    await session.commit()  # the number is handed out only after this returned
    complaint = await session.get(Complaint, inserted)
    assert complaint is not None
    return Registered(await complaint_out(session, complaint), created=True)


async def _replay(
    session: AsyncSession, existing: Complaint, idempotency_key: str | None, request_hash: str
) -> Registered:
    if (
        idempotency_key is not None
        and existing.idempotency_key == idempotency_key
        and existing.request_hash != request_hash
    ):
        raise Invalid("this Idempotency-Key was used for a different complaint")
    return Registered(await complaint_out(session, existing), created=False)


async def by_number(session: AsyncSession, number: str) -> ComplaintOut:
    if not is_valid_complaint_number(number):
        raise Invalid(f"{number!r} is not a complaint number (10 digits with a valid check digit)")
    complaint = (
        await session.execute(select(Complaint).where(Complaint.number == number))
    ).scalar_one_or_none()
    if complaint is None:
        raise NotFound(f"no complaint {number}")
    return await complaint_out(session, complaint)


async def latest(
    session: AsyncSession, *, caller: CallerNumber | None, limit: int
) -> list[ComplaintOut]:
    """The newest ``limit`` complaints, of one caller (any Indian format) if given."""
    query = select(Complaint).order_by(Complaint.created_at.desc()).limit(limit)
    if caller is not None:
        query = query.where(Complaint.caller_number == caller)
    rows = (await session.execute(query)).scalars().all()
    return [await complaint_out(session, row) for row in rows]
