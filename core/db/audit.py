"""The one way to append to ``audit_log``: in the caller's session, so the record commits (or
rolls back) with the change it describes."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CTE, ColumnElement, String, Table, bindparam, insert, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import AuditLog


def audit(
    session: AsyncSession,
    *,
    service: str,
    actor_user_id: int | None,
    action: str,
    entity: str,
    entity_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditLog:
    """Add who did what to ``session`` (not flushed: it goes with the caller's commit)."""
    row = AuditLog(
        service=service,
        actor_user_id=actor_user_id,
        action=action,
        entity=entity,
        entity_id=entity_id,
        detail=detail or {},
    )
    session.add(row)
    return row


_audit_log = cast(Table, AuditLog.__table__)
#: The columns :func:`audited_after` fills from bind parameters ``audit_<column>``.
_GIVEN = ("service", "actor_user_id", "action", "entity", "detail")


def audited_after(entity_id: ColumnElement[Any]) -> CTE:
    """The same record as :func:`audit`'s, as a CTE of the statement that makes the change
    (its ``entity_id`` a column of that statement, such as an INSERT's RETURNING): written in
    that round trip, and only for a row the change returned. Its values are bind parameters
    ``audit_<column>`` (:func:`audit_params`)."""
    given = [_audit_log.c[name] for name in _GIVEN]
    values = [bindparam("audit_" + column.name, type_=column.type) for column in given]
    return (
        insert(_audit_log)
        .from_select(
            [*(column.name for column in given), "entity_id"],
            select(*values, sql_cast(entity_id, String)),
        )
        .cte("audited")
    )


def audit_params(
    *,
    service: str,
    actor_user_id: int | None,
    action: str,
    entity: str,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The bind parameters of :func:`audited_after`."""
    return {
        "audit_service": service,
        "audit_actor_user_id": actor_user_id,
        "audit_action": action,
        "audit_entity": entity,
        "audit_detail": detail or {},
    }
