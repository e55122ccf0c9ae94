"""The dialer's database side: jobs made once, claimed once, limits reserved atomically.

Every rule that several dialer processes could race on is one conditional statement in
PostgreSQL, inside the claim's transaction, never a check in Python followed by an act:

* a job is claimed with ``FOR UPDATE SKIP LOCKED`` and moved to ``dialing`` in the same
  transaction that inserts its attempt (UNIQUE (job, attempt number); one open attempt per job);
* the day's budget, the pacing bound and the channel cap are one upsert
  ``... DO UPDATE SET used = used + 1, active = active + 1 WHERE used < :allowed AND
  active < :cap`` on the ('all') row, then the same on the campaign's row;
* attempts per number and day are one upsert ``... DO UPDATE ... WHERE attempts < :cap``.

If any of them refuses, the transaction rolls back and nothing was reserved. The pure rules
(window, pacing, retry) are :mod:`core.domain.dialing`.
"""

from __future__ import annotations

import functools
import logging
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Integer,
    String,
    Text,
    and_,
    any_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal,
    literal_column,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from core.config import Settings
from core.db.models import (
    CallbackRequest,
    Complaint,
    ComplaintHistory,
    DialerAttempt,
    DialerBudget,
    DialerCampaign,
    DialerJob,
    DialerNumberDay,
    DoNotCall,
    IvrSession,
)
from core.db.session import execute_core
from core.domain.calls import CallbackStatus
from core.domain.clock import helpline_day
from core.domain.complaints import ComplaintStatus, HistoryAction
from core.domain.dialing import (
    ABANDON_QUIET,
    RETRIED,
    Campaign,
    DncSource,
    JobState,
    Outcome,
    Pacing,
    RetryPolicy,
    SurveyResult,
    Window,
    answered_outcome,
    click_outcome,
    unanswered_outcome,
)
from core.domain.lifecycle import WITH_OFFICER, Action
from core.reference import Reference
from lifecycle.transitions import TransitionRefused, apply_action

log = logging.getLogger(__name__)

#: Prefix of every attempt id (= the channel's uniqueid): a Hangup of any other channel is
#: dismissed without a query.
ATTEMPT_PREFIX = "dialer-"
#: A click-to-call job not claimed within this long (the budget or the channels held it back)
#: is stopped, never dialled later: the agent who clicked has moved on.
CLICK_STALE = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class DialRules:
    """The limits one dialer process works under (from :class:`Settings`)."""

    pacing: Pacing
    retry: RetryPolicy
    max_channels: int
    per_number_day: int
    followup_every: timedelta = timedelta(days=3)

    @property
    def window(self) -> Window:
        return self.pacing.window

    @classmethod
    def from_settings(cls, settings: Settings) -> DialRules:
        window = Window(settings.dialer_window_start, settings.dialer_window_end)
        minutes = {
            Outcome.BUSY: settings.dialer_retry_busy_minutes,
            Outcome.NO_ANSWER: settings.dialer_retry_no_answer_minutes,
            Outcome.CONGESTION: settings.dialer_retry_congestion_minutes,
            Outcome.FAILED: settings.dialer_retry_failed_minutes,
            Outcome.SILENCE: settings.dialer_retry_silence_minutes,
            Outcome.HUNG_UP: settings.dialer_retry_silence_minutes,
            Outcome.LOST: settings.dialer_retry_no_answer_minutes,
        }
        return cls(
            pacing=Pacing(settings.daily_outbound_budget, window, settings.dialer_burst),
            retry=RetryPolicy({k: timedelta(minutes=v) for k, v in minutes.items()}, window),
            max_channels=settings.dialer_max_channels,
            per_number_day=settings.dialer_attempts_per_number_day,
            followup_every=timedelta(days=settings.dialer_followup_every_days),
        )


@dataclass(frozen=True, slots=True)
class Claimed:
    """An attempt reserved and committed: dial it (once)."""

    attempt_id: str
    job_id: int
    attempt_no: int
    campaign: Campaign
    number: str
    complaint_number: str | None
    #: Click-to-call: the seat that rings first.
    seat: str | None = None


