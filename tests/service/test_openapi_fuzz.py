"""schemathesis against the app's own ``/openapi.json``, in-process (ASGI), as each role and
without a token: every operation, valid and invalid input, every built-in check (status codes,
content types, headers and bodies as documented, invalid data refused, no server error) on a
real PostgreSQL. The counts (cases and statuses per role) are printed."""

from __future__ import annotations

import collections
import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given
from schemathesis import Case, GenerationMode
from schemathesis.python.asgi import shutdown_lifespans
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from api.services import agents, auth, seats
from core.config import Settings
from core.db.heartbeat import EXPECTED_SERVICES
from core.db.models import ServiceHeartbeat
from core.reference import Reference
from helpline.seed import seed_demo_users, seed_seats
from tests.api_app import stand_in_ami

#: Every check stays on. One widening: the complaint and call routes check codes and numbers
#: against the reference data and libphonenumber, which no JSON schema can express (a category
#: of another department, a tehsil of another district, a 10-digit string that is no Indian
#: number, a complaint number with a wrong check digit; a review month after the current one;
#: a do-not-call number), so a schema-valid request may be refused with the documented 422
#: there; everywhere else valid data must pass.
WIDENED = (
    r"^/(calls|complaints(/check|/\{number\}(/unmask|/transitions|/call"
    r"|/recordings(/\{recording_id\}/audio)?)?)?|reports/(monthly|feedback)|dnc)$"
)
#: Strings with NUL or lone surrogates are refused (422) by the boundary, before any route;
#: no JSON schema can say so, so valid data is generated without them (invalid data has them).
CONFIG = f"""
[generation]
allow-x00 = false
codec = "utf-8"

[[operations]]
include-path-regex = '{WIDENED}'
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "3xx", "401", "403", "404", "409", "422", "429"
]
"""
#: Per operation and mode: enough to reach every parameter's edge cases, short enough for CI
#: (the admin, who may call everything, gets the most).
EXAMPLES = {"admin": 30, "supervisor": 10, "agent": 10, "officer": 10, "cm_office": 10, None: 5}
#: Logging out ends the token the other operations use; tests/service/test_auth_hardening.py
#: covers it.
SKIPPED = {("POST", "/auth/logout")}


@contextmanager
def fastagi_listener() -> Iterator[int]:
    """A port that accepts TCP connections, for /health's FastAGI probe (a bare connect)."""
    with socket.create_server(("127.0.0.1", 0)) as server:

        def accept() -> None:
            with contextlib.suppress(OSError):
                while True:
                    server.accept()[0].close()

        threading.Thread(target=accept, daemon=True).start()
        yield server.getsockname()[1]


async def test_every_operation_holds_its_schema_under_fuzzing(
    db_settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    reference_data: Reference,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No seat-config daemon or Asterisk confirms a seat change here: the services would wait
    # their full confirmation time (5 s, 15 s) on every such example before answering
    # "pending"/"applied: false"; a short wait gives the same answers.
    for service in (agents.login, agents.logout, agents.set_pause, seats.set_count):
        assert service.__kwdefaults__ is not None and "wait" in service.__kwdefaults__
        monkeypatch.setitem(service.__kwdefaults__, "wait", 0.05)
    async with sessions() as session:
        await seed_seats(session, 2)
        users = await seed_demo_users(session, db_settings, reference_data)
        await session.commit()
    tokens: dict[str | None, str | None] = {None: None}
    for role in ("admin", "supervisor", "agent", "officer", "cm_office"):
        user = users[role][0]
        async with sessions() as session:
            issued = await auth.issue_token(
                session, db_settings, user["username"], user["password"]
            )
        tokens[role] = issued.access_token
    # Everything up, so /health's 503 (by design when a part is down) is not a finding: the
    # services' heartbeats fresh for the whole run (written an hour ahead: the fuzz runs for
    # minutes, longer than a heartbeat stays fresh).
    async with sessions() as session:
        ahead = datetime.now(UTC) + timedelta(hours=1)
        for service in EXPECTED_SERVICES:
            session.add(
                ServiceHeartbeat(
                    service=service, pid=os.getpid(), started_at=ahead, seen_at=ahead, detail={}
                )
            )
        await session.commit()
    ami = stand_in_ami(up=True)
    with fastagi_listener() as agi_port:
        settings = db_settings.model_copy(update={"agi_host": "127.0.0.1", "agi_port": agi_port})
        app = create_app(settings, ami=ami)
        for role, token in tokens.items():
            counts = fuzz_every_operation(app, token, EXAMPLES[role])
            print(
                f"schemathesis as {role or 'no token'}: {sum(counts.values())} cases,"
                f" statuses {dict(sorted(counts.items()))}, 0 failures"
            )
            assert sum(counts.values()) > 0
            assert not any(code >= 500 and code != 503 for code in counts), counts


def fuzz_every_operation(
    app: FastAPI, token: str | None, examples: int
) -> collections.Counter[int]:
    """Fuzz every operation as the holder of ``token``; the statuses seen, counted."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    schema = schemathesis.openapi.from_asgi(
        "/openapi.json", app, config=schemathesis.Config.from_str(CONFIG)
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    statuses: collections.Counter[int] = collections.Counter()
    try:
        for operation in operations:
            if (operation.method.upper(), operation.path) in SKIPPED:
                continue
            inputs = (operation.path_parameters, operation.query, operation.headers)
            has_inputs = any(len(group) for group in (*inputs, operation.body))
            # Without any input there is nothing to make invalid.
            modes = [GenerationMode.POSITIVE] + [GenerationMode.NEGATIVE] * has_inputs
            for mode in modes:

                @given(case=operation.as_strategy(generation_mode=mode))
                @hypothesis.settings(
                    max_examples=examples,
                    deadline=None,
                    derandomize=True,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                )
                def fuzz(case: Case) -> None:
                    response = case.call_and_validate(headers=headers)
                    statuses[response.status_code] += 1

                fuzz()
    finally:
        shutdown_lifespans()
    return statuses
