"""The SMS outbox: queued in the transaction of the complaint change it reports, delivered
at least once, never lost.

* :func:`enqueue` renders the SMS from :mod:`lifecycle.sms_templates` (:func:`sms_row`) and
  inserts it with ``ON CONFLICT DO NOTHING`` on (complaint, kind, dedupe key): an event queued
  twice (a retried request, a second SLA pass) is one row (the lifecycle's writer inserts it
  in its history row's statement: :func:`queued_after`). It NOTIFYs the ``sla`` worker,
  which PostgreSQL delivers at COMMIT, so a rolled-back change neither queues nor wakes
  anything. A caller whose number is unknown (withheld) gets a ``skipped`` row instead:
  recorded, not an error.
* :func:`deliver_due` claims due rows with ``FOR UPDATE SKIP LOCKED`` (several workers share
  the table without sending a row twice while they live), marks them ``sending`` with a lease
  and a token, commits, sends outside any transaction, then records the result where the row
  still carries its token. A worker that dies after claiming leaves its rows to be claimed
  again once the lease runs out; the one that claimed last records the outcome.

The delivery guarantee is at least once: a worker that dies between the provider's accept and
its own record sends that SMS again after the lease. The outbox id is the client reference
given to the provider for exactly that case.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import typing
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import CTE, ColumnElement, Table, Text, bindparam, case, cast, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.channels import SMS_OUTBOX_CHANNEL
from core.db.models import SmsOutbox
from core.domain.notifications import CLAIMABLE, SmsKind, SmsStatus
from core.domain.phone import CallerNumber
from lifecycle.sms_providers import SendOutcome, SendResult, SmsMessage, SmsProvider
from lifecycle.sms_templates import SmsTemplates, default_templates

log = logging.getLogger(__name__)

#: Longest ``last_error`` kept.
ERROR_LIMIT = 500


class Enqueued(enum.StrEnum):
    QUEUED = "queued"
    #: The same (complaint, kind, dedupe key) was already queued: nothing added.
    DUPLICATE = "duplicate"
    #: No number to send to: recorded as ``skipped``.
    SKIPPED = "skipped"


_outbox = typing.cast(Table, SmsOutbox.__table__)
#: An SMS row's columns, as :func:`sms_row` gives them.
_ROW = (
    "complaint_number",
    "caller_number",
    "kind",
    "dedupe_key",
    "language",
    "body",
    "dlt_template_id",
    "status",
    "last_error",
)


def sms_row(
    *,
    kind: SmsKind,
    complaint_number: str,
    caller_number: CallerNumber | None,
    params: Mapping[str, str],
    dedupe_key: str | None,
    language: str = "hi",
    templates: SmsTemplates | None = None,
) -> dict[str, typing.Any]:
    """The ``sms_outbox`` row of the ``kind`` SMS about ``complaint_number``, rendered (a wrong
    parameter is a ValueError before any write); ``pending``, or ``skipped`` with no number."""
    templates = templates or default_templates()
    rendered = templates.render(
        SmsKind(kind), language, {**params, "complaint_number": complaint_number}
    )
    pending = caller_number is not None
    return {
        "complaint_number": complaint_number,
        "caller_number": caller_number,
        "kind": kind,
        "dedupe_key": dedupe_key,
        "language": rendered.language,
        "body": rendered.text,
        "dlt_template_id": rendered.dlt_template_id,
        "status": SmsStatus.PENDING if pending else SmsStatus.SKIPPED,
        "last_error": None if pending else "no caller number (withheld)",
    }


def enqueued(row: Mapping[str, typing.Any], inserted: int | None) -> Enqueued:
    """What became of ``row`` (:func:`sms_row`) given the id its INSERT returned."""
    if inserted is None:
        return Enqueued.DUPLICATE
    return Enqueued.SKIPPED if row["status"] is SmsStatus.SKIPPED else Enqueued.QUEUED


def queued_after(history_id: ColumnElement[int] | None, prefix: str) -> CTE:
    """The SMS row's INSERT as a CTE, its values bind parameters ``prefix + column``; nothing
    (no id) when the event was queued before. With ``history_id``, of the statement that
    writes its history row (one round trip for both): inserted only if that row was, and a
    row whose ``dedupe_key`` is NULL takes the history row's id as its key."""
    columns = [_outbox.c[name] for name in _ROW]
    values: list[ColumnElement[typing.Any]] = [
        bindparam(prefix + column.name, type_=column.type) for column in columns
    ]
    if history_id is not None:
        key = _ROW.index("dedupe_key")
        values[key] = func.coalesce(values[key], cast(history_id, Text))
    return (
        insert(_outbox)
        .from_select(columns, select(*values))
        .on_conflict_do_nothing(constraint="uq_sms_outbox_event")
        .returning(_outbox.c.id)
        .cte(prefix + "queued")
    )


