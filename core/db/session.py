"""Engine and session factory, plus a plain asyncpg connection for LISTEN/NOTIFY and the one
LISTEN loop every service uses (:func:`listen_forever`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, NoReturn

import asyncpg
import sqlalchemy.exc
from sqlalchemy import event
from sqlalchemy.engine import CursorResult, Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.sql import Executable

from core.config import Settings
from core.outage import Outage

log = logging.getLogger(__name__)

#: First wait before connecting again after the LISTEN link broke; doubles up to the max.
LISTEN_RETRY_SECONDS = 1.0
LISTEN_RETRY_MAX_SECONDS = 30.0


#: What the driver raises when the server is away, restarting or refusing connections (class
#: 08, class 57's shutdowns and "starting up", too many connections), as opposed to a bad query.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable; TimeoutError (a connect or command timeout) too
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.ConnectionDoesNotExistError,  # closed under the statement
    sqlalchemy.exc.TimeoutError,  # no pooled connection came free in time
)


def database_unavailable(error: BaseException) -> bool:
    """True when ``error`` (or what it wraps) says the database cannot be reached right now:
    an answer of 503 and "try again", not a defect. SQLAlchemy wraps the driver's error
    (``orig``, ``__cause__``); a connection it invalidated counts too."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, _UNAVAILABLE):
            return True
        if isinstance(current, sqlalchemy.exc.DBAPIError) and current.connection_invalidated:
            return True
        orig = getattr(current, "orig", None)
        pending += [
            orig if isinstance(orig, BaseException) else None,
            current.__cause__,
            current.__context__,
        ]
    return False


#: A pooled connection unused this long is pinged before it is handed out (:func:`create_engine`).
IDLE_PING_SECONDS = 2.0
#: Where a connection's pool entry keeps when it was last checked in (``time.monotonic()``);
#: entries' ``info`` is cleared when their connection is replaced, so a new one has none.
_CHECKED_IN_AT = "helpline.checked_in_at"


