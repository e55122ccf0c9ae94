"""The FastAGI service: every call flow behind one listener on ``settings.agi_url``.

At start-up, before anything else, the menu tree is loaded and validated (``ivr.menus``: a
broken ``ivr/menus.json`` stops the service with the node and the problem named) and the flow's
node handlers are checked against the menu's node types (``agi_scripts.ivr.check_handlers``);
then a small database pool is opened: the IVR and the waiting room read complaints and calls,
and write their own ``ivr_sessions``, ``callback_requests`` and ``readback_sessions``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from agi_scripts.ivr import IVRScript
from agi_scripts.outbound import OutboundScript
from agi_scripts.readback import ReadbackScript
from agi_scripts.store import PostgresStore
from agi_scripts.waiting import WaitingScript
from core.config import Settings
from core.db.heartbeat import keep_beating
from core.db.session import create_engine, session_factory, warm_pool
from core.liveness import keep_alive, liveness_file
from core.outage import Outage
from core.transport.fastagi import FastAGIServer, Script, tune_gc_for_serving
from ivr.menus import MenuTree, load_menus

log = logging.getLogger(__name__)

#: The FastAGI server's row in ``service_heartbeats``.
HEARTBEAT_SERVICE = "agi"
#: Pooled connections, all kept open, none opened past them (``max_overflow=0``). Why: with
#: 10 + 10 overflow, a busy IVR opened and closed a connection per read past the tenth (a
#: connect, authentication, asyncpg's introspection: many wake-ups of a process that waits
#: for CPU under load) inside the caller's 2 s deadline; the pool then ran dry and stayed dry.
#: ``bench day`` at 12x, back to back: 595 of 971 sessions with a late read, 4 with 20 + 0
#: (docs/benchmarks.md, "## day"). The same 20 connections at most as before.
POOL_SIZE = 20


def create_ivr_engine(settings: Settings) -> AsyncEngine:
    """The IVR's pool: :data:`POOL_SIZE` connections, and no pre-ping. A read holds its
    connection for every round trip plus every wait for the CPU between them, and the
    pre-ping made one read four round trips: at ``bench day``'s 48x peak (155 calls/s) the
    pool ran dry and reads missed their 2 s deadline. A read on a connection a PostgreSQL
    restart broke fails like any other database error (that caller goes to an agent without the
    budget check, the flow's fallback) and the pool's older connections are replaced."""
    return create_engine(settings, pool_size=POOL_SIZE, max_overflow=0, ping_idle_after=None)


def build_routes(settings: Settings, store: PostgresStore, tree: MenuTree) -> dict[str, Script]:
    """Script name (``agi://host:port/<name>``) to flow: ``ivr`` when a citizen's call arrives,
    ``waiting`` in the queue's waiting room (announcements, callback while waiting),
    ``readback`` when an agent has a complaint number read to the caller, ``feedback``,
    ``followup`` and ``callback`` for the dialer's calls."""
    return {
        "ivr": IVRScript(tree, store, settings),
        "waiting": WaitingScript(store, settings),
        "readback": ReadbackScript(store, settings),
        "feedback": OutboundScript("feedback", store, settings),
        "followup": OutboundScript("followup", store, settings),
        "callback": OutboundScript("callback", store, settings),
    }


def build_server(settings: Settings, routes: dict[str, Script]) -> FastAGIServer:
    return FastAGIServer(
        routes,
        host=settings.agi_host,
        port=settings.agi_port,
        backlog=settings.agi_backlog,
        handshake_timeout=settings.agi_handshake_timeout,
        command_timeout=settings.agi_command_timeout,
        call_timeout=settings.agi_call_timeout,
    )


async def close_orphans(store: PostgresStore) -> None:
    """Every ``ivr_orphan_pass_seconds`` (and at start, after a crash): close the IVR sessions
    a dead FastAGI process left open (:meth:`PostgresStore.close_orphaned_sessions`)."""
    outage = Outage(log, "closing orphaned IVR sessions")
    while True:
        try:
            closed = await store.close_orphaned_sessions(datetime.now(UTC))
        except Exception as error:
            outage.failed(error)
        else:
            outage.ok()
            if closed:
                log.warning("closed %d IVR session(s) left open by a dead process", len(closed))
        await asyncio.sleep(store.settings.ivr_orphan_pass_seconds)


async def serve(settings: Settings, drain_timeout: float = 10.0, menus: Path | None = None) -> None:
    """Serve until SIGTERM/SIGINT, then stop accepting and let live calls finish (drain).

    ``menus`` is the menu file (default: the bundled ``ivr/menus.json``); a bad one raises
    :class:`ivr.menus.MenuError` before the database pool or the listener exist."""
    tree = load_menus(menus)
    engine = create_ivr_engine(settings)
    try:
        store = PostgresStore(settings, session_factory(engine))
        routes = build_routes(settings, store, tree)
        server = build_server(settings, routes)
        try:
            await warm_pool(engine, POOL_SIZE)
        except Exception as error:
            # Serve anyway: a FastAGI server that exits here leaves every caller without the
            # IVR until it is restarted (and the restart meets the same database), while the
            # flow already treats a failed query as "technical problem, to an agent" and the
            # pool connects on demand once the database answers. Found by the fault suite: a
            # restart after a kill met "too many clients" and FastAGI stayed down.
            log.warning("database not ready at start (%s); serving without a warm pool", error)
        await server.start()
        # Start-up is done (menus, prompts, pool): freeze that heap and make young GC passes
        # rarer, so the collector does not stall live calls (see tune_gc_for_serving).
        tune_gc_for_serving()
        log.info("FastAGI listening on %s (scripts: %s)", settings.agi_url, ", ".join(routes))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        heartbeat = asyncio.create_task(
            keep_beating(
                session_factory(engine),
                HEARTBEAT_SERVICE,
                lambda: {
                    "active_calls": server.active_calls,
                    "bad_handshakes": server.bad_handshakes,
                },
                interval=settings.heartbeat_seconds,
            ),
            name="agi-heartbeat",
        )
        orphans = asyncio.create_task(close_orphans(store), name="agi-orphans")
        # For `helpline supervise` (and systemd's watchdog): this loop still turns.
        alive = asyncio.create_task(
            keep_alive(liveness_file(settings.state_dir, HEARTBEAT_SERVICE)), name="agi-alive"
        )
        await stop.wait()
        heartbeat.cancel()
        orphans.cancel()
        alive.cancel()
        log.info("draining %d live call(s)", server.active_calls)
        await server.close(drain_timeout)
    finally:
        await engine.dispose()
