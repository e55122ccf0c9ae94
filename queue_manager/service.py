"""The queue manager service: one AMI user, one writer of calls, queue events and seat status."""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.models import ServiceHeartbeat
from core.db.session import create_engine, raw_connection, session_factory
from core.transport.ami_client import AMIClient
from queue_manager.recorder import CallRecorder
from queue_manager.seats import SeatKeeper

log = logging.getLogger(__name__)

SERVICE = "queue_manager"
AGENT_INTENT_CHANNEL = "agent_intent"
HEARTBEAT_SECONDS = 5.0
#: Events this service acts on; everything else is filtered out at the subscription.
EVENTS = frozenset(
    {
        "Newchannel",
        "Newstate",
        "VarSet",
        "Hangup",
        "QueueCallerJoin",
        "QueueCallerLeave",
        "QueueCallerAbandon",
        "AgentCalled",
        "AgentConnect",
        "AgentComplete",
        "AgentRingNoAnswer",
        "AgentDump",
        "QueueMemberStatus",
        "QueueMemberAdded",
        "QueueMemberRemoved",
        "QueueMemberPause",
    }
)


class QueueManager:
    def __init__(
        self, settings: Settings, ami: AMIClient, sessions: async_sessionmaker[AsyncSession]
    ):
        self.settings = settings
        self.ami = ami
        self.sessions = sessions
        self.recorder = CallRecorder(settings)
        self.seats = SeatKeeper(settings, ami, sessions)
        self.started_at = datetime.now(UTC)
        self.events_applied = 0
        self._intents: asyncio.Queue[str] = asyncio.Queue()
        ami.add_on_connect(self.reconcile)
        #: Subscribed before the client starts, so no event of the first link is missed.
        self._events = ami.subscribe(filter=EVENTS, name=SERVICE)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._consume_events())
            tasks.create_task(self._listen_intents())
            tasks.create_task(self._apply_intents())
            tasks.create_task(self._heartbeat())

    async def _consume_events(self) -> None:
        async for event in self._events:
            try:
                async with self.sessions() as session:
                    await self.recorder.apply(session, event)
                    await session.commit()
                self.events_applied += 1
            except Exception:
                # One bad event must not stop the recording of every later call.
                log.exception("could not apply %s %s", event.name, event.get("Uniqueid"))
            if event.name in (
                "QueueMemberStatus",
                "QueueMemberPause",
                "QueueMemberRemoved",
                "QueueMemberAdded",
            ):
                seat = (event.get("Interface") or "").removeprefix("PJSIP/")
                if seat:
                    self._intents.put_nowait(seat)

    async def reconcile(self, _ami: AMIClient) -> None:
        """After every (re)connect: AMI never replays what we missed, so rebuild from queries."""
        try:
            await self.seats.reconcile()
            await self._record_live_channels()
            log.info("reconciled seats and live calls after AMI connect %d", self.ami.generation)
        except Exception:
            log.exception("reconciliation after connect failed; retrying on the next intent")
            self._intents.put_nowait("*")

    async def _record_live_channels(self) -> None:
        channels = await self.ami.action_list("CoreShowChannels")
        async with self.sessions() as session:
            for channel in channels:
                if channel.name == "CoreShowChannel":
                    await self.recorder.apply(session, channel)
            await session.commit()

    async def _listen_intents(self) -> None:
        """LISTEN on ``agent_intent``; reconnects to PostgreSQL if the link breaks."""
        while True:
            lost = asyncio.Event()
            try:
                async with raw_connection(self.settings) as conn:

                    def on_notify(_conn: object, _pid: int, _channel: str, payload: str) -> None:
                        self._intents.put_nowait(payload)

                    conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                    await conn.add_listener(AGENT_INTENT_CHANNEL, on_notify)
                    # Whatever changed while we were not listening:
                    self._intents.put_nowait("*")
                    await lost.wait()
            except (OSError, TimeoutError) as exc:
                log.warning("LISTEN connection failed (%r)", exc)
            log.warning("LISTEN connection lost; reconnecting in 2 s")
            await asyncio.sleep(2.0)

    async def _apply_intents(self) -> None:
        while True:
            seat = await self._intents.get()
            if not self.ami.fully_booted.is_set():
                continue  # the reconcile after connect covers it
            try:
                await self.seats.reconcile(None if seat == "*" else seat)
            except Exception:
                log.exception("could not apply agent intent for seat %s", seat)

    async def _heartbeat(self) -> None:
        while True:
            async with self.sessions() as session:
                now = datetime.now(UTC)
                detail = {
                    "ami_connected": self.ami.connected.is_set(),
                    "events_applied": self.events_applied,
                }
                statement = insert(ServiceHeartbeat).values(
                    service=SERVICE,
                    pid=os.getpid(),
                    started_at=self.started_at,
                    seen_at=now,
                    detail=detail,
                )
                await session.execute(
                    statement.on_conflict_do_update(
                        index_elements=["service"],
                        set_={
                            "pid": os.getpid(),
                            "started_at": self.started_at,
                            "seen_at": now,
                            "detail": detail,
                        },
                    )
                )
                await session.commit()
            await asyncio.sleep(HEARTBEAT_SECONDS)


async def serve(settings: Settings) -> None:
    engine = create_engine(settings)
    ami = AMIClient(
        settings.ami_host,
        settings.ami_port,
        settings.ami_username(SERVICE),
        settings.ami_secret(SERVICE),
        action_timeout=settings.ami_action_timeout,
        ping_interval=settings.ami_ping_interval,
        backoff_max=settings.ami_reconnect_max_backoff,
    )
    try:
        manager = QueueManager(settings, ami, session_factory(engine))
        async with ami:
            await manager.run()
    finally:
        await engine.dispose()