@dataclass(slots=True)
class ClaimPass:
    """What one claim found besides attempts: why it stopped, campaigns left out."""

    stopped: str | None = None
    skipped_campaigns: set[Campaign] = field(default_factory=set)
    deferred: int = 0
    stopped_jobs: int = 0


# ----------------------------------------------------------------------------- making jobs


async def make_feedback_jobs(session: AsyncSession, now: datetime) -> int:
    """A feedback job for every resolved complaint's latest resolution (100 %), set-based and
    idempotent: the UNIQUE (campaign, complaint, ``resolve:<history id>``) makes a second pass,
    or a second dialer, insert nothing. Complaints without a known number cannot be called
    (the feedback report counts them). Returns how many jobs were made."""
    latest = (
        select(
            ComplaintHistory.complaint_id,
            func.max(ComplaintHistory.id).label("history_id"),
        )
        .where(ComplaintHistory.action == HistoryAction.RESOLVE)
        .group_by(ComplaintHistory.complaint_id)
        .subquery()
    )
    key = func.concat("resolve:", cast(latest.c.history_id, Text))
    source = (
        select(
            literal(Campaign.FEEDBACK.value),
            Complaint.id,
            key,
            Complaint.caller_number,
            literal(now),
            latest.c.history_id,
        )
        .join(latest, latest.c.complaint_id == Complaint.id)
        .where(
            Complaint.status == ComplaintStatus.RESOLVED,
            Complaint.caller_number.is_not(None),
            ~_job_exists(Campaign.FEEDBACK, key),
        )
    )
    return await _insert_jobs(session, source, resolution=True)


def _job_exists(campaign: Campaign, key: Any) -> Any:
    """The job is there already: filtered before the INSERT so a pass over thousands of
    resolved complaints inserts (and draws identity values for) only the new ones; the
    UNIQUE still decides between two dialers racing."""
    return exists().where(
        DialerJob.campaign == campaign,
        DialerJob.complaint_id == Complaint.id,
        DialerJob.dedupe_key == key,
    )


async def make_followup_jobs(session: AsyncSession, now: datetime, every: timedelta) -> int:
    """A follow-up job for each open complaint (an officer holds it) per ``every`` of its age
    and per status: ``<status>:<period>``, period 1 after the first ``every``. Idempotent by
    the same UNIQUE. A newer job stops the complaint's older follow-ups still pending (a
    citizen hears the latest status once, not a backlog of them)."""
    seconds = every.total_seconds()
    period = func.floor(func.extract("epoch", literal(now) - Complaint.created_at) / seconds)
    key = func.concat(Complaint.status, ":", cast(period, BigInteger))
    source = select(
        literal(Campaign.FOLLOWUP.value),
        Complaint.id,
        key,
        Complaint.caller_number,
        literal(now),
    ).where(
        Complaint.status.in_([s.value for s in WITH_OFFICER]),
        Complaint.caller_number.is_not(None),
        period >= 1,
        ~_job_exists(Campaign.FOLLOWUP, key),
    )
    made = await _insert_jobs(session, source)
    if made:
        newer = aliased(DialerJob)
        await session.execute(
            update(DialerJob)
            .where(
                DialerJob.campaign == Campaign.FOLLOWUP,
                DialerJob.state == JobState.PENDING,
                exists().where(
                    newer.campaign == Campaign.FOLLOWUP,
                    newer.complaint_id == DialerJob.complaint_id,
                    newer.id > DialerJob.id,
                ),
            )
            .values(state=JobState.STOPPED, finished_at=now)
        )
    return made


async def make_callback_jobs(session: AsyncSession) -> int:
    """A callback job for every callback request the IVR or the waiting room stored
    (``callback_requests``, their writer); UNIQUE on the request. Its ``not_before`` is the
    caller's place in line (``place_at``: when they joined the queue, or asked), so callbacks
    are claimed in that order, ahead of the other campaigns: the promise was made first."""
    source = select(
        literal(Campaign.CALLBACK.value),
        CallbackRequest.id,
        literal("callback"),
        CallbackRequest.caller_number,
        CallbackRequest.place_at,
    ).where(
        CallbackRequest.status == CallbackStatus.PENDING,
        ~exists().where(DialerJob.callback_request_id == CallbackRequest.id),
    )
    statement = (
        insert(DialerJob)
        .from_select(
            ["campaign", "callback_request_id", "dedupe_key", "number", "not_before"], source
        )
        .on_conflict_do_nothing(constraint="uq_dialer_jobs_callback_request_id")
        .returning(DialerJob.id)
    )
    return len((await session.execute(statement)).all())


