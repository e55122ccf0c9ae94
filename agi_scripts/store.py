"""What the IVR reads and writes in PostgreSQL, behind one small interface.

The IVR *reads* complaints (writer: api), calls and seat state (writer: queue_manager), and
*writes* only its own tables: ``ivr_sessions`` (one row per call, upserted on the channel's
uniqueid) and ``callback_requests`` (one per call; ``id`` is the request order). Every query has
a deadline (``Settings.ivr_db_timeout``): a slow database must cost the caller a few seconds and
a route to an agent, never silence.

:class:`IVRStore` is the interface the flow depends on; :class:`PostgresStore` is the real one.
Unit tests of the flow use an in-memory store with the same interface
(``tests/unit/test_ivr_flow.py``); ``tests/service/test_ivr_store.py`` runs this one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.models import Call, CallbackRequest, Complaint, IvrSession
from core.db.queries import inbound_calls_today
from core.domain.calls import CallbackReason, IvrOutcome
from core.domain.clock import days_between
from core.domain.complaints import SETTLED_STATES, ComplaintStatus
from core.domain.phone import CallerNumber

log = logging.getLogger(__name__)

#: At most this many of a caller's open complaints are read out (newest first).
MAX_OWN_COMPLAINTS: Final = 3
#: Calls waiting longer than this are stale rows (a missed hang-up), not a queue.
_STALE_WAIT: Final = timedelta(hours=2)
#: Window of answered calls whose hold time estimates the next caller's wait.
_RECENT_HOLD: Final = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class ComplaintInfo:
    """What the IVR may say about a complaint (only after the caller is verified)."""

    number: str
    status: ComplaintStatus
    caller_number: CallerNumber | None
    created_at: datetime
    due_at: datetime | None = None
    #: The level of the officer holding it (a ``Level`` value), for the follow-up call.
    level: str | None = None

    @property
    def resolved(self) -> bool:
        """Resolved (or closed after it): the caller is asked for feedback, not read a status."""
        return self.status in (ComplaintStatus.RESOLVED, ComplaintStatus.CLOSED)

    def days_open(self, now: datetime | None = None) -> int:
        """Calendar days since it was registered, in IST (0 = today)."""
        return max(0, days_between(self.created_at, now))

    def days_to_due(self, now: datetime | None = None) -> int | None:
        """Calendar days until the due date in IST; negative when overdue."""
        if self.due_at is None:
            return None
        return -days_between(self.due_at, now)


@dataclass(frozen=True, slots=True)
class QueueCheck:
    """The figures behind "queue or offer a callback", recorded in the IVR session."""

    calls_today: int
    budget: int
    waiting: int
    estimated_wait_s: int
    max_wait_s: int

    @property
    def budget_spent(self) -> bool:
        return self.calls_today >= self.budget

    @property
    def wait_too_long(self) -> bool:
        return self.estimated_wait_s > self.max_wait_s

    @property
    def busy_reason(self) -> CallbackReason | None:
        """``budget`` or ``wait`` when a callback should be offered, else ``None``."""
        if self.budget_spent:
            return CallbackReason.BUDGET
        if self.wait_too_long:
            return CallbackReason.WAIT
        return None

    def as_detail(self) -> dict[str, int]:
        return {
            "calls_today": self.calls_today,
            "budget": self.budget,
            "waiting": self.waiting,
            "estimated_wait_s": self.estimated_wait_s,
            "max_wait_s": self.max_wait_s,
        }


@dataclass(slots=True)
class SessionRecord:
    """One IVR session as stored in ``ivr_sessions`` (see the model for the fields)."""

    uniqueid: str
    caller_number: CallerNumber | None
    #: Bounded and safe (core.domain.phone.raw_caller_id), whatever the carrier sent.
    caller_number_raw: str | None
    lang: str
    started_at: datetime
    path: list[dict[str, Any]] = field(default_factory=list)
    digits: str = ""
    prompts: list[str] = field(default_factory=list)
    outcome: IvrOutcome | None = None
    last_node: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    ended_at: datetime | None = None
    duration_ms: int | None = None


@dataclass(frozen=True, slots=True)
class CallbackJob:
    uniqueid: str
    caller_number: CallerNumber
    lang: str
    #: A :class:`CallbackReason` value (checked when written).
    reason: str
    ivr_path: str


class IVRStore(Protocol):
    """The IVR's view of the database. Every method may raise; the flow treats an error as
    "technical problem, to an agent"."""

    async def open_complaints(self, caller_number: CallerNumber) -> list[ComplaintInfo]: ...

    async def find_complaint(self, number: str) -> ComplaintInfo | None: ...

    async def queue_check(self, uniqueid: str) -> QueueCheck: ...

    async def add_callback(self, job: CallbackJob) -> int: ...

    async def save_session(self, record: SessionRecord) -> None: ...


def _info(row: Complaint) -> ComplaintInfo:
    return ComplaintInfo(
        row.number,
        row.status,
        row.caller_number,
        row.created_at,
        row.due_at,
        str(row.level) if row.level is not None else None,
    )


class PostgresStore:
    """:class:`IVRStore` on PostgreSQL through ``core.db`` sessions."""

    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.settings = settings
        self.sessions = sessions

    async def open_complaints(self, caller_number: CallerNumber) -> list[ComplaintInfo]:
        query = (
            select(Complaint)
            .where(Complaint.caller_number == caller_number)
            .where(Complaint.status.not_in(list(SETTLED_STATES)))
            .order_by(Complaint.created_at.desc())
            .limit(MAX_OWN_COMPLAINTS)
        )
        async with self.sessions() as session:
            rows = (await session.execute(query)).scalars().all()
        return [_info(row) for row in rows]

    async def find_complaint(self, number: str) -> ComplaintInfo | None:
        async with self.sessions() as session:
            row = (
                await session.execute(select(Complaint).where(Complaint.number == number))
            ).scalar_one_or_none()
        return None if row is None else _info(row)

    async def queue_check(self, uniqueid: str) -> QueueCheck:
        """Today's inbound calls (IST, other than this one) against the budget, and the wait.

        The estimated wait is the longer of (a) how long the oldest caller now in the queue has
        waited and (b) the mean hold time of calls answered in the last 15 minutes: (a) is a
        lower bound of the wait right now, (b) is what app_queue itself announces. Both come
        from ``calls``, which the queue manager keeps from AMI, so the IVR needs no AMI user.
        """
        now = datetime.now(UTC)
        in_queue = (
            Call.queue_joined_at.is_not(None)
            & Call.queue_left_at.is_(None)
            & Call.agent_connected_at.is_(None)
            & Call.ended_at.is_(None)
            & (Call.queue_joined_at > now - _STALE_WAIT)
        )
        async with self.sessions() as session:
            calls_today = await inbound_calls_today(session, now, besides=uniqueid)
            waiting_row = (
                await session.execute(
                    select(func.count(), func.min(Call.queue_joined_at)).where(in_queue)
                )
            ).one()
            recent_hold = await session.scalar(
                select(
                    func.avg(func.extract("epoch", Call.agent_connected_at - Call.queue_joined_at))
                ).where(
                    Call.agent_connected_at > now - _RECENT_HOLD,
                    Call.queue_joined_at.is_not(None),
                )
            )
        waiting, oldest = int(waiting_row[0]), waiting_row[1]
        oldest_wait = (now - oldest).total_seconds() if oldest is not None else 0.0
        estimate = max(oldest_wait, float(recent_hold or 0.0))
        return QueueCheck(
            calls_today=calls_today,
            budget=self.settings.daily_inbound_budget,
            waiting=waiting,
            estimated_wait_s=round(estimate),
            max_wait_s=self.settings.ivr_max_wait_seconds,
        )

    async def add_callback(self, job: CallbackJob) -> int:
        """Store the request once per call (a retry returns the first request's id)."""
        stmt = (
            insert(CallbackRequest)
            .values(
                uniqueid=job.uniqueid,
                caller_number=job.caller_number,
                lang=job.lang,
                reason=job.reason,
                ivr_path=job.ivr_path,
            )
            .on_conflict_do_nothing(index_elements=["uniqueid"])
            .returning(CallbackRequest.id)
        )
        async with self.sessions() as session:
            new_id = await session.scalar(stmt)
            if new_id is None:
                new_id = await session.scalar(
                    select(CallbackRequest.id).where(CallbackRequest.uniqueid == job.uniqueid)
                )
            await session.commit()
        assert new_id is not None
        return int(new_id)

    async def save_session(self, record: SessionRecord) -> None:
        """Upsert on the uniqueid: the row written when the call arrives is completed at its end."""
        values: dict[str, Any] = {
            "uniqueid": record.uniqueid,
            "caller_number": record.caller_number,
            "caller_number_raw": record.caller_number_raw,
            "lang": record.lang,
            "started_at": record.started_at,
            "ended_at": record.ended_at,
            "duration_ms": record.duration_ms,
            "path": record.path,
            "digits": record.digits[-256:],
            "prompts": record.prompts,
            "outcome": record.outcome,
            "last_node": record.last_node,
            "detail": record.detail,
        }
        stmt = insert(IvrSession).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["uniqueid"],
            set_={k: stmt.excluded[k] for k in values if k not in ("uniqueid", "started_at")},
        )
        async with self.sessions() as session:
            await session.execute(stmt)
            await session.commit()
