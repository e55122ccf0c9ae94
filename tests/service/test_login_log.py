"""Failed API logins are logged for fail2ban (deploy/fail2ban/filter.d/helpline-api.conf): one
line per failure, the client's address first, the user name escaped so that it can forge
neither a line nor an address; the shipped filter, run by ``fail2ban-regex``, finds the
attacker's address and only it."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from core.config import Settings
from helpline.seed import seed_demo_users
from tests.api_app import client_of, stand_in_ami

FILTER = Path(__file__).parents[2] / "deploy" / "fail2ban" / "filter.d" / "helpline-api.conf"
FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"  # the services' log format


@pytest.fixture
async def users(
    db_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> dict[str, list[dict[str, str]]]:
    async with sessions() as session:
        seeded = await seed_demo_users(session, db_settings)
        await session.commit()
    return seeded


async def _logins(settings: Settings, address: str, attempts: list[tuple[str, str]]) -> list[int]:
    codes = []
    async with client_of(
        create_app(settings, ami=stand_in_ami()), address=(address, 40000)
    ) as http:
        for username, password in attempts:
            reply = await http.post(
                "/auth/token", data={"username": username, "password": password}
            )
            codes.append(reply.status_code)
    return codes


def _fail2ban_ips(log_file: Path) -> list[str]:
    """The addresses the shipped filter finds in ``log_file`` (``fail2ban-regex -o ip``)."""
    return subprocess.run(
        ["fail2ban-regex", "-o", "ip", str(log_file), str(FILTER)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()


async def test_each_failed_login_is_one_line_fail2ban_bans_by(
    db_settings: Settings, users: Any, tmp_path: Path
) -> None:
    agent = users["agent"][0]
    forged = "x' from 198.51.100.9 for user 'y\r\n2026-01-01 00:00:00,000 api.auth WARNING"
    log_file = tmp_path / "api.log"
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    logger = logging.getLogger("api.auth")
    logger.addHandler(handler)
    try:
        codes = await _logins(
            db_settings,
            "203.0.113.7",
            [
                (agent["username"], "wrong"),
                ("nobody", "x"),
                (forged, "x"),
                (agent["username"], agent["password"]),
            ],
        )
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert codes == [401, 401, 401, 200]
    lines = log_file.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3, lines  # one per failure, none for the success
    assert all(" api.auth WARNING login failed from 203.0.113.7 for user " in x for x in lines)
    assert "\\r\\n" in lines[2] and "198.51.100.9" in lines[2]  # escaped, on its own line
    if shutil.which("fail2ban-regex") is None:
        pytest.fail("fail2ban-regex missing: scripts/system-deps.sh installs fail2ban")
    found = await asyncio.to_thread(_fail2ban_ips, log_file)
    assert found == ["203.0.113.7"] * 3, found
