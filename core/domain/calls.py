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
    """``callback_requests.status``: ``pending`` until the dialer's job for it ends
    (:func:`outbound_dialer.store.settle_callback_requests`); then the caller may ask again
    (one pending request per caller number)."""

    PENDING = "pending"
    #: The citizen answered the callback and was put through to the agents' queue.
    CALLED = "called"
    #: The dialer gave up: attempts spent, no answer.
    UNREACHABLE = "unreachable"
    #: Not dialled to the end: the number is on the do-not-call list, or the job was stopped.
    STOPPED = "stopped"


class WrapupCode(enum.StrEnum):
    """``call_wrapups.code``: what the agent says the call was, chosen at the desk after the
    call (the queue manager's :class:`CallDisposition` says what happened on the line; this is
    the agent's account of why, and the two are kept apart)."""

    COMPLAINT_FILED = "complaint_filed"
    STATUS_GIVEN = "status_given"
    DUPLICATE = "duplicate"
    WRONG_NUMBER = "wrong_number"
    ABUSIVE_CALLER = "abusive_caller"
    SILENT_CALL = "silent_call"
    TRANSFERRED_112 = "transferred_112"
    TRANSFERRED_108 = "transferred_108"
    OTHER = "other"


class ReadbackThen(enum.StrEnum):
    """What happens to the caller after the complaint number was read to them."""

    #: Back to the same agent (bridged to the agent's leg, which waited in the dialplan).
    RETURN = "return"
    #: Goodbye and hang up (the agent's leg is hung up too).
    HANGUP = "hangup"


class ReadbackOutcome(enum.StrEnum):
    """``readback_sessions.outcome`` (NULL while the number is being read)."""

    #: Read twice with the due date, handed back to the dialplan.
    COMPLETED = "completed"
    #: The caller hung up during the read-back (``digits_spoken`` says how far it got).
    HUNG_UP = "hung_up"
    #: No such complaint (nothing was said but an apology; the caller goes back).
    NOT_FOUND = "not_found"
    #: Our code failed; the dialplan still returns the caller as the agent chose.
    FAILED = "failed"
