"""Supervisors' live numbers and agents' screen-pops, computed from PostgreSQL.

The queue manager is the one writer of calls and seat status; the API only reads them. Woken
by the queue manager's ``queue_stats`` and ``agent_connect`` NOTIFYs (the process's one LISTEN,
:class:`api.services.notify.Notifications`), :class:`LiveHub` pushes to the
WebSocket subscribers of :class:`LiveHub` within a fraction of a second of the AMI event, plus a
refresh every :data:`TICK_SECONDS` (waiting times grow without any event).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pydantic import BaseModel
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.policy import MASKED_ROLES, mask_caller_number
from api.services.lookups import open_agent_session
from api.services.notify import Notifications
from core.config import Settings
from core.db.channels import AGENT_CONNECT_CHANNEL, STATS_CHANNEL, USER_ACCESS_CHANNEL
from core.db.models import (
    AgentSession,
    Call,
    CallbackRequest,
    Complaint,
    DialerAttempt,
    DialerJob,
    SeatStatus,
    User,
)
from core.db.queries import CampaignDay, inbound_calls_today, outbound_today
from core.domain.calls import CallbackStatus
from core.domain.clock import day_start
from core.domain.dialing import Pacing, Window
from core.domain.erlang import agents_needed
from core.domain.queues import (
    PAUSE_REASONS,
    SERVICE_LEVEL_SECONDS,
    WRAPUP_SECONDS,
    all_queues,
)
from core.reference import Reference

log = logging.getLogger(__name__)

TICK_SECONDS = 2.0
#: AST_DEVICE_* numbers app_queue reports as a member's Status.
DEVICE_ON_CALL = frozenset({2, 3, 7, 8})  # in use, busy, ringing while in use, on hold
DEVICE_UNREACHABLE = frozenset({4, 5})  # invalid, unavailable (softphone not registered)
DEVICE_RINGING = 6


class AgentCounts(BaseModel):
    logged_in: int = 0
    available: int = 0
    on_call: int = 0
    ringing: int = 0
    in_wrapup: int = 0
    paused: int = 0
    paused_by_reason: dict[str, int] = {}
    unreachable: int = 0


class QueueStats(BaseModel):
    calls_waiting: int = 0
    longest_wait_seconds: float = 0.0
    agents: AgentCounts = AgentCounts()
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    answered_within_sl: int = 0
    #: Abandoned after waiting longer than the service level: the calls the service level
    #: counts as missed besides those answered late.
    abandoned_after_sl: int = 0
    #: answered within the service level / (answered + abandoned after it): see
    #: :func:`service_level` (None while nothing counts).
    service_level: float | None = None
    #: Average speed of answer (queue join → agent connected), seconds.
    asa_seconds: float | None = None
    #: Average handling time: talk + wrap-up, seconds.
    aht_seconds: float | None = None
    #: abandoned / offered.
    abandon_rate: float | None = None


def service_level(answered_within: int, answered: int, abandoned_after: int) -> float | None:
    """The share of callers answered within the threshold T, among those who were answered or
    gave up after T: answered within T / (answered + abandoned after T), the convention of
    most call-centre wallboards (callers who hang up within T never let the centre miss the
    target and count neither way). Asterisk's ``ServicelevelPerf`` leaves all abandons out
    (answered within / answered) and its ``ServicelevelPerf2`` counts abandons within T as
    met; docs/capacity.md "How the wallboard counts" compares the three."""
    counted = answered + abandoned_after
    return round(answered_within / counted, 4) if counted else None


class AgentsNeeded(Protocol):
    """``core.domain.erlang.agents_needed``: agents for ``target_sl`` answered within
    ``threshold_s`` at this arrival rate and handle time."""

    def __call__(
        self,
        calls_per_hour: float,
        aht_s: float,
        *,
        target_sl: float = ...,
        threshold_s: float = ...,
    ) -> int: ...


#: What fills each trend bucket's ``agents_needed``: Erlang C for 80 % in 20 s.
STAFFING: AgentsNeeded | None = agents_needed
#: The trend's bucket: half an hour, the industry's usual interval for staffing.
BUCKET_SECONDS = 1800
#: A half hour younger than this is too short to tell an hourly rate from (the current one).
MIN_RATE_SECONDS = 300.0
#: The service level target the trend asks Erlang C to staff for.
TARGET_SL = 0.8


class TrendBucket(BaseModel):
    """One half hour of the IST day: the calls that joined the queue in it and the agents
    logged in during it."""

    start: datetime
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    answered_within_sl: int = 0
    abandoned_after_sl: int = 0
    service_level: float | None = None
    #: Talk + wrap-up of the bucket's answered calls (the day's when none has ended yet).
    aht_seconds: float | None = None
    #: Time-weighted mean of the agents logged in: agent-seconds in the half hour (up to now,
    #: for the current one) / its seconds.
    agents_logged_in: float = 0.0
    #: Erlang C's agents for this half hour's arrival rate and AHT (null without STAFFING).
    agents_needed: int | None = None


class Trend(BaseModel):
    bucket_seconds: int = BUCKET_SECONDS
    buckets: list[TrendBucket] = []


class Budget(BaseModel):
    used: int
    budget: int
    note: str = ""


class OutboundLive(BaseModel):
    """The dialer today (IST), from the same source as ``/metrics``' ``helpline_outbound_*``
    (:func:`core.db.queries.outbound_today` and the pacing rule)."""

    attempts: int
    connected: int
    abandoned: int
    #: Outbound channels on the line now.
    active: int
    budget_left: int
    #: What the pacing allows to have been dialled by now (budget spread over the window).
    pace_allowed: int
    #: attempts / connected / abandoned / active per campaign.
    campaigns: dict[str, dict[str, int]]


def outbound_pacing(settings: Settings) -> Pacing:
    """The day's budget spread over the calling window, as the dialer paces it."""
    return Pacing(
        settings.daily_outbound_budget,
        Window(settings.dialer_window_start, settings.dialer_window_end),
        settings.dialer_burst,
    )


