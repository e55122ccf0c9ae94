"""The queue manager's in-memory picture of every seat, kept from AMI events (pure, no I/O).

The same picture is written to ``seat_status`` after each change (see ``service.py``). Rules
that make it idempotent under duplicated or reordered events:

* a member event (``QueueMemberStatus``/``Pause``/``Added``/``Removed``/``Penalty``) carries
  the whole member state; one older than the newest applied for that seat and queue is ignored;
* ``AgentConnect`` of a call whose ``AgentComplete`` was already seen changes nothing;
  ``AgentComplete`` clears the current call only if it is that call; the end of the last call
  (wrap-up starts there) only moves forward;
* the caller's ``Hangup`` ends a seat's current call too: app_queue publishes
  ``AgentConnect`` before it subscribes to the legs' hang-up requests (``try_calling`` →
  ``setup_stasis_subs``), so a caller who hangs up in between gets no ``AgentComplete`` and
  the seat showed that call for ever. Only the caller's channel: the seat's leg is a Local
  channel (``Local/agentNNNN@seat-phones``), which Asterisk may optimize away (hang up)
  while the agent talks on;
* a ``QueueStatus`` after a (re)connect replaces the membership wholesale: it is the truth now.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from core.domain.queues import seat_of_interface
from core.protocols.ami import AMIMessage
from queue_manager.seats import Member, member_from

MEMBER_EVENTS = frozenset(
    {
        "QueueMemberAdded",
        "QueueMemberRemoved",
        "QueueMemberStatus",
        "QueueMemberPause",
        "QueueMemberPenalty",
    }
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Completed calls remembered per seat, to ignore a late AgentConnect.
_COMPLETED_MEMORY = 64


@dataclass(slots=True)
class SeatLive:
    """One seat as app_queue last told us."""

    seat: str
    #: Queue → member state (and the event time it is from).
    members: dict[str, Member] = field(default_factory=dict)
    member_at: dict[str, datetime] = field(default_factory=dict)
    current_call: str | None = None
    last_call_ended_at: datetime | None = None
    completed: deque[str] = field(default_factory=lambda: deque(maxlen=_COMPLETED_MEMORY))

    @property
    def queues(self) -> list[str]:
        return sorted(self.members)

    @property
    def paused(self) -> bool:
        return any(m.paused for m in self.members.values())

    @property
    def pause_reason(self) -> str | None:
        for member in self.members.values():
            if member.paused and member.pause_reason:
                return member.pause_reason
        return None

    @property
    def device_status(self) -> int | None:
        """The device state app_queue reported last (the same device in every queue)."""
        newest = sorted(self.members, key=lambda q: self.member_at.get(q) or _EPOCH)
        return self.members[newest[-1]].status if newest else None

    @property
    def state_at(self) -> datetime | None:
        return max(self.member_at.values(), default=None)


class LiveSeats:
    """Every seat's :class:`SeatLive`; ``apply`` returns the seats it changed."""

    def __init__(self, queues: list[str]) -> None:
        self.queues = set(queues)
        self.seats: dict[str, SeatLive] = {}
        #: A caller's channel uniqueid → the seats whose current call it is (a caller queued
        #: again after an agent hung up may be some other seat's call as well).
        self._on_call: dict[str, set[str]] = {}
        #: Seats' calls the caller's Hangup ended before any AgentComplete did.
        self.ended_by_caller_hangup = 0

    def seat(self, name: str) -> SeatLive:
        found = self.seats.get(name)
        if found is None:
            found = self.seats[name] = SeatLive(name)
        return found

    def apply(self, event: AMIMessage, at: datetime) -> list[str]:
        name = event.name
        if name == "Hangup":
            return self._caller_gone(event, at)
        if name in MEMBER_EVENTS:
            seat = self._member(event, at)
        elif name in ("AgentConnect", "AgentComplete"):
            seat = self._call(event, at)
        else:
            return []
        return [] if seat is None else [seat]

    def _member(self, event: AMIMessage, at: datetime) -> str | None:
        member = member_from(event)
        if member is None or member.queue not in self.queues:
            return None
        live = self.seat(member.seat)
        seen = live.member_at.get(member.queue)
        if seen is not None and at < seen:
            return None  # an older snapshot than the one we have
        live.member_at[member.queue] = at
        if event.name == "QueueMemberRemoved":
            live.members.pop(member.queue, None)
        else:
            live.members[member.queue] = member
        return live.seat

    def _call(self, event: AMIMessage, at: datetime) -> str | None:
        seat = seat_of_interface(event.get("Interface"))
        uniqueid = event.get("Uniqueid")
        if seat is None or not uniqueid:
            return None
        live = self.seat(seat)
        if event.name == "AgentConnect":
            if uniqueid in live.completed:
                return None
            self._set_call(live, uniqueid)
        else:
            self._completed(live, uniqueid, at)
        return live.seat

    def _caller_gone(self, event: AMIMessage, at: datetime) -> list[str]:
        uniqueid = event.get("Uniqueid") or ""
        seats = sorted(self._on_call.get(uniqueid, ()))
        for seat in seats:
            self.ended_by_caller_hangup += 1
            self._completed(self.seat(seat), uniqueid, at)
        return seats

    def _set_call(self, live: SeatLive, uniqueid: str | None) -> None:
        """The seat's current call is now ``uniqueid`` (None: no call)."""
        if live.current_call is not None:
            seats = self._on_call.get(live.current_call, set())
            seats.discard(live.seat)
            if not seats:
                self._on_call.pop(live.current_call, None)
        live.current_call = uniqueid
        if uniqueid is not None:
            self._on_call.setdefault(uniqueid, set()).add(live.seat)

    def _completed(self, live: SeatLive, uniqueid: str, at: datetime) -> None:
        """The call ``uniqueid`` is over for this seat (AgentComplete, or the caller's Hangup)."""
        if uniqueid not in live.completed:
            live.completed.append(uniqueid)
        if live.current_call == uniqueid:
            self._set_call(live, None)
        if live.last_call_ended_at is None or at > live.last_call_ended_at:
            live.last_call_ended_at = at

    def replace_members(
        self,
        members: dict[str, dict[str, Member]],
        at: datetime,
        *,
        only: set[str] | None = None,
    ) -> set[str]:
        """``QueueStatus`` is the truth now (for every seat, or ``only`` these). Returns every
        seat touched."""
        touched = set(members) | {s for s, live in self.seats.items() if live.members}
        if only is not None:
            touched &= only
        for seat in touched:
            live = self.seat(seat)
            live.members = dict(members.get(seat, {}))
            live.member_at = dict.fromkeys(self.queues, at)
            if not any(m.in_call for m in live.members.values()):
                self._set_call(live, None)
        return touched
