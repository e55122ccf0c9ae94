"""Complaint numbers, caller numbers, the helpline's day, seats' interfaces and passwords: the
rules every service relies on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from core.domain.clock import IST, day_start, days_between, helpline_day, month_start
from core.domain.complaints import (
    NUMBER_LENGTH,
    SEQUENCE_START,
    HistoryAction,
    complaint_number,
    is_valid_complaint_number,
)
from core.domain.credentials import hash_password, token_digest, verify_password
from core.domain.lifecycle import Action
from core.domain.phone import (
    RAW_CALLER_ID_LENGTH,
    TRUNCATED_MARK,
    CallerNumber,
    parse_caller_id,
    raw_caller_id,
)
from core.domain.queues import (
    interface_of_seat,
    is_seat_channel,
    seat_endpoints,
    seat_of_interface,
    state_interface_of_seat,
)

sequences = st.integers(min_value=SEQUENCE_START, max_value=10 * SEQUENCE_START - 1)


@given(sequences)
@settings(max_examples=2000)
def test_complaint_numbers_are_fixed_length_digits_and_valid(sequence: int) -> None:
    number = complaint_number(sequence)
    assert len(number) == NUMBER_LENGTH and number.isdigit()
    assert is_valid_complaint_number(number)


@given(sequences, st.integers(0, NUMBER_LENGTH - 1), st.integers(1, 9))
@settings(max_examples=2000)
def test_every_single_digit_slip_is_caught(sequence: int, position: int, delta: int) -> None:
    number = complaint_number(sequence)
    wrong = str((int(number[position]) + delta) % 10)
    assert not is_valid_complaint_number(number[:position] + wrong + number[position + 1 :])


@given(sequences, st.integers(0, NUMBER_LENGTH - 2))
@settings(max_examples=2000)
def test_every_adjacent_swap_is_caught(sequence: int, position: int) -> None:
    number = complaint_number(sequence)
    if number[position] == number[position + 1]:
        return
    swapped = number[:position] + number[position + 1] + number[position] + number[position + 2 :]
    assert not is_valid_complaint_number(swapped)


@pytest.mark.parametrize(
    ("sequence", "number"),
    # Handed out by the hand-written Verhoeff that python-stdnum's replaced: still the same.
    [(100000000, "1000000009"), (123456789, "1234567890"), (244272509, "2442725092")],
)
def test_complaint_numbers_are_unchanged_by_the_library(sequence: int, number: str) -> None:
    assert complaint_number(sequence) == number and is_valid_complaint_number(number)


@pytest.mark.parametrize("text", ["", "123", "१२३४५६७८९०", "10000000O9", "1000000009 "])
def test_malformed_complaint_numbers_are_refused(text: str) -> None:
    assert not is_valid_complaint_number(text)


def test_sequence_outside_range_is_refused() -> None:
    with pytest.raises(ValueError, match="digits"):
        complaint_number(SEQUENCE_START - 1)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("9876543210", "9876543210"),
        ("+919876543210", "9876543210"),
        ("919876543210", "9876543210"),
        ("09876543210", "9876543210"),
        ("+91 98765-43210", "9876543210"),
        ("05222345678", "5222345678"),  # Lucknow landline with STD code
        ("0522-2234567", "5222234567"),
        ("(0522) 223 4567", "5222234567"),
        ("01122345678", "1122345678"),  # Delhi
        ("0919876543210", "9876543210"),  # a carrier's 091 prefix
        ("09123456789", "9123456789"),  # a mobile in the 91 series, not a 091 prefix
        ("0091 98765 43210", "9876543210"),
        ("tel:+919876543210", "9876543210"),
        ("anonymous", None),
        ("Anonymous", None),
        ("RESTRICTED", None),
        ("withheld", None),
        ("", None),
        ("   ", None),
        (None, None),
        ("+14155550100", None),  # foreign: not one of ours
        ("12345", None),
        ("1076", None),  # a short code
        ("0000000000", None),
        ("5000000000", None),  # no such Indian number
        ("98765432101", None),  # one digit too many
        ("9876543210;ext=1", None),
        ("1-800-FLOWERS", None),  # letters are not keypad digits in a caller ID
        ("९८७६५४३२१०", None),  # Devanagari digits are not what a trunk sends
    ],
)
def test_caller_numbers_normalise_to_ten_digits(raw: str | None, expected: str | None) -> None:
    parsed = parse_caller_id(raw)
    assert parsed == expected
    assert parsed is None or type(parsed) is CallerNumber


#: Any text at all, lone surrogates included (what surrogateescape decoding would produce).
any_text = st.text(st.characters(exclude_categories=()), max_size=300)


@given(any_text | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
@settings(max_examples=500)
def test_any_caller_id_parses_without_raising_and_stores_safely(raw: str) -> None:
    parsed = parse_caller_id(raw)
    assert parsed is None or (len(parsed) == 10 and parsed.isdigit() and parsed[0] != "0")
    stored = raw_caller_id(raw)
    assert stored is None or len(stored) <= RAW_CALLER_ID_LENGTH
    if stored is not None:
        assert not any(ord(ch) < 0x20 or 0xD800 <= ord(ch) <= 0xDFFF for ch in stored)
        stored.encode("utf-8")  # lone surrogates would raise here (and in PostgreSQL)


def test_a_hostile_caller_id_is_kept_bounded_and_marked() -> None:
    raw = "+91\x0098765\r\n43210" + "\udcff" + "x" * 10_000
    stored = raw_caller_id(raw)
    assert stored is not None and len(stored) == RAW_CALLER_ID_LENGTH
    assert stored.startswith("+91\\x0098765\\r\\n43210\\udcff")
    assert stored.endswith(TRUNCATED_MARK)
    assert raw_caller_id("+919876543210") == "+919876543210"  # what a trunk sends is kept
    assert raw_caller_id("") is None and parse_caller_id(raw) is None


def test_caller_number_is_validated_once_and_carried() -> None:
    number = CallerNumber("+91 98765-43210")
    assert number == "9876543210" and CallerNumber(number) is number
    assert number.last4 == "3210" and number.e164 == "+919876543210"
    for wrong in ("anonymous", "12", "", "+14155550100"):
        with pytest.raises(ValueError, match="not an Indian phone number"):
            CallerNumber(wrong)

    class Body(BaseModel):
        caller_number: CallerNumber | None = None

    assert Body.model_validate({"caller_number": "09876543210"}).caller_number == "9876543210"
    assert Body.model_validate({"caller_number": "0522 223 4567"}).model_dump() == {
        "caller_number": "5222234567"
    }
    assert Body().caller_number is None
    for wrong_value in ("anonymous", "12", "9" * 40, 9876543210):
        with pytest.raises(ValidationError):
            Body.model_validate({"caller_number": wrong_value})
    schema = Body.model_json_schema()["properties"]["caller_number"]
    assert "+91" in str(schema)  # documented for the API's users


def test_the_helpline_day_is_ists() -> None:
    # 18:29:59 UTC is 23:59:59 IST; a second later it is the next day in Lucknow.
    before = datetime(2026, 12, 5, 18, 29, 59, tzinfo=UTC)
    after = before + timedelta(seconds=1)
    assert helpline_day(before).day == 5 and helpline_day(after).day == 6
    assert day_start(after) == after and day_start(after).utcoffset() == timedelta(hours=5.5)
    assert day_start(before) == datetime(2026, 12, 5, tzinfo=IST)
    assert days_between(before, after) == 1 and days_between(after, before) == -1
    assert days_between(after, after + timedelta(hours=23)) == 0


def test_the_helpline_month_is_ists() -> None:
    # 18:30 UTC on 30 November is midnight of 1 December in Lucknow: a new month's count.
    november = datetime(2026, 11, 30, 18, 29, 59, tzinfo=UTC)
    december = november + timedelta(seconds=1)
    assert month_start(november) == datetime(2026, 11, 1, tzinfo=IST)
    assert month_start(december) == december == datetime(2026, 12, 1, tzinfo=IST)
    assert month_start(datetime(2027, 1, 31, 12, tzinfo=UTC)) == datetime(2027, 1, 1, tzinfo=IST)


def test_complaint_history_records_every_lifecycle_action() -> None:
    """complaint_history's CHECK comes from HistoryAction: it must allow every action the
    lifecycle can take, the filing (``register``) and the dialer's unreachable feedback."""
    assert {action.value for action in HistoryAction} == {action.value for action in Action} | {
        "register",
        "feedback_unreachable",
    }


