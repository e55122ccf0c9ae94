"""The API's boundary (issue 16): bodies bounded before any parsing or token check, NUL, lone
surrogates and non-finite numbers refused with 422, one problem shape for every error, the
security headers on every response, and no traceback to a client."""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from api.problems import ERRORS, ErrorLog
from core.config import Settings
from core.db.session import asyncpg_dsn
from helpline.seed import seed_demo_users, seed_seats
from tests.api_app import api_client

PROBLEM = "application/problem+json"


@pytest.fixture
async def users(
    db_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> dict[str, list[dict[str, str]]]:
    async with sessions() as session:
        await seed_seats(session, 3)
        seeded = await seed_demo_users(session, db_settings)
        await session.commit()
    return seeded


@pytest.fixture
async def client(db_settings: Settings, users: Any) -> AsyncIterator[httpx.AsyncClient]:
    async for http in api_client(db_settings):
        yield http


async def bearer(client: httpx.AsyncClient, users: Any, role: str) -> dict[str, str]:
    user = users[role][0]
    response = await client.post(
        "/auth/token", data={"username": user["username"], "password": user["password"]}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status and isinstance(body["detail"], str)
    assert "Traceback" not in response.text
    return body


async def test_a_body_over_the_limit_is_refused_before_the_token_check(
    client: httpx.AsyncClient,
) -> None:
    big = b'{"count": 5, "pad": "' + b"x" * (70 * 1024) + b'"}'
    # No token at all: the size is refused first (413, not 401).
    declared = await client.put(
        "/seats/count", content=big, headers={"content-type": "application/json"}
    )
    assert_problem(declared, 413)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"x" * 4096

    # Chunked (no Content-Length): counted while streaming.
    streamed = await client.put(
        "/seats/count", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in streamed.request.headers
    assert_problem(streamed, 413)


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (b'{"count": NaN}', "NaN"),
        (b'{"count": Infinity}', "Infinity"),
        (b'{"count": -Infinity}', "-Infinity"),
        (b'{"count": 1e400}', "out of range"),
        (b'{"count": 5, "x": "a\\u0000b"}', "NUL"),
        (b'{"count": 5, "x": "\\ud800"}', "surrogate"),
        (b'{"count": 5, "\\u0000": 1}', "NUL"),
        (b'{"count": 1' + b"0" * 5000 + b"}", "digits"),
        (b"[" * 5000 + b"]" * 5000, "deep"),
        (b'{"count": 5, "x": "\xff\xfe"}', "utf-8"),
    ],
)
async def test_bad_text_and_numbers_are_422_before_login(
    client: httpx.AsyncClient, body: bytes, what: str
) -> None:
    response = await client.put(
        "/seats/count", content=body, headers={"content-type": "application/json"}
    )
    problem = assert_problem(response, 422)
    assert problem["errors"], what


async def test_nul_and_surrogates_in_a_complaint_are_422_not_500(
    client: httpx.AsyncClient, users: Any
) -> None:
    agent = await bearer(client, users, "agent")
    complaint = {
        "description": "road\u0000broken",
        "department": "police",
        "category": "police.harassment",
        "district": "lucknow",
    }
    response = await client.post("/complaints", json=complaint, headers=agent)
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["loc"] == ["body", "description"]
    lone = b'{"description": "x\\udc80yz", "department": "police"}'
    response = await client.post(
        "/complaints", content=lone, headers={**agent, "content-type": "application/json"}
    )
    assert_problem(response, 422)
    # In a query string, and in the login form, before any token.
    assert_problem(await client.get("/complaints?q=a%00b", headers=agent), 422)
    login = await client.post("/auth/token", data={"username": "a\x00b", "password": "x"})
    assert_problem(login, 422)
    for raw in (b"username=%ED%A0%80&password=x", b"username=%FF%FE&password=x"):
        form = {"content-type": "application/x-www-form-urlencoded"}
        odd = await client.post("/auth/token", content=raw, headers=form)
        assert odd.status_code in (401, 422), odd.text
        assert odd.headers["content-type"] == PROBLEM


async def test_a_seat_count_is_a_json_number_only(client: httpx.AsyncClient, users: Any) -> None:
    admin = await bearer(client, users, "admin")
    for bad in (True, "500", 5.5, None):
        response = await client.put("/seats/count", json={"count": bad}, headers=admin)
        assert_problem(response, 422)


async def test_every_error_has_the_problem_shape(client: httpx.AsyncClient, users: Any) -> None:
    assert_problem(await client.get("/nowhere"), 404)
    assert_problem(await client.delete("/health"), 405)
    unauthenticated = assert_problem(await client.get("/auth/me"), 401)
    assert unauthenticated["title"] == "Unauthorized"
    agent = await bearer(client, users, "agent")
    assert_problem(await client.get("/seats", headers=agent), 403)
    assert_problem(await client.get("/complaints/0000000000", headers=agent), 404)
    invalid = assert_problem(
        await client.post("/complaints", json={"description": 5}, headers=agent), 422
    )
    assert {"loc", "msg", "type"} <= invalid["errors"][0].keys()
    assert "input" not in invalid["errors"][0]
    # Found by schemathesis as admin: year 1 overflowed the driver's datetime (a 500).
    admin = await bearer(client, users, "admin")
    ancient = await client.get("/reports/monthly?month=0001-01", headers=admin)
    assert_problem(ancient, 422)


async def test_security_headers_on_every_response(client: httpx.AsyncClient) -> None:
    for path in ("/health", "/wallboard", "/review", "/nowhere", "/docs", "/openapi.json"):
        response = await client.get(path)
        csp = response.headers["content-security-policy"]
        assert (
            "script-src 'self'" in csp and "unsafe-inline' " not in csp.split("script-src")[1][:30]
        )
        assert "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-frame-options"] == "DENY"
        assert "server" not in response.headers


