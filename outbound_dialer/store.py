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

import logging
import uuid
from collections.abc import Sequence
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
    any_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal,
    literal_column,
    select,
    text,
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


#: Up to ``wanted`` calls and channels taken on ``scope``'s row of ``day``, as many as its
#: bounds leave (``allowed`` calls a day, ``cap`` channels; NULL: no bound), in one statement
#: that returns how many it took. The row is locked first (``current``), so the arithmetic is
#: on its latest version whatever another dialer committed meanwhile; a claim of a batch takes
#: its calls with one of these per scope, where it was one statement per call.
_RESERVE = text(
    """
    WITH current AS (
        SELECT used, active FROM dialer_budget
        WHERE day = :day AND scope = :scope
        FOR UPDATE
    ), granted AS (
        SELECT greatest(0, least(
            :wanted,
            coalesce(:allowed - used, :wanted),
            coalesce(:cap - active, :wanted)
        )) AS calls
        FROM current
    )
    UPDATE dialer_budget
    SET used = used + granted.calls, active = active + granted.calls
    FROM granted
    WHERE day = :day AND scope = :scope
    RETURNING granted.calls
    """
).bindparams(
    bindparam("day", type_=Date),
    bindparam("scope", type_=String),
    bindparam("wanted", type_=Integer),
    bindparam("allowed", type_=Integer),
    bindparam("cap", type_=Integer),
)
#: The day's row of a scope, made by its first claim (then :data:`_RESERVE` again).
_BUDGET_ROW = (
    insert(DialerBudget)
    .values(day=bindparam("day", type_=Date), scope=bindparam("scope", type_=String), used=0)
    .on_conflict_do_nothing(index_elements=["day", "scope"])
)
#: Calls and channels a batch took and will not use, given back in the same transaction.
_GIVE_BACK = (
    update(DialerBudget)
    .where(
        DialerBudget.day == bindparam("of_day", type_=Date),
        DialerBudget.scope == bindparam("of_scope", type_=String),
    )
    .values(
        used=DialerBudget.used - bindparam("calls", type_=Integer),
        active=DialerBudget.active - bindparam("calls", type_=Integer),
    )
)


async def _reserve(
    session: AsyncSession,
    day: date,
    scope: str,
    wanted: int,
    allowed: int | None,
    cap: int | None,
) -> int:
    """Take up to ``wanted`` calls and channels on ``scope``'s row of ``day``: how many."""
    if wanted <= 0 or (allowed is not None and allowed <= 0) or (cap is not None and cap <= 0):
        return 0  # used and active are never below 0: no row could give one
    params = {"day": day, "scope": scope, "wanted": wanted, "allowed": allowed, "cap": cap}
    taken = (await execute_core(session, _RESERVE, params)).scalar_one_or_none()
    if taken is None:  # the day's first call on this scope
        await execute_core(session, _BUDGET_ROW, {"day": day, "scope": scope})
        taken = (await execute_core(session, _RESERVE, params)).scalar_one()
    return int(taken)


async def _give_back(session: AsyncSession, day: date, calls: dict[str, int]) -> None:
    """Return calls taken and not used: ``calls`` by scope, 'all' first (the claims' order)."""
    scopes = sorted((scope for scope, n in calls.items() if n), key=lambda s: (s != "all", s))
    if scopes:
        await execute_core(
            session,
            _GIVE_BACK,
            [{"of_day": day, "of_scope": scope, "calls": calls[scope]} for scope in scopes],
        )


#: One more attempt today for each of a batch's numbers, under the cap: returns the numbers
#: it was given to. In the numbers' order, so that two dialers lock their rows alike.
_RESERVE_NUMBERS = text(
    """
    INSERT INTO dialer_number_day (number, day, attempts)
    SELECT number, :day, 1 FROM unnest(CAST(:numbers AS text[])) AS number ORDER BY number
    ON CONFLICT (number, day) DO UPDATE SET attempts = dialer_number_day.attempts + 1
    WHERE dialer_number_day.attempts < :cap
    RETURNING number
    """
).bindparams(
    bindparam("day", type_=Date),
    bindparam("numbers", type_=ARRAY(String)),
    bindparam("cap", type_=Integer),
)


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
    .limit(bindparam("most", type_=Integer))
    .with_for_update(of=DialerJob, skip_locked=True)
)


