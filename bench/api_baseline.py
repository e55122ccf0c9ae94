"""The naive peer of ``python -m bench api``: the three complaint routes written the usual way.

Synchronous FastAPI routes (``def``: Starlette runs each in its thread pool), a psycopg 3
connection pool, hand-written SQL on the same schema and database as ours, the same bearer
tokens (``api_tokens``), the same reference data in memory and the same routing
(:func:`core.domain.lifecycle.apply`). It is what a competent first version looks like, not a
straw man; it does *less* than ours on a filing (no SMS rows), which favours it.

Run as ``python -m bench.api_baseline DATABASE_URL PORT`` (uvicorn, one worker, like ours).
"""

import json
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response
from psycopg import Connection
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool
from pydantic import BaseModel

from core.domain.clock import month_start
from core.domain.complaints import SETTLED_STATES, ComplaintStatus, complaint_number, resolution_due
from core.domain.credentials import token_digest
from core.domain.lifecycle import SYSTEM, Action, ComplaintView, Refusal, apply
from core.reference import load_reference

#: One connection for each of Starlette's 40 threads, twice what ours may hold (its engine's
#: pool of 20), which favours the peer. With fewer it deadlocks under overload: the
#: connection dependency enters in one thread and the route runs in another, so requests
#: blocked in the pool's ``getconn`` can take every thread while those holding connections
#: wait for a thread to run their route, until the pool's 30 s timeout fails them (seen on a
#: slow machine: every request failed for minutes after a run at 300/s).
POOL_SIZE = 40

_SELECT = """
SELECT c.*, u.username AS author, k.uniqueid AS call_uniqueid, d.number AS duplicate_number
FROM complaints c
LEFT JOIN users u ON u.id = c.created_by
LEFT JOIN calls k ON k.id = c.call_id
LEFT JOIN complaints d ON d.id = c.duplicate_of
"""


class ComplaintBody(BaseModel):
    description: str
    caller_number: str
    caller_name: str | None = None
    department: str
    category: str
    district: str
    tehsil: str | None = None
    thana: str | None = None