#: What a callback request becomes when the dialer's job for it ends.
_SETTLED_REQUEST = {
    JobState.DONE: CallbackStatus.CALLED,
    JobState.UNREACHABLE: CallbackStatus.UNREACHABLE,
    JobState.STOPPED: CallbackStatus.STOPPED,
}


async def settle_callback_requests(session: AsyncSession, job_id: int | None = None) -> int:
    """Close the callback requests whose job has ended (all of them, or ``job_id``'s), so the
    caller may ask again: the waiting room keeps one *pending* request per number. One
    set-based UPDATE; run when an attempt ends and in every job pass (stops, do-not-call)."""
    status = case(
        *(
            (DialerJob.state == state, literal(value.value))
            for state, value in _SETTLED_REQUEST.items()
        )
    )
    statement = (
        update(CallbackRequest)
        .where(
            CallbackRequest.status == CallbackStatus.PENDING,
            DialerJob.callback_request_id == CallbackRequest.id,
            DialerJob.state.in_(list(_SETTLED_REQUEST)),
            *(() if job_id is None else (DialerJob.id == job_id,)),
        )
        .values(status=status)
        .returning(CallbackRequest.id)
        .execution_options(synchronize_session=False)
    )
    return len((await session.execute(statement)).all())


async def _insert_jobs(session: AsyncSession, source: Any, *, resolution: bool = False) -> int:
    columns = ["campaign", "complaint_id", "dedupe_key", "number", "not_before"]
    statement = (
        insert(DialerJob)
        .from_select([*columns, "resolution_id"] if resolution else columns, source)
        .on_conflict_do_nothing(constraint="uq_dialer_jobs_complaint_key")
        .returning(DialerJob.id)
    )
    return len((await session.execute(statement)).all())


# ----------------------------------------------------------------------------- claiming


@functools.cache
def _reservation(limited: bool, capped: bool) -> Any:
    """The upsert of :func:`_reserve` (with the bounds it has), built once."""
    conditions = []
    if limited:
        conditions.append(DialerBudget.used < bindparam("allowed", type_=Integer))
    if capped:
        conditions.append(DialerBudget.active < bindparam("cap", type_=Integer))
    return (
        insert(DialerBudget)
        .values(
            day=bindparam("day", type_=Date),
            scope=bindparam("scope", type_=String),
            used=1,
            active=1,
        )
        .on_conflict_do_update(
            index_elements=["day", "scope"],
            set_={"used": DialerBudget.used + 1, "active": DialerBudget.active + 1},
            where=and_(true(), *conditions),
        )
        .returning(DialerBudget.used)
    )


async def _reserve(
    session: AsyncSession, day: date, scope: str, allowed: int | None, cap: int | None
) -> bool:
    """One atomic reservation of a call and a channel on ``scope``'s row of ``day``: the
    row's first call makes it (one statement, where making the row first was one more)."""
    if (allowed is not None and allowed <= 0) or (cap is not None and cap <= 0):
        return False  # used and active are never below 0: no row could pass
    reserved = await execute_core(
        session,
        _reservation(allowed is not None, cap is not None),
        {"day": day, "scope": scope, "allowed": allowed, "cap": cap},
    )
    return reserved.scalar_one_or_none() is not None


_RESERVE_NUMBER = (
    insert(DialerNumberDay)
    .values(
        number=bindparam("number", type_=DialerNumberDay.__table__.c.number.type),
        day=bindparam("day", type_=Date),
        attempts=1,
    )
    .on_conflict_do_update(
        index_elements=["number", "day"],
        set_={"attempts": DialerNumberDay.attempts + 1},
        where=DialerNumberDay.attempts < bindparam("cap", type_=Integer),
    )
    .returning(DialerNumberDay.attempts)
)


async def _reserve_number(session: AsyncSession, number: str, day: date, cap: int) -> bool:
    reserved = await execute_core(
        session, _RESERVE_NUMBER, {"number": number, "day": day, "cap": cap}
    )
    return reserved.scalar_one_or_none() is not None


