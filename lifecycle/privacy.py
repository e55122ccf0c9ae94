"""Retention and anonymisation by data class (India's DPDP Act): the privacy pass.

Each class of personal data has its own retention in ``Settings`` (``privacy_*_days``) and its
own clock; past it, the pass anonymises (sets the personal columns to NULL, or a complaint's
description to :data:`ANONYMISED`) or, for rows that are nothing but personal data or
counters, deletes:

=====================  ==========================================================  =========
class                  what goes, when                                             default
=====================  ==========================================================  =========
``calls``              ``calls``/``ivr_sessions`` number, raw caller ID, caller     180 days
                       name, from the call's start
``outbound``           numbers of settled callback requests, finished dialer jobs,  180 days
                       ended attempts; ``dialer_number_day`` rows deleted
``complaints``         a closed / rejected-as-duplicate complaint's number, name,   365 days
                       description, resolution text, request hash, history notes,
                       from its last transition; never an open complaint
``sms``                body and number of SMS sent, dead or skipped, from queueing   90 days
``audit``              ``audit_log`` rows, deleted                                 1095 days
``cel``                Asterisk's CEL rows (``asterisk_cel``), deleted              30 days
=====================  ==========================================================  =========

What the statistics count stays: a complaint keeps its department, category, place, officer,
status and times; calls their times, queue and disposition; jobs and attempts their outcomes.
Recordings have their own pass (lifecycle.recordings); the do-not-call list is the citizen's
own request and is kept.

Every step is set-based and bounded: ``UPDATE ... WHERE id IN (SELECT id ... LIMIT batch FOR
UPDATE SKIP LOCKED)``, a transaction per batch, until a batch comes back short. It is
idempotent (a row already anonymised no longer matches its step), and two passes at once do
not take the same rows. A pass that changed anything writes one audit row with the counts.

Run by the ``sla`` worker (:class:`PrivacySchedule`, hourly) and by
``helpline privacy prune [--as-of T]``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.audit import audit
from core.domain.clock import IST
from lifecycle.schedule import HourlyPass

log = logging.getLogger(__name__)

#: A closed complaint's description once anonymised (the column is NOT NULL).
ANONYMISED: Final = "[anonymised]"


@dataclass(frozen=True)
class Step:
    """One set-based statement over one table: ``{batch}`` rows of ``table`` matching
    ``where`` (with ``:cutoff``) get ``change`` (an UPDATE's SET list, or None: DELETE)."""

    name: str
    data_class: str
    table: str
    key: str
    where: str
    change: str | None


STEPS: Final = (
    Step(
        "call numbers",
        "calls",
        "calls",
        "id",
        "coalesce(started_at, updated_at) < :cutoff AND (caller_number IS NOT NULL"
        " OR caller_number_raw IS NOT NULL OR caller_name IS NOT NULL)",
        "caller_number = NULL, caller_number_raw = NULL, caller_name = NULL",
    ),
    Step(
        "IVR session numbers",
        "calls",
        "ivr_sessions",
        "id",
        "started_at < :cutoff AND (caller_number IS NOT NULL OR caller_number_raw IS NOT NULL)",
        "caller_number = NULL, caller_number_raw = NULL",
    ),
    Step(
        "callback request numbers",
        "outbound",
        "callback_requests",
        "id",
        "status <> 'pending' AND requested_at < :cutoff AND caller_number IS NOT NULL",
        "caller_number = NULL",
    ),
    Step(
        "dialer job numbers",
        "outbound",
        "dialer_jobs",
        "id",
        "state IN ('done', 'unreachable', 'stopped') AND coalesce(finished_at, created_at)"
        " < :cutoff AND number IS NOT NULL",
        "number = NULL",
    ),
    Step(
        "dialer attempt numbers",
        "outbound",
        "dialer_attempts",
        "id",
        "ended_at < :cutoff AND number IS NOT NULL",
        "number = NULL",
    ),
    Step(
        "dialer per-number counters",
        "outbound",
        "dialer_number_day",
        "(number, day)",
        "day < CAST(:cutoff_day AS date)",
        None,
    ),
    # History notes first, while their complaints still read as not anonymised.
    Step(
        "complaint history notes",
        "complaints",
        "complaint_history",
        "id",
        "note IS NOT NULL AND complaint_id IN (SELECT id FROM complaints c WHERE {closed})",
        "note = NULL",
    ),
    Step(
        "complaints",
        "complaints",
        "complaints",
        "id",
        "{closed}",
        "caller_number = NULL, caller_name = NULL, description = :anonymised,"
        " resolution_text = NULL, request_hash = NULL, anonymised_at = :as_of",
    ),
    Step(
        "SMS bodies",
        "sms",
        "sms_outbox",
        "id",
        "status IN ('sent', 'dead', 'skipped') AND created_at < :cutoff"
        " AND (body <> '' OR caller_number IS NOT NULL)",
        "body = '', caller_number = NULL",
    ),
    Step("audit rows", "audit", "audit_log", "id", "at < :cutoff", None),
    # Asterisk's own channel record (callers' numbers and names), UTC without a zone.
    Step(
        "Asterisk CEL rows",
        "cel",
        "asterisk_cel",
        "id",
        "eventtime < (CAST(:cutoff AS timestamptz) AT TIME ZONE 'UTC')",
        None,
    ),
)

#: A complaint whose personal data may go (``c`` is the complaint): closed or rejected as a
#: duplicate, not yet anonymised, and its last transition before the cut-off.
CLOSED: Final = (
    "c.status IN ('closed', 'rejected_duplicate') AND c.anonymised_at IS NULL"
    " AND coalesce((SELECT max(h.at) FROM complaint_history h WHERE h.complaint_id = c.id),"
    " c.created_at) < :cutoff"
)


def retention(settings: Settings) -> dict[str, timedelta]:
    """Each data class's retention period."""
    return {
        "calls": timedelta(days=settings.privacy_call_days),
        "outbound": timedelta(days=settings.privacy_outbound_days),
        "complaints": timedelta(days=settings.privacy_complaint_days),
        "sms": timedelta(days=settings.privacy_sms_days),
        "audit": timedelta(days=settings.privacy_audit_days),
        "cel": timedelta(days=settings.privacy_cel_days),
    }


def _statement(step: Step, batch: int) -> str:
    alias = "c" if step.table == "complaints" else "t"
    where = step.where.format(closed=CLOSED)
    if step.table == "complaints":
        inner = f"SELECT c.id FROM complaints c WHERE {where}"
    else:
        columns = step.key.strip("()")
        inner = f"SELECT {columns} FROM {step.table} {alias} WHERE {where}"
    inner += f" ORDER BY {step.key.strip('()')} LIMIT {batch} FOR UPDATE SKIP LOCKED"
    if step.change is None:
        return f"DELETE FROM {step.table} WHERE {step.key} IN ({inner})"
    return f"UPDATE {step.table} SET {step.change} WHERE {step.key} IN ({inner})"


@dataclass
class PrivacyReport:
    as_of: datetime
    #: Rows changed (or deleted) per step, by the step's name.
    changed: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.changed.values())

    def lines(self) -> list[str]:
        out = [f"{name}: {count}" for name, count in self.changed.items() if count]
        out.append(f"as of {self.as_of.isoformat()}: {self.total} rows anonymised or deleted")
        return out


