"""The FastAPI application: agents, supervisors and officers talk to the helpline here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import policy
from api.boundary import Boundary
from api.deps import authorize
from api.live import LiveHub
from api.problems import http_error, request_validation_error, service_error
from api.routers import (
    agents,
    auth,
    calls,
    campaigns,
    capacity,
    complaints,
    docs,
    health,
    pages,
    phone,
    reference,
    reports,
    seats,
    stats,
    users,
    wallboard,
)
from api.services.auth import TokenCache
from api.services.errors import ServiceError
from api.services.notify import Notifications
from core.config import Settings
from core.db.channels import (
    AGENT_CONNECT_CHANNEL,
    SEAT_CONFIG_APPLIED_CHANNEL,
    STATS_CHANNEL,
    TOKEN_REVOKED_CHANNEL,
    USER_ACCESS_CHANNEL,
)
from core.db.session import create_engine, session_factory
from core.transport.ami_client import AMIClient


def create_app(settings: Settings, *, ami: Any = None, connect_ami: bool = True) -> FastAPI:
    """Build the app. ``ami`` may be given (tests); else, with ``connect_ami``, the API logs in
    to AMI as its own user so that /health reports Asterisk as the API sees it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # At most 20 connections, as before (10 + 10 overflow), but all kept: under load the
        # overflow was opened and closed once per request (bench/api.py found it). No ping per
        # checkout: a request on a connection that died unnoticed answers 503 + Retry-After.
        engine = create_engine(settings, pool_size=20, max_overflow=0, ping_idle_after=None)
        app.state.settings = settings
        # Loaded once per process: routing and the reference lists read it on every request.
        app.state.reference = settings.load_reference()
        app.state.sessions = session_factory(engine)
        # The same pool, no transaction: routes marked ``reads_only`` (api.deps) skip BEGIN and
        # ROLLBACK, two of a read's four round trips.
        app.state.read_sessions = session_factory(
            engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        app.state.ami = ami
        own_ami = None
        if ami is None and connect_ami:
            own_ami = AMIClient(
                settings.ami_host,
                settings.ami_port,
                settings.ami_username("api"),
                settings.ami_secret("api"),
                action_timeout=settings.ami_action_timeout,
                ping_interval=settings.ami_ping_interval,
                backoff_max=settings.ami_reconnect_max_backoff,
            )
            await own_ami.start()
            app.state.ami = own_ami
        # One LISTEN per process: live stats, screen-pops and the services' confirmation waits.
        app.state.notifications = Notifications(
            settings,
            (
                STATS_CHANNEL,
                AGENT_CONNECT_CHANNEL,
                SEAT_CONFIG_APPLIED_CHANNEL,
                USER_ACCESS_CHANNEL,
                TOKEN_REVOKED_CHANNEL,
            ),
        )
        # Whose each token is, per process; a revoked token or a disabled user is forgotten
        # by every process on the NOTIFY, everything when the LISTEN link is re-made.
        app.state.token_cache = token_cache = TokenCache(settings.api_token_cache_seconds)
        app.state.notifications.on(USER_ACCESS_CHANNEL, token_cache.forget_payload)
        app.state.notifications.on(TOKEN_REVOKED_CHANNEL, token_cache.forget_payload)
        app.state.notifications.on_listening(token_cache.clear)
        app.state.live_hub = LiveHub(
            settings, app.state.sessions, app.state.notifications, app.state.reference
        )
        await app.state.live_hub.start()
        await app.state.notifications.start()
        try:
            yield
        finally:
            await app.state.notifications.close()
            await app.state.live_hub.close()
            if own_ami is not None:
                await own_ami.close()
            await engine.dispose()

    app = FastAPI(
        title="1076 helpline API",
        version="0.1.0",
        description="Agents record complaints, supervisors watch queues, officers resolve.",
        lifespan=lifespan,
        # Our own /docs and /redoc (api.routers.docs): local assets, no inline script.
        docs_url=None,
        redoc_url=None,
        # The access table (api.policy) gates every HTTP route, whatever its handler asks for.
        dependencies=[Depends(authorize)],
    )
    # Every error answers one shape (api.problems); the boundary (sizes, text, security
    # headers, crashes) runs before anything else, the token check included.
    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(RequestValidationError, request_validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_middleware(
        Boundary,
        max_body_bytes=settings.api_max_body_bytes,
        max_in_flight=settings.api_max_concurrency,
        max_sockets=settings.api_max_sockets,
        phone_url=settings.wss_url,
    )

    def openapi() -> dict[str, Any]:
        """FastAPI's schema, with the refusals the access table gives each operation."""
        return policy.document_refusals(FastAPI.openapi(app))

    app.openapi = openapi  # type: ignore[method-assign]
    modules = (health, auth, agents, complaints, reference, calls, seats, stats, wallboard)
    for module in (*modules, reports, campaigns, users, capacity, pages, phone, docs):
        app.include_router(module.router)
    return app