def create_baseline(database_url: str) -> FastAPI:
    conninfo = database_url.replace("postgresql+asyncpg://", "postgresql://")
    pool = ConnectionPool(conninfo, min_size=4, max_size=POOL_SIZE, open=True)
    reference = load_reference()
    app = FastAPI()

    def connection() -> Iterator[Connection[dict[str, Any]]]:
        with pool.connection() as conn:
            conn.row_factory = dict_row  # type: ignore[assignment]
            yield conn  # type: ignore[misc]

    Conn = Annotated[Connection[dict[str, Any]], Depends(connection)]

    def user(request: Request, conn: Conn) -> dict[str, Any]:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(401)
        row = conn.execute(
            "SELECT u.id, u.role FROM users u JOIN api_tokens t ON t.user_id = u.id "
            "WHERE t.token_hash = %s AND t.expires_at > now() AND u.active",
            (token_digest(token.strip()),),
        ).fetchone()
        if row is None:
            raise HTTPException(401)
        return row

    User = Annotated[dict[str, Any], Depends(user)]

    def out(row: dict[str, Any]) -> dict[str, Any]:
        officer = reference.officers.get(row["assigned_officer"] or "")
        return {
            "number": row["number"],
            "status": row["status"],
            "caller_number": row["caller_number"],
            "caller_name": row["caller_name"],
            "description": row["description"],
            "call_uniqueid": row["call_uniqueid"],
            "created_by": row["author"],
            "created_at": row["created_at"],
            "due_at": row["due_at"],
            "department": _place(reference.departments.get(row["department"] or "")),
            "category": _place(reference.categories.get(row["category"] or "")),
            "district": _place(reference.districts.get(row["district"] or "")),
            "assigned_officer": None if officer is None else officer.code,
            "level": row["level"],
            "unroutable_reason": row["unroutable_reason"],
            "possible_duplicate_of": row["duplicate_number"],
            "reopen_count": row["reopen_count"],
        }

    @app.get("/complaints/{number}")
    def get_complaint(number: str, conn: Conn, _user: User) -> dict[str, Any]:
        row = conn.execute(_SELECT + "WHERE c.number = %s", (number,)).fetchone()
        if row is None:
            raise HTTPException(404)
        history = conn.execute(
            "SELECT h.at, h.action, u.username AS actor, h.from_status, h.to_status, "
            "h.from_officer, h.to_officer, h.note FROM complaint_history h "
            "LEFT JOIN users u ON u.id = h.actor_user_id "
            "WHERE h.complaint_id = %s ORDER BY h.at, h.id",
            (row["id"],),
        ).fetchall()
        return {
            **out(row),
            "resolution_text": row["resolution_text"],
            "resolved_at": row["resolved_at"],
            "history": history,
        }

    @app.get("/complaints")
    def list_complaints(conn: Conn, _user: User, caller: str, limit: int = 50) -> list[Any]:
        rows = conn.execute(
            _SELECT + "WHERE c.caller_number = %s ORDER BY c.created_at DESC LIMIT %s",
            (caller, limit),
        ).fetchall()
        return [out(row) for row in rows]

    @app.post("/complaints", status_code=201)
    def create_complaint(
        body: ComplaintBody,
        conn: Conn,
        author: User,
        response: Response,
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        category = reference.categories.get(body.category)
        if (
            category is None
            or category.department != body.department
            or body.district not in reference.districts
        ):
            raise HTTPException(422)
        now = datetime.now(UTC)
        with conn.transaction():
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                ("complaint caller " + body.caller_number,),
            )
            if idempotency_key is not None:
                found = conn.execute(
                    _SELECT + "WHERE c.idempotency_key = %s", (idempotency_key,)
                ).fetchone()
                if found is not None:
                    response.status_code = 200
                    return out(found)
            count = conn.execute(
                "SELECT count(*) AS n FROM complaints WHERE caller_number = %s "
                "AND created_at >= %s",
                (body.caller_number, month_start(now)),
            ).fetchone()
            assert count is not None
            if count["n"] >= 10:
                raise HTTPException(429)
            duplicate = conn.execute(
                "SELECT id FROM complaints WHERE caller_number = %s AND category = %s "
                "AND status <> ALL(%s) ORDER BY created_at DESC LIMIT 1",
                (body.caller_number, category.code, [str(s) for s in SETTLED_STATES]),
            ).fetchone()
            sequence = conn.execute("SELECT nextval('complaint_number_seq') AS n").fetchone()
            assert sequence is not None
            number = complaint_number(sequence["n"])
            filed = ComplaintView(
                number,
                ComplaintStatus.REGISTERED,
                category=category.code,
                district=body.district,
                tehsil=body.tehsil,
                thana=body.thana,
            )
            routed = apply(filed, Action.ASSIGN, SYSTEM, now, reference=reference)
            after = None if isinstance(routed, Refusal) else routed.after
            reason = routed.reason if isinstance(routed, Refusal) else None
            inserted = conn.execute(
                "INSERT INTO complaints (number, caller_number, caller_name, description, "
                "created_by, idempotency_key, created_at, due_at, department, category, "
                "district, tehsil, thana, status, assigned_officer, level, unroutable_reason, "
                "duplicate_of) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
                "%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING id",
                (
                    number,
                    body.caller_number,
                    body.caller_name,
                    body.description,
                    author["id"],
                    idempotency_key,
                    now,
                    resolution_due(now, category.sla_days),
                    body.department,
                    category.code,
                    body.district,
                    body.tehsil,
                    body.thana,
                    str(after.status if after else ComplaintStatus.REGISTERED),
                    after.officer if after else None,
                    after.level if after else None,
                    reason,
                    duplicate["id"] if duplicate else None,
                ),
            ).fetchone()
            if inserted is None:
                raise HTTPException(409)
            conn.execute(
                "INSERT INTO complaint_history (complaint_id, at, actor_user_id, action, "
                "to_status) VALUES (%s, %s, %s, 'register', 'registered')",
                (inserted["id"], now, author["id"]),
            )
            if after is not None:
                conn.execute(
                    "INSERT INTO complaint_history (complaint_id, at, action, from_status, "
                    "to_status, to_officer) VALUES (%s, %s, 'assign', 'registered', %s, %s)",
                    (inserted["id"], now, str(after.status), after.officer),
                )
            conn.execute(
                "INSERT INTO audit_log (service, actor_user_id, action, entity, entity_id, "
                "detail) VALUES ('api', %s, 'complaint_created', 'complaint', %s, %s)",
                (author["id"], str(inserted["id"]), json.dumps({"request": str(uuid.uuid4())})),
            )
        created = conn.execute(_SELECT + "WHERE c.id = %s", (inserted["id"],)).fetchone()
        assert created is not None
        return out(created)

    return app


def _place(record: Any) -> dict[str, str] | None:
    if record is None:
        return None
    return {"code": record.code, "name_en": record.name_en, "name_hi": record.name_hi}


def main() -> None:
    database_url, port = sys.argv[1], int(sys.argv[2])
    app = create_baseline(database_url)
    print(f"PORT {port}", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", http="h11")


if __name__ == "__main__":
    main()
