"""``listen_forever``: the one LISTEN loop of every service survives its link being cut and
the database refusing connections for a while (a PostgreSQL restart, as a client sees it), and
calls ``on_listening`` after each reconnect so the service catches up on lost NOTIFYs."""

from __future__ import annotations

import asyncio

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.session import asyncpg_dsn, listen_forever
from tests.waiting import wait_for


async def test_listen_survives_a_cut_link_and_refused_connections(
    db_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    got: list[str] = []
    connects: list[int] = []
    listening = asyncio.Event()
    task = asyncio.create_task(
        listen_forever(
            db_settings,
            {"helpline_test_listen": got.append},
            name="test",
            on_listening=lambda: connects.append(1),
            listening=listening,
        )
    )

    async def say(payload: str) -> None:
        async with sessions() as session:
            await session.execute(
                text("SELECT pg_notify('helpline_test_listen', :p)"), {"p": payload}
            )
            await session.commit()

    url = make_url(db_settings.database_url)
    admin = await asyncpg.connect(
        asyncpg_dsn(url.set(database="postgres").render_as_string(hide_password=False))
    )
    try:
        await wait_for(listening.is_set, 10, what="listening")
        await say("one")
        await wait_for(lambda: got == ["one"], 5, what="the first NOTIFY")

        await admin.execute(f'ALTER DATABASE "{url.database}" WITH ALLOW_CONNECTIONS false')
        await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            url.database,
        )
        await wait_for(lambda: not listening.is_set(), 5, what="the link seen lost")
        await asyncio.sleep(2.5)  # refused meanwhile: at least one failed attempt
        assert not listening.is_set() and not task.done()
        await admin.execute(f'ALTER DATABASE "{url.database}" WITH ALLOW_CONNECTIONS true')

        await wait_for(listening.is_set, 20, what="listening again")
        assert len(connects) == 2  # the service was told to catch up after the reconnect
        await say("two")
        await wait_for(lambda: got == ["one", "two"], 5, what="a NOTIFY after the outage")
    finally:
        await admin.execute(f'ALTER DATABASE "{url.database}" WITH ALLOW_CONNECTIONS true')
        await admin.close()
        task.cancel()