async def prune(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, as_of: datetime
) -> PrivacyReport:
    """One privacy pass at ``as_of`` (see the module's text)."""
    report = PrivacyReport(as_of)
    periods = retention(settings)
    batch = settings.privacy_batch
    for step in STEPS:
        cutoff = as_of - periods[step.data_class]
        params = {
            "cutoff": cutoff,
            "cutoff_day": cutoff.astimezone(IST).date(),
            "as_of": as_of,
            "anonymised": ANONYMISED,
        }
        statement = text(_statement(step, batch))
        done = 0
        while True:
            async with sessions() as session:
                result = await session.execute(statement, params)
                await session.commit()
            count = int(result.rowcount or 0)  # type: ignore[attr-defined]
            done += count
            if count < batch:
                break
        report.changed[step.name] = done
    if report.total:
        async with sessions() as session:
            audit(
                session,
                service="sla",
                actor_user_id=None,
                action="personal_data_anonymised",
                entity="privacy",
                detail={"as_of": as_of.isoformat()}
                | {name: count for name, count in report.changed.items() if count},
            )
            await session.commit()
    return report


class PrivacySchedule(HourlyPass[PrivacyReport]):
    """The ``sla`` worker's hook: :func:`prune` at most every ``every``."""

    name = "privacy"

    async def run(self, sessions: async_sessionmaker[AsyncSession], now: datetime) -> PrivacyReport:
        return await prune(sessions, self.settings, now)

    def changed(self, report: PrivacyReport) -> bool:
        return report.total > 0
