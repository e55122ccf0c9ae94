"""The dialer's pure rules (core.domain.dialing) under a controllable clock: no call outside the
window, the day's budget never exceeded and spread across the window, retries always inside
the window and capped, AMI outcomes read as Asterisk reports them."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.domain import dialing
from core.domain.clock import IST
from core.domain.dialing import (
    RETRIED,
    Outcome,
    Pacing,
    RetryPolicy,
    Window,
    answered_outcome,
    unanswered_outcome,
)
from core.domain.phone import CallerNumber

DAY = datetime(2026, 12, 7, tzinfo=IST)
WINDOW = Window()

moments = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)
budgets = st.integers(min_value=0, max_value=200_000)
bursts = st.integers(min_value=0, max_value=5_000)


def test_window_bounds_are_ist() -> None:
    assert WINDOW.contains(DAY.replace(hour=9))
    assert not WINDOW.contains(DAY.replace(hour=8, minute=59, second=59))
    assert WINDOW.contains(DAY.replace(hour=20, minute=59, second=59))
    assert not WINDOW.contains(DAY.replace(hour=21))
    # 03:29 UTC is 08:59 IST; 03:30 UTC is 09:00 IST.
    assert not WINDOW.contains(datetime(2026, 12, 7, 3, 29, tzinfo=UTC))
    assert WINDOW.contains(datetime(2026, 12, 7, 3, 30, tzinfo=UTC))
    with pytest.raises(ValueError, match="start before"):
        Window(time(21), time(9))


@given(moments)
def test_next_open_is_in_the_window_and_not_earlier(at: datetime) -> None:
    opened = WINDOW.next_open(at)
    assert WINDOW.contains(opened)
    assert opened >= at
    assert opened - at < timedelta(hours=13)  # at most the night's gap


@settings(max_examples=500)
@given(moments, budgets, bursts)
def test_pacing_never_outside_the_window_never_above_the_budget(
    now: datetime, budget: int, burst: int
) -> None:
    allowed = Pacing(budget, WINDOW, burst).allowed(now)
    assert 0 <= allowed <= budget
    if not WINDOW.contains(now):
        assert allowed == 0
    else:
        spread = budget * WINDOW.elapsed_fraction(now)
        assert allowed <= spread + burst


@settings(max_examples=300)
@given(
    budgets,
    bursts,
    st.lists(st.floats(min_value=-9 * 3600, max_value=15 * 3600 - 1), min_size=1, max_size=400),
    st.lists(st.integers(min_value=1, max_value=2_000), min_size=1, max_size=400),
)
def test_a_day_of_random_claims_spends_at_most_the_budget_spread_over_the_window(
    budget: int, burst: int, offsets: list[float], demands: list[int]
) -> None:
    """A random schedule of claim passes (each wanting some calls) over one IST day against
    the pacing bound, as the dialer's conditional UPDATE applies it: calls happen only inside
    the window, the total never passes the budget, and by any moment no more than the even
    share plus the burst has gone."""
    pacing = Pacing(budget, WINDOW, burst)
    opens = DAY.replace(hour=9)
    used = 0
    spent: list[tuple[datetime, int]] = []
    for offset, demand in zip(sorted(offsets), demands * len(offsets), strict=False):
        now = opens + timedelta(seconds=offset)
        for _ in range(demand):
            if used < pacing.allowed(now):
                used += 1
                assert WINDOW.contains(now)
            else:
                break
        spent.append((now, used))
    assert used <= budget
    for now, so_far in spent:
        assert so_far <= budget * WINDOW.elapsed_fraction(now) + burst


def test_the_default_budget_is_not_spent_by_noon() -> None:
    pacing = Pacing(55_000, WINDOW, 200)
    noon = DAY.replace(hour=12)
    assert pacing.allowed(noon) == 55_000 // 4 + 200
    assert pacing.allowed(DAY.replace(hour=20, minute=59)) < 55_000 + 200
    assert pacing.allowed(DAY.replace(hour=9)) == 200


@settings(max_examples=500)
@given(moments, st.sampled_from(list(Outcome)), st.integers(0, 10), st.integers(1, 10))
def test_retries_fall_in_the_window_after_the_delay_and_stop_at_the_cap(
    now: datetime, outcome: Outcome, attempts: int, cap: int
) -> None:
    policy = RetryPolicy(window=WINDOW)
    retry = policy.next_try(outcome, attempts, cap, now)
    if outcome not in RETRIED or attempts >= cap:
        assert retry is None
        return
    assert retry is not None
    assert WINDOW.contains(retry)
    assert retry >= now + policy.delays[outcome]


def test_outcomes_from_ami() -> None:
    # 486 Busy Here: Hangup cause 17, OriginateResponse Reason 5.
    assert unanswered_outcome(5, 17) is Outcome.BUSY
    assert unanswered_outcome(5, None) is Outcome.BUSY
    assert unanswered_outcome(3, None) is Outcome.NO_ANSWER  # rang out
    assert unanswered_outcome(None, 19) is Outcome.NO_ANSWER
    assert unanswered_outcome(8, None) is Outcome.CONGESTION
    assert unanswered_outcome(0, None) is Outcome.FAILED
    assert unanswered_outcome(None, None) is Outcome.FAILED
    assert answered_outcome("completed") is Outcome.COMPLETED
    assert answered_outcome("silence") is Outcome.SILENCE
    assert answered_outcome(None) is Outcome.HUNG_UP
    assert answered_outcome("nonsense") is Outcome.HUNG_UP


@settings(max_examples=300)
@given(
    moments,
    st.integers(1, 6),
    st.lists(st.sampled_from(list(Outcome)), min_size=1, max_size=12),
)
def test_a_job_s_life_keeps_its_cap_and_the_window(
    created: datetime, cap: int, outcomes: list[Outcome]
) -> None:
    """A job dialled at the first open moment and then at each retry the policy gives, with
    random outcomes: at most ``cap`` attempts, each inside the window, each after the last
    one's delay."""
    policy = RetryPolicy(window=WINDOW)
    at: datetime | None = WINDOW.next_open(created)
    attempts: list[datetime] = []
    for outcome in outcomes:
        if at is None:
            break
        assert WINDOW.contains(at)
        if attempts:
            assert at >= attempts[-1] + min(policy.delays.values())
        attempts.append(at)
        at = policy.next_try(outcome, len(attempts), cap, at)
    assert len(attempts) <= cap


