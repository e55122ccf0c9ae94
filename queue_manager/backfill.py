"""Back-fill the calls the queue manager did not see, from Asterisk's own record (CEL).

AMI never replays what a listener missed: a call that started or ended while the queue
manager (or its AMI link) was down was recorded wrong or not at all. Asterisk writes every
channel's events to ``asterisk_cel`` through ``cel_pgsql`` whatever we do, so after each
(re)connect and resync the queue manager turns the citizen channel's CEL rows of every call
that ended (``LINKEDID_END``) without a complete ``calls`` row into the AMI events the
recorder already understands, and applies them in order with their own times. One mapping of
events to a call record (:class:`queue_manager.recorder.CallRecorder`), two sources.

What CEL does not carry stays empty on a back-filled call: the IVR's channel variables
(``ivr_path``, ``ivr_lang``, ``ivr_done``; the ``ivr_sessions`` row written by the FastAGI
server has them) and MixMonitor's events (the recording's row). The agent of an answered call
is the seat bridged to the caller (``Local/agentNNNN@seat-phones``); the agent's user is the
one logged in at that seat when the back-fill runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import ColumnElement, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.models import AsteriskCel
from core.protocols.ami import AMIMessage
from queue_manager.recorder import CallRecorder

#: The caller's bridge peer when an agent answered: the queue member's Local channel (the
#: ``;1`` half app_queue bridged), or the seat's own PJSIP channel if Asterisk optimised the
#: Local pair away.
_AGENT_PEER: Final = re.compile(
    r"(?:Local/(?P<local>agent[0-9]+)@seat-phones-[0-9a-f]+;1|PJSIP/(?P<pjsip>agent[0-9]+)(?:-web)?-[0-9a-f]+)"
)

#: Calls that ended since ``:since`` whose first channel came in on the trunk and whose
#: ``calls`` row is missing or still open: the ones the queue manager did not see end.
_MISSED_CALLS: Final = text(
    """
    SELECT e.linkedid
      FROM asterisk_cel AS e
      JOIN asterisk_cel AS s
        ON s.linkedid = e.linkedid AND s.uniqueid = e.linkedid AND s.eventtype = 'CHAN_START'
     WHERE e.eventtype = 'LINKEDID_END'
       AND e.eventtime >= :since
       AND s.context = 'from-trunk'
       AND NOT EXISTS (
           SELECT 1 FROM calls AS c WHERE c.uniqueid = e.linkedid AND c.ended_at IS NOT NULL
       )
     ORDER BY e.eventtime
     LIMIT :limit
    """
)


@dataclass(frozen=True, slots=True)
class Backfilled:
    """What one back-fill pass did."""

    calls: int
    events: int

    def lines(self) -> list[str]:
        return [f"back-filled {self.calls} call(s) from Asterisk's CEL ({self.events} events)"]


def _stamp(at: datetime) -> str:
    return f"{at.replace(tzinfo=UTC).timestamp():.6f}"


def _hangup_cause(extra: str | None) -> str:
    try:
        cause = json.loads(extra or "{}").get("hangupcause")
    except (ValueError, AttributeError):
        return ""
    return str(cause) if isinstance(cause, int) else ""


def agent_seat(peer: str | None) -> str | None:
    """The seat an agent answered from, if ``peer`` (a BRIDGE_ENTER's) is an agent's channel."""
    for name in (peer or "").split(","):
        found = _AGENT_PEER.fullmatch(name.strip())
        if found:
            return found["local"] or found["pjsip"]
    return None


def _bridge_id(extra: str | None) -> str | None:
    try:
        found = json.loads(extra or "{}").get("bridge_id")
    except (ValueError, AttributeError):
        return None
    return found if isinstance(found, str) else None


def _agents_by_bridge(rows: Sequence[AsteriskCel]) -> dict[str, str]:
    """Bridge id -> the agent's seat among the channels that entered it (any order: the
    caller may enter before or after the agent's leg, so its own ``peer`` may be empty)."""
    seats: dict[str, str] = {}
    for row in rows:
        if row.eventtype == "BRIDGE_ENTER" and (bridge := _bridge_id(row.extra)):
            seat = agent_seat(row.channame) or agent_seat(row.peer)
            if seat and bridge not in seats:
                seats[bridge] = seat
    return seats


def events_from_cel(rows: Sequence[AsteriskCel]) -> list[AMIMessage]:
    """The AMI events a call's citizen channel would have sent, from the CEL rows of every
    channel of the call (in time order): Newchannel, Newstate Up, QueueCallerJoin per Queue()
    entry, AgentConnect/AgentComplete around its bridge with an agent's leg, Hangup."""
    agents = _agents_by_bridge(rows)
    events: list[AMIMessage] = []
    joined: datetime | None = None
    bridged: tuple[datetime, str, str] | None = None  # (entered, bridge id, seat)
    for row in rows:
        if row.uniqueid != row.linkedid:  # the agent's legs: only their bridges matter
            continue
        base = [
            ("Uniqueid", row.uniqueid or ""),
            ("Linkedid", row.linkedid or ""),
            ("Timestamp", _stamp(row.eventtime)),
        ]
        kind = row.eventtype
        bridge = _bridge_id(row.extra)
        if kind == "CHAN_START":
            fields = [
                ("Channel", row.channame or ""),
                ("CallerIDNum", row.cid_num or ""),
                ("CallerIDName", row.cid_name or ""),
                ("Context", row.context or ""),
                ("Exten", row.exten or ""),
            ]
            events.append(AMIMessage([("Event", "Newchannel"), *base, *fields]))
        elif kind == "ANSWER":
            events.append(AMIMessage([("Event", "Newstate"), *base, ("ChannelStateDesc", "Up")]))
        elif kind == "APP_START" and (row.appname or "").lower() == "queue":
            queue = (row.appdata or "").split(",")[0]
            joined = joined or row.eventtime
            events.append(AMIMessage([("Event", "QueueCallerJoin"), *base, ("Queue", queue)]))
        elif kind == "BRIDGE_ENTER" and bridged is None and bridge in agents:
            seat = agents[bridge]
            hold = int((row.eventtime - (joined or row.eventtime)).total_seconds())
            bridged = (row.eventtime, bridge, seat)
            interface = ("Interface", f"Local/{seat}@seat-phones")
            events.append(
                AMIMessage([("Event", "AgentConnect"), *base, interface, ("HoldTime", str(hold))])
            )
        elif kind == "BRIDGE_EXIT" and bridged is not None and bridge == bridged[1]:
            talk = int((row.eventtime - bridged[0]).total_seconds())
            interface = ("Interface", f"Local/{bridged[2]}@seat-phones")
            events.append(
                AMIMessage([("Event", "AgentComplete"), *base, interface, ("TalkTime", str(talk))])
            )
        elif kind == "HANGUP":
            cause = ("Cause", _hangup_cause(row.extra))
            events.append(AMIMessage([("Event", "Hangup"), *base, cause]))
    return events


async def missed_calls(session: AsyncSession, since: datetime, limit: int) -> list[str]:
    rows = await session.execute(
        _MISSED_CALLS, {"since": since.astimezone(UTC).replace(tzinfo=None), "limit": limit}
    )
    return [row.linkedid for row in rows]


async def backfill(
    session: AsyncSession, recorder: CallRecorder, since: datetime, *, limit: int = 5000
) -> Backfilled:
    """Apply the CEL-derived events of every call that ended since ``since`` without a complete
    record (at most ``limit`` calls a pass; the caller commits). Idempotent: the recorder's
    writes are (a first time wins), and a call once complete is not selected again."""
    linkedids = await missed_calls(session, since, limit)
    if not linkedids:
        return Backfilled(0, 0)
    calls, applied = await _replay(session, recorder, AsteriskCel.linkedid.in_(linkedids))
    return Backfilled(calls, applied)


async def catch_up_live(
    session: AsyncSession, recorder: CallRecorder, linkedids: Collection[str]
) -> int:
    """Apply what CEL has so far of calls still up (``linkedids``): the queue join and the
    agent's answer of a call that was live across a gap in our AMI link (Asterisk dropped a
    slow reader, the queue manager restarted) are in no AMI query, and without them the call
    would close as ``ivr_only`` though an agent took it. Idempotent (the recorder's writes
    are); the caller commits. Returns the events applied."""
    if not linkedids:
        return 0
    citizens = select(AsteriskCel.linkedid).where(
        AsteriskCel.eventtype == "CHAN_START",
        AsteriskCel.uniqueid == AsteriskCel.linkedid,
        AsteriskCel.context == "from-trunk",
        AsteriskCel.linkedid.in_(list(linkedids)),
    )
    # Its live Hangup may have closed the row before these facts landed: derive it again.
    _, applied = await _replay(session, recorder, AsteriskCel.linkedid.in_(citizens), refresh=True)
    return applied


async def _replay(
    session: AsyncSession,
    recorder: CallRecorder,
    calls: ColumnElement[bool],
    *,
    refresh: bool = False,
) -> tuple[int, int]:
    """Apply, call by call in time order, the CEL-derived events of the calls whose rows
    ``calls`` selects; (calls, events applied). ``refresh``: each closed call's disposition
    is derived again after its events (facts that landed after its hang-up)."""
    rows = (
        await session.execute(
            select(AsteriskCel)
            .where(calls)
            .order_by(AsteriskCel.linkedid, AsteriskCel.eventtime, AsteriskCel.id)
        )
    ).scalars()
    by_call: dict[str, list[AsteriskCel]] = {}
    for row in rows:
        by_call.setdefault(row.linkedid or "", []).append(row)
    applied = 0
    for linkedid, call_rows in by_call.items():
        for event in events_from_cel(call_rows):
            await recorder.apply(session, event)
            applied += 1
        if refresh:
            await recorder.refresh_disposition(session, linkedid)
    return len(by_call), applied


async def backfill_since(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, since: datetime
) -> Backfilled:
    """``helpline backfill --since T``: every missed call since ``since``, pass after pass of
    at most 5,000 calls, each committed."""
    recorder = CallRecorder(settings)
    calls = events = 0
    while True:
        async with sessions() as session:
            done = await backfill(session, recorder, since)
            await session.commit()
        calls, events = calls + done.calls, events + done.events
        if done.calls < 5000:
            return Backfilled(calls, events)
