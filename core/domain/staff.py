"""Who works the helpline: the roles of ``users.role`` (a CHECK constraint, see core.db.models)."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    #: Takes calls at a seat and registers complaints.
    AGENT = "agent"
    #: Watches the queues, sets agents' skills and penalties.
    SUPERVISOR = "supervisor"
    #: A department's officer: reads complaints.
    OFFICER = "officer"
    #: The Chief Minister's office: the top of every escalation ladder; approves closures.
    CM_OFFICE = "cm_office"
    #: Seats and users.
    ADMIN = "admin"
