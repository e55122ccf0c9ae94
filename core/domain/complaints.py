"""Complaint numbers and lifecycle.

A complaint number is what a citizen writes down and later types on a phone keypad, so it is
digits only, fixed length, and carries a Verhoeff check digit (the scheme Aadhaar uses): every
single-digit slip and every swap of adjacent digits is caught before we look anything up.
The digit is python-stdnum's Verhoeff (the same tables as Aadhaar's), so numbers handed out
before it replaced our own implementation stay valid.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import Final

from stdnum import verhoeff

#: Digits of the sequence part; with the check digit a number has ``SEQUENCE_DIGITS + 1`` digits.
SEQUENCE_DIGITS = 9
#: First sequence value, so that every number has the same length.
SEQUENCE_START = 10 ** (SEQUENCE_DIGITS - 1)
NUMBER_LENGTH = SEQUENCE_DIGITS + 1


def verhoeff_check_digit(digits: str) -> str:
    """The Verhoeff check digit to append to ``digits`` (ASCII digits only)."""
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError("digits only")
    return verhoeff.calc_check_digit(digits)


def complaint_number(sequence: int) -> str:
    """The citizen-facing number of the complaint with database sequence value ``sequence``."""
    if not SEQUENCE_START <= sequence < 10**SEQUENCE_DIGITS:
        raise ValueError(f"complaint sequence {sequence} has not {SEQUENCE_DIGITS} digits")
    body = str(sequence)
    return body + verhoeff_check_digit(body)


def is_valid_complaint_number(text: str) -> bool:
    """True if ``text`` has the right length, only ASCII digits and a correct check digit."""
    return (
        len(text) == NUMBER_LENGTH and text.isascii() and text.isdigit() and verhoeff.is_valid(text)
    )


class ComplaintStatus(enum.StrEnum):
    """Where a complaint stands; which action leads where is ``core.domain.lifecycle.TABLE``.

    Three statuses mean "an officer has it and has not started", and say why, so the IVR can
    tell the citizen: ``assigned`` (routed or reassigned), ``reopened`` (the citizen was not
    satisfied or asked again: one level up) and ``escalated`` (overdue: one level up).
    """

    REGISTERED = "registered"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    ESCALATED = "escalated"
    CLOSED = "closed"
    #: The same grievance is already another complaint.
    REJECTED_DUPLICATE = "rejected_duplicate"
    #: The officer asked for a special closure; a supervisor approves or refuses it.
    CLOSURE_REQUESTED = "closure_requested"


#: A complaint in these states is settled for the citizen: no longer "open" when they call again
#: or file the same grievance (a resolved one may still be reopened).
SETTLED_STATES: Final = frozenset(
    {ComplaintStatus.RESOLVED, ComplaintStatus.CLOSED, ComplaintStatus.REJECTED_DUPLICATE}
)


def resolution_due(created_at: datetime, resolution_days: int) -> datetime:
    """When a complaint must be resolved before it escalates (7 days by default)."""
    return created_at + timedelta(days=resolution_days)


class HistoryAction(enum.StrEnum):
    """What a ``complaint_history`` row records: the filing, then every transition and
    assignment. Besides ``register`` these are the lifecycle's actions (core.domain.lifecycle)."""

    REGISTER = "register"
    ASSIGN = "assign"
    START = "start"
    RESOLVE = "resolve"
    CLOSE = "close"
    REOPEN = "reopen"
    REJECT_DUPLICATE = "reject_duplicate"
    REQUEST_CLOSURE = "request_closure"
    APPROVE_CLOSURE = "approve_closure"
    REFUSE_CLOSURE = "refuse_closure"
    REASSIGN = "reassign"
    ESCALATE = "escalate"
    #: The outbound dialer's feedback call reached nobody within its attempts (no change of
    #: status; the note says how many attempts and how they ended).
    FEEDBACK_UNREACHABLE = "feedback_unreachable"
