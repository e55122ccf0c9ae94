"""Queue rules shared by the queue manager, the API and the rendered queues.conf.

Skills route callers: besides the main queue (``helpline``) there is one queue per special skill
(``helpline-police``, ``helpline-health``). Every agent in the queue is a member of every skill
queue, an agent without the skill at a higher penalty, so a caller the IVR sent to a skill queue
rings a free skilled agent first and any free agent otherwise: no caller waits for a skill that
nobody logged in has. Priority (``QUEUE_PRIO`` from the IVR) puts a caller ahead of the line.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable


class Skill(enum.StrEnum):
    """Skills an agent may have (``users.skills``); ``general`` is everyone's."""

    GENERAL = "general"
    POLICE = "police"
    HEALTH = "health"


class PauseReason(enum.StrEnum):
    """Why an agent may pause (``agent_sessions.pause_reason``, app_queue's QueuePause Reason)."""

    BREAK = "break"
    TRAINING = "training"
    MEETING = "meeting"
    AFTER_CALL_WORK = "after_call_work"


#: Skills an agent may have, in order.
SKILLS: tuple[Skill, ...] = tuple(Skill)
#: Skills with a queue of their own (every skill but ``general``).
SKILL_QUEUES: tuple[Skill, ...] = tuple(s for s in Skill if s is not Skill.GENERAL)
#: Added to the penalty of an agent in a skill queue whose skill the agent lacks.
UNSKILLED_PENALTY = 10
#: Why an agent may pause, in order.
PAUSE_REASONS: tuple[PauseReason, ...] = tuple(PauseReason)
#: Answered within this many seconds counts toward the service level.
SERVICE_LEVEL_SECONDS = 20
#: Seconds an agent gets after a queue call before the next one: rendered into queues.conf
#: (``wrapuptime``) from here, and what the supervisors' "in wrap-up" and AHT figures count.
WRAPUP_SECONDS = 5
#: Channel technology of agents' phones: seat ``agent0001`` has the SIP endpoints ``agent0001``
#: (any SIP softphone over UDP) and ``agent0001-web`` (the desk's WebRTC phone, over WSS).
SEAT_TECHNOLOGY = "PJSIP"
#: Suffix of a seat's WebRTC endpoint (rendered into pjsip.conf from :func:`webrtc_endpoint`).
WEBRTC_SUFFIX = "-web"
#: Dialplan context whose ``agentNNNN`` extension rings every registered phone of the seat
#: (rendered into extensions.conf): a queue member is ``Local/agentNNNN@seat-phones``.
SEAT_PHONES_CONTEXT = "seat-phones"
#: Dialplan context holding one hint per seat over both endpoints: the member's state.
SEAT_HINTS_CONTEXT = "seat-hints"


def webrtc_endpoint(seat: str) -> str:
    """``agent0001`` → ``agent0001-web``: the seat's endpoint for the desk's in-page phone."""
    return f"{seat}{WEBRTC_SUFFIX}"


def seat_endpoints(seat: str) -> tuple[str, str]:
    """The seat's PJSIP endpoints: the UDP one (external softphone), the WebRTC one."""
    return seat, webrtc_endpoint(seat)


def interface_of_seat(seat: str) -> str:
    """``agent0001`` → ``Local/agent0001@seat-phones``: a queue member's Interface, and what to
    dial to ring the agent at that seat on whichever phones are registered (one call, both
    phones ring, the first to answer takes it)."""
    return f"Local/{seat}@{SEAT_PHONES_CONTEXT}"


def state_interface_of_seat(seat: str) -> str:
    """``agent0001`` → ``hint:agent0001@seat-hints``: a queue member's StateInterface. The hint
    is ``PJSIP/agent0001&PJSIP/agent0001-web``, so the member is available while either phone is
    registered and in use while either is on a call (ringinuse=no, the wallboard's states)."""
    return f"hint:{seat}@{SEAT_HINTS_CONTEXT}"


def seat_of_interface(interface: str | None) -> str | None:
    """``Local/agent0001@seat-phones`` → ``agent0001``; ``None`` for anything that is not one of
    our seats' member interfaces (a PJSIP channel, another Local channel, empty)."""
    prefix, suffix = "Local/", f"@{SEAT_PHONES_CONTEXT}"
    if not interface or not interface.startswith(prefix) or not interface.endswith(suffix):
        return None
    seat = interface.removeprefix(prefix).removesuffix(suffix)
    return seat if seat and "/" not in seat and "@" not in seat else None


def is_seat_channel(channel: str | None, seat: str) -> bool:
    """Whether a live channel is one of ``seat``'s: ``PJSIP/agent0001-0000002a`` (the
    softphone), ``PJSIP/agent0001-web-0000002b`` (the in-page phone) or
    ``Local/agent0001@seat-phones-0000000c;1`` (the queue member's Local channel before it
    optimises away)."""
    if not channel or not seat:
        return False
    name = channel.split(";", 1)[0].rsplit("-", 1)[0]  # drop the ";1" half and the sequence
    return name in (
        interface_of_seat(seat),
        *(f"{SEAT_TECHNOLOGY}/{e}" for e in seat_endpoints(seat)),
    )


def skill_queue(queue_name: str, skill: str) -> str:
    """``helpline`` + ``police`` → ``helpline-police``."""
    return f"{queue_name}-{skill}"


def all_queues(queue_name: str) -> list[str]:
    """The main queue and the skill queues, in that order."""
    return [queue_name, *(skill_queue(queue_name, s) for s in SKILL_QUEUES)]


def memberships(queue_name: str, skills: Iterable[str], penalty: int) -> dict[str, int]:
    """Queue → member penalty for an agent with ``skills`` and base ``penalty``."""
    have = set(skills)
    out = {queue_name: penalty}
    for skill in SKILL_QUEUES:
        out[skill_queue(queue_name, skill)] = penalty + (0 if skill in have else UNSKILLED_PENALTY)
    return out


def seats_digest(seats: Iterable[tuple[str, str]]) -> str:
    """Digest of (seat name, SIP password) pairs: equal digests, equal PJSIP config. The queue
    manager records it after a reload; the API compares it with the ``seats`` table."""
    digest = hashlib.sha256()
    for name, password in sorted(seats):
        digest.update(f"{name}:{password}\n".encode())
    return digest.hexdigest()
