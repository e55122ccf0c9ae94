"""The outbound dialer's rules, pure: the calling window, the pacing of the day's budget, retry
delays by outcome, and what an AMI outcome means.

No I/O and no clock of its own: every function takes ``now`` (an aware datetime), so tests
drive it with any schedule (``tests/unit/test_dialing.py`` proves the properties with
hypothesis). The database enforces what these functions compute: the dialer passes
:func:`Pacing.allowed` as the bound of one atomic ``UPDATE ... WHERE used < :allowed``
(``outbound_dialer.store``), never checking in Python and acting later.

The helpline's day is IST (:mod:`core.domain.clock`); the window lies inside one IST day.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Final

import phonenumbers

from core.domain.clock import day_start


class Campaign(enum.StrEnum):
    """What an outbound call is for (``dialer_campaigns.name``)."""

    #: After every resolution: 1 satisfied (the complaint closes), 2 not (it reopens).
    FEEDBACK = "feedback"
    #: Complaints not yet resolved, on a schedule: status, due date, officer level.
    FOLLOWUP = "followup"
    #: Callers the IVR promised to call back (``callback_requests``), in request order.
    CALLBACK = "callback"
    #: An agent or supervisor at the desk calls a citizen about a complaint or a callback
    #: request: their seat rings first, then the citizen (the only way out for a seat).
    CLICK = "click"


class JobState(enum.StrEnum):
    """Where an outbound job is (``dialer_jobs.state``)."""

    #: Waiting for ``not_before`` (and for budget, a free channel, the window).
    PENDING = "pending"
    #: One attempt is on the line (its ``dialer_attempts`` row is open).
    DIALING = "dialing"
    #: The call did what it was for (survey answered, message heard).
    DONE = "done"
    #: No attempt reached the citizen before the campaign's attempt cap.
    UNREACHABLE = "unreachable"
    #: No longer to be dialled: the number is on the do-not-call list, or the complaint moved on.
    STOPPED = "stopped"


class Outcome(enum.StrEnum):
    """How one attempt ended (``dialer_attempts.outcome``)."""

    #: Answered, and the script reached its end (survey answer, message heard).
    COMPLETED = "completed"
    #: 486 Busy Here / cause 17.
    BUSY = "busy"
    #: Rang out, or the citizen rejected the call.
    NO_ANSWER = "no_answer"
    #: No circuit: congestion (cause 34 and the like).
    CONGESTION = "congestion"
    #: The channel could not be created, the Originate was refused, or the number is wrong.
    FAILED = "failed"
    #: Answered, but no key came however often the prompt was repeated.
    SILENCE = "silence"
    #: Answered, and hung up before the script's end.
    HUNG_UP = "hung_up"
    #: Answered while no agent was free (callbacks only): the citizen heard the apology.
    ABANDONED = "abandoned"
    #: After a crash: the attempt was open but Asterisk had no channel for it.
    LOST = "lost"


class SurveyResult(enum.StrEnum):
    SATISFIED = "satisfied"
    UNSATISFIED = "unsatisfied"


class DncSource(enum.StrEnum):
    """Who put a number on the do-not-call list."""

    #: The citizen pressed 9 on a follow-up call.
    CITIZEN = "citizen"
    SUPERVISOR = "supervisor"


#: Outcomes after which the job is retried (while attempts remain).
RETRIED: Final = frozenset(
    {
        Outcome.BUSY,
        Outcome.NO_ANSWER,
        Outcome.CONGESTION,
        Outcome.FAILED,
        Outcome.SILENCE,
        Outcome.HUNG_UP,
        Outcome.LOST,
    }
)

#: Default retry delays. Busy: the citizen is on the phone now, try within the hour. No answer:
#: they are away, try in a few hours. Congestion: the network's trouble, not theirs, soon.
#: Failed: likely to fail again, wait longest. Silence / hung up: they answered and did not
#: want it now, try another part of the day. Lost: we do not know; as a no answer.
DEFAULT_RETRY_DELAYS: Final[Mapping[Outcome, timedelta]] = {
    Outcome.BUSY: timedelta(minutes=30),
    Outcome.NO_ANSWER: timedelta(hours=3),
    Outcome.CONGESTION: timedelta(minutes=15),
    Outcome.FAILED: timedelta(hours=6),
    Outcome.SILENCE: timedelta(hours=4),
    Outcome.HUNG_UP: timedelta(hours=4),
    Outcome.LOST: timedelta(hours=3),
}

#: No call to a number within this long after an abandoned call to it (TRAI's rule for
#: predictive dialling, and the issue's).
ABANDON_QUIET: Final = timedelta(hours=72)


@dataclass(frozen=True, slots=True)
class Window:
    """The calling window: ``[start, end)`` in IST, inside one day (start before end)."""

    start: time = time(9, 0)
    end: time = time(21, 0)

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise ValueError("the calling window must start before it ends, within one IST day")

    def bounds(self, now: datetime) -> tuple[datetime, datetime]:
        """The window of the IST day containing ``now``."""
        midnight = day_start(now)
        return (
            midnight.replace(hour=self.start.hour, minute=self.start.minute),
            midnight.replace(hour=self.end.hour, minute=self.end.minute),
        )

    def contains(self, now: datetime) -> bool:
        opens, closes = self.bounds(now)
        return opens <= now < closes

    def elapsed_fraction(self, now: datetime) -> float:
        """How much of today's window has passed: 0 before it opens, 1 after it closes."""
        opens, closes = self.bounds(now)
        if now <= opens:
            return 0.0
        if now >= closes:
            return 1.0
        return (now - opens) / (closes - opens)

    def next_open(self, at: datetime) -> datetime:
        """The first moment at or after ``at`` inside the window."""
        if self.contains(at):
            return at
        opens, _ = self.bounds(at)
        if at < opens:
            return opens
        tomorrow = day_start(at) + timedelta(days=1)
        return self.bounds(tomorrow)[0]


