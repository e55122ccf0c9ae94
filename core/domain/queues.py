"""Queue rules shared by the queue manager, the API and the rendered queues.conf.

Skills route callers: besides the main queue (``helpline``) there is one queue per special skill
(``helpline-police``, ``helpline-health``). Every agent in the queue is a member of every skill
queue, an agent without the skill at a higher penalty, so a caller the IVR sent to a skill queue
rings a free skilled agent first and any free agent otherwise: no caller waits for a skill that
nobody logged in has. Priority (``QUEUE_PRIO`` from the IVR) puts a caller ahead of the line.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

#: Skills an agent may have; ``general`` is everyone's and has no queue of its own.
SKILLS: tuple[str, ...] = ("general", "police", "health")
#: Skills with a queue of their own.
SKILL_QUEUES: tuple[str, ...] = ("police", "health")
#: Added to the penalty of an agent in a skill queue whose skill the agent lacks.
UNSKILLED_PENALTY = 10
#: Why an agent may pause (QueuePause Reason).
PAUSE_REASONS: tuple[str, ...] = ("break", "training", "meeting", "after_call_work")
#: Answered within this many seconds counts toward the service level.
SERVICE_LEVEL_SECONDS = 20


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


#: "Today" for the supervisors' numbers and the daily budgets is the helpline's day (IST).
HELPLINE_TIMEZONE = "Asia/Kolkata"
#: Wrap-up seconds after a queue call; equals ``RenderOptions.wrapup_time`` (queues.conf).
WRAPUP_SECONDS = 5