def _bound(model: Any, *names: str) -> dict[str, Any]:
    """``model``'s columns ``names``, each bound to the parameter of its own name and type: a
    statement built once, its values given at each execution."""
    columns = model.__table__.c
    return {name: bindparam(name, type_=columns[name].type) for name in names}


#: The claimed job's attempt and the job moved to ``dialing``, built once and sent as Core
#: (:func:`core.db.session.execute_core`): the ORM's unit of work and its UPDATE's
#: synchronisation of loaded objects (there are none) cost more than the statements.
_NEW_ATTEMPT = insert(DialerAttempt).values(
    _bound(
        DialerAttempt,
        "id",
        "job_id",
        "attempt_no",
        "campaign",
        "number",
        "day",
        "started_at",
        "dialer",
    )
)
_DIALING = (
    update(DialerJob)
    .where(DialerJob.id == bindparam("job", type_=BigInteger))
    .values(state=JobState.DIALING, attempts=bindparam("attempt_no", type_=Integer))
)


async def claim_jobs(
    session: AsyncSession,
    rules: DialRules,
    now: datetime,
    dialer: str,
    state: ClaimPass,
    *,
    campaigns: frozenset[Campaign] = frozenset({Campaign.FEEDBACK, Campaign.FOLLOWUP}),
    callback_cap: int | None = None,
    most: int = 1,
) -> list[Claimed]:
    """Claim up to ``most`` due jobs in their order and reserve everything their calls need,
    in one transaction that this function commits (or rolls back: then nothing is
    reserved). Fewer than ``most`` when a bound leaves fewer (each job's number once a
    batch). Empty with ``state.stopped`` set means stop this pass (outside the window, budget
    spent, channels full, no jobs).

    A batch costs what one claim did (about six statements): the jobs with their facts, one
    reservation per budget row for all of them, their numbers' day in one statement, their
    attempts and their new state as two executemanys. Jobs that must not be dialled (do not
    call, the complaint moved on, the 72 h rule, the attempt cap, the number's cap) are
    stopped or deferred in the same transaction, and the calls they took given back."""
    day = helpline_day(now)
    while True:
        allowed = rules.pacing.allowed(now)
        if allowed <= 0:
            state.stopped = "outside the window" if not rules.window.contains(now) else "budget"
            await session.rollback()
            return []
        wanted = [c.value for c in campaigns - state.skipped_campaigns]
        if not wanted:
            state.stopped = "no campaign left"
            await session.rollback()
            return []
        rows = (
            await session.execute(
                _CLAIM,
                {"now": now, "quiet_since": now - ABANDON_QUIET, "wanted": wanted, "most": most},
            )
        ).all()
        if not rows:
            await session.rollback()
            state.stopped = state.stopped or "no due job"
            return []
        dial = await _dialable(session, rows, now)
        if not dial:
            await session.commit()  # the jobs' new states (stopped, deferred, unreachable)
            continue
        taken = await _reserve(session, day, "all", len(dial), allowed, rules.max_channels)
        if taken == 0:
            await session.commit()  # the others' new states; nothing was reserved
            state.stopped = "budget or channels (all campaigns)"
            return []
        dial = dial[:taken]
        unused = {"all": 0}  # taken above, then not dialled (given back below)
        for campaign in sorted({Campaign(row.campaign) for row in dial}):
            of_campaign = [row for row in dial if row.campaign == campaign]
            cap = of_campaign[0].max_concurrent
            if campaign is Campaign.CALLBACK and callback_cap is not None:
                cap = callback_cap if cap is None else min(cap, callback_cap)
            got = await _reserve(
                session, day, campaign.value, len(of_campaign), of_campaign[0].daily_limit, cap
            )
            if got < len(of_campaign):  # its limit is reached: the rest of the pass without it
                state.skipped_campaigns.add(campaign)
                left_out = {row.id for row in of_campaign[got:]}
                dial = [row for row in dial if row.id not in left_out]
                unused["all"] += len(left_out)
        if dial:
            dial = await _reserve_numbers(session, dial, day, now, rules, state, unused)
        await _give_back(session, day, unused)
        if dial:
            break
        await session.commit()  # what was stopped or deferred; look at the next jobs

    claimed = [
        Claimed(
            f"{ATTEMPT_PREFIX}{uuid.uuid4().hex}",
            row.id,
            row.attempts + 1,
            Campaign(row.campaign),
            str(row.number),
            row.complaint_number,
            row.seat,
        )
        for row in dial
    ]
    await execute_core(
        session,
        _NEW_ATTEMPT,
        [
            {
                "id": c.attempt_id,
                "job_id": c.job_id,
                "attempt_no": c.attempt_no,
                "campaign": c.campaign,
                "number": c.number,
                "day": day,
                "started_at": now,
                "dialer": dialer,
            }
            for c in claimed
        ],
    )
    await execute_core(
        session, _DIALING, [{"job": c.job_id, "attempt_no": c.attempt_no} for c in claimed]
    )
    await session.commit()
    return claimed