def test_seat_interfaces() -> None:
    assert interface_of_seat("agent0001") == "Local/agent0001@seat-phones"
    assert state_interface_of_seat("agent0001") == "hint:agent0001@seat-hints"
    assert seat_endpoints("agent0001") == ("agent0001", "agent0001-web")
    assert seat_of_interface(interface_of_seat("agent0042")) == "agent0042"
    for other in (
        None,
        "",
        "PJSIP/",
        "PJSIP/agent0001",
        "PJSIP/agent0001-web",
        "SIP/agent0001",
        "Local/1076@from-trunk",
        "Local/@seat-phones",
        "Local/a/b@seat-phones",
        "hint:agent0001@seat-hints",
        "agent0001",
    ):
        assert seat_of_interface(other) is None


def test_seat_channels() -> None:
    for channel in (
        "PJSIP/agent0001-0000002a",
        "PJSIP/agent0001-web-0000002b",
        "Local/agent0001@seat-phones-0000000c;1",
        "Local/agent0001@seat-phones-0000000c;2",
    ):
        assert is_seat_channel(channel, "agent0001"), channel
    for channel in (
        None,
        "",
        "PJSIP/agent00010-0000002a",
        "PJSIP/agent0002-0000002a",
        "PJSIP/agent0001-web2-0000002b",
        "PJSIP/trunk-00000001",
        "Local/agent0001@from-trunk-0000000c;1",
        "agent0001",
    ):
        assert not is_seat_channel(channel, "agent0001"), channel


def test_passwords_verify_and_tokens_are_hashed() -> None:
    stored = hash_password("सही-पासवर्ड")
    assert verify_password("सही-पासवर्ड", stored)
    assert not verify_password("wrong", stored)
    assert not verify_password("x", "garbage")
    assert len(token_digest("t")) == 64
