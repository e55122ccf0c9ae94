"""AMI events → rows in ``calls`` and ``queue_events`` (seat state: ``live.py``).

Every write is idempotent (upserts, ``COALESCE`` on first-seen times, ``ON CONFLICT DO
NOTHING`` on events), so a duplicated or replayed event changes nothing and an event that
arrives before the call's ``Newchannel`` (we reconnected mid-call) still leaves a complete row.

The waiting room (agi_scripts/waiting.py) takes a caller out of app_queue's list for each
announcement and puts them back: ``queue_joined_at`` stays the first join (the place in line),
``queue_entered_at``/``queue_exited_at`` follow the list, and ``queue_left_at`` is when the
caller stopped waiting (connected, or hung up; a re-entry clears an exit that was not final).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ARRAY,
    BindParameter,
    Update,
    any_,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Executable

from core.config import Settings
from core.db.models import (
    AgentSession,
    Call,
    CallbackRequest,
    DialerAttempt,
    InboundBudget,
    QueueEvent,
    Recording,
)
from core.db.session import execute_core
from core.domain.calls import CallDisposition
from core.domain.clock import helpline_day
from core.domain.phone import parse_caller_id, raw_caller_id, safe_text
from core.domain.queues import seat_of_interface
from core.domain.recordings import recording_path, retain_until, wav_duration_seconds
from core.protocols.ami import AMIMessage as Event

log = logging.getLogger(__name__)

#: The outbound dialer's attempt ids (``outbound_dialer.store.ATTEMPT_PREFIX``): a channel
#: whose uniqueid starts with it is the dialer's call.
DIALER_PREFIX = "dialer-"

#: MixMonitor's events (the channel's snapshot, no file name: the file is named by the call's
#: uniqueid, core.domain.recordings.recording_path).
RECORDING_EVENTS = frozenset({"MixMonitorStart", "MixMonitorStop"})

#: Channel variables the dialplan / IVR set, as they reach us (ChanVariable or VarSet).
IVR_VARIABLES = ("IVR_DONE", "IVR_PATH", "IVR_LANG", "IVR_FALLBACK")

#: Column widths of ``calls`` for what the carrier sends (core.db.models).
CHANNEL_LENGTH = 128
CALLER_NAME_LENGTH = 200
DNIS_LENGTH = 32
#: Longest value kept in a queue event's payload.
PAYLOAD_VALUE_LENGTH = 1024

#: Bound of :attr:`CallRecorder._not_calls` (a few thousand live channels at the peak).
MAX_NOT_CALLS = 50_000

QUEUE_EVENTS = frozenset(
    {
        "QueueCallerJoin",
        "QueueCallerLeave",
        "QueueCallerAbandon",
        "AgentCalled",
        "AgentConnect",
        "AgentComplete",
        "AgentRingNoAnswer",
        "AgentDump",
    }
)


def event_time(event: Event) -> datetime:
    """The event's own time (``timestampevents=yes``), else now."""
    stamp = event.get("Timestamp")
    if stamp:
        try:
            return datetime.fromtimestamp(float(stamp), UTC)
        except ValueError:
            pass
    return datetime.now(UTC)


def ivr_variables(event: Event) -> dict[str, str]:
    """The IVR variables ``event`` sets. Asterisk appends every ``channelvars`` variable to
    every event about a channel, empty while unset, so an empty ``ChanVariable`` is no news
    (a column's default says the same): taken as one, each call's Newchannel and ringing
    Newstate were UPDATEs that changed nothing. A ``VarSet`` is an explicit set, empty or not."""
    found: dict[str, str] = {}
    for item in event.getall("ChanVariable"):
        name, _, value = item.partition("=")
        if value and name in IVR_VARIABLES:
            found[name] = value
    if event.name == "VarSet" and event.get("Variable") in IVR_VARIABLES:
        found[event.get("Variable") or ""] = event.get("Value") or ""
    return found