def outbound_live(today: dict[str, CampaignDay], settings: Settings, now: datetime) -> OutboundLive:
    total = today["all"]
    return OutboundLive(
        attempts=total.attempts,
        connected=total.connected,
        abandoned=total.abandoned,
        active=total.active,
        budget_left=max(0, settings.daily_outbound_budget - total.attempts),
        pace_allowed=outbound_pacing(settings).allowed(now),
        campaigns={
            name: {
                "attempts": day.attempts,
                "connected": day.connected,
                "abandoned": day.abandoned,
                "active": day.active,
            }
            for name, day in sorted(today.items())
            if name != "all"
        },
    )


class StatsOut(BaseModel):
    at: datetime
    day_start: datetime
    service_level_seconds: int = SERVICE_LEVEL_SECONDS
    overall: QueueStats
    queues: dict[str, QueueStats]
    inbound: Budget
    outbound: Budget
    outbound_live: OutboundLive
    #: The day so far by half hour (all queues together).
    trend: Trend = Trend()


#: The wait of a call answered within the service level, and of one abandoned after it (the
#: service level's two outcomes; a call abandoned within it counts in neither: see
#: :func:`service_level`).
_ANSWERED_IN_SL = (
    "agent_connected_at IS NOT NULL"
    " AND agent_connected_at - queue_joined_at <= make_interval(secs => :sl)"
)
_ABANDONED = "abandoned_at IS NOT NULL AND agent_connected_at IS NULL"
_ABANDONED_AFTER_SL = (
    f"{_ABANDONED} AND abandoned_at - queue_joined_at > make_interval(secs => :sl)"
)

