"""What the IVR reads and writes in PostgreSQL, behind one small interface.

The IVR *reads* complaints (writer: api), calls and seat state (writer: queue_manager), and
*writes* only its own tables: ``ivr_sessions`` (one row per call, upserted on the channel's
uniqueid), ``callback_requests`` (one per call; ``id`` is the request order) and, for the
``readback`` script, ``readback_sessions`` (one row per read-back). Every query has
a deadline (``Settings.ivr_db_timeout``): a slow database must cost the caller a few seconds and
a route to an agent, never silence.

:class:`IVRStore` is the interface the flow depends on; :class:`PostgresStore` is the real one.
Unit tests of the flow use an in-memory store with the same interface
(``tests/unit/test_ivr_flow.py``); ``tests/service/test_ivr_store.py`` runs this one.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol

from sqlalchemy import ColumnElement, bindparam, func, select, text
from sqlalchemy.dialects.postgresql import JSONB, Insert, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.models import Call, CallbackRequest, Complaint, IvrSession, ReadbackSession
from core.db.queries import INBOUND_TODAY_BESIDES, inbound_today_params
from core.db.session import execute_core
from core.domain.calls import CallbackReason, CallbackStatus, IvrOutcome
from core.domain.clock import days_between
from core.domain.complaints import SETTLED_STATES, ComplaintStatus
from core.domain.phone import CallerNumber

if TYPE_CHECKING:
    from agi_scripts.readback import ReadbackRecord

log = logging.getLogger(__name__)

#: At most this many of a caller's open complaints are read out (newest first).
MAX_OWN_COMPLAINTS: Final = 3
#: Calls waiting longer than this are stale rows (a missed hang-up), not a queue.
_STALE_WAIT: Final = timedelta(hours=2)
#: Window of answered calls whose hold time estimates the next caller's wait.
_RECENT_HOLD: Final = timedelta(minutes=15)
#: How long (wall seconds) one process reuses its read of the calls answered in that window:
#: a figure over 15 minutes does not move in 5 s, and read per queued call it was a scan of
#: every call that joined in the last 2 h 15 min (~25,000 rows at the peak hour) per call.
RECENT_ANSWERS_TTL_S: Final = 5.0


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
    #: The caller's place in line: when they joined the queue (``None``: now, they never did).
    place_at: datetime | None = None
    #: The queue they waited in or would have joined.
    queue: str | None = None


@dataclass(frozen=True, slots=True)
class WaitFigures:
    """Where a waiting caller stands, from the calls the queue manager records."""

    #: 1 + callers of the same queue still waiting who joined before this one (their place).
    position: int
    #: Where to re-enter app_queue: 1 + those of them in app_queue's list right now (the others
    #: are hearing their own announcement and re-enter ahead of us by the same rule).
    reentry: int
    #: This caller's place in line (first join), if the queue manager has recorded it.
    place_at: datetime | None
    #: Callers of this queue connected to an agent in the last ``window_s`` seconds.
    connected_recently: int
    window_s: int

    @property
    def estimated_wait_s(self) -> int | None:
        """Position over the measured answer rate (``None``: nobody was answered recently, so
        no honest figure exists)."""
        if self.connected_recently <= 0:
            return None
        return round(self.position * self.window_s / self.connected_recently)

    def as_detail(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "reentry": self.reentry,
            "place_at": self.place_at.isoformat() if self.place_at else None,
            "connected_recently": self.connected_recently,
            "window_s": self.window_s,
            "estimated_wait_s": self.estimated_wait_s,
        }


@dataclass(frozen=True, slots=True)
class RecentAnswers:
    """Calls connected to an agent in the last :data:`_RECENT_HOLD`, by queue: how many, and
    their hold (queue join to agent) in seconds all together."""

    by_queue: dict[str, tuple[int, float]]

    def connected(self, queue: str) -> int:
        return self.by_queue.get(queue, (0, 0.0))[0]

    def mean_hold_s(self) -> float:
        """Over every queue (0 when nobody was answered in the window)."""
        count = sum(n for n, _ in self.by_queue.values())
        return sum(hold for _, hold in self.by_queue.values()) / count if count else 0.0


@dataclass(slots=True)
class WaitingVisit:
    """One run of the waiting-room script, appended to the call's ``ivr_sessions`` row."""

    uniqueid: str
    caller_number: CallerNumber | None
    caller_number_raw: str | None
    lang: str
    at: datetime
    prompts: list[str] = field(default_factory=list)
    digits: str = ""
    #: ``IvrOutcome.CALLBACK`` when the caller chose a callback (else the row's is kept).
    outcome: IvrOutcome | None = None
    entry: dict[str, Any] = field(default_factory=dict)
    #: Keys merged into the row's detail (``callback_id``, ``callback_reason``).
    detail: dict[str, Any] = field(default_factory=dict)


