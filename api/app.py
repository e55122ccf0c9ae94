"""The FastAPI application: agents, supervisors and officers talk to the helpline here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from api.live import LiveHub
from api.routers import agents, auth, calls, complaints, health, seats, stats, wallboard
from core.config import Settings
from core.db.session import create_engine, session_factory
from core.transport.ami_client import AMIClient


def create_app(settings: Settings, *, ami: Any = None, connect_ami: bool = True) -> FastAPI:
    """Build the app. ``ami`` may be given (tests); else, with ``connect_ami``, the API logs in
    to AMI as its own user so that /health reports Asterisk as the API sees it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        app.state.settings = settings
        app.state.sessions = session_factory(engine)
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
        # Live stats and screen-pops: one LISTEN per process, fanned out to WebSockets.
        app.state.live_hub = LiveHub(settings, app.state.sessions)
        await app.state.live_hub.start()
        try:
            yield
        finally:
            await app.state.live_hub.close()
            if own_ami is not None:
                await own_ami.close()
            await engine.dispose()

    app = FastAPI(
        title="1076 helpline API",
        version="0.1.0",
        description="Agents record complaints, supervisors watch queues, officers resolve.",
        lifespan=lifespan,
    )
    for module in (health, auth, agents, complaints, calls, seats, stats, wallboard):
        app.include_router(module.router)
    return app
