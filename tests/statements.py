"""What tests see of the statements a piece of code sends to PostgreSQL."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


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
