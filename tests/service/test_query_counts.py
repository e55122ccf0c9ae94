"""The complaint reads cost a fixed number of SQL statements, however many rows they return.

Issue 14: a list that ran one query per row (an author, a call, a duplicate's number...) is
what 500 agents find first. Counted with SQLAlchemy's ``before_cursor_execute`` on the engine
the services use, so a per-row query added later anywhere under them fails here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from api.services import auth, complaints, transitions
from core.config import Settings
from core.db.models import Call, Complaint, ComplaintHistory, User, complaint_sequence
from core.db.session import create_engine, session_factory
from core.domain.complaints import ComplaintStatus, HistoryAction, complaint_number
from core.domain.phone import CallerNumber
from core.reference import Reference

MANY = 50
CALLER_MANY = "9876500050"
CALLER_ONE = "9876500001"


@pytest.fixture
async def engine(db_settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_settings, pool_size=1)
    yield engine
    await engine.dispose()


async def _file(
    session: AsyncSession,
    reference: Reference,
    author: User,
    caller: str,
    index: int,
    *,
    history: int,
    duplicate_of: int | None = None,
) -> Complaint:
    """A complaint with everything a row can name: an author, a call, an officer, a possible
    duplicate, ``history`` history rows by different users."""
    now = datetime.now(UTC) - timedelta(minutes=index)
    call = Call(uniqueid=f"1733000000.{caller[-3:]}{index}", caller_number=caller, started_at=now)
    session.add(call)
    await session.flush()
    sequence = (await session.execute(select(complaint_sequence.next_value()))).scalar_one()
    officer = sorted(reference.officers)[index % len(reference.officers)]
    complaint = Complaint(
        number=complaint_number(sequence),
        caller_number=caller,
        description=f"Complaint {index} of {caller}",
        call_id=call.id,
        created_by=author.id,
        created_at=now,
        due_at=now + timedelta(days=7),
        department="police",
        category="police.harassment",
        district="lucknow",
        status=ComplaintStatus.ASSIGNED,
        assigned_officer=officer,
        duplicate_of=duplicate_of,
    )
    session.add(complaint)
    await session.flush()
    for step in range(history):
        session.add(
            ComplaintHistory(
                complaint_id=complaint.id,
                at=now + timedelta(seconds=step),
                actor_user_id=author.id if step % 2 else None,
                action=HistoryAction.REGISTER if step == 0 else HistoryAction.ASSIGN,
                to_status=ComplaintStatus.ASSIGNED,
                to_officer=officer,
            )
        )
    return complaint


async def _statements(engine: AsyncEngine, work: Callable[[AsyncSession], Awaitable[Any]]) -> int:
    """How many statements ``work`` sends to PostgreSQL (in a fresh session)."""
    sent: list[str] = []

    def count(*args: Any) -> None:
        sent.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        async with session_factory(engine)() as session:
            await work(session)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    return len(sent)


async def test_list_and_read_queries_do_not_grow_with_rows(
    engine: AsyncEngine, reference_data: Reference
) -> None:
    async with session_factory(engine)() as session:
        authors = [
            await auth.create_user(
                session, username=name, full_name=name, role=role, password="pw-" + name
            )
            for name, role in (("asha", "agent"), ("bhanu", "agent"), ("chitra", "supervisor"))
        ]
        await session.flush()
        first = await _file(session, reference_data, authors[0], CALLER_MANY, 0, history=1)
        for index in range(1, MANY):
            await _file(
                session,
                reference_data,
                authors[index % len(authors)],
                CALLER_MANY,
                index,
                history=1 + index % 3,
                duplicate_of=first.id,
            )
        lone = await _file(session, reference_data, authors[0], CALLER_ONE, 0, history=1)
        busy = await _file(session, reference_data, authors[1], "9876500002", 0, history=MANY)
        await session.commit()
    viewer = authors[2]

    async def listed(caller: str, expected: int) -> int:
        async def work(session: AsyncSession) -> None:
            rows = await complaints.latest(
                session, reference_data, viewer=viewer, caller=CallerNumber(caller), limit=MANY
            )
            assert len(rows) == expected
            assert all(row.created_by != "?" and row.call_uniqueid for row in rows)

        return await _statements(engine, work)

    assert await listed(CALLER_ONE, 1) == await listed(CALLER_MANY, MANY)

    async def read(number: str, history: int) -> int:
        async def work(session: AsyncSession) -> None:
            detail = await transitions.detail(session, reference_data, number, viewer=viewer)
            assert len(detail.history) == history

        return await _statements(engine, work)

    one, many = await read(lone.number, 1), await read(busy.number, MANY)
    assert one == many
    # The complaint with its names and its history: one statement (before the pool's own).
    assert await read(first.number, 1) == one
