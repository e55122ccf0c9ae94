"""Row look-ups that more than one service needs; no rules here, so services share these
instead of importing each other. Their statements are built once, with bind parameters: a
filing and most desk requests run them, and building one (with its cache key) per call costs
about as much CPU as running it."""

from __future__ import annotations

from sqlalchemy import and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import AgentSession, Call

_OPEN_AGENT_SESSION = select(AgentSession).where(
    AgentSession.user_id == bindparam("user_id"), AgentSession.logged_out_at.is_(None)
)
_CURRENT_CALL = (
    select(Call)
    .where(
        Call.agent_seat == bindparam("seat"),
        Call.agent_connected_at >= bindparam("since"),
    )
    .order_by(Call.agent_connected_at.desc())
    .limit(1)
)
#: :data:`_CURRENT_CALL` of the user's open login, in one statement.
_AGENTS_CURRENT_CALL = (
    select(Call)
    .join(
        AgentSession,
        and_(
            Call.agent_seat == AgentSession.seat,
            Call.agent_connected_at >= AgentSession.logged_in_at,
        ),
    )
    .where(AgentSession.user_id == bindparam("user_id"), AgentSession.logged_out_at.is_(None))
    .order_by(Call.agent_connected_at.desc())
    .limit(1)
)


async def open_agent_session(session: AsyncSession, user_id: int) -> AgentSession | None:
    """The agent's current seat login (at most one: a partial UNIQUE index says so)."""
    return (await session.execute(_OPEN_AGENT_SESSION, {"user_id": user_id})).scalar_one_or_none()


async def current_call(session: AsyncSession, agent_session: AgentSession) -> Call | None:
    """The latest call connected to the agent's seat during this login (up or just ended)."""
    return (
        await session.execute(
            _CURRENT_CALL, {"seat": agent_session.seat, "since": agent_session.logged_in_at}
        )
    ).scalar_one_or_none()


async def agents_current_call(session: AsyncSession, user_id: int) -> Call | None:
    """:func:`current_call` of the user's open login (:func:`open_agent_session`), in one
    round trip; None without a login or a call."""
    return (await session.execute(_AGENTS_CURRENT_CALL, {"user_id": user_id})).scalar_one_or_none()