#: A click-to-call first (an agent waits for it at the desk), then callbacks, in their place
#: in line (not_before = place_at), then the rest by due time: ``ix_dialer_jobs_claim``'s
#: order, its expressions written as the index's (literals, not bind parameters) so that the
#: planner matches them.
_CLAIM_ORDER = (
    DialerJob.campaign != literal_column(f"'{Campaign.CLICK.value}'"),
    DialerJob.campaign != literal_column(f"'{Campaign.CALLBACK.value}'"),
    DialerJob.not_before,
    DialerJob.id,
)


def _of_complaint(column: Any) -> Any:
    """``column`` of the claimed job's complaint (NULL without one), read with the claim."""
    return select(column).where(Complaint.id == DialerJob.complaint_id).scalar_subquery()


#: The claim: the first due job of the wanted campaigns in :data:`_CLAIM_ORDER`, locked (another
#: dialer takes the next), with what :func:`_why_not_dial` decides on (three round trips of a
#: claim's twelve were those look-ups, one more the complaint's number). Built once with bind
#: parameters, as the IVR's and the queue manager's statements are; ``state`` is a literal, so
#: that the partial index's predicate is seen to hold in a generic plan too.
_CLAIM = (
    select(
        DialerJob.id,
        DialerJob.campaign,
        DialerJob.number,
        DialerJob.attempts,
        DialerJob.complaint_id,
        DialerJob.not_before,
        DialerJob.seat,
        DialerCampaign.max_attempts,
        DialerCampaign.max_concurrent,
        DialerCampaign.daily_limit,
        exists().where(DoNotCall.number == DialerJob.number).label("do_not_call"),
        _of_complaint(Complaint.status).label("complaint_status"),
        _of_complaint(Complaint.number).label("complaint_number"),
        select(func.max(DialerAttempt.started_at))
        .where(
            DialerAttempt.number == DialerJob.number,
            DialerAttempt.abandoned.is_(True),
            DialerAttempt.started_at > bindparam("quiet_since", type_=DateTime(timezone=True)),
        )
        .scalar_subquery()
        .label("last_abandoned"),
    )
    .join(DialerCampaign, DialerCampaign.name == DialerJob.campaign)
    .where(
        DialerJob.state == literal_column(f"'{JobState.PENDING.value}'"),
        DialerJob.not_before <= bindparam("now", type_=DateTime(timezone=True)),
        DialerJob.campaign == any_(bindparam("wanted", type_=ARRAY(String))),
        DialerCampaign.paused.is_(False),
    )
    .order_by(*_CLAIM_ORDER)
    .limit(1)
    .with_for_update(of=DialerJob, skip_locked=True)
)
#: The claimed job's attempt and the job moved to ``dialing``, built once and sent as Core
#: (:func:`core.db.session.execute_core`): the ORM's unit of work and its UPDATE's
#: synchronisation of loaded objects (there are none) cost more than the statements.
_NEW_ATTEMPT = insert(DialerAttempt).values(
    {
        name: bindparam(name, type_=DialerAttempt.__table__.c[name].type)
        for name in (
            "id",
            "job_id",
            "attempt_no",
            "campaign",
            "number",
            "day",
            "started_at",
            "dialer",
        )
    }
)
_DIALING = (
    update(DialerJob)
    .where(DialerJob.id == bindparam("job", type_=BigInteger))
    .values(state=JobState.DIALING, attempts=bindparam("attempt_no", type_=Integer))
)