def wake_sender(queued_id: ColumnElement[int]) -> ColumnElement[typing.Any]:
    """A column that NOTIFYs the sender of the SMS row ``queued_id`` (NULL: nothing)."""
    return case((queued_id.is_not(None), func.pg_notify(SMS_OUTBOX_CHANNEL, cast(queued_id, Text))))


#: The SMS row, built once (Core, bind parameters); nothing when the event was queued before.
_queued = queued_after(None, "")
#: A row to send: the sender is woken (NOTIFY, delivered at COMMIT) in the INSERT's round
#: trip, for a row actually inserted.
_QUEUE = select(_queued.c.id, wake_sender(_queued.c.id))
#: A row recorded as skipped (no number): nobody to wake.
_QUEUE_SKIPPED = select(_queued.c.id)


async def enqueue(
    session: AsyncSession,
    *,
    kind: SmsKind,
    complaint_number: str,
    caller_number: CallerNumber | None,
    params: Mapping[str, str],
    dedupe_key: str,
    language: str = "hi",
    templates: SmsTemplates | None = None,
) -> Enqueued:
    """Queue the ``kind`` SMS about ``complaint_number`` in ``session``'s transaction (the
    caller commits). ``dedupe_key`` tells two events of one kind apart (the history row id of
    an assignment, the breach key of an escalation); ``params`` fill the template
    (``complaint_number`` is added). A wrong parameter is a ValueError before any write."""
    row = sms_row(
        kind=kind,
        complaint_number=complaint_number,
        caller_number=caller_number,
        params=params,
        dedupe_key=dedupe_key,
        language=language,
        templates=templates,
    )
    statement = _QUEUE if row["status"] is SmsStatus.PENDING else _QUEUE_SKIPPED
    return enqueued(row, (await session.execute(statement, row)).scalar_one_or_none())


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff, capped; ``max_attempts`` attempts in all before ``dead``."""

    max_attempts: int = 8
    base: timedelta = timedelta(seconds=30)
    cap: timedelta = timedelta(hours=1)
    lease: timedelta = timedelta(minutes=2)

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            max_attempts=settings.sms_max_attempts,
            base=timedelta(seconds=settings.sms_backoff_base_seconds),
            cap=timedelta(seconds=settings.sms_backoff_cap_seconds),
            lease=timedelta(seconds=settings.sms_lease_seconds),
        )

    def backoff(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed attempt: base, 2·base, 4·base… ≤ cap."""
        if attempts < 1:
            raise ValueError("backoff follows an attempt")
        # Bound the exponent first: 2**attempts of a large count would overflow timedelta.
        exponent = min(attempts - 1, 62)
        seconds = min(self.base.total_seconds() * 2**exponent, self.cap.total_seconds())
        return timedelta(seconds=seconds)


@dataclass(slots=True)
class DeliveryReport:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    #: Outbox ids sent in this pass (tests and the worker's heartbeat count them).
    sent_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Claim:
    message: SmsMessage
    attempts: int
    token: str


