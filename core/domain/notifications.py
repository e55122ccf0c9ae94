"""The SMS a caller receives about a complaint: what kind it is and where its delivery stands.

Kept in ``core.domain`` because ``core.db.models`` builds the CHECK constraints of
``sms_outbox`` from these enums; the outbox itself is ``lifecycle.notifications``.
"""

from __future__ import annotations

import enum


class SmsKind(enum.StrEnum):
    """Why the caller gets an SMS: one per event of the complaint that the caller must hear of."""

    REGISTERED = "registered"
    ASSIGNED = "assigned"
    ESCALATED = "escalated"
    RESOLVED = "resolved"


class SmsStatus(enum.StrEnum):
    """Where an outbox row stands.

    ``pending`` waits for its first attempt; ``sending`` is claimed by a worker until its lease
    runs out (a worker that died leaves it to be claimed again); ``failed`` waits for a retry
    after a transient error; ``sent`` the provider accepted it; ``dead`` no further attempt
    (a permanent refusal, or too many attempts); ``skipped`` there was no number to send to
    (a withheld caller), recorded so the event is visibly not lost.
    """

    PENDING = "pending"
    SENDING = "sending"
    FAILED = "failed"
    SENT = "sent"
    DEAD = "dead"
    SKIPPED = "skipped"


#: Statuses a worker may claim (``sending`` only once its lease has run out).
CLAIMABLE: frozenset[SmsStatus] = frozenset(
    {SmsStatus.PENDING, SmsStatus.FAILED, SmsStatus.SENDING}
)