def _ivr_columns(event: Event) -> dict[str, Any]:
    """The ``calls`` columns the event's IVR variables set."""
    variables = ivr_variables(event)
    values: dict[str, Any] = {}
    if "IVR_DONE" in variables:
        values["ivr_done"] = variables["IVR_DONE"] == "1"
    if "IVR_FALLBACK" in variables:
        values["ivr_fallback"] = variables["IVR_FALLBACK"] == "1"
    if "IVR_PATH" in variables:
        values["ivr_path"] = variables["IVR_PATH"]
    if "IVR_LANG" in variables:
        values["ivr_lang"] = variables["IVR_LANG"]
    return values


def _seconds(event: Event, field: str) -> int | None:
    value = event.get(field)
    return int(value) if value and value.isdigit() else None


#: A callback request exists for the call: stored (and committed) by the IVR or the waiting
#: room before the caller heard the promise, so before the hang-up. Not an abandon: the
#: helpline owes a call.
_OWED_A_CALLBACK = Call.agent_connected_at.is_(None) & exists().where(
    CallbackRequest.uniqueid == Call.uniqueid
)
#: What the row says happened (:class:`CallDisposition`), computed by PostgreSQL from the row
#: as it stands before the statement that sets it.
_DISPOSITION = case(
    (Call.agent_connected_at.is_not(None), CallDisposition.ANSWERED.value),
    (_OWED_A_CALLBACK, CallDisposition.CALLBACK.value),
    (Call.queue_joined_at.is_not(None), CallDisposition.ABANDONED.value),
    (Call.ivr_done.is_(True), CallDisposition.IVR_ONLY.value),
    else_=CallDisposition.UNANSWERED.value,
)


_REFRESH_DISPOSITION = (
    update(Call)
    .where(Call.uniqueid == bindparam("call_uniqueid"), Call.ended_at.is_not(None))
    .values(
        disposition=_DISPOSITION,
        abandoned_at=case((_OWED_A_CALLBACK, None), else_=Call.abandoned_at),
    )
)

#: Events that change a call's own columns (a ``Newstate`` only when it is the answer).
_UPDATING_EVENTS = frozenset(
    {
        "QueueCallerJoin",
        "QueueCallerLeave",
        "QueueCallerAbandon",
        "AgentComplete",
        "AgentConnect",
        "Hangup",
    }
)


def _update_kind(event: Event) -> str | None:
    """Which of :func:`_call_update`'s statements ``event`` needs (None: only its IVR
    variables, if it carries any)."""
    name = event.name
    if name == "Newstate":
        return "answered" if event.get("ChannelStateDesc") == "Up" else None
    return name if name in _UPDATING_EVENTS else None


def _event_params(kind: str | None, event: Event) -> dict[str, Any]:
    """The values :func:`_call_update`'s statement of ``kind`` binds, besides the call and
    the event's time."""
    if kind == "QueueCallerJoin":
        return {"event_queue": event.get("Queue")}
    if kind == "AgentComplete":
        return {"talk": _seconds(event, "TalkTime")}
    if kind == "AgentConnect":
        return {
            "hold": _seconds(event, "HoldTime"),
            "seat": seat_of_interface(event.get("Interface")),
        }
    if kind == "Hangup":
        cause = event.get("Cause")
        return {"cause": int(cause) if cause and cause.isdigit() else None}
    return {}