async def claim_one(
    session: AsyncSession,
    rules: DialRules,
    now: datetime,
    dialer: str,
    state: ClaimPass,
    *,
    campaigns: frozenset[Campaign] = frozenset({Campaign.FEEDBACK, Campaign.FOLLOWUP}),
    callback_cap: int | None = None,
) -> Claimed | None:
    """Claim one due job and reserve everything its call needs, in one transaction that this
    function commits (or rolls back: then nothing is reserved). None with ``state.stopped``
    set means stop this pass (outside the window, budget spent, channels full, no jobs)."""
    allowed = rules.pacing.allowed(now)
    if allowed <= 0:
        state.stopped = "outside the window" if not rules.window.contains(now) else "budget"
        return None
    wanted = [c.value for c in campaigns - state.skipped_campaigns]
    if not wanted:
        state.stopped = "no campaign left"
        return None
    day = helpline_day(now)
    while True:
        row = (
            await session.execute(
                _CLAIM, {"now": now, "quiet_since": now - ABANDON_QUIET, "wanted": wanted}
            )
        ).one_or_none()
        if row is None:
            await session.rollback()
            state.stopped = state.stopped or "no due job"
            return None
        why_not = await _why_not_dial(session, row, now)
        if why_not is None:
            break
        await session.commit()  # the job's new state (stopped / deferred); look at the next

    job_id, campaign, number = row.id, Campaign(row.campaign), str(row.number)
    if row.attempts >= row.max_attempts:  # the cap was lowered after the job's last attempt
        await _give_up(session, job_id, campaign, row.complaint_id, row.attempts, now, None)
        await session.commit()
        return await claim_one(
            session, rules, now, dialer, state, campaigns=campaigns, callback_cap=callback_cap
        )
    if not await _reserve(session, day, "all", allowed, rules.max_channels):
        await session.rollback()
        state.stopped = "budget or channels (all campaigns)"
        return None
    cap = row.max_concurrent
    if campaign is Campaign.CALLBACK and callback_cap is not None:
        cap = callback_cap if cap is None else min(cap, callback_cap)
    if not await _reserve(session, day, campaign.value, row.daily_limit, cap):
        await session.rollback()
        state.skipped_campaigns.add(campaign)
        return await claim_one(
            session, rules, now, dialer, state, campaigns=campaigns, callback_cap=callback_cap
        )
    if not await _reserve_number(session, number, day, rules.per_number_day):
        await session.rollback()
        if campaign is Campaign.CLICK:  # asked for now, not tomorrow: the agent clicks again
            await _stop(session, job_id, now)
            await session.commit()
            state.stopped_jobs += 1
            return await claim_one(
                session, rules, now, dialer, state, campaigns=campaigns, callback_cap=callback_cap
            )
        tomorrow = rules.window.next_open(rules.window.bounds(now)[1])
        await session.execute(
            update(DialerJob)
            .where(DialerJob.id == job_id, DialerJob.state == JobState.PENDING)
            .values(not_before=tomorrow)
        )
        await session.commit()
        state.deferred += 1
        return await claim_one(
            session, rules, now, dialer, state, campaigns=campaigns, callback_cap=callback_cap
        )

    attempt_id = f"{ATTEMPT_PREFIX}{uuid.uuid4().hex}"
    attempt_no = row.attempts + 1
    await execute_core(
        session,
        _NEW_ATTEMPT,
        {
            "id": attempt_id,
            "job_id": job_id,
            "attempt_no": attempt_no,
            "campaign": campaign,
            "number": number,
            "day": day,
            "started_at": now,
            "dialer": dialer,
        },
    )
    await execute_core(session, _DIALING, {"job": job_id, "attempt_no": attempt_no})
    await session.commit()
    return Claimed(attempt_id, job_id, attempt_no, campaign, number, row.complaint_number, row.seat)


async def _why_not_dial(session: AsyncSession, row: Any, now: datetime) -> str | None:
    """Stop or defer a claimed job that must not be dialled now (in the claim's transaction):
    a do-not-call number, a complaint that moved on, an abandoned call in the last 72 h. The
    facts come with the claimed row (:func:`claim_one`)."""
    if row.do_not_call:
        await _stop(session, row.id, now)
        return "do not call"
    if row.campaign == Campaign.CLICK:
        if row.not_before < now - CLICK_STALE:
            # The agent asked a while ago and the limits held it back: no surprise call later.
            await _stop(session, row.id, now)
            return "click-to-call too old"
    elif row.complaint_id is not None:
        status = row.complaint_status
        still = (
            status == ComplaintStatus.RESOLVED
            if row.campaign == Campaign.FEEDBACK
            else status in WITH_OFFICER
        )
        if not still:
            await _stop(session, row.id, now)
            return f"complaint is {status}"
    if row.last_abandoned is not None:
        await session.execute(
            update(DialerJob)
            .where(DialerJob.id == row.id)
            .values(not_before=row.last_abandoned + ABANDON_QUIET)
        )
        return "abandoned in the last 72 h"
    return None


