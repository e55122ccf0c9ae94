"""The real server's two caps (uvicorn as ``python -m api`` runs it): open WebSockets and HTTP
requests in flight are counted apart.

uvicorn's own ``limit_concurrency`` counts every connection, a WebSocket included, and answers
each HTTP request past it 503: with 1,000 seats' desks holding their ``/ws/agent`` sockets,
no complaint could have been filed. Here sockets past ``api_max_sockets`` are refused (503
before the upgrade), requests past ``api_max_concurrency`` in flight answer a 503 problem with
``Retry-After``, and neither cap blocks the other."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import websockets
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.models import ApiToken, User
from core.domain.credentials import new_token, token_digest
from tests.api_server import running_api

SOCKETS = 6
IN_FLIGHT = 4


async def supervisor_token(sessions: async_sessionmaker[AsyncSession]) -> str:
    token = new_token()
    async with sessions() as session:
        user = User(
            username="limits-supervisor",
            full_name="Limits supervisor",
            role="supervisor",
            password_hash="not-used",
        )
        session.add(user)
        await session.flush()
        session.add(
            ApiToken(
                token_hash=token_digest(token),
                user_id=user.id,
                expires_at=datetime.now(UTC) + timedelta(hours=1),
            )
        )
        await session.commit()
    return token


@contextlib.asynccontextmanager
async def wallboards(port: int, token: str, count: int) -> AsyncIterator[list[object]]:
    """``count`` supervisors' ``/ws/stats`` sockets, each past its first message (open)."""
    async with contextlib.AsyncExitStack() as stack:
        opened = []
        for _ in range(count):
            ws = await stack.enter_async_context(
                websockets.connect(f"ws://127.0.0.1:{port}/ws/stats?token={token}")
            )
            await asyncio.wait_for(ws.recv(), 10)
            opened.append(ws)
        yield opened


def stalled_request(port: int) -> socket.socket:
    """A request whose body never comes: in flight until its connection closes."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn.sendall(
        b"POST /complaints HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{"
    )
    return conn


async def test_sockets_and_requests_in_flight_are_capped_apart(
    db_settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HELPLINE_API_MAX_SOCKETS", str(SOCKETS))
    monkeypatch.setenv("HELPLINE_API_MAX_CONCURRENCY", str(IN_FLIGHT))
    token = await supervisor_token(sessions)
    with running_api(db_settings) as (port, _pid):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as api:
            async with wallboards(port, token, SOCKETS):
                # Every socket open, more sockets than requests allowed: requests still served.
                assert (await api.get("/health")).status_code in (200, 503)
                assert (await api.get("/openapi.json")).status_code == 200
                # One socket more is refused before the upgrade, with when to try again.
                with pytest.raises(websockets.InvalidStatus) as refused:
                    async with websockets.connect(f"ws://127.0.0.1:{port}/ws/stats?token={token}"):
                        pass
                assert refused.value.response.status_code == 503
                assert refused.value.response.headers["Retry-After"]
            # The sockets closed: a new one is welcome again.
            async with wallboards(port, token, 1):
                pass
            stalled = [stalled_request(port) for _ in range(IN_FLIGHT)]
            try:
                await asyncio.sleep(0.5)
                answer = await api.get("/openapi.json")
                assert answer.status_code == 503, answer.text
                assert answer.headers["content-type"] == "application/problem+json"
                assert answer.headers["retry-after"]
                # A socket is not a request: it still opens with every request slot taken.
                async with wallboards(port, token, 1):
                    pass
            finally:
                for conn in stalled:
                    conn.close()
            await asyncio.sleep(0.5)
            assert (await api.get("/openapi.json")).status_code == 200