@functools.cache
def _call_update(kind: str | None, ivr_columns: tuple[str, ...]) -> Update:
    """The UPDATE of a call's row for an event of ``kind`` that also sets ``ivr_columns``,
    built once with bind parameters: building it per event (and its cache key) was a fifth of
    the queue manager's CPU. Every first-seen time is a ``COALESCE``, so a duplicated or
    replayed event changes nothing."""
    at = bindparam("at", type_=Call.__table__.c.ended_at.type)
    values: dict[str, Any] = {
        column: bindparam(f"set_{column}", type_=Call.__table__.c[column].type)
        for column in ivr_columns
    }

    def first(*columns: str) -> None:
        for column in columns:
            values[column] = func.coalesce(getattr(Call, column), at)

    if kind == "answered":
        first("answered_at")
    elif kind == "QueueCallerJoin":
        # The first join is the caller's place in line; a later one is the waiting room
        # putting the caller back after an announcement: still waiting, not abandoned.
        first("queue_joined_at")
        values["queue"] = bindparam("event_queue", type_=Call.__table__.c.queue.type)
        values["queue_entered_at"] = func.greatest(Call.queue_entered_at, at)
        rejoined = Call.agent_connected_at.is_(None) & Call.ended_at.is_(None)
        values["queue_left_at"] = case((rejoined, None), else_=Call.queue_left_at)
        values["abandoned_at"] = case((rejoined, None), else_=Call.abandoned_at)
    elif kind == "QueueCallerLeave":
        # Leaving app_queue's list is not leaving the line: the waiting room announces and
        # re-enters. The caller stops waiting when connected, or at the hang-up.
        values["queue_exited_at"] = func.greatest(Call.queue_exited_at, at)
    elif kind == "QueueCallerAbandon":
        # Also sent when Queue()'s timeout ends a head caller's turn for an announcement;
        # the re-entry (QueueCallerJoin) clears both.
        first("queue_left_at", "abandoned_at")
        values["queue_exited_at"] = func.greatest(Call.queue_exited_at, at)
    elif kind == "AgentComplete":
        first("agent_completed_at")
        values["talk_seconds"] = func.coalesce(
            Call.talk_seconds, bindparam("talk", type_=Call.__table__.c.talk_seconds.type)
        )
    elif kind == "AgentConnect":
        first("agent_connected_at", "queue_left_at")
        values["hold_seconds"] = func.coalesce(
            Call.hold_seconds, bindparam("hold", type_=Call.__table__.c.hold_seconds.type)
        )
        # The first agent connected is the call's (as agent_connected_at): a duplicated or
        # replayed AgentConnect, or one applied after the agent logged out (a back-fill),
        # must not rewrite who answered.
        seat = bindparam("seat", type_=Call.__table__.c.agent_seat.type)
        values["agent_seat"] = func.coalesce(Call.agent_seat, seat)
        values["agent_user_id"] = func.coalesce(
            Call.agent_user_id,
            select(AgentSession.user_id)
            .where(AgentSession.seat == seat, AgentSession.logged_out_at.is_(None))
            .scalar_subquery(),
        )
    elif kind == "Hangup":
        # Never before the call began, whatever a clock did meanwhile (a resync's Hangup
        # is "now" by our clock; Asterisk's may have stepped back): no negative durations.
        values["ended_at"] = func.coalesce(Call.ended_at, func.greatest(Call.started_at, at))
        values["hangup_cause"] = bindparam("cause", type_=Call.__table__.c.hangup_cause.type)
        # A caller still in line when the call ended left it then.
        values["queue_left_at"] = case(
            (Call.queue_joined_at.is_not(None), func.coalesce(Call.queue_left_at, at)),
            else_=Call.queue_left_at,
        )
        # The disposition, once, in the same statement (it was three more round trips: the
        # row read back, the callback look-up, the ORM's UPDATE).
        values["disposition"] = func.coalesce(Call.disposition, _DISPOSITION)
        values["abandoned_at"] = case(
            (Call.disposition.is_(None) & _OWED_A_CALLBACK, None), else_=Call.abandoned_at
        )
    values["updated_at"] = func.now()
    statement = update(Call).where(Call.uniqueid == bindparam("call_uniqueid"))
    if kind is None:
        # Only the IVR's variables, which Asterisk repeats on every event about the channel
        # once they are set (AgentCalled, AgentRingNoAnswer, MixMonitorStart...): no new row
        # version (and its WAL) when the row already holds them.
        statement = statement.where(
            or_(*(getattr(Call, column).is_distinct_from(values[column]) for column in ivr_columns))
        )
    return statement.values(values)


def _typed(table: Any, *columns: str) -> dict[str, BindParameter[Any]]:
    """Bind parameters named and typed as ``table``'s columns."""
    return {column: bindparam(column, type_=table.c[column].type) for column in columns}


