"""The recordings' retention pass: delete the files whose time has come, mark their rows.

A recording goes once its ``retain_until`` (the call's end plus
``recording_retention_days``) has passed and no complaint filed on its call is still open
(:func:`core.domain.recordings.decide`). The pass walks only the rows past their date (a
partial index on live rows), locks each batch ``FOR UPDATE SKIP LOCKED`` (two passes at once
never take the same row), unlinks the file (already gone is fine) and sets ``deleted_at`` to
the pass's as-of time with the reason. It is idempotent: a deleted row is never selected
again, and a file unlinked by a pass whose COMMIT failed is simply marked by the next one.

Run by the ``sla`` worker (:class:`RecordingSchedule`, hourly) and by
``helpline recordings prune [--as-of T]``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.models import Complaint, Recording
from core.domain.complaints import ComplaintStatus
from core.domain.recordings import Keep, decide, is_recording_path
from lifecycle.schedule import HourlyPass

log = logging.getLogger(__name__)

BATCH = 500
#: ``deleted_reason`` of a recording the retention pass deleted.
RETENTION_REASON = "retention period over"


@dataclass
class PruneReport:
    as_of: datetime
    deleted: list[int] = field(default_factory=list)
    kept_open_complaint: list[int] = field(default_factory=list)
    freed_bytes: int = 0

    def lines(self) -> list[str]:
        out = [f"deleted recording {rid}" for rid in self.deleted]
        out += [
            f"kept recording {rid}: a complaint on its call is open"
            for rid in self.kept_open_complaint
        ]
        out.append(
            f"as of {self.as_of.isoformat()}: {len(self.deleted)} deleted "
            f"({self.freed_bytes} bytes), {len(self.kept_open_complaint)} kept for open complaints"
        )
        return out


async def prune(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, as_of: datetime
) -> PruneReport:
    """One retention pass at ``as_of`` (see the module's text)."""
    report = PruneReport(as_of)
    after: tuple[datetime, int] | None = None
    root = Path(settings.recordings_dir)
    while True:
        async with sessions() as session:
            query = (
                select(Recording)
                .where(Recording.deleted_at.is_(None), Recording.retain_until <= as_of)
                .order_by(Recording.retain_until, Recording.id)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            )
            if after is not None:
                query = query.where(tuple_(Recording.retain_until, Recording.id) > after)
            rows = list((await session.execute(query)).scalars())
            if not rows:
                return report
            statuses: dict[int, list[ComplaintStatus]] = defaultdict(list)
            found = await session.execute(
                select(Complaint.call_id, Complaint.status).where(
                    Complaint.call_id.in_({row.call_id for row in rows})
                )
            )
            for call_id, status in found:
                if call_id is not None:
                    statuses[call_id].append(status)
            for row in rows:
                assert row.retain_until is not None
                after = (row.retain_until, row.id)
                decision = decide(row.retain_until, as_of, statuses[row.call_id])
                if decision.keep is Keep.COMPLAINT_OPEN:
                    report.kept_open_complaint.append(row.id)
                if not decision.delete:
                    continue
                if is_recording_path(row.path):
                    await asyncio.to_thread((root / row.path).unlink, missing_ok=True)
                row.deleted_at = as_of
                row.deleted_reason = RETENTION_REASON
                report.deleted.append(row.id)
                report.freed_bytes += row.bytes or 0
            await session.commit()
        if len(rows) < BATCH:
            return report


class RecordingSchedule(HourlyPass[PruneReport]):
    """The ``sla`` worker's hook: :func:`prune` at most every ``every``."""

    name = "recordings"

    async def run(self, sessions: async_sessionmaker[AsyncSession], now: datetime) -> PruneReport:
        return await prune(sessions, self.settings, now)

    def changed(self, report: PruneReport) -> bool:
        return bool(report.deleted)
