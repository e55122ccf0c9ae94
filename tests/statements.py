"""What tests see of the statements a piece of code sends to PostgreSQL."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession


@contextlib.contextmanager
def statements_sent(engine: AsyncEngine) -> Iterator[list[tuple[str, Any]]]:
    """Every statement (with its parameters) sent through ``engine`` meanwhile."""
    sent: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        sent.append((statement, params))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)


def transactions_begun(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A list that gets "BEGIN" each time any asyncpg connection starts a transaction from
    now on (the test's own reads included): which code runs in autocommit, and which not."""
    begun: list[str] = []
    real = asyncpg.Connection.transaction

    def counted(self: asyncpg.Connection, **kwargs: Any) -> Any:
        begun.append("BEGIN")
        return real(self, **kwargs)

    monkeypatch.setattr(asyncpg.Connection, "transaction", counted)
    return begun


def rows_examined(plan: dict[str, Any], table: str) -> int:
    """Rows of ``table`` an ``EXPLAIN (ANALYZE, FORMAT JSON)`` plan read: returned plus removed
    by a filter, over every loop of every node that scans the table."""
    rows = 0
    if plan.get("Relation Name") == table:
        loops = plan.get("Actual Loops", 1)
        rows += (plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)) * loops
    for child in plan.get("Plans", ()):
        rows += rows_examined(child, table)
    return rows


async def plan_of(session: AsyncSession, statement: str, params: Any) -> dict[str, Any]:
    """The plan PostgreSQL ran ``statement`` (as :func:`statements_sent` captured it) by:
    ``EXPLAIN (ANALYZE, FORMAT JSON)``, executed on the session's connection."""
    connection = await session.connection()
    explained = await connection.exec_driver_sql(
        "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, params
    )
    plan: dict[str, Any] = explained.scalar_one()[0]["Plan"]
    return plan
