"""Seats as data: how many SIP seats exist (500 at first, grown to 1000 or shrunk) and their
credentials.

The API writes ``seats``; the queue manager renders the PJSIP endpoints, reloads Asterisk's
PJSIP module (calls in progress are kept), records what it applied in ``seat_config_state``
and NOTIFYs ``seat_config_applied``; :func:`set_count` waits for that, up to
:data:`APPLY_WAIT_SECONDS`. Shrinking only ever disables the highest-numbered seats, and never
one with an agent logged in or a call up.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from api.schemas import CredentialsOut, SeatsOut
from api.services.errors import Conflict, NotFound
from api.services.notify import Notifications, wait_until
from core.config import Settings
from core.db.audit import audit
from core.db.channels import SEAT_CONFIG_APPLIED_CHANNEL, SEAT_CONFIG_CHANNEL
from core.db.models import AgentSession, Seat, SeatConfigState, SeatStatus, User
from core.domain.credentials import generate_secret
from core.domain.queues import seats_digest

APPLY_WAIT_SECONDS = 15.0
#: Advisory lock key: one resize at a time, across API processes.
RESIZE_LOCK = 1076005


def seat_name(index: int) -> str:
    return f"agent{index:04d}"


async def add_missing(session: AsyncSession, names: Iterable[str]) -> None:
    """Create the seats that do not exist yet, each with a generated SIP password; existing
    seats (enabled or not) and their passwords are left as they are."""
    rows = [{"name": name, "sip_password": generate_secret(20)} for name in names]
    if rows:
        await session.execute(insert(Seat).values(rows).on_conflict_do_nothing())


async def enabled(session: AsyncSession) -> list[tuple[str, str]]:
    """(name, SIP password) of every enabled seat, by name."""
    rows = await session.execute(
        select(Seat.name, Seat.sip_password).where(Seat.enabled.is_(True)).order_by(Seat.name)
    )
    return [(name, password) for name, password in rows.all()]


async def state(session: AsyncSession) -> SeatsOut:
    """How many seats are enabled and whether Asterisk's config holds exactly them."""
    rows = await enabled(session)
    applied = await session.get(SeatConfigState, "pjsip", populate_existing=True)
    digest = seats_digest(rows)
    return SeatsOut(
        count=len(rows),
        applied=applied is not None and applied.seats_hash == digest and applied.error is None,
        applied_count=applied.seat_count if applied else None,
        applied_at=applied.applied_at.isoformat() if applied and applied.applied_at else None,
        reload_seconds=applied.reload_seconds if applied else None,
        error=applied.error if applied else None,
    )


async def _busy(session: AsyncSession, names: list[str]) -> list[str]:
    """Of ``names``, the seats with an agent logged in or a call up."""
    rows = await session.execute(
        select(Seat.name)
        .outerjoin(SeatStatus, SeatStatus.seat == Seat.name)
        .outerjoin(
            AgentSession,
            (AgentSession.seat == Seat.name) & AgentSession.logged_out_at.is_(None),
        )
        .where(Seat.name.in_(names))
        .where(or_(AgentSession.id.is_not(None), SeatStatus.current_call_uniqueid.is_not(None)))
        .order_by(Seat.name)
    )
    return list(rows.scalars().all())


async def set_count(
    session: AsyncSession,
    admin: User,
    count: int,
    *,
    notifications: Notifications | None,
    wait: float = APPLY_WAIT_SECONDS,
) -> SeatsOut:
    """Grow or shrink to ``count`` seats. Answers once Asterisk has the new endpoints
    (``applied``), or as it is after ``wait`` seconds (the change is stored and will be
    applied; see ``error``)."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": RESIZE_LOCK})
    keep = {seat_name(i) for i in range(1, count + 1)}
    now_enabled = set(
        (await session.execute(select(Seat.name).where(Seat.enabled.is_(True)))).scalars()
    )
    removing = sorted(now_enabled - keep)
    if removing:
        busy = await _busy(session, removing)
        if busy:
            await session.rollback()
            shown = ", ".join(busy[:10]) + (" …" if len(busy) > 10 else "")
            raise Conflict(
                f"cannot shrink to {count} seats: {len(busy)} of the seats to remove have "
                f"an agent logged in or a call up ({shown}); log them out first"
            )
        await session.execute(update(Seat).where(Seat.name.in_(removing)).values(enabled=False))
    adding = sorted(keep - now_enabled)
    if adding:
        # Seats disabled by an earlier shrink come back with their passwords.
        await session.execute(update(Seat).where(Seat.name.in_(adding)).values(enabled=True))
        await add_missing(session, adding)
    audit(
        session,
        service="api",
        actor_user_id=admin.id,
        action="seat_count",
        entity="seats",
        entity_id=str(count),
        detail={"added": len(adding), "removed": len(removing)},
    )
    await session.execute(text("SELECT pg_notify(:c, '')"), {"c": SEAT_CONFIG_CHANNEL})
    await session.commit()

    async def read() -> SeatsOut:
        current = await state(session)
        await session.commit()  # hand the connection back to the pool while waiting
        return current

    return await wait_until(
        notifications, SEAT_CONFIG_APPLIED_CHANNEL, read, lambda s: s.applied, wait
    )


async def credentials(
    session: AsyncSession, settings: Settings, admin: User, name: str
) -> CredentialsOut:
    """The SIP user name and password an agent's softphone needs; every read is audited."""
    seat = await session.get(Seat, name)
    if seat is None or not seat.enabled:
        raise NotFound(f"no seat {name}")
    audit(
        session,
        service="api",
        actor_user_id=admin.id,
        action="seat_credentials_read",
        entity="seat",
        entity_id=name,
    )
    await session.commit()
    return CredentialsOut(
        seat=name,
        username=name,
        password=seat.sip_password,
        sip_server=settings.sip_host,
        sip_port=settings.sip_port,
    )
