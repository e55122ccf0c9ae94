"""Helpers of the queue integration tests: agents as users with tokens, seats' passwords,
stats read through the API."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.models import Seat, ServiceHeartbeat, User
from core.domain.credentials import hash_password
from tests.waiting import wait_for

PASSWORD = "queue-test-password"


@dataclass
class Agent:
    username: str
    headers: dict[str, str]


async def make_agents(
    db: async_sessionmaker[AsyncSession],
    api: httpx.AsyncClient,
    prefix: str,
    count: int,
    role: str = "agent",
) -> list[Agent]:
    """``count`` users named ``<prefix>NN`` (created once), each with a fresh token."""
    async with db() as session:
        for i in range(1, count + 1):
            await session.execute(
                insert(User)
                .values(
                    username=f"{prefix}{i:02d}",
                    full_name=f"Queue test {role} {i}",
                    role=role,
                    password_hash=hash_password(PASSWORD),
                )
                .on_conflict_do_nothing(index_elements=["username"])
            )
        await session.commit()
    agents = []
    for i in range(1, count + 1):
        username = f"{prefix}{i:02d}"
        response = await api.post("/auth/token", data={"username": username, "password": PASSWORD})
        response.raise_for_status()
        agents.append(
            Agent(username, {"Authorization": f"Bearer {response.json()['access_token']}"})
        )
    return agents


async def seat_password(db: async_sessionmaker[AsyncSession], seat: str) -> str:
    async with db() as session:
        password = (
            await session.execute(select(Seat.sip_password).where(Seat.name == seat))
        ).scalar_one()
    return str(password)


async def stats(api: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await api.get("/stats", headers=headers)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


async def login(api: httpx.AsyncClient, agent: Agent, seat: str) -> dict[str, Any]:
    """Sit at ``seat``; answered "in_queue" once the queue manager applied it."""
    response = await api.post("/agents/me/login", json={"seat": seat}, headers=agent.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["state"] == "in_queue", body
    return body


async def logout_all(api: httpx.AsyncClient, agents: list[Agent]) -> None:
    await asyncio.gather(
        *(api.post("/agents/me/logout", headers=a.headers) for a in agents),
        return_exceptions=True,
    )


async def wait_queue_manager(db: async_sessionmaker[AsyncSession], within: float = 30.0) -> None:
    """Until the queue manager's heartbeat says it is logged in to AMI (it applies intents)."""

    async def logged_in_to_ami() -> bool:
        async with db() as session:
            detail = (
                await session.execute(
                    select(ServiceHeartbeat.detail).where(
                        ServiceHeartbeat.service == "queue_manager"
                    )
                )
            ).scalar_one_or_none()
        return bool(detail and detail.get("ami_connected"))

    await wait_for(logged_in_to_ami, within, what="the queue manager logged in to AMI")
