"""Agent intent (``agent_sessions``, written by the API) → app_queue membership over AMI.

The database is the truth; app_queue is made to match it after every AMI (re)connect and on
every ``agent_intent`` NOTIFY. Adding a member that is already there and removing one that is
not are both successes, so applying the same intent twice is harmless.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.models import AgentSession, SeatStatus
from core.transport.ami_client import AMIActionError, AMIClient

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Member:
    seat: str
    paused: bool
    pause_reason: str | None
    status: int | None


def interface(seat: str) -> str:
    return f"PJSIP/{seat}"


class SeatKeeper:
    def __init__(
        self, settings: Settings, ami: AMIClient, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        self.settings = settings
        self.ami = ami
        self.sessions = sessions

    async def members(self) -> dict[str, Member]:
        """app_queue's members of our queue, by seat, from ``QueueStatus``."""
        events = await self.ami.action_list("QueueStatus", {"Queue": self.settings.queue_name})
        found: dict[str, Member] = {}
        for event in events:
            if event.name != "QueueMember" or event.get("Queue") != self.settings.queue_name:
                continue
            location = event.get("Location") or event.get("Interface") or ""
            if not location.startswith("PJSIP/"):
                continue
            status = event.get("Status")
            found[location.removeprefix("PJSIP/")] = Member(
                seat=location.removeprefix("PJSIP/"),
                paused=event.get("Paused") == "1",
                pause_reason=event.get("PausedReason") or None,
                status=int(status) if status and status.isdigit() else None,
            )
        return found

    async def desired(self, seat: str | None = None) -> dict[str, AgentSession]:
        async with self.sessions() as session:
            query = select(AgentSession).where(AgentSession.logged_out_at.is_(None))
            if seat is not None:
                query = query.where(AgentSession.seat == seat)
            return {row.seat: row for row in (await session.execute(query)).scalars()}

    async def reconcile(self, only_seat: str | None = None) -> None:
        """Make app_queue's members equal the open agent sessions (all seats, or one)."""
        members = await self.members()
        desired = await self.desired(only_seat)
        seats = set(desired) | ({only_seat} if only_seat else set(members))
        for seat in sorted(seats):
            want = desired.get(seat)
            have = members.get(seat)
            if want is not None and have is None:
                await self._add(seat, want)
            elif want is None and have is not None:
                await self._remove(seat)
        members = await self.members()
        await self._record(seats, desired, members)

    async def _add(self, seat: str, agent_session: AgentSession) -> None:
        try:
            response = await self.ami.action(
                "QueueAdd",
                {
                    "Queue": self.settings.queue_name,
                    "Interface": interface(seat),
                    "StateInterface": interface(seat),
                    "MemberName": seat,
                    "Penalty": str(agent_session.penalty),
                    "Paused": "0",
                },
            )
        except AMIActionError as error:
            if "already there" not in error.message.lower():
                raise
            return  # added meanwhile: the intent is already applied
        log.info("seat %s added to %s: %s", seat, self.settings.queue_name, response.message)

    async def _remove(self, seat: str) -> None:
        try:
            response = await self.ami.action(
                "QueueRemove", {"Queue": self.settings.queue_name, "Interface": interface(seat)}
            )
        except AMIActionError as error:
            if "not there" not in error.message.lower():
                raise
            return
        log.info("seat %s removed from queue: %s", seat, response.message)

    async def _record(
        self, seats: set[str], desired: dict[str, AgentSession], members: dict[str, Member]
    ) -> None:
        if not seats:
            return
        rows = []
        for seat in seats:
            member = members.get(seat)
            rows.append(
                {
                    "seat": seat,
                    "in_queue": member is not None,
                    "paused": bool(member and member.paused),
                    "pause_reason": member.pause_reason if member else None,
                    "device_status": member.status if member else None,
                    "agent_session_id": desired[seat].id if seat in desired else None,
                }
            )
        statement = insert(SeatStatus).values(rows)
        statement = statement.on_conflict_do_update(
            index_elements=["seat"],
            set_={
                "in_queue": statement.excluded.in_queue,
                "paused": statement.excluded.paused,
                "pause_reason": statement.excluded.pause_reason,
                "device_status": statement.excluded.device_status,
                "agent_session_id": statement.excluded.agent_session_id,
                "updated_at": func.now(),
            },
        )
        async with self.sessions() as session:
            await session.execute(statement)
            await session.commit()