async def _stop(session: AsyncSession, job_id: int, now: datetime) -> None:
    await session.execute(
        update(DialerJob)
        .where(DialerJob.id == job_id)
        .values(state=JobState.STOPPED, finished_at=now)
    )


# ----------------------------------------------------------------------------- outcomes


#: The attempt an AMI event names, as a bind parameter of the statements below (built once and
#: sent as Core, as :data:`_DIALING`: one of them per event the dialer acts on).
_ATTEMPT = DialerAttempt.id == bindparam("attempt", type_=DialerAttempt.__table__.c.id.type)
_IS_CLICK = DialerAttempt.campaign == literal_column(f"'{Campaign.CLICK.value}'")
_ANSWERED = (
    update(DialerAttempt)
    .where(_ATTEMPT, DialerAttempt.ended_at.is_(None))
    .values(
        answered=case((_IS_CLICK, DialerAttempt.answered), else_=True),
        # Not before the attempt began, whatever the wall clock did since.
        answered_at=case(
            (_IS_CLICK, DialerAttempt.answered_at),
            else_=func.greatest(
                DialerAttempt.started_at, bindparam("now", type_=DateTime(timezone=True))
            ),
        ),
        originate_reason=4,
    )
    .returning(DialerAttempt.id)
)
_DIAL_STATUS = (
    update(DialerAttempt)
    .where(_ATTEMPT, _IS_CLICK, DialerAttempt.ended_at.is_(None))
    .values(
        dial_status=bindparam("status", type_=String),
        answered=DialerAttempt.answered | bindparam("citizen_answered", type_=Boolean),
        answered_at=case(
            (
                bindparam("citizen_answered", type_=Boolean),
                bindparam("now", type_=DateTime(timezone=True)),
            ),
            else_=DialerAttempt.answered_at,
        ),
    )
    .returning(DialerAttempt.id)
)
_REASON = (
    update(DialerAttempt)
    .where(_ATTEMPT, DialerAttempt.ended_at.is_(None))
    .values(originate_reason=bindparam("reason", type_=Integer))
)
_ABANDONED = (
    update(DialerAttempt)
    .where(_ATTEMPT, DialerAttempt.answered.is_(True))
    .values(abandoned=True)
    .returning(DialerAttempt.id)
)


async def mark_answered(session: AsyncSession, attempt_id: str, now: datetime) -> bool:
    """OriginateResponse Success: the citizen answered (the script runs now). For a
    click-to-call it is the agent's seat that answered: the citizen is dialled now, and counts
    as answered only at their ``DialEnd`` ANSWER (:func:`record_dial_status`)."""
    done = await execute_core(session, _ANSWERED, {"attempt": attempt_id, "now": now})
    return done.scalar_one_or_none() is not None


async def click_seat(session: AsyncSession, attempt_id: str) -> str | None:
    """The seat a click-to-call attempt rang (None for every other campaign)."""
    seat = await session.scalar(
        select(DialerJob.seat)
        .join(DialerAttempt, DialerAttempt.job_id == DialerJob.id)
        .where(DialerAttempt.id == attempt_id, DialerJob.campaign == Campaign.CLICK)
    )
    return None if seat is None else str(seat)


async def record_dial_status(
    session: AsyncSession, attempt_id: str, status: str, now: datetime
) -> bool:
    """Click-to-call: ``DialEnd`` of the seat's channel towards the citizen. ANSWER: the
    citizen answered (the attempt is connected: ``answered``)."""
    done = await execute_core(
        session,
        _DIAL_STATUS,
        {
            "attempt": attempt_id,
            "status": status.upper()[:16],
            "citizen_answered": status.upper() == "ANSWER",
            "now": now,
        },
    )
    return done.scalar_one_or_none() is not None


async def record_reason(session: AsyncSession, attempt_id: str, reason: int | None) -> None:
    """A failed OriginateResponse: keep its Reason for the Hangup that ends the attempt."""
    await execute_core(session, _REASON, {"attempt": attempt_id, "reason": reason})


async def mark_abandoned(session: AsyncSession, attempt_id: str, now: datetime) -> bool:
    """The citizen, answered and put in the agents' queue, hung up there before an agent took
    the call (``QueueCallerAbandon``): an abandoned call (no call again for 72 h)."""
    done = await execute_core(session, _ABANDONED, {"attempt": attempt_id})
    return done.scalar_one_or_none() is not None


