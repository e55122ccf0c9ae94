"""The one way to append to ``audit_log``: in the caller's session, so the record commits (or
rolls back) with the change it describes."""

from __future__ import annotations

from typing import Any

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
