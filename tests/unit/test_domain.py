"""Complaint numbers, caller numbers and passwords: the rules every service relies on."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.domain.complaints import (
    NUMBER_LENGTH,
    SEQUENCE_START,
    complaint_number,
    is_valid_complaint_number,
)
from core.domain.credentials import hash_password, token_digest, verify_password
from core.domain.phone import normalise_caller_number

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
        ("anonymous", None),
        ("", None),
        (None, None),
        ("+14155550100", None),
        ("12345", None),
        ("0000000000", None),
        ("९८७६५४३२१०", None),  # Devanagari digits are not what a trunk sends
    ],
)
def test_caller_numbers_normalise_to_ten_digits(raw: str | None, expected: str | None) -> None:
    assert normalise_caller_number(raw) == expected


def test_passwords_verify_and_tokens_are_hashed() -> None:
    stored = hash_password("सही-पासवर्ड")
    assert verify_password("सही-पासवर्ड", stored)
    assert not verify_password("wrong", stored)
    assert not verify_password("x", "garbage")
    assert len(token_digest("t")) == 64