async def _claim(
    sessions: async_sessionmaker[AsyncSession], now: datetime, batch: int, policy: RetryPolicy
) -> list[_Claim]:
    """Take up to ``batch`` due rows for this worker: ``sending``, lease until now + lease."""
    token = str(uuid.uuid4())
    async with sessions() as session, session.begin():
        due = (
            select(SmsOutbox.id)
            .where(
                SmsOutbox.status.in_([s.value for s in CLAIMABLE]),
                SmsOutbox.next_attempt_at <= now,
            )
            .order_by(SmsOutbox.next_attempt_at, SmsOutbox.id)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
        ids = list((await session.execute(due)).scalars())
        if not ids:
            return []
        # A row claimed max_attempts times whose last lease ran out is not tried again.
        exhausted = (
            update(SmsOutbox)
            .where(SmsOutbox.id.in_(ids), SmsOutbox.attempts >= policy.max_attempts)
            .values(
                status=SmsStatus.DEAD,
                lease_token=None,
                last_error=func.concat(
                    SmsOutbox.last_error, " (the lease of the last attempt ran out)"
                ),
            )
        )
        await session.execute(exhausted)
        claimed = (
            update(SmsOutbox)
            .where(SmsOutbox.id.in_(ids), SmsOutbox.attempts < policy.max_attempts)
            .values(
                status=SmsStatus.SENDING,
                attempts=SmsOutbox.attempts + 1,
                next_attempt_at=now + policy.lease,
                lease_token=token,
            )
            .returning(
                SmsOutbox.id,
                SmsOutbox.caller_number,
                SmsOutbox.body,
                SmsOutbox.language,
                SmsOutbox.dlt_template_id,
                SmsOutbox.attempts,
            )
        )
        rows = (await session.execute(claimed)).all()
    return [
        _Claim(
            SmsMessage(row.id, row.caller_number, row.body, row.language, row.dlt_template_id),
            row.attempts,
            token,
        )
        for row in sorted(rows, key=lambda r: r.id)
    ]


async def _send(provider: SmsProvider, message: SmsMessage) -> SendResult:
    try:
        return await provider.send(message)
    except Exception as error:  # a provider bug is a failed attempt, not a lost SMS
        log.exception("SMS provider %s raised on outbox #%d", provider.name, message.outbox_id)
        return SendResult(SendOutcome.RETRY, error=f"provider raised {type(error).__name__}")


async def _record(
    sessions: async_sessionmaker[AsyncSession],
    claim: _Claim,
    result: SendResult,
    now: datetime,
    policy: RetryPolicy,
) -> SmsStatus | None:
    """Store the outcome where the row still holds ``claim``'s token; None if it does not
    (the lease ran out and another worker claimed it: its outcome is the one that counts)."""
    values: dict[str, object]
    if result.outcome is SendOutcome.SENT:
        status = SmsStatus.SENT
        values = {
            "sent_at": now,
            "provider_message_id": result.provider_message_id,
            "last_error": None,
        }
    elif result.outcome is SendOutcome.RETRY and claim.attempts < policy.max_attempts:
        status = SmsStatus.FAILED
        values = {"next_attempt_at": now + policy.backoff(claim.attempts)}
    else:
        status = SmsStatus.DEAD
        values = {}
    if result.error is not None:
        values["last_error"] = result.error[:ERROR_LIMIT]
    async with sessions() as session, session.begin():
        stored = await session.execute(
            update(SmsOutbox)
            .where(SmsOutbox.id == claim.message.outbox_id, SmsOutbox.lease_token == claim.token)
            .values(status=status, lease_token=None, **values)
            .returning(SmsOutbox.id)
        )
        if stored.scalar_one_or_none() is None:
            log.warning("outbox #%d was claimed again before its result", claim.message.outbox_id)
            return None
    return status


async def deliver_due(
    sessions: async_sessionmaker[AsyncSession],
    provider: SmsProvider,
    now: datetime,
    batch: int = 50,
    policy: RetryPolicy | None = None,
) -> DeliveryReport:
    """One delivery pass: claim up to ``batch`` rows due at ``now``, send them concurrently,
    record each outcome. Safe to run in several workers at once."""
    policy = policy or RetryPolicy()
    claims = await _claim(sessions, now, batch, policy)
    report = DeliveryReport(claimed=len(claims))
    if not claims:
        return report
    results = await asyncio.gather(*(_send(provider, c.message) for c in claims))
    for claim, result in zip(claims, results, strict=True):
        try:
            status = await _record(sessions, claim, result, now, policy)
        except Exception:
            # The row stays `sending`: it is claimed again when its lease runs out (at least
            # once), and the other outcomes of this batch are still recorded.
            log.exception("could not record the outcome of SMS outbox #%d", claim.message.outbox_id)
            continue
        if status is SmsStatus.SENT:
            report.sent += 1
            report.sent_ids.append(claim.message.outbox_id)
        elif status is SmsStatus.FAILED:
            report.retried += 1
        elif status is SmsStatus.DEAD:
            report.dead += 1
            log.error("SMS outbox #%d given up: %s", claim.message.outbox_id, result.error)
    return report
