"""What the agent desk does besides filing: wrap a call up, have a complaint number read to
the caller, and the agent's own figures for the shift.

Wrap-up is the agent's account of the call (``call_wrapups``, one per call, correctable); the
queue manager's ``calls.disposition`` (what happened on the line) is left as it is.

The read-back moves both legs of the live call with ONE AMI ``Redirect`` (``ExtraChannel``):
the caller to the ``readback`` context (FastAGI ``readback`` speaks the number twice and the
due date), the agent's leg to ``readback-agent``, where it waits. Why both: the queue's
basic bridge dissolves when one party leaves it (``bridge_channel_dissolve_check`` in Asterisk's
main/bridge.c), and the other party, a channel app_queue dialled, has no dialplan to go back
to, so it would be hung up: the caller could not come back to the same agent without a new ring
through the queue. Redirected together, the agent's leg stays up
and the caller's dialplan bridges back to it (``Bridge(${READBACK_PEER},x)``) or hangs both up,
as the agent chose. The channel variables the dialplan reads are set with ``Setvar`` first;
only values we checked (a 10-digit number, an enum, the peer Asterisk named) are sent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from api.schemas import ReadbackIn, ReadbackOut, ReadbackSessionOut, ShiftOut, WrapupIn, WrapupOut
from api.services.access import check_call_work
from api.services.errors import Conflict, NotFound
from core.db.audit import audit
from core.db.models import Call, CallWrapup, Complaint, ReadbackSession, User
from core.domain.clock import day_start
from core.domain.queues import WRAPUP_SECONDS, is_seat_channel

#: The dialplan contexts of the read-back (asterisk_config/templates/extensions.conf.j2).
READBACK_CONTEXT = "readback"
READBACK_AGENT_CONTEXT = "readback-agent"


async def _call(session: AsyncSession, uniqueid: str) -> Call:
    call = (
        await session.execute(select(Call).where(Call.uniqueid == uniqueid))
    ).scalar_one_or_none()
    if call is None:
        raise NotFound(f"no call {uniqueid}")
    return call


# ----------------------------------------------------------------------------- wrap-up


async def wrap_up(session: AsyncSession, user: User, uniqueid: str, body: WrapupIn) -> WrapupOut:
    """Store (or correct) the agent's wrap-up of the call; only its agent (or a supervisor)."""
    call = await _call(session, uniqueid)
    await check_call_work(session, user, call)
    values = {"call_id": call.id, "code": body.code, "note": body.note, "user_id": user.id}
    stmt = insert(CallWrapup).values(**values, at=func.now())
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["call_id"],
            set_={"code": body.code, "note": body.note, "user_id": user.id, "at": func.now()},
        )
    )
    audit(
        session,
        service="api",
        actor_user_id=user.id,
        action="call_wrapped_up",
        entity="call",
        entity_id=str(call.id),
        detail={"code": body.code.value},
    )
    await session.commit()
    stored = await session.get(CallWrapup, call.id, populate_existing=True)
    assert stored is not None
    return WrapupOut(
        call_uniqueid=call.uniqueid,
        code=stored.code,
        note=stored.note,
        by=user.username,
        at=stored.at,
        disposition=call.disposition,
    )


# ----------------------------------------------------------------------------- shift


async def shift(session: AsyncSession, user: User, now: datetime | None = None) -> ShiftOut:
    """The agent's calls answered, complaints filed, average handle time and wrap-ups since
    the helpline's day began (IST): one statement, whatever the number of calls."""
    since = day_start(now or datetime.now(UTC))
    mine = (Call.agent_user_id == user.id) & (Call.agent_connected_at >= since)
    row = (
        await session.execute(
            select(
                select(func.count()).where(mine).scalar_subquery().label("answered"),
                select(func.avg(Call.talk_seconds))
                .where(mine, Call.talk_seconds.is_not(None))
                .scalar_subquery()
                .label("talk"),
                select(func.count())
                .where(Complaint.created_by == user.id, Complaint.created_at >= since)
                .scalar_subquery()
                .label("filed"),
                select(func.count())
                .where(CallWrapup.user_id == user.id, CallWrapup.at >= since)
                .scalar_subquery()
                .label("wrapups"),
            )
        )
    ).one()
    return ShiftOut(
        since=since,
        calls_answered=row.answered,
        complaints_filed=row.filed,
        average_handle_seconds=None
        if row.talk is None
        else round(float(row.talk) + WRAPUP_SECONDS, 1),
        wrapups=row.wrapups,
    )