def _stamp_checkin(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    record.info[_CHECKED_IN_AT] = time.monotonic()


def _checkout_check(
    dialect: Dialect, ping_idle_after: float | None
) -> Callable[[Any, ConnectionPoolEntry, PoolProxiedConnection], None]:
    """The pool's check of a connection it is about to hand out (:func:`create_engine`)."""

    def check(
        dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
    ) -> None:
        if dbapi_connection.driver_connection.is_closed():
            # The server closed it (PostgreSQL restarted, killed, the backend terminated).
            raise sqlalchemy.exc.DisconnectionError("closed by the server")
        if ping_idle_after is None:
            return
        checked_in_at = record.info.get(_CHECKED_IN_AT)  # None: new, never used
        if checked_in_at is not None and time.monotonic() - checked_in_at > ping_idle_after:
            try:
                dialect.do_ping(dbapi_connection)
            except Exception as error:
                # The others were idle as long: the pool replaces them all, as pre-ping does.
                raise sqlalchemy.exc.InvalidatePoolError(f"ping failed: {error!r}") from error

    return check


def create_engine(
    settings: Settings,
    *,
    pool_size: int = 10,
    max_overflow: int | None = None,
    ping_idle_after: float | None = IDLE_PING_SECONDS,
) -> AsyncEngine:
    """``pool_size`` connections kept open once made, and ``max_overflow`` (default: as many
    again) opened past them when busy and closed on return. Overflow suits a process that is
    rarely busy; under steady load it opens and closes a connection per request (a new backend,
    authentication, asyncpg's type introspection: milliseconds each), so the API keeps all.

    At checkout the pool replaces a connection the server has visibly closed (restart, kill;
    no round trip), and pings one that sat unused for more than ``ping_idle_after`` seconds
    (with asyncpg three round trips: BEGIN, ``;``, ROLLBACK): a link that died silently while
    idle (a cut network, a host gone) is replaced before a statement fails on it. Under load
    connections come back within milliseconds and none is pinged. SQLAlchemy's
    ``pool_pre_ping`` pinged every checkout: it cost a read request about as much CPU as its
    own queries, and the dialer 5-16 % of its CPU per originate in the compressed day
    (docs/benchmarks.md). ``None`` never pings: a connection that died unnoticed fails its
    first statement, which invalidates the pool's older connections and which the API answers
    503 with ``Retry-After`` (:func:`database_unavailable`, :mod:`api.boundary`) and the IVR as
    any failed read (that caller goes to an agent), so their hot paths skip even the idle
    ping."""
    engine = create_async_engine(
        settings.database_url,
        pool_size=pool_size,
        max_overflow=pool_size if max_overflow is None else max_overflow,
        # Statements' parameters hold callers' numbers and complaint texts: never in a log line
        # or an exception's text, even with the sqlalchemy loggers at INFO (core.logs).
        hide_parameters=True,
        # A stuck query must not hold a caller's request forever.
        connect_args={"command_timeout": 30, "server_settings": {"application_name": "helpline"}},
    )
    pool = engine.sync_engine.pool
    event.listen(pool, "checkout", _checkout_check(engine.dialect, ping_idle_after))
    if ping_idle_after is not None:
        event.listen(pool, "checkin", _stamp_checkin)
    return engine


async def warm_pool(engine: AsyncEngine, connections: int) -> None:
    """Open ``connections`` pooled connections now and return them to the pool: the first
    burst of calls then finds them ready instead of each paying a connect (a fork on the
    server) inside its query deadline, when the server may be busiest. Raises when the
    server refuses one; those opened before it are returned all the same (not left for the
    garbage collector to find)."""
    opened = []
    try:
        for _ in range(connections):
            opened.append(await engine.connect())
    finally:
        for conn in opened:
            await conn.close()


async def execute_core(
    session: AsyncSession,
    statement: Executable,
    params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
) -> CursorResult[Any]:
    """Execute a write built once (bind parameters) on the session's connection as Core: the
    ORM's bulk-persistence path (statement state, synchronising loaded objects) cost more CPU
    per write than the write, and none of these writes needs it. A list of parameter sets is
    one executemany. Objects changed in the session are flushed first, so writes reach
    PostgreSQL in the order they were made. Objects already loaded are not updated (as the
    ORM's ``synchronize_session`` would): read what such a write changed after it, anew."""
    if session.dirty or session.new or session.deleted:
        await session.flush()
    return await (await session.connection()).execute(statement, params)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def asyncpg_dsn(database_url: str) -> str:
    """The SQLAlchemy URL as a DSN asyncpg understands (no ``+asyncpg`` driver suffix)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


@asynccontextmanager
async def raw_connection(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A dedicated asyncpg connection (LISTEN needs one that the pool does not hand out)."""
    conn = await asyncpg.connect(asyncpg_dsn(settings.database_url), timeout=10)
    try:
        yield conn
    finally:
        try:
            await conn.close(timeout=5)
        except Exception:  # a link the server cut or that hangs: drop it without a goodbye
            conn.terminate()


async def listen_forever(
    settings: Settings,
    handlers: Mapping[str, Callable[[str], None]],
    *,
    name: str,
    on_listening: Callable[[], None] = lambda: None,
    listening: asyncio.Event | None = None,
) -> NoReturn:
    """LISTEN on every channel of ``handlers`` (channel -> ``handler(payload)``, which must not
    block) on a dedicated connection, for ever.

    When the link breaks or cannot be made -- PostgreSQL restarting, refusing connections,
    unreachable, any driver error -- it waits (1 s, doubling to 30 s) and connects again; it
    never ends but by cancellation. A NOTIFY sent while it was away is lost, so
    ``on_listening`` runs after every (re)connect for the caller to catch up (re-read, wake).
    ``listening`` is set while the link is up. One log line when an outage starts and one
    when it ends.
    """
    wait = LISTEN_RETRY_SECONDS
    outage = Outage(log, f"{name}: LISTEN")
    while True:
        lost = asyncio.Event()
        try:
            async with raw_connection(settings) as conn:
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                for channel, handler in handlers.items():
                    await conn.add_listener(
                        channel, lambda _c, _pid, _ch, payload, handler=handler: handler(payload)
                    )
                outage.ok()
                wait = LISTEN_RETRY_SECONDS
                if listening is not None:
                    listening.set()
                on_listening()
                await lost.wait()
                log.warning("%s: LISTEN link lost; reconnecting", name)
        except Exception as error:  # the database is away: never the end of the service
            outage.failed(error)
        finally:
            if listening is not None:
                listening.clear()
        await asyncio.sleep(wait)
        wait = min(wait * 2, LISTEN_RETRY_MAX_SECONDS)


async def drop_database(database_url: str) -> None:
    """Drop the database ``database_url`` names (its sessions ended first); connects to the
    server's ``postgres`` database to do it. Nothing happens if it does not exist."""
    url = make_url(database_url)
    admin = asyncpg_dsn(url.set(database="postgres").render_as_string(hide_password=False))
    conn = await asyncpg.connect(admin, timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
    finally:
        await conn.close()


async def ensure_database(settings: Settings) -> bool:
    """Create the configured database if it does not exist. Returns True if it was created."""
    url = make_url(settings.database_url)
    name = url.database
    if not name:
        raise ValueError("database_url names no database")
    admin = asyncpg_dsn(url.set(database="postgres").render_as_string(hide_password=False))
    conn = await asyncpg.connect(admin, timeout=10)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        await conn.execute(f'CREATE DATABASE "{name.replace(chr(34), "")}"')
        return True
    finally:
        await conn.close()