@dataclass(frozen=True, slots=True)
class Pacing:
    """How much of the day's ``budget`` may be spent by ``now``.

    ``allowed(now) = min(budget, floor(budget x elapsed_fraction(now)) + burst)`` inside the
    window, and nothing outside it: the budget flows evenly over the window, and ``burst``
    lets the first calls of the morning (and a backlog after a quiet hour) go at once. With
    the defaults (55,000 over 12 h, burst 200) the dialer may not exceed about 76 new calls
    a minute on average, and never has spent more than a quarter of the day's calls by noon
    (plus the burst).
    """

    budget: int
    window: Window = field(default_factory=Window)
    burst: int = 200

    def allowed(self, now: datetime) -> int:
        if not self.window.contains(now) or self.budget <= 0:
            return 0
        spread = math.floor(self.budget * self.window.elapsed_fraction(now))
        return min(self.budget, spread + max(self.burst, 0))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    delays: Mapping[Outcome, timedelta] = field(default_factory=lambda: DEFAULT_RETRY_DELAYS)
    window: Window = field(default_factory=Window)

    def next_try(
        self, outcome: Outcome, attempts: int, max_attempts: int, now: datetime
    ) -> datetime | None:
        """When to dial again after ``attempts`` attempts ending in ``outcome``; None: never
        (the call did its work, or the cap is reached). Always inside the window."""
        if outcome not in RETRIED or attempts >= max_attempts:
            return None
        delay = self.delays.get(outcome, DEFAULT_RETRY_DELAYS[outcome])
        return self.window.next_open(now + delay)


# ----------------------------------------------------------------------------- AMI outcomes

#: ``OriginateResponse``'s ``Reason`` is the last control frame the channel saw
#: (``AST_CONTROL_*`` in Asterisk's frame.h): 0 none (the channel could not be made),
#: 1 hangup, 3 ringing (it rang out), 4 answer, 5 busy, 8 congestion.
REASON_ANSWERED: Final = 4
_REASON_OUTCOMES: Final[Mapping[int, Outcome]] = {
    0: Outcome.FAILED,
    1: Outcome.NO_ANSWER,
    2: Outcome.NO_ANSWER,
    3: Outcome.NO_ANSWER,
    5: Outcome.BUSY,
    8: Outcome.CONGESTION,
}
#: Q.850 hang-up causes of a call that was never answered.
_CAUSE_OUTCOMES: Final[Mapping[int, Outcome]] = {
    17: Outcome.BUSY,
    18: Outcome.NO_ANSWER,
    19: Outcome.NO_ANSWER,
    21: Outcome.NO_ANSWER,
    34: Outcome.CONGESTION,
    38: Outcome.CONGESTION,
    41: Outcome.CONGESTION,
    42: Outcome.CONGESTION,
    44: Outcome.CONGESTION,
}


