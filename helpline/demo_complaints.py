"""Demo complaints, so /review and /worklist have content: filed through the API's own
complaints service (routed, with history), weeks apart, then moved through the lifecycle to
every status, some left overdue. Idempotent: each has the ``Idempotency-Key`` ``demo-NNN``,
and one already filed is left as it is.

Every status change goes through :func:`move`, which uses the transitions service's own steps
(``lifecycle.transitions``). Demo complaints carry made-up numbers, so nothing here queues an SMS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.schemas import ComplaintIn
from api.services import complaints
from core.config import Settings
from core.db.models import Complaint, RefOfficer, User
from core.domain.lifecycle import SYSTEM, Action, Actor, Transition, apply
from core.domain.phone import CallerNumber
from core.domain.staff import Role
from core.reference import Reference
from lifecycle.transitions import lock_complaint, store, view_of


@dataclass(frozen=True, slots=True)
class Place:
    department: str
    category: str
    district: str
    tehsil: str | None = None
    thana: str | None = None


#: Where the demo complaints come from: 6 departments, 7 districts, and the demo officers'
#: posts (helpline.seed.DEMO_OFFICERS) so their worklists are not empty.
PLACES: tuple[Place, ...] = (
    Place("police", "police.harassment", "lucknow", thana="lucknow_hazratganj"),
    Place("revenue", "revenue.mutation", "lucknow", thana="lucknow_hazratganj"),
    Place("health", "health.medicines", "varanasi"),
    Place("police", "police.fir_not_registered", "varanasi"),
    Place("power", "power.no_supply", "agra", tehsil="agra_sadar"),
    Place("urban_dev", "urban_dev.garbage", "kanpur_nagar"),
    Place("rural_dev", "rural_dev.awas", "gorakhpur", tehsil="gorakhpur_sadar"),
    Place("revenue", "revenue.certificate", "meerut", tehsil="meerut_sadar"),
    Place("health", "health.doctor_absent", "prayagraj"),
)

#: A step: (action, when it happens in days after filing given the category's SLA days).
Step = tuple[Action, Callable[[int], float]]
#: Paths to every status; "assigned" and "in_progress" ones are overdue when old enough.
PATHS: tuple[tuple[str, tuple[Step, ...]], ...] = (
    ("assigned", ()),
    ("in_progress", ((Action.START, lambda sla: 0.5),)),
    ("resolved in time", ((Action.START, lambda sla: 0.3), (Action.RESOLVE, lambda sla: 1.0))),
    ("resolved late", ((Action.RESOLVE, lambda sla: sla + 1.5),)),
    ("closed", ((Action.RESOLVE, lambda sla: 0.8), (Action.CLOSE, lambda sla: 1.5))),
    ("reopened", ((Action.RESOLVE, lambda sla: 0.8), (Action.REOPEN, lambda sla: 1.6))),
    ("escalated", ((Action.ESCALATE, lambda sla: sla + 0.1),)),
    ("closure requested", ((Action.REQUEST_CLOSURE, lambda sla: 0.7),)),
    ("duplicate", ((Action.REJECT_DUPLICATE, lambda sla: 0.2),)),
    (
        "escalated twice",
        ((Action.ESCALATE, lambda sla: sla + 0.1), (Action.ESCALATE, lambda sla: 2 * sla + 0.2)),
    ),
)
COUNT = 90


class DemoError(RuntimeError):
    """The lifecycle refused a demo step: a bug in the demo data, not a user's mistake."""


async def move(
    session: AsyncSession,
    reference: Reference,
    number: str,
    action: Action,
    actor: Actor,
    at: datetime,
    *,
    actor_user_id: int | None = None,
    note: str = "",
    duplicate_of: str | None = None,
) -> Transition:
    """Take ``action`` on complaint ``number`` at ``at`` through the transitions service's own
    steps (lock, the lifecycle's decision, :func:`lifecycle.transitions.store`), not committed.
    ``actor`` is given, not looked up: most demo posts have no login. No SMS is queued."""
    complaint = await lock_complaint(session, number)
    if complaint is None:
        raise DemoError(f"demo complaint {number} is missing")
    view = await view_of(session, complaint)
    done = apply(view, action, actor, at, reference=reference, note=note, duplicate_of=duplicate_of)
    if not isinstance(done, Transition):
        raise DemoError(f"demo complaint {number}: {done.reason}")
    await store(
        session, complaint, done, actor_user_id=actor_user_id, reference=reference, notify=False
    )
    return done