async def _dialable(session: AsyncSession, rows: Sequence[Any], now: datetime) -> list[Any]:
    """The claimed rows that may be dialled now, one per number; the others are stopped,
    deferred or given up here (a job whose number is already in the batch stays due)."""
    dial: list[Any] = []
    numbers: set[str] = set()
    for row in rows:
        if await _why_not_dial(session, row, now) is not None:
            continue
        if row.attempts >= row.max_attempts:  # the cap was lowered after its last attempt
            await _give_up(
                session, row.id, Campaign(row.campaign), row.complaint_id, row.attempts, now, None
            )
            continue
        if str(row.number) not in numbers:
            numbers.add(str(row.number))
            dial.append(row)
    return dial


async def _reserve_numbers(
    session: AsyncSession,
    dial: list[Any],
    day: date,
    now: datetime,
    rules: DialRules,
    state: ClaimPass,
    unused: dict[str, int],
) -> list[Any]:
    """One more attempt today for each row's number under the per-number cap; a row whose
    number has none left is deferred to the window's next opening (a click-to-call stopped:
    asked for now, not tomorrow) and its calls are added to ``unused``."""
    given = await execute_core(
        session,
        _RESERVE_NUMBERS,
        {
            "day": day,
            "numbers": sorted(str(row.number) for row in dial),
            "cap": rules.per_number_day,
        },
    )
    allowed = set(given.scalars())
    refused = [row for row in dial if str(row.number) not in allowed]
    tomorrow = rules.window.next_open(rules.window.bounds(now)[1])
    for row in refused:
        unused["all"] += 1
        unused[row.campaign] = unused.get(row.campaign, 0) + 1
        if row.campaign == Campaign.CLICK:  # the agent clicks again
            await _stop(session, row.id, now)
            state.stopped_jobs += 1
        else:
            await session.execute(
                update(DialerJob)
                .where(DialerJob.id == row.id, DialerJob.state == JobState.PENDING)
                .values(not_before=tomorrow)
            )
            state.deferred += 1
    return [row for row in dial if str(row.number) in allowed]


async def _why_not_dial(session: AsyncSession, row: Any, now: datetime) -> str | None:
    """Stop or defer a claimed job that must not be dialled now (in the claim's transaction):
    a do-not-call number, a complaint that moved on, an abandoned call in the last 72 h. The
    facts come with the claimed row (:func:`claim_jobs`)."""
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
    .returning(DialerAttempt.campaign)
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