def unanswered_outcome(reason: int | None, cause: int | None) -> Outcome:
    """The outcome of a call that was never answered, from the Hangup's cause when there is
    one (it is the more precise), else the OriginateResponse's reason."""
    if cause is not None and cause in _CAUSE_OUTCOMES:
        return _CAUSE_OUTCOMES[cause]
    if reason is not None and reason in _REASON_OUTCOMES:
        return _REASON_OUTCOMES[reason]
    return Outcome.FAILED


def answered_outcome(script_result: str | None) -> Outcome:
    """The outcome of an answered call from what its FastAGI script stored (the session's
    ``detail["result"]``): ``completed``, ``silence``, ``abandoned``, or nothing (hung up)."""
    if script_result in (Outcome.COMPLETED, Outcome.SILENCE, Outcome.ABANDONED):
        return Outcome(script_result)
    return Outcome.HUNG_UP


# ----------------------------------------------------------------------------- click-to-call

#: The number types a seat may have the dialer call: Indian mobiles and fixed lines only (no
#: toll-free, premium-rate, shared-cost, VoIP, pager or personal numbers).
DIALABLE_TYPES: Final = frozenset(
    {
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    }
)


#: National series that are no citizen's line, refused whatever libphonenumber's metadata says
#: of them: 1600 (caller IDs of government and bank service calls: ``outbound_caller_id``;
#: typed "mobile" by libphonenumber), 140 (telemarketers), 1800 (toll-free), 1860 (shared cost),
#: 1900 (premium rate).
SPECIAL_SERIES: Final = ("1600", "140", "1800", "1860", "1900")


def dialable(number: str) -> bool:
    """``number`` is exactly 10 ASCII digits and, read as an Indian national number, a valid
    mobile or fixed line of no :data:`SPECIAL_SERIES`: the one rule of what the dialer may
    call (every ``Originate``: outbound_dialer.service; click-to-call refuses earlier with a
    422). International numbers, SIP URIs, short codes and premium-rate or toll-free series are
    refused (the dialplan puts the digits after ``PJSIP/`` and before ``@trunk``, so nothing
    else may ever reach it)."""
    if len(number) != 10 or not number.isascii() or not number.isdigit():
        return False
    if number.startswith(SPECIAL_SERIES):
        return False
    try:
        parsed = phonenumbers.parse(number, "IN")
    except phonenumbers.NumberParseException:
        return False
    return (
        parsed.country_code == 91
        and str(parsed.national_number) == number
        and phonenumbers.is_valid_number(parsed)
        and phonenumbers.number_type(parsed) in DIALABLE_TYPES
    )


def click_outcome(
    agent_answered: bool, dial_status: str | None, reason: int | None, cause: int | None
) -> Outcome:
    """How a click-to-call attempt ended. The seat rings first: if nobody there answered, the
    citizen was never dialled (the seat's outcome from the Hangup cause). Once the agent
    answered, ``Dial()``'s ``DIALSTATUS`` (the ``DialEnd`` event) says what the citizen did."""
    if not agent_answered:
        return unanswered_outcome(reason, cause)
    return _DIAL_STATUS_OUTCOMES.get((dial_status or "").upper(), Outcome.HUNG_UP)


_DIAL_STATUS_OUTCOMES: Final[Mapping[str, Outcome]] = {
    "ANSWER": Outcome.COMPLETED,
    "BUSY": Outcome.BUSY,
    "NOANSWER": Outcome.NO_ANSWER,
    "CONGESTION": Outcome.CONGESTION,
    "CHANUNAVAIL": Outcome.FAILED,
    "CANCEL": Outcome.HUNG_UP,
}
