"""Row look-ups that more than one service needs; no rules here, so services share these
instead of importing each other."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import AgentSession, Call


async def open_agent_session(session: AsyncSession, user_id: int) -> AgentSession | None:
    """The agent's current seat login (at most one: a partial UNIQUE index says so)."""
    return (
        await session.execute(
            select(AgentSession).where(
                AgentSession.user_id == user_id, AgentSession.logged_out_at.is_(None)
            )
        )
    ).scalar_one_or_none()


async def current_call(session: AsyncSession, agent_session: AgentSession) -> Call | None:
    """The latest call connected to the agent's seat during this login (up or just ended)."""
    return (
        await session.execute(
            select(Call)
            .where(
                Call.agent_seat == agent_session.seat,
                Call.agent_connected_at >= agent_session.logged_in_at,
            )
            .order_by(Call.agent_connected_at.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
