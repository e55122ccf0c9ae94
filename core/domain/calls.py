"""How a call ended, in the IVR and in the queue: the states stored in ``calls``,
``ivr_sessions`` and ``callback_requests`` (each also a CHECK constraint, see core.db.models)."""

from __future__ import annotations

import enum


class CallDisposition(enum.StrEnum):
    """``calls.disposition``: set once at hang-up by the queue manager, from what the row says."""

    #: Connected to an agent.
    ANSWERED = "answered"
    #: Joined the queue and hung up (or left) before an agent answered.
    ABANDONED = "abandoned"
    #: The IVR served the caller and handed the call back (``IVR_DONE=1``) without a queue.
    IVR_ONLY = "ivr_only"
    #: The caller chose to be called back (in the IVR or while waiting): a request exists in
    #: ``callback_requests`` for the call. Neither abandoned nor served yet.
    CALLBACK = "callback"
    #: Neither: hung up in the IVR, or our code failed before the hand-over.
    UNANSWERED = "unanswered"


class IvrOutcome(enum.StrEnum):
    """``ivr_sessions.outcome`` (NULL while the caller is in the IVR). Where a caller hung up or
    our code failed is ``ivr_sessions.last_node``: drop-off per node is ``GROUP BY last_node``."""

    QUEUED = "queued"
    SELF_SERVED = "self_served"
    TRANSFERRED = "transferred"
    CALLBACK = "callback"
    #: The caller hung up before being served.
    ABANDONED = "abandoned"
    #: Our code failed; the dialplan sent the caller to the agents' queue.
    FAILED = "failed"


class CallbackReason(enum.StrEnum):
    """``callback_requests.reason``: why the caller was offered a callback."""

    #: Today's inbound budget was spent.
    BUDGET = "budget"
    #: The estimated wait was over ``ivr_max_wait_seconds``.
    WAIT = "wait"
    #: The caller asked for one from a menu.
    ASKED = "asked"
    #: The caller pressed 1 while waiting in the queue ("called back without losing your
    #: place"): ``callback_requests.place_at`` is when they joined the queue.
    WAITING = "waiting"


class CallbackStatus(enum.StrEnum):
    """``callback_requests.status``. Only ``pending`` exists until the outbound dialer does;
    its states are added here and in a migration that widens the CHECK constraint."""

    PENDING = "pending"
