"""The SLA pass: every complaint an officer holds past its due date escalates one level up its
category's ladder, the breach goes to that officer's ACR ledger, and the caller is told.

Correct however it is run:

* **twice**: an escalation gives the complaint a due date after the pass's as-of time, so the
  next pass at the same time finds nothing to do;
* **late** (days after the due date): one level per pass, the next due date counted from the
  pass's time (``core.domain.lifecycle.decide_escalation``), not several levels at once;
* **in two processes at once**: each complaint is decided in its own transaction on its row,
  taken with ``FOR UPDATE SKIP LOCKED`` and re-checked once held; a row another pass holds is
  left to it, and one it has escalated is no longer overdue when read again;
* **with the clock stepping back**: a pass at an earlier time sees due dates further away;
* besides all that, ``acr_breaches`` is UNIQUE on the assignment (complaint, level, due date),
  so a breach is charged once whatever decides it: a transaction that finds its breach already
  in the ledger is rolled back, not stored a second time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.models import Complaint
from core.domain.lifecycle import WITH_OFFICER, Refusal, decide_escalation
from core.reference import Reference
from lifecycle.transitions import store, view_of

log = logging.getLogger(__name__)

#: Complaints read per query; each is then escalated in its own transaction.
BATCH = 200


@dataclass(frozen=True, slots=True)
class Escalation:
    """One complaint escalated by a pass."""

    number: str
    from_officer: str
    to_officer: str
    from_level: str
    to_level: str
    due_at: datetime
    overdue_by: timedelta
    #: False when the complaint was already at the top of its ladder (it stays, with a new
    #: due date, and the breach is still charged).
    climbed: bool
    #: The breach went to the ACR ledger now (False only if the ledger already had it).
    breach_recorded: bool

    def line(self) -> str:
        """What ``helpline sla run`` prints for it."""
        move = f"{self.from_officer} -> {self.to_officer}"
        if not self.climbed:
            move += " (top of its ladder: stays)"
        breach = (
            f"breach by {self.from_officer} at {self.from_level}, due {self.due_at.isoformat()}, "
            f"overdue {_duration(self.overdue_by)}"
        )
        if not self.breach_recorded:
            breach += " (already in the ACR ledger)"
        return f"{self.number}: {move}; {breach}"


@dataclass(slots=True)
class PassReport:
    as_of: datetime
    #: Overdue complaints the query found.
    found: int = 0
    escalated: list[Escalation] = field(default_factory=list)
    #: Found overdue, but another pass held the row, or it was no longer overdue once held.
    skipped: int = 0
    #: Complaints the lifecycle refused to escalate, with why (a category no longer known).
    refused: list[tuple[str, str]] = field(default_factory=list)
    #: Complaints whose breach the ledger already had: rolled back, not escalated again.
    already_recorded: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"SLA pass as of {self.as_of.isoformat()}: {self.found} overdue, "
            f"{len(self.escalated)} escalated, {self.skipped} skipped (held by another pass "
            f"or no longer overdue), {len(self.already_recorded)} already in the ACR ledger, "
            f"{len(self.refused)} refused"
        )

    def lines(self) -> list[str]:
        out = [escalation.line() for escalation in self.escalated]
        out += [f"{number}: not escalated: {reason}" for number, reason in self.refused]
        out += [f"{n}: breach already in the ACR ledger; left as is" for n in self.already_recorded]
        return [*out, self.summary()]


def _duration(span: timedelta) -> str:
    days, seconds = span.days, span.seconds
    hours, minutes = seconds // 3600, seconds % 3600 // 60
    return f"{days}d {hours}h {minutes:02d}m"


def _overdue(as_of: datetime) -> tuple[ColumnElement[bool], ...]:
    """The pass's condition, matching the partial index ``ix_complaints_overdue``."""
    return (Complaint.status.in_(sorted(WITH_OFFICER)), Complaint.due_at < as_of)