#: One scan of the day's calls, grouped by queue and half hour of the IST day (a call belongs to
#: the half hour in which it joined the queue); :class:`CallCounts` adds the groups up into the
#: queues' figures, the day's and the trend's. (A single fine grouping measured cheaper than
#: ``GROUPING SETS`` over the same scan, and ``date_part`` cheaper than numeric ``extract``.)
_CALLS_SQL = text(
    f"""
    SELECT queue, bucket,
      count(*) FILTER (WHERE today) AS offered,
      count(*) FILTER (WHERE today AND agent_connected_at IS NOT NULL) AS answered,
      count(*) FILTER (WHERE today AND {_ABANDONED}) AS abandoned,
      count(*) FILTER (WHERE today AND {_ANSWERED_IN_SL}) AS answered_sl,
      count(*) FILTER (WHERE today AND {_ABANDONED_AFTER_SL}) AS abandoned_late,
      sum(date_part('epoch', agent_connected_at - queue_joined_at))
        FILTER (WHERE today AND agent_connected_at IS NOT NULL) AS asa_sum,
      sum(talk_seconds) FILTER (WHERE today) AS talk_sum,
      count(talk_seconds) FILTER (WHERE today) AS talked,
      count(*) FILTER (WHERE queue_left_at IS NULL AND ended_at IS NULL) AS waiting,
      min(queue_joined_at) FILTER (WHERE queue_left_at IS NULL AND ended_at IS NULL) AS oldest
    FROM (
      SELECT calls.*, queue_joined_at >= :day AS today,
        floor(date_part('epoch', queue_joined_at - :day) / {BUCKET_SECONDS})::int AS bucket
      FROM calls
      WHERE queue_joined_at >= :day
         OR (queue_joined_at IS NOT NULL AND queue_left_at IS NULL AND ended_at IS NULL
             AND queue_joined_at >= :day - interval '1 day')
    ) c
    GROUP BY queue, bucket
    """
)


@dataclass
class CallCounts:
    """Sums of :data:`_CALLS_SQL`'s groups: a queue's, the day's or a half hour's."""

    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    answered_sl: int = 0
    abandoned_late: int = 0
    asa_sum: float = 0.0
    talk_sum: float = 0.0
    talked: int = 0
    waiting: int = 0
    oldest: datetime | None = None

    def add(self, row: Any) -> None:
        self.offered += row.offered
        self.answered += row.answered
        self.abandoned += row.abandoned
        self.answered_sl += row.answered_sl
        self.abandoned_late += row.abandoned_late
        self.asa_sum += float(row.asa_sum or 0)
        self.talk_sum += float(row.talk_sum or 0)
        self.talked += row.talked
        self.waiting += row.waiting
        if row.oldest is not None and (self.oldest is None or row.oldest < self.oldest):
            self.oldest = row.oldest

    @property
    def aht_seconds(self) -> float | None:
        """Talk + wrap-up of the calls that have ended."""
        return round(self.talk_sum / self.talked + WRAPUP_SECONDS, 2) if self.talked else None


_WIDTH = f"make_interval(secs => {BUCKET_SECONDS})"

#: Agent-seconds logged in (``agent_sessions``, the agents' own login and logout) in each half
#: hour of the day so far, up to now. (The FILTER matters: on a bucket without sessions,
#: ``greatest()`` ignores the NULL and the overlap would be the whole half hour.)
_AGENTS_TREND_SQL = text(
    f"""
    WITH p AS (SELECT CAST(:day AS timestamptz) AS day, CAST(:now AS timestamptz) AS now),
    b AS (SELECT i, p.day + make_interval(secs => i * {BUCKET_SECONDS}) AS start
          FROM p, generate_series(0, CAST(:buckets AS integer) - 1) AS i)
    SELECT b.i AS bucket,
      coalesce(sum(extract(epoch FROM
        least(coalesce(s.logged_out_at, p.now), b.start + {_WIDTH}, p.now)
        - greatest(s.logged_in_at, b.start))) FILTER (WHERE s.id IS NOT NULL), 0) AS seconds
    FROM p CROSS JOIN b
    LEFT JOIN agent_sessions s
      ON s.logged_in_at < least(b.start + {_WIDTH}, p.now)
     AND coalesce(s.logged_out_at, p.now) > b.start
    GROUP BY b.i
    """
)

_SEATS_SQL = text(
    """
    SELECT s.seat, s.queues, s.paused, s.pause_reason, s.device_status,
           s.current_call_uniqueid, s.last_call_ended_at
    FROM seat_status s
    WHERE s.in_queue
    """
)