# ----------------------------------------------------------------------------- click-to-call


@pytest.mark.parametrize(
    ("number", "ok"),
    [
        ("9876543210", True),  # mobile
        ("5222234567", True),  # Lucknow landline (0522)
        ("1800180018", False),  # toll-free
        ("+919876543210", False),  # only the stored 10 digits, never a dial string
        ("919876543210", False),
        ("98765 43210", False),
        ("sip:9876543210@evil.example", False),
        ("1076", False),  # a short code
        ("0000000000", False),
        ("९८७६५४३२१०", False),  # Devanagari digits
    ],
)
def test_only_indian_mobiles_and_landlines_are_dialable(number: str, ok: bool) -> None:
    assert dialing.dialable(number) is ok


def test_a_click_outcome_is_the_seats_until_it_answers_then_the_citizens() -> None:
    out = dialing.Outcome
    assert dialing.click_outcome(False, None, None, 19) is out.NO_ANSWER
    assert dialing.click_outcome(False, None, 0, None) is out.FAILED
    assert dialing.click_outcome(True, "ANSWER", None, 16) is out.COMPLETED
    assert dialing.click_outcome(True, "BUSY", None, 16) is out.BUSY
    assert dialing.click_outcome(True, "NOANSWER", None, 16) is out.NO_ANSWER
    assert dialing.click_outcome(True, "CHANUNAVAIL", None, 16) is out.FAILED
    assert dialing.click_outcome(True, None, None, 16) is out.HUNG_UP


# Property tests of the one dial rule (issue 16): whatever text reaches it, only a 10-digit
# Indian mobile or landline number of no special series is dialable.

_DIGITS = st.text(alphabet="0123456789", min_size=0, max_size=14)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=24))
def test_nothing_but_ten_ascii_digits_is_ever_dialable(text: str) -> None:
    if dialing.dialable(text):
        assert len(text) == 10 and text.isascii() and text.isdigit(), text


@settings(max_examples=300, deadline=None)
@given(_DIGITS)
def test_a_dialable_number_is_a_caller_number_of_its_own_digits(digits: str) -> None:
    if dialing.dialable(digits):
        assert CallerNumber(digits) == digits
        assert digits[0] != "0" and not digits.startswith(dialing.SPECIAL_SERIES)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["+", "00", "+1", "+44", "+92", "+880", "0091", "+91", "0"]),
    st.text(alphabet="0123456789", min_size=8, max_size=12),
)
def test_international_and_prefixed_forms_are_never_dialable(prefix: str, rest: str) -> None:
    # Only the stored 10 national digits are ever dialled; any prefix (+91 too) is refused.
    assert not dialing.dialable(prefix + rest)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(dialing.SPECIAL_SERIES),
    st.text(alphabet="0123456789", min_size=6, max_size=6),
)
def test_special_series_are_never_dialable(series: str, rest: str) -> None:
    assert not dialing.dialable((series + rest)[:10])


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(["sip:", "sips:", "tel:", "PJSIP/", "Local/", ""]),
    st.from_regex(r"[6-9][0-9]{9}", fullmatch=True),
    st.sampled_from(["@evil.example", "@trunk", "&PJSIP/1900123456@trunk", ",", ";", ""]),
)
def test_sip_uris_and_dial_strings_are_never_dialable(head: str, number: str, tail: str) -> None:
    text = head + number + tail
    assert dialing.dialable(text) is (text == number and dialing.dialable(number))


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789", min_size=2, max_size=6))
def test_short_codes_are_never_dialable(code: str) -> None:
    assert not dialing.dialable(code)  # 1076, 112, 100, 1930 ...


@pytest.mark.parametrize(
    "number",
    ["9876543210", "7010000000", "6000000001", "5222234567", "1123456789", "2225678901"],
)
def test_mobiles_and_landlines_stay_dialable(number: str) -> None:
    assert dialing.dialable(number)