# The statements of the events of every call, built once with bind parameters, as
# :func:`_call_update`'s are: building them per event (their values, their cache key) cost more
# of the queue manager's CPU than executing them.


def _insert_call() -> Executable:
    """A citizen's call's row, once (the primary key decides), and the day's inbound count up
    in the same statement, once per row actually made: a replayed Newchannel makes no row and
    counts nothing."""
    columns = _typed(
        Call.__table__,
        "uniqueid",
        "linkedid",
        "channel",
        "caller_number_raw",
        "caller_number",
        "caller_name",
        "dnis",
        "started_at",
    )
    made = (
        insert(Call)
        .values(columns)
        .on_conflict_do_nothing(index_elements=["uniqueid"])
        .returning(Call.uniqueid)
        .cte("made")
    )
    day = bindparam("day", type_=InboundBudget.__table__.c.day.type)
    count = insert(InboundBudget).from_select(
        ["day", "used"], select(day, literal(1)).select_from(made)
    )
    return count.on_conflict_do_update(
        index_elements=["day"], set_={"used": InboundBudget.used + count.excluded.used}
    )


def _insert_dialer_call() -> Executable:
    """The dialer's call's row from its attempt (no attempt of that id, no row)."""
    given = _typed(Call.__table__, "linkedid", "channel", "started_at")
    source = select(
        DialerAttempt.id,
        given["linkedid"],
        given["channel"],
        DialerAttempt.number,
        DialerAttempt.number,
        given["started_at"],
        DialerAttempt.id,
    ).where(DialerAttempt.id == bindparam("attempt", type_=DialerAttempt.__table__.c.id.type))
    return (
        insert(Call)
        .from_select(
            [
                "uniqueid",
                "linkedid",
                "channel",
                "caller_number",
                "caller_number_raw",
                "started_at",
                "dialer_attempt_id",
            ],
            source,
        )
        .on_conflict_do_nothing(index_elements=["uniqueid"])
    )


def _insert_recording() -> Executable:
    """The recording's row of the call with that uniqueid, once (UNIQUE on the call)."""
    given = _typed(Recording.__table__, "path", "started_at")
    row = select(Call.id, given["path"], given["started_at"]).where(
        Call.uniqueid == bindparam("uniqueid", type_=Call.__table__.c.uniqueid.type)
    )
    return (
        insert(Recording)
        .from_select(["call_id", "path", "started_at"], row)
        .on_conflict_do_nothing(index_elements=["call_id"])
    )


_INSERT_CALL = _insert_call()
_INSERT_DIALER_CALL = _insert_dialer_call()
_INSERT_RECORDING = _insert_recording()
#: The calls' recordings still open (no ``ended_at``), locked, with when an agent answered.
_OPEN_RECORDINGS = (
    select(Recording, Call.uniqueid, Call.agent_connected_at)
    .join(Call, Call.id == Recording.call_id)
    .where(
        Call.uniqueid == any_(bindparam("uniqueids", type_=ARRAY(Call.__table__.c.uniqueid.type))),
        Recording.ended_at.is_(None),
    )
    .with_for_update(of=Recording)
)
_INSERT_QUEUE_EVENT = (
    insert(QueueEvent)
    .values(
        _typed(
            QueueEvent.__table__, "uniqueid", "event", "queue", "interface", "event_time", "payload"
        )
    )
    .on_conflict_do_nothing(constraint="uq_queue_events_key")
)


