"""The API app called in process (no socket, no uvicorn) with its lifespan running: the one way
the service tests build it. For a socket and the real server, see :mod:`tests.api_server`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
from fastapi import FastAPI

from api.app import create_app
from core.config import Settings


def stand_in_ami(*, up: bool = False, **more: Any) -> SimpleNamespace:
    """What the API reads of its AMI link when no Asterisk is asked anything: the
    ``connected`` and ``fully_booted`` events, set when ``up``, and ``more`` attributes."""
    ami = SimpleNamespace(connected=asyncio.Event(), fully_booted=asyncio.Event(), **more)
    if up:
        ami.connected.set()
        ami.fully_booted.set()
    return ami


@contextlib.asynccontextmanager
async def client_of(
    app: FastAPI, *, address: tuple[str, int] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``app`` while its lifespan runs (requests from ``address``, if given)."""
    transport = (
        httpx.ASGITransport(app) if address is None else httpx.ASGITransport(app, client=address)
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://api") as http,
    ):
        yield http


async def api_client(settings: Settings, ami: Any = None) -> AsyncIterator[httpx.AsyncClient]:
    """:func:`client_of` the app of ``settings`` and ``ami`` (else :func:`stand_in_ami`), as an
    async generator: a fixture's body (``async for http in api_client(settings): yield http``)
    or a test's block. The client's ``ami`` attribute is the link the app was given."""
    ami = stand_in_ami() if ami is None else ami
    async with client_of(create_app(settings, ami=ami)) as http:
        http.ami = ami  # type: ignore[attr-defined]
        yield http
