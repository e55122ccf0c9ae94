"""Complaint numbers and lifecycle.

A complaint number is what a citizen writes down and later types on a phone keypad, so it is
digits only, fixed length, and carries a Verhoeff check digit (the scheme Aadhaar uses): every
single-digit slip and every swap of adjacent digits is caught before we look anything up.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

#: Digits of the sequence part; with the check digit a number has ``SEQUENCE_DIGITS + 1`` digits.
SEQUENCE_DIGITS = 9
#: First sequence value, so that every number has the same length.
SEQUENCE_START = 10 ** (SEQUENCE_DIGITS - 1)
NUMBER_LENGTH = SEQUENCE_DIGITS + 1

_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)
_INV = (0, 4, 3, 2, 1, 5, 6, 7, 8, 9)


def _verhoeff_checksum(digits: str) -> int:
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = _D[c][_P[i % 8][int(ch)]]
    return c


def verhoeff_check_digit(digits: str) -> str:
    """The Verhoeff check digit to append to ``digits``."""
    if not digits.isdigit():
        raise ValueError("digits only")
    return str(_INV[_verhoeff_checksum(digits + "0")])


def complaint_number(sequence: int) -> str:
    """The citizen-facing number of the complaint with database sequence value ``sequence``."""
    if not SEQUENCE_START <= sequence < 10**SEQUENCE_DIGITS:
        raise ValueError(f"complaint sequence {sequence} has not {SEQUENCE_DIGITS} digits")
    body = str(sequence)
    return body + verhoeff_check_digit(body)


def is_valid_complaint_number(text: str) -> bool:
    """True if ``text`` has the right length, only ASCII digits and a correct check digit."""
    return (
        len(text) == NUMBER_LENGTH
        and text.isascii()
        and text.isdigit()
        and _verhoeff_checksum(text) == 0
    )


class ComplaintStatus(enum.StrEnum):
    """Where a complaint stands. Only ``registered`` exists before departments are routed."""

    REGISTERED = "registered"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    ESCALATED = "escalated"
    CLOSED = "closed"


def resolution_due(created_at: datetime, resolution_days: int) -> datetime:
    """When a complaint must be resolved before it escalates (7 days by default)."""
    return created_at + timedelta(days=resolution_days)