def _fill_calls(stats: QueueStats, counts: CallCounts, now: datetime) -> None:
    stats.offered = counts.offered
    stats.answered = counts.answered
    stats.abandoned = counts.abandoned
    stats.answered_within_sl = counts.answered_sl
    stats.abandoned_after_sl = counts.abandoned_late
    stats.calls_waiting = counts.waiting
    if counts.oldest is not None:
        stats.longest_wait_seconds = round(max(0.0, (now - counts.oldest).total_seconds()), 1)
    stats.service_level = service_level(counts.answered_sl, counts.answered, counts.abandoned_late)
    if counts.answered:
        stats.asa_seconds = round(counts.asa_sum / counts.answered, 2)
    stats.aht_seconds = counts.aht_seconds
    if counts.offered:
        stats.abandon_rate = round(counts.abandoned / counts.offered, 4)


def _count_agent(agents: AgentCounts, row: Any, now: datetime) -> None:
    agents.logged_in += 1
    status = row.device_status
    on_call = row.current_call_uniqueid is not None or status in DEVICE_ON_CALL
    wrapup = (
        not on_call
        and row.last_call_ended_at is not None
        and now - row.last_call_ended_at < timedelta(seconds=WRAPUP_SECONDS)
    )
    if row.paused:
        agents.paused += 1
        reason = row.pause_reason or "unspecified"
        agents.paused_by_reason[reason] = agents.paused_by_reason.get(reason, 0) + 1
    if on_call:
        agents.on_call += 1
    elif status == DEVICE_RINGING:
        agents.ringing += 1
    elif wrapup:
        agents.in_wrapup += 1
    elif status in DEVICE_UNREACHABLE:
        agents.unreachable += 1
    elif not row.paused:
        agents.available += 1