class IVRStore(Protocol):
    """The IVR's view of the database. Every method may raise; the flow treats an error as
    "technical problem, to an agent"."""

    async def open_complaints(self, caller_number: CallerNumber) -> list[ComplaintInfo]: ...

    async def find_complaint(self, number: str) -> ComplaintInfo | None: ...

    async def queue_check(self, uniqueid: str) -> QueueCheck: ...

    async def add_callback(self, job: CallbackJob) -> int: ...

    async def save_session(self, record: SessionRecord) -> None: ...


class WaitingStore(Protocol):
    """The waiting room's view of the database (``agi_scripts.waiting``)."""

    async def wait_figures(
        self, uniqueid: str, queue: str, fallback_place: datetime | None
    ) -> WaitFigures: ...

    async def add_callback(self, job: CallbackJob) -> int: ...

    async def add_waiting_visit(self, visit: WaitingVisit) -> None: ...


def _info(
    number: str,
    status: ComplaintStatus,
    caller_number: CallerNumber | None,
    created_at: datetime,
    due_at: datetime | None,
    level: object | None,
) -> ComplaintInfo:
    """:data:`_INFO`'s columns of one row (``_info(*row)``)."""
    return ComplaintInfo(
        number, status, caller_number, created_at, due_at, None if level is None else str(level)
    )


