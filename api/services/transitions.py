"""A complaint's actions and its detail page: the API's side of
:mod:`lifecycle.transitions`, which decides and stores every transition (the SLA pass goes
through it too). A refusal becomes the service error of its HTTP status: illegal 409,
forbidden 403, invalid 422."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from api.schemas import ComplaintDetailOut, TransitionIn
from api.services import complaints
from api.services.errors import Conflict, Forbidden, Invalid, NotFound, ServiceError
from core.db.models import User
from core.domain.lifecycle import RefusalKind
from core.reference import Reference
from lifecycle.transitions import ComplaintMissing, TransitionRefused, apply_action

_ERROR_OF: dict[RefusalKind, type[ServiceError]] = {
    RefusalKind.ILLEGAL: Conflict,
    RefusalKind.FORBIDDEN: Forbidden,
    RefusalKind.INVALID: Invalid,
}


async def act(
    session: AsyncSession,
    reference: Reference,
    user: User,
    number: str,
    body: TransitionIn,
) -> ComplaintDetailOut:
    """Take ``body.action`` on complaint ``number`` as ``user`` and commit; the complaint as
    it now stands. A complaint outside ``user``'s scope (api.services.access) is not found;
    within it, the lifecycle decides who may take which action."""
    await complaints.by_number(session, reference, number, viewer=user)
    try:
        await apply_action(
            session,
            number=number,
            action=body.action,
            actor_user=user,
            note=body.note,
            officer_code=body.officer,
            duplicate_of=body.duplicate_of,
            now=datetime.now(UTC),
            reference=reference,
        )
    except ComplaintMissing:
        await session.rollback()
        raise NotFound(f"no complaint {number}") from None
    except TransitionRefused as refused:
        await session.rollback()
        raise _ERROR_OF[refused.kind](refused.reason) from None
    await session.commit()
    return await detail(session, reference, number, viewer=user)


async def detail(
    session: AsyncSession, reference: Reference, number: str, *, viewer: User
) -> ComplaintDetailOut:
    """Complaint ``number`` as ``viewer`` may see it, with its history: the complaints
    service's read (:func:`api.services.complaints.detail`, one statement)."""
    return await complaints.detail(session, reference, number, viewer=viewer)