async def mark_answered(session: AsyncSession, attempt_id: str, now: datetime) -> Campaign | None:
    """OriginateResponse Success: the citizen answered (the script runs now). For a
    click-to-call it is the agent's seat that answered: the citizen is dialled now, and counts
    as answered only at their ``DialEnd`` ANSWER (:func:`record_dial_status`). The attempt's
    campaign; None if it had ended."""
    done = await execute_core(session, _ANSWERED, {"attempt": attempt_id, "now": now})
    campaign = done.scalar_one_or_none()
    return None if campaign is None else Campaign(campaign)


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


#: An attempt's channel given back on the 'all' row and its campaign's, locking them in the
#: order the claims do ('all' first: one plain UPDATE of both rows could lock them the other
#: way round, a deadlock with a claim).
_BUDGET_ROWS = (
    select(DialerBudget.day, DialerBudget.scope)
    .where(
        DialerBudget.day == bindparam("budget_day", type_=Date),
        DialerBudget.scope.in_([literal("all"), bindparam("budget_campaign", type_=String)]),
        DialerBudget.active > 0,
    )
    .order_by(DialerBudget.scope != literal("all"))
    .with_for_update()
    .cte("budget_rows")
)
_RELEASE = (
    update(DialerBudget)
    .where(DialerBudget.day == _BUDGET_ROWS.c.day, DialerBudget.scope == _BUDGET_ROWS.c.scope)
    .values(active=DialerBudget.active - 1)
)
#: An open attempt with its job (both locked), its campaign's attempt cap and what its call's
#: script recorded (none if it never ran): one round trip. Columns, not loaded objects: the
#: end is written as Core (:data:`_END`), so the ORM's identity map and flush are not needed.
_OPEN_ATTEMPT = (
    select(
        DialerAttempt.campaign,
        DialerAttempt.day,
        DialerAttempt.started_at,
        DialerAttempt.answered_at,
        DialerAttempt.answered,
        DialerAttempt.abandoned,
        DialerAttempt.originate_reason,
        DialerAttempt.hangup_cause,
        DialerAttempt.dial_status,
        DialerJob.id.label("job_id"),
        DialerJob.number,
        DialerJob.attempts,
        DialerJob.complaint_id,
        DialerJob.not_before,
        DialerJob.finished_at,
        DialerJob.result,
        DialerCampaign.max_attempts,
        IvrSession.detail,
    )
    .join(DialerJob, DialerJob.id == DialerAttempt.job_id)
    .join(DialerCampaign, DialerCampaign.name == DialerJob.campaign)
    .outerjoin(IvrSession, IvrSession.uniqueid == DialerAttempt.id)
    .where(_ATTEMPT, DialerAttempt.ended_at.is_(None))
    .with_for_update(of=(DialerAttempt.__table__, DialerJob.__table__))
)
#: The attempt ended and its job moved on, in one statement (the job's UPDATE as a CTE).
_END = (
    update(DialerAttempt)
    .where(_ATTEMPT)
    .values(
        _bound(
            DialerAttempt, "ended_at", "outcome", "abandoned", "originate_reason", "hangup_cause"
        )
    )
    .add_cte(
        update(DialerJob)
        .where(DialerJob.id == bindparam("job"))
        .values(_bound(DialerJob, "state", "last_outcome", "not_before", "finished_at", "result"))
        .cte("job")
    )
)
#: :data:`_END` with the channel given back (:data:`_RELEASE` as a CTE): an attempt's end in
#: one statement when nothing else is written after it (no survey, no callback request).
_END_AND_RELEASE = _END.add_cte(_RELEASE.cte("released"))


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
    found = (await execute_core(session, _OPEN_ATTEMPT, {"attempt": attempt_id})).one_or_none()
    if found is None:
        if cause is not None:
            await record_cause(session, attempt_id, cause)
        return None
    campaign = Campaign(found.campaign)
    detail = found.detail or {}
    abandoned = found.abandoned
    originate_reason = found.originate_reason if found.originate_reason is not None else reason
    if campaign is Campaign.CLICK and not lost:
        outcome = click_outcome(
            found.originate_reason == 4,
            found.dial_status,
            reason if reason is not None else found.originate_reason,
            cause,
        )
    elif found.abandoned:
        outcome = Outcome.ABANDONED
    elif found.answered:
        outcome = answered_outcome(detail.get("result"))
        abandoned = outcome is Outcome.ABANDONED
    elif lost:
        outcome = Outcome.LOST
    else:
        outcome = unanswered_outcome(
            reason if reason is not None else found.originate_reason, cause
        )
    survey = _survey(detail)
    if detail.get("dnc") is True:
        await add_dnc(session, str(found.number), DncSource.CITIZEN, None, "pressed 9 on a call")
    retry_at = rules.retry.next_try(outcome, found.attempts, found.max_attempts, now)
    not_before, finished_at = found.not_before, found.finished_at
    if survey is not None or outcome not in RETRIED:
        state, finished_at = JobState.DONE, now
    elif retry_at is not None:
        state, not_before = JobState.PENDING, retry_at
    else:
        state, finished_at = JobState.UNREACHABLE, now
        await _unreachable_history(
            session, campaign, found.complaint_id, found.attempts, now, outcome
        )
    # The channel last: the budget rows are locked from then to the caller's COMMIT, and
    # every claim and every other attempt's end waits for them. With nothing written after
    # the end (the usual case), the end and the channel are one statement.
    writes_after = (survey is not None and found.complaint_id is not None) or (
        campaign is Campaign.CALLBACK and state != JobState.PENDING
    )
    await execute_core(
        session,
        _END if writes_after else _END_AND_RELEASE,
        {
            "attempt": attempt_id,
            # Never before it began or was answered (the wall clock may have stepped back
            # since): no negative durations.
            "ended_at": max(now, found.answered_at or found.started_at),
            "outcome": outcome,
            "abandoned": abandoned,
            "originate_reason": originate_reason,
            "hangup_cause": cause if cause is not None else found.hangup_cause,
            "job": found.job_id,
            "state": state,
            "last_outcome": outcome,
            "not_before": not_before,
            "finished_at": finished_at,
            "result": survey if survey is not None else found.result,
            "budget_day": found.day,
            "budget_campaign": campaign,
        },
    )
    if writes_after:
        if survey is not None and found.complaint_id is not None:
            await _record_survey(session, found.complaint_id, survey, now, reference)
        if campaign is Campaign.CALLBACK and state != JobState.PENDING:
            await settle_callback_requests(session, found.job_id)
        await execute_core(
            session, _RELEASE, {"budget_day": found.day, "budget_campaign": campaign}
        )
    return Finished(attempt_id, found.job_id, outcome, state, retry_at, survey)


def _survey(detail: dict[str, Any]) -> SurveyResult | None:
    value = detail.get("survey")
    return (
        SurveyResult(value) if value in (SurveyResult.SATISFIED, SurveyResult.UNSATISFIED) else None
    )


async def _record_survey(
    session: AsyncSession,
    complaint_id: int,
    survey: SurveyResult,
    now: datetime,
    reference: Reference,
) -> None:
    """The citizen's answer on the complaint, through the lifecycle: satisfied closes it, not
    satisfied reopens it one level up (the lifecycle escalates a reopen)."""
    number = (
        await session.execute(select(Complaint.number).where(Complaint.id == complaint_id))
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
    await _unreachable_history(session, campaign, complaint_id, attempts, now, outcome)


async def _unreachable_history(
    session: AsyncSession,
    campaign: Campaign,
    complaint_id: int | None,
    attempts: int,
    now: datetime,
    outcome: Outcome | None,
) -> None:
    """A feedback job given up: a row in its complaint's history (no other campaign has one)."""
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