async def run_pass(
    sessions: async_sessionmaker[AsyncSession],
    reference: Reference,
    as_of: datetime,
    *,
    batch: int = BATCH,
) -> PassReport:
    """One SLA pass as of ``as_of`` (timezone-aware): see the module's docstring."""
    if as_of.utcoffset() is None:
        raise ValueError("as_of must be timezone-aware")
    report = PassReport(as_of)
    after: tuple[datetime, int] | None = None
    while True:
        async with sessions() as session:
            query = (
                select(Complaint.due_at, Complaint.id, Complaint.number)
                .where(*_overdue(as_of))
                .order_by(Complaint.due_at, Complaint.id)
                .limit(batch)
            )
            if after is not None:
                query = query.where(tuple_(Complaint.due_at, Complaint.id) > tuple_(*after))
            rows = (await session.execute(query)).all()
        if not rows:
            return report
        report.found += len(rows)
        for row in rows:
            await _escalate_one(sessions, reference, row.id, row.number, as_of, report)
        after = (rows[-1].due_at, rows[-1].id)


class _AlreadyRecorded(Exception):
    """Rolls back an escalation whose breach the ACR ledger already has."""


async def _escalate_one(
    sessions: async_sessionmaker[AsyncSession],
    reference: Reference,
    complaint_id: int,
    number: str,
    as_of: datetime,
    report: PassReport,
) -> None:
    """Escalate one complaint in its own transaction, if it is still overdue once held."""
    try:
        await _escalate_held(sessions, reference, complaint_id, number, as_of, report)
    except _AlreadyRecorded:
        report.already_recorded.append(number)


async def _escalate_held(
    sessions: async_sessionmaker[AsyncSession],
    reference: Reference,
    complaint_id: int,
    number: str,
    as_of: datetime,
    report: PassReport,
) -> None:
    async with sessions() as session, session.begin():
        complaint = (
            await session.execute(
                select(Complaint)
                .where(Complaint.id == complaint_id, *_overdue(as_of))
                .with_for_update(skip_locked=True)
                .execution_options(populate_existing=True)
            )
        ).scalar_one_or_none()
        if complaint is None:
            report.skipped += 1
            return
        view = await view_of(session, complaint)
        decided = decide_escalation(view, as_of, reference)
        if decided is None:
            report.skipped += 1
            return
        if isinstance(decided, Refusal):
            log.warning("complaint %s not escalated: %s", number, decided.reason)
            report.refused.append((number, decided.reason))
            return
        applied = await store(session, complaint, decided, actor_user_id=None, reference=reference)
        if decided.breach is not None and not applied.breach_recorded:
            # The ledger has this assignment's breach: someone escalated it already.
            raise _AlreadyRecorded(number)
        before, after = decided.before, decided.after
        assert before.officer and after.officer and before.level and after.level
        assert before.due_at is not None
        report.escalated.append(
            Escalation(
                number=number,
                from_officer=before.officer,
                to_officer=after.officer,
                from_level=before.level,
                to_level=after.level,
                due_at=before.due_at,
                overdue_by=as_of - before.due_at,
                climbed=after.officer != before.officer,
                breach_recorded=applied.breach_recorded,
            )
        )


class SlaSchedule:
    """The worker's ``sla_pass`` hook: runs :func:`run_pass` at most every ``every`` (the
    worker's loop turns every few seconds to deliver SMS)."""

    def __init__(self, reference: Reference, every: timedelta) -> None:
        self.reference = reference
        self.every = every
        self.last: datetime | None = None
        self.last_report: PassReport | None = None

    async def __call__(self, sessions: async_sessionmaker[AsyncSession], now: datetime) -> None:
        if self.last is not None and self.last <= now < self.last + self.every:
            return
        self.last = now
        report = await run_pass(sessions, self.reference, now)
        self.last_report = report
        for line in report.lines()[:-1]:
            log.info("sla: %s", line)
        if report.found:
            log.info("sla: %s", report.summary())