@dataclass(slots=True)
class _Unwritten:
    """What :meth:`CallRecorder.apply_batch` holds back to send together."""

    #: Each call's IVR variables, held until that call's next event and the batch's end.
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The queue events' rows, written at the end.
    queue_events: list[dict[str, Any]] = field(default_factory=list)
    #: The calls' writes held back, by (the call's how-manyth write in the batch, statement):
    #: each group is one executemany, the groups sent in that order (:meth:`send`).
    writes: dict[tuple[int, Executable], list[dict[str, Any]]] = field(default_factory=dict)
    #: How many writes each call has in :attr:`writes`.
    held: dict[str, int] = field(default_factory=dict)
    #: Calls whose recording ended (MixMonitorStop or Hangup), with the first such time:
    #: completed together after the writes (:meth:`CallRecorder._finish_recordings`).
    recordings_ended: dict[str, datetime] = field(default_factory=dict)

    def hold(self, uniqueid: str, statement: Executable, params: dict[str, Any]) -> None:
        turn = self.held.get(uniqueid, 0)
        self.held[uniqueid] = turn + 1
        self.writes.setdefault((turn, statement), []).append(params)

    async def send(self, session: AsyncSession) -> None:
        """Send the held writes: every call's first writes, then their second ones, and so
        on, each statement's rows of a turn as one executemany. A call's writes keep their
        order; the calls' rows are independent (no write here reads another call's row), so
        the order between calls does not matter. At the peak one batch holds ~20 calls'
        events: one round trip per event was most of the queue manager's statements."""
        for (_, statement), rows in sorted(self.writes.items(), key=lambda item: item[0][0]):
            await execute_core(session, statement, rows)
        self.writes.clear()
        self.held.clear()


async def _send(
    session: AsyncSession,
    unwritten: _Unwritten | None,
    uniqueid: str,
    statement: Executable,
    params: dict[str, Any],
) -> None:
    """A write of call ``uniqueid``'s: now (one event applied alone), or held in the batch."""
    if unwritten is None:
        await execute_core(session, statement, params)
    else:
        unwritten.hold(uniqueid, statement, params)


