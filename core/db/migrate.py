"""Alembic, driven from code: no alembic.ini to keep in step with Settings."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

from core.config import Settings

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(settings: Settings) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    return cfg


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the schema to ``revision``. Safe to run on every start (a no-op when current)."""
    command.upgrade(alembic_config(settings), revision)


async def upgrade_async(settings: Settings, revision: str = "head") -> None:
    # env.py runs its own event loop; keep it off ours.
    await asyncio.to_thread(upgrade, settings, revision)