# ----------------------------------------------------------------------------- read-back


async def read_back(
    session: AsyncSession, ami: Any, user: User, uniqueid: str, body: ReadbackIn
) -> ReadbackOut:
    """Send the caller of ``uniqueid`` to hear complaint ``body.complaint`` read out.

    Refused: a call or complaint that does not exist (:class:`NotFound`), a call another agent
    handled (:class:`Forbidden`), a complaint not filed on this call, a call that ended or is
    not bridged to this call's seat, or Asterisk not reachable (:class:`Conflict`)."""
    call = await _call(session, uniqueid)
    await check_call_work(session, user, call)
    complaint_call = (
        await session.execute(select(Complaint.call_id).where(Complaint.number == body.complaint))
    ).one_or_none()
    if complaint_call is None:
        raise NotFound(f"no complaint {body.complaint}")
    if complaint_call.call_id != call.id:
        raise Conflict(f"complaint {body.complaint} was not filed on call {uniqueid}")
    if call.ended_at is not None or not call.channel:
        raise Conflict(f"call {uniqueid} has ended")
    if ami is None or not ami.connected.is_set():
        raise Conflict("Asterisk is not reachable now; read the number to the caller yourself")
    peer = await _agent_leg(ami, call)
    try:
        for name, value in (
            ("READBACK_COMPLAINT", body.complaint),
            ("READBACK_THEN", body.then.value),
            ("READBACK_PEER", peer),
        ):
            await ami.action("Setvar", Channel=call.channel, Variable=name, Value=value)
        await ami.action(
            "Redirect",
            Channel=call.channel,
            Context=READBACK_CONTEXT,
            Exten="s",
            Priority=1,
            ExtraChannel=peer,
            ExtraContext=READBACK_AGENT_CONTEXT,
            ExtraExten="s",
            ExtraPriority=1,
        )
    except Exception as error:  # AMIActionError (no such channel), AMIDisconnected, timeout
        raise Conflict(f"Asterisk refused the read-back: {error}") from error
    audit(
        session,
        service="api",
        actor_user_id=user.id,
        action="complaint_read_back",
        entity="call",
        entity_id=str(call.id),
        detail={"complaint": body.complaint, "then": body.then.value},
    )
    await session.commit()
    return ReadbackOut(
        call_uniqueid=call.uniqueid,
        complaint=body.complaint,
        then=body.then,
        caller_channel=call.channel,
        agent_channel=peer,
    )


async def _agent_leg(ami: Any, call: Call) -> str:
    """The caller's bridge partner, which must be a channel of the call's seat."""
    try:
        reply = await ami.action("Getvar", Channel=call.channel, Variable="BRIDGEPEER")
    except Exception as error:
        raise Conflict(f"call {call.uniqueid} is not up: {error}") from error
    peer = (reply.get("Value") or "").strip()
    if not call.agent_seat or not is_seat_channel(peer, call.agent_seat):
        raise Conflict(
            f"the caller of {call.uniqueid} is not connected to seat {call.agent_seat} now "
            f"(bridged to {peer or 'nobody'})"
        )
    return peer


async def readbacks(session: AsyncSession, user: User, uniqueid: str) -> list[ReadbackSessionOut]:
    """The read-backs of the call, oldest first (what the caller heard, digit by digit)."""
    call = await _call(session, uniqueid)
    await check_call_work(session, user, call)
    rows = (
        await session.execute(
            select(ReadbackSession)
            .where(ReadbackSession.uniqueid == uniqueid)
            .order_by(ReadbackSession.started_at)
        )
    ).scalars()
    return [ReadbackSessionOut.model_validate(row) for row in rows]
