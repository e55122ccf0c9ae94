"""Agent intent (``agent_sessions``, written by the API) → app_queue membership over AMI.

The database is the truth; app_queue is made to match it after every AMI (re)connect and on
every ``agent_intent`` NOTIFY: membership of the main queue and of each skill queue (with the
penalty the agent's skills give, see :mod:`core.domain.queues`), and the pause with its reason.
Adding a member that is already there and removing one that is not are both successes, so
applying the same intent twice is harmless.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.models import AgentSession, User
from core.domain.queues import (
    PauseReason,
    all_queues,
    interface_of_seat,
    memberships,
    seat_of_interface,
    state_interface_of_seat,
)
from core.protocols.ami import AMIMessage
from core.transport.ami_client import AMIActionError, AMIClient

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Member:
    """One seat's membership of one queue, as ``QueueStatus`` reports it."""

    seat: str
    queue: str
    paused: bool
    pause_reason: str | None
    status: int | None
    penalty: int
    in_call: bool = False


@dataclass(frozen=True, slots=True)
class Intent:
    """What the agent at a seat wants: which queues (with penalties) and the pause."""

    seat: str
    session_id: int
    queues: dict[str, int] = field(default_factory=dict)
    paused: bool = False
    pause_reason: PauseReason | None = None


def seat_of_member(event: AMIMessage) -> str | None:
    return seat_of_interface(event.get("Location") or event.get("Interface"))


def _int(value: str | None, default: int | None = None) -> int | None:
    return int(value) if value and value.lstrip("-").isdigit() else default


def member_from(event: AMIMessage) -> Member | None:
    """A ``QueueMember`` (QueueStatus) or ``QueueMember*`` event as a :class:`Member`."""
    seat = seat_of_member(event)
    queue = event.get("Queue")
    if seat is None or not queue:
        return None
    return Member(
        seat=seat,
        queue=queue,
        paused=event.get("Paused") == "1",
        pause_reason=event.get("PausedReason") or None,
        status=_int(event.get("Status")),
        penalty=_int(event.get("Penalty"), 0) or 0,
        in_call=event.get("InCall") == "1",
    )


class SeatKeeper:
    def __init__(
        self, settings: Settings, ami: AMIClient, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        self.settings = settings
        self.ami = ami
        self.sessions = sessions
        self.queues = all_queues(settings.queue_name)

    async def status(self, seat: str | None = None) -> list[AMIMessage]:
        """``QueueStatus`` of every queue (members and waiting callers); with ``seat``, only
        that seat's members (app_queue's ``Member`` filter), so applying one agent's login
        costs the same with 5 or 500 agents logged in (not a list of every member, twice)."""
        if seat is None:
            return await self.ami.action_list("QueueStatus")
        return await self.ami.action_list("QueueStatus", {"Member": interface_of_seat(seat)})

    def members_from(self, events: list[AMIMessage]) -> dict[str, dict[str, Member]]:
        """Seat → queue → member, for our queues only."""
        found: dict[str, dict[str, Member]] = {}
        for event in events:
            if event.name != "QueueMember" or event.get("Queue") not in self.queues:
                continue
            member = member_from(event)
            if member is not None:
                found.setdefault(member.seat, {})[member.queue] = member
        return found

    async def members(self, seat: str | None = None) -> dict[str, dict[str, Member]]:
        return self.members_from(await self.status(seat))

    async def desired(self, seat: str | None = None) -> dict[str, Intent]:
        async with self.sessions() as session:
            query = (
                select(AgentSession, User.skills)
                .join(User, User.id == AgentSession.user_id)
                .where(AgentSession.logged_out_at.is_(None))
            )
            if seat is not None:
                query = query.where(AgentSession.seat == seat)
            rows = (await session.execute(query)).all()
        return {
            row.seat: Intent(
                seat=row.seat,
                session_id=row.id,
                queues=memberships(self.settings.queue_name, skills or [], row.penalty),
                paused=row.paused,
                pause_reason=row.pause_reason if row.paused else None,
            )
            for row, skills in rows
        }

    async def reconcile(
        self, only_seat: str | None = None
    ) -> tuple[dict[str, Intent], list[AMIMessage]]:
        """Make app_queue match the open agent sessions (all seats, or one). Returns the intents
        and a fresh ``QueueStatus`` (of that one seat's members, if one) for the caller to
        record."""
        members = await self.members(only_seat)
        desired = await self.desired(only_seat)
        seats = set(desired) | ({only_seat} if only_seat else set(members))
        for seat in sorted(seats):
            await self._apply(seat, desired.get(seat), members.get(seat, {}))
        return desired, await self.status(only_seat)

    async def _apply(self, seat: str, want: Intent | None, have: dict[str, Member]) -> None:
        for queue in self.queues:
            current = have.get(queue)
            if want is not None and queue in want.queues:
                penalty = want.queues[queue]
                if current is None:
                    await self._add(seat, queue, penalty, want)
                elif current.penalty != penalty:
                    await self.ami.action(
                        "QueuePenalty",
                        {
                            "Interface": interface_of_seat(seat),
                            "Penalty": str(penalty),
                            "Queue": queue,
                        },
                    )
            elif current is not None:
                await self._remove(seat, queue)
        if want is None:
            return
        stale = [
            m
            for m in have.values()
            if m.paused != want.paused or (want.paused and m.pause_reason != want.pause_reason)
        ]
        if stale:
            fields = {
                "Interface": interface_of_seat(seat),
                "Paused": "true" if want.paused else "false",
            }
            if want.pause_reason:
                fields["Reason"] = want.pause_reason
            await self.ami.action("QueuePause", fields)  # no Queue: every queue of the seat
            log.info("seat %s paused=%s (%s)", seat, want.paused, want.pause_reason)

    async def _add(self, seat: str, queue: str, penalty: int, want: Intent) -> None:
        fields = {
            "Queue": queue,
            "Interface": interface_of_seat(seat),
            "StateInterface": state_interface_of_seat(seat),
            "MemberName": seat,
            "Penalty": str(penalty),
            "Paused": "1" if want.paused else "0",
        }
        if want.paused and want.pause_reason:
            fields["Reason"] = want.pause_reason
        try:
            await self.ami.action("QueueAdd", fields)
        except AMIActionError as error:
            if "already there" in error.message.lower():
                return  # added meanwhile: the intent is already applied
            if "no such queue" in error.message.lower():
                # A config without this queue (not reloaded yet): the other queues still count.
                log.error("cannot add seat %s to %s: %s", seat, queue, error.message)
                return
            raise
        log.info("seat %s added to %s (penalty %d, paused %s)", seat, queue, penalty, want.paused)

    async def _remove(self, seat: str, queue: str) -> None:
        try:
            await self.ami.action(
                "QueueRemove", {"Queue": queue, "Interface": interface_of_seat(seat)}
            )
        except AMIActionError as error:
            if "not there" not in error.message.lower():
                raise
            return
        log.info("seat %s removed from %s", seat, queue)
