"""Seats and demo users. Idempotent: existing rows and passwords are kept."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from api.services import auth, seats
from core.config import Settings
from core.domain.credentials import generate_secret

#: One demo user per role; agents get several so that more than one seat can be tried.
DEMO_USERS: tuple[tuple[str, str, str], ...] = (
    ("agent1", "Demo Agent One", "agent"),
    ("agent2", "Demo Agent Two", "agent"),
    ("agent3", "Demo Agent Three", "agent"),
    ("supervisor1", "Demo Supervisor", "supervisor"),
    ("officer1", "Demo Officer", "officer"),
    ("admin1", "Demo Admin", "admin"),
)


@dataclass(frozen=True, slots=True)
class SeatRow:
    name: str
    password: str


async def seed_seats(session: AsyncSession, count: int) -> list[SeatRow]:
    """Make sure seats ``agent0001``…``agentNNNN`` exist (new ones get generated passwords);
    returns every enabled seat, which is what the PJSIP config is rendered from."""
    await seats.add_missing(session, (seats.seat_name(i) for i in range(1, count + 1)))
    return [SeatRow(name, password) for name, password in await seats.enabled(session)]


def credentials_file(settings: Settings) -> Path:
    return settings.state_dir / "demo-credentials.json"


async def seed_demo_users(
    session: AsyncSession, settings: Settings
) -> dict[str, list[dict[str, str]]]:
    """Create the demo users that do not exist yet; write every demo password we know to
    ``demo-credentials.json`` keyed by role (a user whose password we no longer know is left
    alone, never reset)."""
    path = credentials_file(settings)
    known: dict[str, str] = {}
    if path.exists():
        for users in json.loads(path.read_text()).values():
            for entry in users:
                known[entry["username"]] = entry["password"]
    existing = await auth.usernames(session)
    by_role: dict[str, list[dict[str, str]]] = {}
    for username, full_name, role in DEMO_USERS:
        if username not in existing:
            known[username] = generate_secret(16)
            await auth.create_user(
                session,
                username=username,
                full_name=full_name,
                role=role,
                password=known[username],
            )
        if username in known:
            by_role.setdefault(role, []).append({"username": username, "password": known[username]})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(by_role, handle, indent=2)
    return by_role