NOTES: dict[Action, str] = {
    Action.RESOLVE: "समस्या का निस्तारण कर दिया गया (demo)",
    Action.REOPEN: "शिकायतकर्ता संतुष्ट नहीं (demo)",
    Action.REQUEST_CLOSURE: "मामला न्यायालय में विचाराधीन (demo)",
    Action.REJECT_DUPLICATE: "same grievance already filed (demo)",
}


async def file_demo_complaints(
    session: AsyncSession,
    settings: Settings,
    reference: Reference,
    *,
    now: datetime | None = None,
    count: int = COUNT,
) -> int:
    """File the demo complaints not filed yet; returns how many were filed now. Needs the demo
    users (``agent1`` files, ``supervisor1`` rejects duplicates)."""
    now = now or datetime.now(UTC)
    users = dict(
        (
            await session.execute(
                select(User.username, User).where(User.username.in_(("agent1", "supervisor1")))
            )
        ).all()
    )
    agent, supervisor = users["agent1"], users["supervisor1"]
    logins = dict(
        (
            await session.execute(
                select(RefOfficer.code, RefOfficer.user_id).where(RefOfficer.user_id.is_not(None))
            )
        ).all()
    )
    filed = 0
    previous: str | None = None
    for index in range(count):
        place = PLACES[index % len(PLACES)]
        name, steps = PATHS[index % len(PATHS)]
        sla = reference.categories[place.category].sla_days
        last_step = max((when(sla) for _, when in steps), default=0.0)
        # Spread over the last seven weeks: this month and the one before have content.
        age = last_step + 0.1 + (index * 37 % 480) / 10
        filed_at = now - timedelta(days=age)
        body = ComplaintIn(
            description=f"डेमो शिकायत {index + 1}: {name}",
            caller_name="डेमो नागरिक",
            caller_number=CallerNumber(f"98390{index:05d}"),
            department=place.department,
            category=place.category,
            district=place.district,
            tehsil=place.tehsil,
            thana=place.thana,
        )
        registered = await complaints.register(
            session,
            settings,
            reference,
            agent,
            body,
            f"demo-{index:03d}",
            now=filed_at,
            notify=False,
        )
        number = registered.complaint.number
        if registered.created:
            filed += 1
            for action, when in steps:
                if action is Action.REJECT_DUPLICATE and previous is None:
                    break
                row = (
                    await session.execute(
                        select(Complaint.assigned_officer).where(Complaint.number == number)
                    )
                ).scalar_one()
                actor, user_id = _actor(action, row, logins, supervisor)
                await move(
                    session,
                    reference,
                    number,
                    action,
                    actor,
                    filed_at + timedelta(days=when(sla)),
                    actor_user_id=user_id,
                    note=NOTES.get(action, ""),
                    duplicate_of=previous if action is Action.REJECT_DUPLICATE else None,
                )
            await session.commit()
        previous = number
    return filed


def _actor(
    action: Action, officer: str | None, logins: dict[str, int | None], supervisor: User
) -> tuple[Actor, int | None]:
    """Who takes a demo step: the officer holding it, the helpline itself (IVR feedback, the
    SLA worker) or a supervisor (duplicates)."""
    if action in (Action.START, Action.RESOLVE, Action.REQUEST_CLOSURE):
        return Actor(Role.OFFICER, officer or "?", officer=officer), logins.get(officer or "")
    if action is Action.REJECT_DUPLICATE:
        return Actor(Role.SUPERVISOR, supervisor.username), supervisor.id
    return SYSTEM, None