def trend_buckets(day: datetime, now: datetime) -> int:
    """Half hours of the day begun by ``now`` (the current one included)."""
    return int((now - day).total_seconds() // BUCKET_SECONDS) + 1


def build_trend(
    day: datetime,
    now: datetime,
    calls: dict[int, CallCounts],
    agent_seconds: dict[int, float],
    day_aht: float | None,
    agents_needed: AgentsNeeded | None = None,
) -> Trend:
    """The day's half hours from the calls' counts by bucket (a bucket without calls is
    absent) and the agent-seconds logged in per bucket. The arrival rate of the current,
    unfinished half hour is its calls over the time it has run (at least
    :data:`MIN_RATE_SECONDS`)."""
    buckets: list[TrendBucket] = []
    for i in range(trend_buckets(day, now)):
        start = day + timedelta(seconds=i * BUCKET_SECONDS)
        elapsed = min(float(BUCKET_SECONDS), (now - start).total_seconds())
        bucket = TrendBucket(
            start=start,
            agents_logged_in=round(agent_seconds.get(i, 0.0) / max(elapsed, 1.0), 2),
        )
        counts = calls.get(i)
        if counts is not None:
            bucket.offered = counts.offered
            bucket.answered = counts.answered
            bucket.abandoned = counts.abandoned
            bucket.answered_within_sl = counts.answered_sl
            bucket.abandoned_after_sl = counts.abandoned_late
            bucket.service_level = service_level(
                counts.answered_sl, counts.answered, counts.abandoned_late
            )
            bucket.aht_seconds = counts.aht_seconds
        aht = bucket.aht_seconds if bucket.aht_seconds is not None else day_aht
        if agents_needed is not None:
            if bucket.offered == 0:
                bucket.agents_needed = 0
            elif aht is not None:
                per_hour = bucket.offered * 3600.0 / max(elapsed, MIN_RATE_SECONDS)
                bucket.agents_needed = agents_needed(
                    per_hour, aht, target_sl=TARGET_SL, threshold_s=float(SERVICE_LEVEL_SECONDS)
                )
        buckets.append(bucket)
    return Trend(buckets=buckets)


async def compute_stats(
    session: AsyncSession,
    settings: Settings,
    now: datetime | None = None,
    agents_needed: AgentsNeeded | None = STAFFING,
) -> StatsOut:
    now = now or datetime.now(UTC)
    day = day_start(now)
    queues = {name: QueueStats() for name in all_queues(settings.queue_name)}
    day_counts = CallCounts()
    by_queue: dict[str, CallCounts] = {}
    by_bucket: dict[int, CallCounts] = {}
    params = {"day": day, "sl": SERVICE_LEVEL_SECONDS}
    for row in (await session.execute(_CALLS_SQL, params)).all():
        day_counts.add(row)
        if row.queue is not None:
            by_queue.setdefault(row.queue, CallCounts()).add(row)
        if row.bucket is not None and row.bucket >= 0:  # yesterday's callers still waiting: < 0
            by_bucket.setdefault(row.bucket, CallCounts()).add(row)
    overall = QueueStats()
    _fill_calls(overall, day_counts, now)
    for name, counts in by_queue.items():
        _fill_calls(queues.setdefault(name, QueueStats()), counts, now)
    agent_seconds = {
        row.bucket: float(row.seconds)
        for row in await session.execute(
            _AGENTS_TREND_SQL, {"day": day, "now": now, "buckets": trend_buckets(day, now)}
        )
    }
    trend = build_trend(day, now, by_bucket, agent_seconds, overall.aht_seconds, agents_needed)
    empty: dict[str, int] = {reason: 0 for reason in PAUSE_REASONS}
    overall.agents.paused_by_reason = dict(empty)
    for stats in queues.values():
        stats.agents.paused_by_reason = dict(empty)
    for row in (await session.execute(_SEATS_SQL)).all():
        _count_agent(overall.agents, row, now)
        for queue in row.queues or []:
            if queue in queues:
                _count_agent(queues[queue].agents, row, now)
    inbound = await inbound_calls_today(session, now)
    today = await outbound_today(session, now)
    return StatsOut(
        at=now,
        day_start=day,
        overall=overall,
        queues=queues,
        inbound=Budget(used=inbound, budget=settings.daily_inbound_budget),
        outbound=Budget(used=today["all"].attempts, budget=settings.daily_outbound_budget),
        outbound_live=outbound_live(today, settings, now),
        trend=trend,
    )


async def screen_pop(
    session: AsyncSession, uniqueid: str, reference: Reference | None = None
) -> dict[str, Any] | None:
    """What the agent sees when a caller is connected: number, IVR path, language, the
    caller's earlier complaints (newest first, with status and the officer's post) and their
    pending callback requests. Three queries, however long the history."""
    call = (
        await session.execute(Call.__table__.select().where(Call.uniqueid == uniqueid))
    ).one_or_none()
    if call is None:
        return None
    complaints: list[dict[str, Any]] = []
    callbacks: list[dict[str, Any]] = []
    if call.caller_number:
        rows = (
            await session.execute(
                Complaint.__table__.select()
                .where(Complaint.caller_number == call.caller_number)
                .order_by(Complaint.created_at.desc())
                .limit(20)
            )
        ).all()
        complaints = [_previous(r, reference) for r in rows]
        pending = (
            await session.execute(
                CallbackRequest.__table__.select()
                .where(
                    CallbackRequest.caller_number == call.caller_number,
                    CallbackRequest.status == CallbackStatus.PENDING,
                )
                .order_by(CallbackRequest.id)
                .limit(20)
            )
        ).all()
        callbacks = [
            {
                "id": r.id,
                "requested_at": r.requested_at.isoformat(),
                "reason": r.reason,
                "lang": r.lang,
            }
            for r in pending
        ]
    return {
        "type": "screen_pop",
        "uniqueid": call.uniqueid,
        "outbound": await _why_called(session, call.dialer_attempt_id),
        "caller_number": call.caller_number,
        "caller_name": call.caller_name,
        "ivr_path": call.ivr_path,
        "ivr_lang": call.ivr_lang,
        "ivr_fallback": call.ivr_fallback,
        "queue": call.queue,
        "seat": call.agent_seat,
        "hold_seconds": call.hold_seconds,
        "previous_complaints": complaints,
        "pending_callbacks": callbacks,
    }


async def _why_called(session: AsyncSession, attempt_id: str | None) -> dict[str, Any] | None:
    """Why the dialer called this citizen (None: the citizen called us): the campaign, and a
    callback request's reason and place in line, or the complaint a click-to-call is about
    and who asked. One query."""
    if attempt_id is None:
        return None
    row = (
        await session.execute(
            select(
                DialerAttempt.campaign,
                DialerAttempt.attempt_no,
                CallbackRequest.reason,
                CallbackRequest.requested_at,
                CallbackRequest.place_at,
                CallbackRequest.lang,
                Complaint.number,
                Complaint.status,
                User.username,
            )
            .join(DialerJob, DialerJob.id == DialerAttempt.job_id)
            .outerjoin(CallbackRequest, CallbackRequest.id == DialerJob.callback_request_id)
            .outerjoin(Complaint, Complaint.id == DialerJob.complaint_id)
            .outerjoin(User, User.id == DialerJob.requested_by)
            .where(DialerAttempt.id == attempt_id)
        )
    ).one_or_none()
    if row is None:
        return None
    out: dict[str, Any] = {"campaign": str(row.campaign), "attempt": row.attempt_no}
    if row.requested_at is not None:
        out["callback"] = {
            "reason": row.reason,
            "requested_at": row.requested_at.isoformat(),
            "place_at": row.place_at.isoformat() if row.place_at else None,
            "lang": row.lang,
        }
    if row.number is not None:
        out["complaint"] = {"number": row.number, "status": str(row.status)}
    if row.username is not None:
        out["requested_by"] = row.username
    return out


def _previous(row: Any, reference: Reference | None) -> dict[str, Any]:
    officer = None
    if reference is not None and row.assigned_officer:
        post = reference.officers.get(row.assigned_officer)
        if post is not None:
            officer = {
                "code": post.code,
                "designation_en": post.designation_en,
                "designation_hi": post.designation_hi,
            }
    category = reference.categories.get(row.category or "") if reference is not None else None
    return {
        "number": row.number,
        "status": row.status,
        "created_at": row.created_at.isoformat(),
        "due_at": row.due_at.isoformat(),
        "description": row.description[:300],
        "category": row.category,
        "category_en": category.name_en if category else None,
        "category_hi": category.name_hi if category else None,
        "officer": officer,
    }


def as_seen_by(pop: dict[str, Any], role: str | None) -> dict[str, Any]:
    """The screen-pop with the caller's number as ``role`` may see it (api.policy)."""
    if role not in MASKED_ROLES:
        return pop
    return {**pop, "caller_number": mask_caller_number(pop.get("caller_number"))}


async def seat_of_user(session: AsyncSession, user_id: int) -> str | None:
    agent_session = await open_agent_session(session, user_id)
    return agent_session.seat if agent_session else None


async def user_at_seat(session: AsyncSession, seat: str) -> int | None:
    """Who sits at ``seat`` now (at most one open login per seat: a partial UNIQUE index)."""
    user_id: int | None = (
        await session.execute(
            select(AgentSession.user_id).where(
                AgentSession.seat == seat, AgentSession.logged_out_at.is_(None)
            )
        )
    ).scalar_one_or_none()
    return user_id


async def current_call_of_seat(session: AsyncSession, seat: str) -> str | None:
    status = await session.get(SeatStatus, seat, populate_existing=True)
    return status.current_call_uniqueid if status else None


async def agent_greeting(
    session: AsyncSession,
    user_id: int,
    username: str,
    reference: Reference | None = None,
    role: str | None = None,
) -> list[str]:
    """What ``/ws/agent`` sends first: hello (with the seat), and the screen-pop of the
    caller connected now, if any."""
    seat = await seat_of_user(session, user_id)
    messages = [json.dumps({"type": "hello", "username": username, "seat": seat})]
    uniqueid = await current_call_of_seat(session, seat) if seat else None
    pop = await screen_pop(session, uniqueid, reference) if uniqueid else None
    if pop is not None:
        messages.append(json.dumps(as_seen_by(pop, role), default=str))
    return messages


@dataclass(eq=False)
class Subscriber:
    """One WebSocket's outbox; a slow client loses old messages, never blocks the hub."""

    user_id: int | None = None
    #: The subscriber's role: what of a screen-pop it may see (api.policy.MASKED_ROLES).
    role: str | None = None
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(maxsize=32))
    #: Set when the subscriber's user was disabled: the socket closes (1008) at once.
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, message: str) -> None:
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
        self.queue.put_nowait(message)