def _log_failed_refresh(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning(
            "could not read the recent answers (the last read is kept): %r", task.exception()
        )


def _waiting(joined_after: datetime | ColumnElement[datetime]) -> ColumnElement[bool]:
    """Callers waiting in a queue now: ix_calls_waiting's predicate (so PostgreSQL reads only
    that index), less stale rows (a missed hang-up: joined before ``joined_after``, which is
    now less :data:`_STALE_WAIT`)."""
    return (
        Call.queue_joined_at.is_not(None)
        & Call.queue_left_at.is_(None)
        & Call.agent_connected_at.is_(None)
        & Call.ended_at.is_(None)
        & (Call.queue_joined_at > joined_after)
    )


# The IVR's statements for every call, built once with bind parameters: building one per call
# (its expressions and its cache key) cost more CPU than sending it.

_WAITING_NOW = _waiting(bindparam("joined_after", type_=Call.__table__.c.queue_joined_at.type))
#: The budget/wait check in one statement, however many callers are queueing at once or joined
#: today: the waiting callers through ix_calls_waiting (only those), the budget by primary key.
_QUEUE_CHECK = select(
    INBOUND_TODAY_BESIDES,
    select(func.count()).where(_WAITING_NOW).scalar_subquery(),
    select(func.min(Call.queue_joined_at)).where(_WAITING_NOW).scalar_subquery(),
)
#: What the IVR reads of a complaint (:class:`ComplaintInfo`).
_INFO = (
    Complaint.number,
    Complaint.status,
    Complaint.caller_number,
    Complaint.created_at,
    Complaint.due_at,
    Complaint.level,
)
#: A caller's open complaints, newest first.
_OPEN_COMPLAINTS = (
    select(*_INFO)
    .where(Complaint.caller_number == bindparam("caller_number"))
    .where(Complaint.status.not_in(list(SETTLED_STATES)))
    .order_by(Complaint.created_at.desc())
    .limit(MAX_OWN_COMPLAINTS)
)
_FIND_COMPLAINT = select(*_INFO).where(Complaint.number == bindparam("number"))


@functools.cache
def _upsert_sessions(columns: tuple[str, ...]) -> Insert:
    """The upsert of session rows with these keys, built once: a later save rewrites all but
    the uniqueid and the start, which are the first save's."""
    new = insert(IvrSession)
    return new.on_conflict_do_update(
        index_elements=["uniqueid"],
        set_={k: new.excluded[k] for k in columns if k not in ("uniqueid", "started_at")},
    )


class PostgresStore:
    """:class:`IVRStore` on PostgreSQL through ``core.db`` sessions."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        recent_answers_ttl_s: float = RECENT_ANSWERS_TTL_S,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        #: The helpline's "now" (a benchmark's compressed day passes its own).
        self.clock = clock
        self.recent_answers_ttl_s = recent_answers_ttl_s
        #: The last read of :class:`RecentAnswers` and when (``time.monotonic()``); the lock
        #: makes the callers that come before the first read wait for one read.
        self._recent: tuple[float, RecentAnswers] | None = None
        self._recent_lock = asyncio.Lock()
        self._recent_refresh: asyncio.Task[None] | None = None
        #: Session rows waiting for the writer (uniqueid -> values, callers waiting on them).
        self._session_writes: dict[str, tuple[dict[str, Any], list[asyncio.Future[None]]]] = {}
        self._session_writer: asyncio.Task[None] | None = None

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncConnection]:
        """A pooled connection for one read the caller waits on, outside a transaction
        (autocommit): no BEGIN and no ROLLBACK around it, two round trips fewer. Core, not an
        ORM session: a session's set-up and the ORM's execution path cost a read more CPU
        than its statement, and the reads need no objects."""
        bind = self.sessions.kw["bind"]
        async with bind.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            yield connection

    async def open_complaints(self, caller_number: CallerNumber) -> list[ComplaintInfo]:
        async with self._reading() as connection:
            rows = await connection.execute(_OPEN_COMPLAINTS, {"caller_number": caller_number})
            return [_info(*row) for row in rows]

    async def find_complaint(self, number: str) -> ComplaintInfo | None:
        async with self._reading() as connection:
            row = (await connection.execute(_FIND_COMPLAINT, {"number": number})).one_or_none()
        return None if row is None else _info(*row)

    async def queue_check(self, uniqueid: str) -> QueueCheck:
        """Today's inbound calls (IST, other than this one) against the budget, and the wait.

        The estimated wait is the longer of (a) how long the oldest caller now in the queue has
        waited and (b) the mean hold time of calls answered in the last 15 minutes: (a) is a
        lower bound of the wait right now, (b) is what app_queue itself announces. Both come
        from ``calls``, which the queue manager keeps from AMI, so the IVR needs no AMI user.
        """
        now = self.clock()
        params = {**inbound_today_params(now, uniqueid), "joined_after": now - _STALE_WAIT}
        async with self._reading() as connection:
            calls_today, waiting_count, oldest = (
                await connection.execute(_QUEUE_CHECK, params)
            ).one()
        recent_hold = (await self.recent_answers()).mean_hold_s()
        waiting = int(waiting_count or 0)
        oldest_wait = (now - oldest).total_seconds() if oldest is not None else 0.0
        estimate = max(oldest_wait, recent_hold)
        return QueueCheck(
            calls_today=max(0, int(calls_today or 0)),
            budget=self.settings.daily_inbound_budget,
            waiting=waiting,
            estimated_wait_s=round(estimate),
            max_wait_s=self.settings.ivr_max_wait_seconds,
        )

    async def add_callback(self, job: CallbackJob) -> int:
        """Store the request once per call and once per caller while one is pending: a retry,
        or a second request from the same number, returns the first request's id (whose place
        in line is the earlier one). The constraints decide, not a check in Python."""
        stmt = (
            insert(CallbackRequest)
            .values(
                uniqueid=job.uniqueid,
                caller_number=job.caller_number,
                lang=job.lang,
                reason=job.reason,
                ivr_path=job.ivr_path,
                place_at=job.place_at if job.place_at is not None else func.now(),
                queue=job.queue,
            )
            .on_conflict_do_nothing()
            .returning(CallbackRequest.id)
        )
        winner = (
            select(CallbackRequest.id)
            .where(
                (CallbackRequest.uniqueid == job.uniqueid)
                | (
                    (CallbackRequest.caller_number == job.caller_number)
                    & (CallbackRequest.status == CallbackStatus.PENDING)
                )
            )
            .order_by(CallbackRequest.id)
            .limit(1)
        )
        async with self.sessions() as session:
            new_id = await session.scalar(stmt)
            if new_id is None:
                new_id = await session.scalar(winner)
            await session.commit()
        if new_id is None:  # the conflicting request left ``pending`` meanwhile: ask again
            return await self.add_callback(job)
        return int(new_id)

    async def wait_figures(
        self, uniqueid: str, queue: str, fallback_place: datetime | None
    ) -> WaitFigures:
        """Position, re-entry position and the answer rate of ``queue`` (see :class:`WaitFigures`).

        The place is ``calls.queue_joined_at`` (the queue manager's record of the first join);
        ``fallback_place`` (the dialplan's clock at the first join) stands in while that row is
        not there yet."""
        now = self.clock()
        async with self.sessions() as session:
            mine = await session.scalar(
                select(Call.queue_joined_at).where(Call.uniqueid == uniqueid)
            )
            place = mine or fallback_place or now
            # The callers of this queue waiting now, through ix_calls_waiting (only they).
            waiting_ahead = (
                _waiting(now - _STALE_WAIT)
                & (Call.queue == queue)
                & (Call.uniqueid != uniqueid)
                & (Call.queue_joined_at < place)
            )
            in_list = Call.queue_entered_at.is_not(None) & (
                Call.queue_exited_at.is_(None) | (Call.queue_exited_at < Call.queue_entered_at)
            )
            ahead, ahead_in_list = (
                await session.execute(
                    select(func.count(), func.count().filter(in_list)).where(waiting_ahead)
                )
            ).one()
        connected = (await self.recent_answers()).connected(queue)
        return WaitFigures(
            position=int(ahead) + 1,
            reentry=int(ahead_in_list) + 1,
            place_at=mine,
            connected_recently=connected,
            window_s=int(_RECENT_HOLD.total_seconds()),
        )

    async def recent_answers(self) -> RecentAnswers:
        """The calls answered in the last :data:`_RECENT_HOLD` by queue, read by this process
        at most once per :attr:`recent_answers_ttl_s`. Once read, a caller never waits for it:
        a stale figure is returned while one task reads the next (a failed read keeps the old
        one, logged); only the first read is waited for (one read for every caller then)."""
        if self._recent is not None:
            read_at, recent = self._recent
            stale = time.monotonic() - read_at >= self.recent_answers_ttl_s
            if stale and (self._recent_refresh is None or self._recent_refresh.done()):
                self._recent_refresh = asyncio.create_task(self._read_recent_answers())
                self._recent_refresh.add_done_callback(_log_failed_refresh)
            return recent
        async with self._recent_lock:
            if self._recent is None:
                await self._read_recent_answers()
            assert self._recent is not None
            return self._recent[1]

    async def _read_recent_answers(self) -> None:
        now = self.clock()
        query = (
            select(
                Call.queue,
                func.count(),
                func.sum(func.extract("epoch", Call.agent_connected_at - Call.queue_joined_at)),
            )
            .where(
                Call.agent_connected_at > now - _RECENT_HOLD,
                # The same bound makes it a range scan of ix_calls_queue_joined_at (no index
                # on agent_connected_at): a hold over 2 h is a stale row.
                Call.queue_joined_at > now - (_STALE_WAIT + _RECENT_HOLD),
            )
            .group_by(Call.queue)
        )
        async with self._reading() as connection:
            rows = (await connection.execute(query)).all()
        recent = RecentAnswers(
            {str(queue): (int(n), float(hold or 0.0)) for queue, n, hold in rows if queue}
        )
        self._recent = (time.monotonic(), recent)

    async def add_waiting_visit(self, visit: WaitingVisit) -> None:
        """Append one waiting-room visit to the call's IVR session (made if the IVR left none,
        e.g. when the caller reached the queue by the dialplan's fallback)."""
        async with self.sessions() as session:
            await session.execute(
                _APPEND_VISIT,
                {
                    "uniqueid": visit.uniqueid,
                    "caller_number": (
                        None if visit.caller_number is None else str(visit.caller_number)
                    ),
                    "caller_number_raw": visit.caller_number_raw,
                    "lang": visit.lang,
                    "at": visit.at,
                    "prompts": visit.prompts,
                    "digits": visit.digits,
                    "outcome": (visit.outcome or IvrOutcome.QUEUED).value,
                    "callback": visit.outcome == IvrOutcome.CALLBACK,
                    "entry": [visit.entry],
                    "detail": visit.detail,
                },
            )
            await session.commit()

    async def save_session(self, record: SessionRecord) -> None:
        """Upsert on the uniqueid: the row written when the call arrives is completed at its end.

        Returns once the row is committed. The sessions of concurrent calls are written
        together: one multi-row upsert and one COMMIT per batch, by one writer, so a busy
        IVR holds one pooled connection for its writes (not one per call, each waiting for
        its own WAL flush) and the callers' reads always find one. Two writes of one call in
        a batch become its later one."""
        values: dict[str, Any] = {
            "uniqueid": record.uniqueid,
            "caller_number": record.caller_number,
            "caller_number_raw": record.caller_number_raw,
            "lang": record.lang,
            "started_at": record.started_at,
            "ended_at": record.ended_at,
            "duration_ms": record.duration_ms,
            "path": list(record.path),
            "digits": record.digits[-256:],
            "prompts": list(record.prompts),
            "outcome": record.outcome,
            "last_node": record.last_node,
            "detail": dict(record.detail),
        }
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiting = self._session_writes.get(record.uniqueid)
        self._session_writes[record.uniqueid] = (values, [*(waiting[1] if waiting else []), done])
        if self._session_writer is None or self._session_writer.done():
            self._session_writer = asyncio.create_task(self._write_sessions())
        await done

    async def _write_sessions(self) -> None:
        while self._session_writes:
            batch, self._session_writes = self._session_writes, {}
            rows = [values for values, _ in batch.values()]
            try:
                async with self.sessions() as session:
                    # Core's executemany of one cached statement (the ORM's bulk path, or a
                    # multi-row VALUES compiled per batch, cost more than the rows' writing).
                    await execute_core(session, _upsert_sessions(tuple(rows[0])), rows)
                    await session.commit()
            except Exception as exc:
                for _, waiters in batch.values():
                    for done in waiters:
                        if not done.done():
                            done.set_exception(exc)
            else:
                for _, waiters in batch.values():
                    for done in waiters:
                        if not done.done():
                            done.set_result(None)

    async def close_orphaned_sessions(self, now: datetime) -> list[str]:
        """Close the IVR sessions a dead FastAGI process left open (``outcome`` NULL): those
        whose call ended more than ``ivr_orphan_grace_seconds`` ago (the script's own save
        would have landed by then), and those older than the server's call deadline, after
        which no script runs. They become ``failed`` -- the dialplan sent those callers to the
        queue -- at the node they were last at, with ``detail.closed_by = "reconciliation"``.
        A script that saves later still wins (its upsert overwrites); a closed session is never
        touched. Returns the uniqueids closed."""
        grace = timedelta(seconds=self.settings.ivr_orphan_grace_seconds)
        deadline = timedelta(seconds=self.settings.agi_call_timeout) + grace
        async with self.sessions() as session:
            rows = await session.execute(
                _CLOSE_ORPHANS,
                {"now": now, "ended_before": now - grace, "started_before": now - deadline},
            )
            closed = [row.uniqueid for row in rows]
            await session.commit()
        return closed

    async def save_readback(self, record: ReadbackRecord) -> None:
        """Upsert on (uniqueid, started_at): the row written when the read-back starts is
        completed at its end."""
        values: dict[str, Any] = {
            "uniqueid": record.uniqueid,
            "complaint_number": record.complaint_number,
            "lang": record.lang,
            "then_action": record.then_action,
            "started_at": record.started_at,
            "ended_at": record.ended_at,
            "digits_spoken": record.digits_spoken[-64:],
            "prompts": record.prompts,
            "outcome": record.outcome,
        }
        stmt = insert(ReadbackSession).values(**values)
        stmt = stmt.on_conflict_do_update(
            constraint="uq_readback_sessions_key",
            set_={k: stmt.excluded[k] for k in values if k not in ("uniqueid", "started_at")},
        )
        async with self.sessions() as session:
            await session.execute(stmt)
            await session.commit()


#: One waiting-room visit appended to ``ivr_sessions``: prompts and keys appended, the visit
#: added to ``detail.waiting_room``; the outcome becomes ``callback`` only when one was chosen.
_APPEND_VISIT = text(
    """
    INSERT INTO ivr_sessions AS s
      (uniqueid, caller_number, caller_number_raw, lang, started_at, path, prompts, digits,
       outcome, last_node, detail)
    VALUES (:uniqueid, :caller_number, :caller_number_raw, :lang, :at, '[]'::jsonb,
            :prompts, :digits, :outcome, 'waiting_room',
            jsonb_build_object('waiting_room', :entry) || :detail)
    ON CONFLICT (uniqueid) DO UPDATE SET
      prompts = s.prompts || excluded.prompts,
      digits = right(s.digits || excluded.digits, 256),
      outcome = CASE WHEN :callback THEN excluded.outcome ELSE s.outcome END,
      last_node = CASE WHEN :callback THEN excluded.last_node ELSE s.last_node END,
      detail = s.detail
        || jsonb_build_object('waiting_room',
                              coalesce(s.detail -> 'waiting_room', '[]'::jsonb) || :entry)
        || :detail
    """
).bindparams(*(bindparam(name, type_=JSONB) for name in ("prompts", "entry", "detail")))


_CLOSE_ORPHANS = text(
    """
    WITH orphan AS (
        SELECT s.id, COALESCE(c.ended_at, :now) AS ended
          FROM ivr_sessions AS s
          LEFT JOIN calls AS c ON c.uniqueid = s.uniqueid
         WHERE s.outcome IS NULL
           AND (c.ended_at < :ended_before OR s.started_at < :started_before)
           FOR UPDATE OF s SKIP LOCKED
    )
    UPDATE ivr_sessions AS s
       SET outcome = 'failed',
           ended_at = o.ended,
           duration_ms = GREATEST(0, (EXTRACT(EPOCH FROM o.ended - s.started_at) * 1000)::int),
           last_node = COALESCE(s.last_node, s.path -> -1 ->> 'node'),
           detail = s.detail || '{"closed_by": "reconciliation"}'::jsonb
      FROM orphan AS o
     WHERE s.id = o.id AND s.outcome IS NULL
 RETURNING s.uniqueid
    """
)
