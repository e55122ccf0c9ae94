"""Seats, reference data and demo users. Idempotent: existing rows and known passwords are
kept."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from api.services import auth, reference, seats
from core.config import Settings
from core.domain.credentials import generate_secret
from core.domain.staff import Role
from core.reference import Level, Officer, Reference

#: Demo users: (username, full name, role). Agents get several so that more than one seat can
#: be tried.
DEMO_USERS: tuple[tuple[str, str, str], ...] = (
    ("agent1", "Demo Agent One", "agent"),
    ("agent2", "Demo Agent Two", "agent"),
    ("agent3", "Demo Agent Three", "agent"),
    ("supervisor1", "Demo Supervisor", "supervisor"),
    ("admin1", "Demo Admin", "admin"),
)
#: Demo officers, each the login of an officer's post of the reference data (its code is the
#: username): several departments, levels and districts, and the CM office.
DEMO_OFFICERS: tuple[str, ...] = (
    "police.thana.lucknow_hazratganj",
    "revenue.tehsil.lucknow_sadar",
    "health.district.varanasi",
    "police.district.varanasi",
    "cm_office.up",
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


async def seed_reference(session: AsyncSession, settings: Settings) -> reference.Seeded:
    """The reference tables from the instance's data (one query when already current)."""
    return await reference.seed(session, settings.load_reference())


def _district_of(data: Reference, officer: Officer) -> str | None:
    """The district of an officer's post, for the credentials file (None above districts)."""
    if officer.level is Level.THANA:
        return data.thanas[officer.place].district
    if officer.level is Level.TEHSIL:
        return data.tehsils[officer.place].district
    if officer.level is Level.DISTRICT:
        return officer.place
    return None


def _demo_users(data: Reference) -> list[tuple[str, str, str, dict[str, str]]]:
    """Every demo user: (username, full name, role, what the credentials file says besides
    the password); officers whose post the data does not have are left out."""
    users: list[tuple[str, str, str, dict[str, str]]] = [
        (name, full_name, role, {}) for name, full_name, role in DEMO_USERS
    ]
    for code in DEMO_OFFICERS:
        officer = data.officers.get(code)
        if officer is None:
            continue
        extra = {"officer": code, "designation": officer.designation_en}
        if officer.department is not None:
            extra["department"] = officer.department
        district = _district_of(data, officer)
        if district is not None:
            extra["district"] = district
        role = Role.CM_OFFICE if officer.level is Level.CM_OFFICE else Role.OFFICER
        users.append((code, officer.designation_en, role.value, extra))
    return users


async def seed_demo_users(
    session: AsyncSession, settings: Settings, data: Reference | None = None
) -> dict[str, list[dict[str, str]]]:
    """Create the demo users that do not exist yet, link the demo officers to their posts, and
    write every demo password to ``demo-credentials.json`` keyed by role.

    A demo user whose password the file no longer holds (a second checkout, a deleted
    ``.helpline/``) gets a new one: the file is for logging in to the demo, so an entry we
    cannot fill is worse than a reset demo password.
    """
    data = data or settings.load_reference()
    path = credentials_file(settings)
    known: dict[str, str] = {}
    if path.exists():
        for users in json.loads(path.read_text()).values():
            for entry in users:
                known[entry["username"]] = entry["password"]
    demo = _demo_users(data)
    existing = await auth.usernames(session)
    by_role: dict[str, list[dict[str, str]]] = {}
    for username, full_name, role, extra in demo:
        if username not in existing:
            known[username] = generate_secret(16)
            await auth.create_user(
                session,
                username=username,
                full_name=full_name,
                role=role,
                password=known[username],
            )
        elif username not in known:
            known[username] = generate_secret(16)
            await auth.set_password(session, username, known[username])
        entry = {"username": username, "password": known[username]} | extra
        by_role.setdefault(role, []).append(entry)
    await session.flush()
    ids = await auth.user_ids(session, [name for name, _, _, extra in demo if "officer" in extra])
    for username, _, _, extra in demo:
        if "officer" in extra:
            await reference.link_officer(session, extra["officer"], ids[username])
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(by_role, handle, indent=2, ensure_ascii=False)
    return by_role