class LiveHub:
    """Fan out stats and screen-pops to WebSocket subscribers, woken by the process's one
    LISTEN (:class:`Notifications`)."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        notifications: Notifications,
        reference: Reference | None = None,
    ) -> None:
        self.settings = settings
        self.reference = reference
        self.sessions = sessions
        self.notifications = notifications
        self.stats_subscribers: set[Subscriber] = set()
        #: ``/ws/agent`` sockets by their user: a screen-pop goes to the seat's one user.
        self._agents: dict[int, set[Subscriber]] = {}
        self.latest: str | None = None
        self.pushes = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.notifications.on(AGENT_CONNECT_CHANNEL, self._on_agent_connect)
        self.notifications.on(USER_ACCESS_CHANNEL, self._on_user_disabled)
        self._spawn(self._publish(), "live-hub publish")

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def add_agent(self, subscriber: Subscriber) -> None:
        """An agent's socket opened (``user_id`` set: anonymous sockets get no screen-pops)."""
        if subscriber.user_id is not None:
            self._agents.setdefault(subscriber.user_id, set()).add(subscriber)

    def remove_agent(self, subscriber: Subscriber) -> None:
        if subscriber.user_id is None:
            return
        sockets = self._agents.get(subscriber.user_id)
        if sockets is not None:
            sockets.discard(subscriber)
            if not sockets:
                del self._agents[subscriber.user_id]

    @property
    def agent_sockets(self) -> int:
        return sum(len(sockets) for sockets in self._agents.values())

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stats_json(self) -> str:
        async with self.sessions() as session:
            stats = await compute_stats(session, self.settings)
        return json.dumps({"type": "stats", **stats.model_dump(mode="json")})

    def _on_user_disabled(self, payload: str) -> None:
        """End every WebSocket of the user ``payload`` names (any process's NOTIFY)."""
        try:
            user_id = int(payload)
        except ValueError:
            log.warning("live hub: %s payload is not a user id", USER_ACCESS_CHANNEL)
            return
        for subscriber in (*self.stats_subscribers, *self._agents.get(user_id, ())):
            if subscriber.user_id == user_id:
                subscriber.ended.set()

    def _on_agent_connect(self, payload: str) -> None:
        self._spawn(self._deliver_pop(payload), "live-hub screen-pop")

    async def _publish(self) -> None:
        # Woken by every queue_stats NOTIFY (and once per LISTEN reconnect); else every tick.
        with self.notifications.watch(STATS_CHANNEL) as dirty:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(TICK_SECONDS):
                        await dirty.wait()
                dirty.clear()
                if not self.stats_subscribers:
                    continue
                try:
                    message = await self.stats_json()
                except Exception:
                    log.exception("live hub: could not compute stats")
                    continue
                self.latest = message
                self.pushes += 1
                for subscriber in list(self.stats_subscribers):
                    subscriber.offer(message)

    async def _deliver_pop(self, payload: str) -> None:
        """The pop is computed once per answered call and sent to the sockets of the one user
        at the seat: one query for who sits there, then the pop's own, however many agents
        are connected (the queries per call do not grow with the agents)."""
        try:
            data = json.loads(payload)
            seat, uniqueid = str(data["seat"]), str(data["uniqueid"])
            async with self.sessions() as session:
                user_id = await user_at_seat(session, seat)
                targets = list(self._agents.get(user_id, ())) if user_id is not None else []
                if not targets:
                    return
                pop = await screen_pop(session, uniqueid, self.reference)
            if pop is not None:
                for subscriber in targets:
                    subscriber.offer(json.dumps(as_seen_by(pop, subscriber.role), default=str))
        except Exception:
            log.exception("live hub: screen-pop for %r failed", payload)