async def test_an_unexpected_error_is_a_500_problem_without_traceback(
    db_settings: Settings, users: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(db_settings, ami=SimpleNamespace(connected=asyncio.Event()))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    from api import policy

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(policy.POLICY, ("GET", "/boom"), None)
        # A fresh window of the process's error-log budget: earlier tests' errors in this
        # process (a whole suite writes many) must not have used it up.
        patch.setattr(ERRORS, "_window_start", -math.inf)
        patch.setattr(ERRORS, "_written", 0)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api") as http,
        ):
            with caplog.at_level(logging.ERROR, logger="api.errors"):
                response = await http.get("/boom")
    problem = assert_problem(response, 500)
    assert "secret internals" not in response.text and problem["detail"] == "internal error"
    assert response.headers["x-content-type-options"] == "nosniff"
    # One log line, with the traceback, server side.
    lines = [record for record in caplog.records if record.name == "api.errors"]
    assert len(lines) == 1 and lines[0].exc_info is not None


async def test_a_pooled_connection_the_server_closed_is_replaced_not_a_503(
    client: httpx.AsyncClient, db_settings: Settings, users: Any
) -> None:
    """The API pings no connection at checkout (three round trips with asyncpg); one whose
    backend PostgreSQL ended (a restart, a kill, pg_terminate_backend) is replaced at checkout
    all the same, so the request after it succeeds."""
    agent = await bearer(client, users, "agent")
    assert (await client.get("/complaints", headers=agent)).status_code == 200
    conn = await asyncpg.connect(asyncpg_dsn(db_settings.database_url))
    try:
        ended = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND application_name = 'helpline'"
        )
    finally:
        await conn.close()
    assert ended >= 1
    await asyncio.sleep(0.2)  # the event loop reads each socket's end
    assert (await client.get("/complaints", headers=agent)).status_code == 200


def test_the_error_log_writes_a_burst_then_counts_what_it_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("test.errorlog")
    errors = ErrorLog(logger, burst=3, period=3600)
    with caplog.at_level(logging.INFO, logger="test.errorlog"):
        written = [errors.error(logging.INFO, "bad %d", n) for n in range(1000)]
    assert written.count(True) == 3 and errors.suppressed == 997
    assert len(caplog.records) == 3
    errors._window_start -= 3600  # the next period
    with caplog.at_level(logging.INFO, logger="test.errorlog"):
        assert errors.error(logging.INFO, "again")
    assert "997 earlier error lines left out" in caplog.records[-1].getMessage()


async def test_the_api_docs_load_nothing_from_elsewhere(client: httpx.AsyncClient) -> None:
    for page in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        html = (await client.get(page)).text
        assert "<script>" not in html and "cdn" not in html, page
        sources = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert sources, page
        for source in sources:
            assert source.startswith("/docs/assets/"), source
            asset = await client.get(source)
            assert asset.status_code == 200 and b"https://cdn" not in asset.content, source
    assert_problem(await client.get("/docs/assets/..%2Fapp.py"), 404)