async def record_cause(session: AsyncSession, attempt_id: str, cause: int | None) -> None:
    """A Hangup after the attempt was already finished (by its OriginateResponse): keep the
    cause for the record."""
    if cause is None:
        return
    await session.execute(
        update(DialerAttempt)
        .where(DialerAttempt.id == attempt_id, DialerAttempt.hangup_cause.is_(None))
        .values(hangup_cause=cause)
    )


@dataclass(frozen=True, slots=True)
class Finished:
    attempt_id: str
    job_id: int
    outcome: Outcome
    job_state: JobState
    retry_at: datetime | None
    survey: SurveyResult | None


#: A channel given back on one budget row (built once; sent as Core, as :data:`_DIALING`).
_RELEASE = (
    update(DialerBudget)
    .where(
        DialerBudget.day == bindparam("of_day", type_=Date),
        DialerBudget.scope == bindparam("of_scope", type_=String),
        DialerBudget.active > 0,
    )
    .values(active=DialerBudget.active - 1)
)
#: An open attempt with its job (both locked), its campaign's attempt cap and what its call's
#: script recorded (none if it never ran): one round trip, where it was four.
_OPEN_ATTEMPT = (
    select(DialerAttempt, DialerJob, DialerCampaign.max_attempts, IvrSession.detail)
    .join(DialerJob, DialerJob.id == DialerAttempt.job_id)
    .join(DialerCampaign, DialerCampaign.name == DialerJob.campaign)
    .outerjoin(IvrSession, IvrSession.uniqueid == DialerAttempt.id)
    .where(
        DialerAttempt.id == bindparam("attempt", type_=DialerAttempt.__table__.c.id.type),
        DialerAttempt.ended_at.is_(None),
    )
    .with_for_update(of=(DialerAttempt, DialerJob))
)


async def finish_attempt(
    session: AsyncSession,
    attempt_id: str,
    now: datetime,
    rules: DialRules,
    reference: Reference,
    *,
    reason: int | None = None,
    cause: int | None = None,
    lost: bool = False,
) -> Finished | None:
    """End an open attempt (idempotent: None if it had ended already), release its channel,
    and move its job on: done, retry at the outcome's delay, or unreachable after the cap.
    A feedback answer closes (1) or reopens (2) the complaint through the lifecycle; a
    citizen's "9" puts the number on the do-not-call list. The caller commits."""
    found = (await session.execute(_OPEN_ATTEMPT, {"attempt": attempt_id})).one_or_none()
    if found is None:
        if cause is not None:
            await record_cause(session, attempt_id, cause)
        return None
    attempt, job, max_attempts, detail = found
    detail = detail or {}
    if attempt.campaign is Campaign.CLICK and not lost:
        outcome = click_outcome(
            attempt.originate_reason == 4,
            attempt.dial_status,
            reason if reason is not None else attempt.originate_reason,
            cause,
        )
    elif attempt.abandoned:
        outcome = Outcome.ABANDONED
    elif attempt.answered:
        outcome = answered_outcome(detail.get("result"))
        if outcome is Outcome.ABANDONED:
            attempt.abandoned = True
    elif lost:
        outcome = Outcome.LOST
    else:
        outcome = unanswered_outcome(
            reason if reason is not None else attempt.originate_reason, cause
        )
    # Never before it began or was answered (the wall clock may have stepped back since):
    # no negative durations.
    attempt.ended_at = max(now, attempt.answered_at or attempt.started_at)
    attempt.outcome = outcome
    if reason is not None and attempt.originate_reason is None:
        attempt.originate_reason = reason
    if cause is not None:
        attempt.hangup_cause = cause
    # Release the channel: the 'all' row first, then the campaign's, in the order the claims
    # lock them (one UPDATE of both rows could lock them the other way round: a deadlock).
    for scope in ("all", attempt.campaign.value):
        await execute_core(session, _RELEASE, {"of_day": attempt.day, "of_scope": scope})

    survey = _survey(detail)
    if detail.get("dnc") is True:
        await add_dnc(session, str(job.number), DncSource.CITIZEN, None, "pressed 9 on a call")
    job.last_outcome = outcome
    retry_at = rules.retry.next_try(outcome, job.attempts, max_attempts, now)
    if survey is not None or outcome not in RETRIED:
        job.state, job.finished_at = JobState.DONE, now
    elif retry_at is not None:
        job.state, job.not_before = JobState.PENDING, retry_at
    else:
        await _give_up(session, job.id, job.campaign, job.complaint_id, job.attempts, now, outcome)
        job.state = JobState.UNREACHABLE
    if survey is not None:
        job.result = survey
        await _record_survey(session, job, survey, now, reference)
    await session.flush()
    if job.campaign == Campaign.CALLBACK and job.state != JobState.PENDING:
        await settle_callback_requests(session, job.id)
    return Finished(attempt_id, job.id, outcome, job.state, retry_at, survey)