class CallRecorder:
    """Applies one AMI event at a time to PostgreSQL."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        #: Channels whose ``Newchannel`` showed they are no call of ours (a seat's leg, a Local
        #: channel): ``calls`` has no row of theirs, so their state changes and hang-up write
        #: nothing (three statements saved per seat leg's hang-up, one per answer). Forgotten
        #: at their hang-up; cleared if it ever holds :data:`MAX_NOT_CALLS` (hang-ups missed in
        #: an AMI gap), which only costs those statements again.
        self._not_calls: set[str] = set()

    def is_citizen_channel(self, event: Event) -> bool:
        """The first channel of a call that came in on the trunk context."""
        return event.get("Context") == "from-trunk" and (
            event.get("Linkedid") in (None, "", event.get("Uniqueid"))
        )

    @staticmethod
    def is_dialer_channel(event: Event) -> bool:
        """The channel of an outbound dialer attempt: its uniqueid is the attempt's id (the
        Originate's ChannelId); a Local channel's other half (``<id>;2``) is not it."""
        uniqueid = event.get("Uniqueid") or ""
        return uniqueid.startswith(DIALER_PREFIX) and ";" not in uniqueid

    async def apply_batch(self, session: AsyncSession, events: list[Event]) -> None:
        """:meth:`apply` each event in order, with one difference in what is sent, not in what
        is stored: the calls' writes are held and sent together at the end
        (:meth:`_Unwritten.send`: one executemany per statement and turn, each call's writes
        in their order), then the recordings that ended are completed in one look-up. A call's
        ``VarSet`` events (4-6 per call: the dialplan clears IVR_DONE and IVR_FALLBACK, the IVR
        sets IVR_PATH, IVR_LANG, IVR_DONE) become one UPDATE, held as that call's next write
        when another of its events comes, else at the end. The batch's queue events (4-5 per
        answered call) are one executemany after them: only inserted, never read here. What
        is held is this batch's alone (a resync applies events beside it, on its own)."""
        unwritten = _Unwritten()
        for event in events:
            await self.apply(session, event, unwritten)
        for uniqueid in list(unwritten.variables):
            _hold_variables(unwritten, uniqueid)
        await unwritten.send(session)
        if unwritten.recordings_ended:
            await self._finish_recordings(session, unwritten.recordings_ended)
        if unwritten.queue_events:
            await execute_core(session, _INSERT_QUEUE_EVENT, unwritten.queue_events)

    async def apply(
        self, session: AsyncSession, event: Event, unwritten: _Unwritten | None = None
    ) -> None:
        """Apply one event; ``unwritten`` (from :meth:`apply_batch`) holds its writes, gathers
        ``VarSet`` columns per call and queue events, instead of sending them now."""
        name = event.name
        uniqueid = event.get("Uniqueid")
        if not name or not uniqueid:
            return
        if unwritten is not None:
            variables = unwritten.variables
            if name == "VarSet" and uniqueid not in self._not_calls:
                variables.setdefault(uniqueid, {}).update(_ivr_columns(event))
                return
            _hold_variables(unwritten, uniqueid)
        at = event_time(event)
        if name in ("Newchannel", "Hangup", "CoreShowChannel"):
            # The dialer's first: its channel to a citizen is created on the trunk endpoint,
            # so it too is in the from-trunk context (seen on Asterisk 22), with our caller ID.
            if self.is_dialer_channel(event):
                self._not_calls.discard(uniqueid)
                await self._insert_dialer_call(session, event, at, unwritten)
            elif self.is_citizen_channel(event):
                self._not_calls.discard(uniqueid)
                await self._insert_call(session, event, at, unwritten)
            elif name == "Newchannel":
                if len(self._not_calls) >= MAX_NOT_CALLS:
                    self._not_calls.clear()
                self._not_calls.add(uniqueid)
        if uniqueid in self._not_calls:
            if name == "Hangup":
                self._not_calls.discard(uniqueid)
            if name in QUEUE_EVENTS:
                await self._queue_event(session, event, at, unwritten)
            return
        kind = _update_kind(event)
        ivr = _ivr_columns(event)
        if kind is not None or ivr:
            params = _event_params(kind, event)
            params.update({f"set_{column}": value for column, value in ivr.items()})
            await _send(
                session,
                unwritten,
                uniqueid,
                _call_update(kind, tuple(sorted(ivr))),
                {"call_uniqueid": uniqueid, "at": at, **params},
            )
        if name == "MixMonitorStart":
            await self._start_recording(session, uniqueid, at, unwritten)
        elif name in ("MixMonitorStop", "Hangup"):
            # The dialplan's hang-up handler stops MixMonitor (the file is closed) before the
            # Hangup: the row is completed on the first of the two, once.
            if unwritten is None:
                await self._finish_recordings(session, {uniqueid: at})
            else:
                unwritten.recordings_ended.setdefault(uniqueid, at)
        if name in QUEUE_EVENTS:
            await self._queue_event(session, event, at, unwritten)

    async def _insert_call(
        self, session: AsyncSession, event: Event, at: datetime, unwritten: _Unwritten | None
    ) -> None:
        # The one place an AMI event's caller ID is read. What the carrier sends (caller ID,
        # name, dialled number) may be any length and any bytes: bounded and made safe, so
        # it can never cost the call its row.
        uniqueid = event.get("Uniqueid") or ""
        raw = event.get("CallerIDNum")
        name = event.get("CallerIDName")
        await _send(
            session,
            unwritten,
            uniqueid,
            _INSERT_CALL,
            {
                "uniqueid": uniqueid,
                "linkedid": event.get("Linkedid") or uniqueid,
                "channel": safe_text(event.get("Channel"), CHANNEL_LENGTH),
                "caller_number_raw": raw_caller_id(raw),
                "caller_number": parse_caller_id(raw),
                "caller_name": (
                    None if name == "<unknown>" else safe_text(name, CALLER_NAME_LENGTH)
                ),
                "dnis": safe_text(event.get("Exten"), DNIS_LENGTH),
                "started_at": at,
                "day": helpline_day(at),
            },
        )

    async def _insert_dialer_call(
        self, session: AsyncSession, event: Event, at: datetime, unwritten: _Unwritten | None
    ) -> None:
        """A row for the dialer's call too, so a callback that reaches the queue (and a
        click-to-call) has what the screen-pop reads. The citizen's number is the attempt's
        (the channel's caller ID is the helpline's, or the citizen's shown to the seat); no
        attempt of that id, no row."""
        uniqueid = event.get("Uniqueid") or ""
        await _send(
            session,
            unwritten,
            uniqueid,
            _INSERT_DIALER_CALL,
            {
                "attempt": uniqueid,
                "linkedid": event.get("Linkedid") or uniqueid,
                "channel": safe_text(event.get("Channel"), CHANNEL_LENGTH),
                "started_at": at,
            },
        )

    async def refresh_disposition(self, session: AsyncSession, uniqueid: str) -> None:
        """Derive a closed call's disposition again after facts arrived late: a catch-up from
        CEL (the queue join, the agent's answer missed in an AMI gap) can land after the live
        Hangup closed the row as ``ivr_only``. Facts only accumulate, so this only moves the
        disposition towards "answered"; an open row is left to its hang-up."""
        await execute_core(session, _REFRESH_DISPOSITION, {"call_uniqueid": uniqueid})

    async def _queue_event(
        self, session: AsyncSession, event: Event, at: datetime, unwritten: _Unwritten | None
    ) -> None:
        # Values as safe text: a NUL in a carrier's caller ID would make JSONB refuse the row.
        payload: Mapping[str, str] = {
            k: safe_text(v, PAYLOAD_VALUE_LENGTH) or "" for k, v in event if k != "ChanVariable"
        }
        row = {
            "uniqueid": event.get("Uniqueid"),
            "event": event.name,
            "queue": event.get("Queue"),
            "interface": event.get("Interface") or "",
            "event_time": at,
            "payload": dict(payload),
        }
        if unwritten is None:
            await execute_core(session, _INSERT_QUEUE_EVENT, row)
        else:
            unwritten.queue_events.append(row)

    # ------------------------------------------------------------------ recordings

    async def _start_recording(
        self, session: AsyncSession, uniqueid: str, at: datetime, unwritten: _Unwritten | None
    ) -> None:
        """The call's recording row, once (UNIQUE on the call): only for a citizen's call we
        have a row of, whose uniqueid names a file."""
        path = recording_path(uniqueid)
        if path is None:
            return
        await _send(
            session,
            unwritten,
            uniqueid,
            _INSERT_RECORDING,
            {"uniqueid": uniqueid, "path": path, "started_at": at},
        )

    async def _finish_recordings(self, session: AsyncSession, ended: dict[str, datetime]) -> None:
        """Complete the calls' recording rows from their closed files (``ended``: each call's
        end), exactly once (only rows with no ``ended_at``, locked): one look-up for all of a
        batch's calls. A call never bridged to an agent left only a header (MixMonitor's
        ``b``): that file and its row go."""
        found = await session.execute(_OPEN_RECORDINGS, {"uniqueids": list(ended)})
        for recording, uniqueid, connected_at in found.all():
            at = ended[uniqueid]
            file = Path(self.settings.recordings_dir) / recording.path
            if connected_at is None:
                log.info("call %s was not answered by an agent: no recording kept", uniqueid)
                await asyncio.to_thread(file.unlink, missing_ok=True)
                await session.execute(delete(Recording).where(Recording.id == recording.id))
                continue
            size = await asyncio.to_thread(_size_of, file)
            recording.ended_at = at
            if size is None:
                log.error("recording of call %s: no file %s when the call ended", uniqueid, file)
                recording.deleted_at = at
                recording.deleted_reason = "no file when the call ended"
                continue
            recording.bytes = size
            recording.duration_seconds = wav_duration_seconds(size)
            recording.retain_until = retain_until(at, self.settings.recording_retention_days)
            log.info("recording of call %s: %s, %d bytes", uniqueid, recording.path, size)


def _hold_variables(unwritten: _Unwritten, uniqueid: str) -> None:
    """Hold (and forget) the call's gathered IVR variables, if any, as its next write."""
    values = unwritten.variables.pop(uniqueid, None)
    if values:
        params = {f"set_{column}": value for column, value in values.items()}
        unwritten.hold(
            uniqueid,
            _call_update(None, tuple(sorted(values))),
            {"call_uniqueid": uniqueid, **params},
        )


def _size_of(file: Path) -> int | None:
    try:
        return file.stat().st_size
    except FileNotFoundError:
        return None