def _survey(detail: dict[str, Any]) -> SurveyResult | None:
    value = detail.get("survey")
    return (
        SurveyResult(value) if value in (SurveyResult.SATISFIED, SurveyResult.UNSATISFIED) else None
    )


async def _record_survey(
    session: AsyncSession, job: DialerJob, survey: SurveyResult, now: datetime, reference: Reference
) -> None:
    """The citizen's answer on the complaint, through the lifecycle: satisfied closes it, not
    satisfied reopens it one level up (the lifecycle escalates a reopen)."""
    number = (
        await session.execute(select(Complaint.number).where(Complaint.id == job.complaint_id))
    ).scalar_one()
    action, note = (
        (Action.CLOSE, "feedback call: citizen satisfied (pressed 1)")
        if survey is SurveyResult.SATISFIED
        else (Action.REOPEN, "feedback call: citizen not satisfied (pressed 2)")
    )
    try:
        async with session.begin_nested():
            await apply_action(
                session,
                number=number,
                action=action,
                actor_user=None,
                note=note,
                now=now,
                reference=reference,
            )
    except TransitionRefused as refused:
        # Someone moved the complaint meanwhile (an agent reopened it on a call): the answer
        # is kept on the job and in the feedback report, the complaint is left as it is.
        log.info("feedback on %s not applied: %s", number, refused.reason)


async def _give_up(
    session: AsyncSession,
    job_id: int,
    campaign: Campaign,
    complaint_id: int | None,
    attempts: int,
    now: datetime,
    outcome: Outcome | None,
) -> None:
    """The job reached its attempt cap: unreachable, and for feedback a history row."""
    await session.execute(
        update(DialerJob)
        .where(DialerJob.id == job_id)
        .values(state=JobState.UNREACHABLE, finished_at=now)
    )
    if campaign is not Campaign.FEEDBACK or complaint_id is None:
        return
    status = (
        await session.execute(select(Complaint.status).where(Complaint.id == complaint_id))
    ).scalar_one()
    ended = f", the last {outcome.value.replace('_', ' ')}" if outcome is not None else ""
    session.add(
        ComplaintHistory(
            complaint_id=complaint_id,
            at=now,
            actor_user_id=None,
            action=HistoryAction.FEEDBACK_UNREACHABLE,
            from_status=status,
            to_status=status,
            note=f"feedback call: citizen not reached in {attempts} attempt(s){ended}",
        )
    )


async def add_dnc(
    session: AsyncSession,
    number: str,
    source: DncSource,
    user_id: int | None,
    note: str | None,
) -> bool:
    """Put ``number`` on the do-not-call list (once) and stop its pending jobs."""
    added = await session.execute(
        insert(DoNotCall)
        .values(number=number, source=source, added_by=user_id, note=note)
        .on_conflict_do_nothing()
        .returning(DoNotCall.number)
    )
    await session.execute(
        update(DialerJob)
        .where(DialerJob.number == number, DialerJob.state == JobState.PENDING)
        .values(state=JobState.STOPPED, finished_at=func.now())
    )
    return added.scalar_one_or_none() is not None


async def open_attempts(session: AsyncSession) -> dict[str, datetime]:
    """Attempts still open, with when they started (reconciliation)."""
    rows = await session.execute(
        select(DialerAttempt.id, DialerAttempt.started_at).where(DialerAttempt.ended_at.is_(None))
    )
    return {attempt_id: started_at for attempt_id, started_at in rows}
