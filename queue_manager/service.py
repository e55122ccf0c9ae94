"""The queue manager service: one AMI user, the one writer of calls, queue events, seat status,
the applied seat config and the calls' recording rows (the retention pass deletes files).

It NOTIFYs after its writes so the API can push without polling: ``queue_stats`` (debounced,
at most every 100 ms) when anything a supervisor sees changed, and ``agent_connect`` (JSON:
seat, uniqueid) when a caller is connected to an agent, for the agent's screen-pop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.channels import (
    AGENT_CONNECT_CHANNEL,
    AGENT_INTENT_CHANNEL,
    SEAT_CONFIG_CHANNEL,
    STATS_CHANNEL,
)
from core.db.heartbeat import keep_beating
from core.db.models import Call
from core.db.models import SeatStatus as SeatStatusRow
from core.db.session import (
    create_engine,
    database_unavailable,
    execute_core,
    listen_forever,
    session_factory,
)
from core.domain.queues import all_queues
from core.outage import Outage
from core.protocols.ami import AMIMessage
from core.transport.ami_client import AMIClient
from queue_manager.backfill import backfill, catch_up_live
from queue_manager.live import MEMBER_EVENTS, LiveSeats
from queue_manager.recorder import QUEUE_EVENTS, RECORDING_EVENTS, CallRecorder, event_time
from queue_manager.seatconfig import (
    ApplyConfig,
    SeatConfigurer,
    render_and_reload,
)
from queue_manager.seats import SeatKeeper

log = logging.getLogger(__name__)

SERVICE = "queue_manager"
STATS_DEBOUNCE_SECONDS = 0.1
#: At most this many AMI events are recorded in one transaction (those queued at the moment).
EVENT_BATCH = 200
#: Events this service acts on; everything else is filtered out at the subscription.
EVENTS = frozenset(
    {"Newchannel", "Newstate", "VarSet", "Hangup", *QUEUE_EVENTS, *MEMBER_EVENTS, *RECORDING_EVENTS}
)
#: Events after which the supervisors' numbers may have changed.
#: Resyncs after lost events are at least this far apart (a database outage fails every event).
RESYNC_MIN_SECONDS = 5.0
#: A resync after dropped events waits until at most this share of the subscription is backlog.
RESYNC_BACKLOG_SHARE = 0.1
#: Back-off while the database is unavailable and a batch of events waits to be recorded.
APPLY_RETRY_FIRST_SECONDS = 0.2
APPLY_RETRY_MAX_SECONDS = 5.0
#: A seat's intent or the seat config that failed is applied again after this, doubling.
APPLY_AGAIN_FIRST_SECONDS = 1.0
APPLY_AGAIN_MAX_SECONDS = 30.0
STATS_EVENTS = frozenset({"Hangup", *(QUEUE_EVENTS - {"AgentDump"}), *MEMBER_EVENTS})


@functools.cache
def _upsert_seats(columns: tuple[str, ...]) -> Insert:
    """The upsert of seat rows with these keys (each row's whole picture), built once: a
    multi-row VALUES was compiled anew for every batch of events, a twentieth of this
    process's CPU."""
    new = insert(SeatStatusRow)
    return new.on_conflict_do_update(
        index_elements=["seat"],
        set_={
            **{column: new.excluded[column] for column in columns if column != "seat"},
            "updated_at": func.now(),
        },
    )


class QueueManager:
    def __init__(
        self,
        settings: Settings,
        ami: AMIClient,
        sessions: async_sessionmaker[AsyncSession],
        *,
        apply_config: ApplyConfig | None = None,
    ):
        self.settings = settings
        self.ami = ami
        self.sessions = sessions
        self.recorder = CallRecorder(settings)
        self.seats = SeatKeeper(settings, ami, sessions)
        self.live = LiveSeats(all_queues(settings.queue_name))
        self.seat_config = SeatConfigurer(settings, sessions, apply_config)
        self.started_at = datetime.now(UTC)
        self.events_applied = 0
        #: Seat → id of the open agent session, from the last reconcile of that seat.
        self.session_ids: dict[str, int] = {}
        self._intents: asyncio.Queue[str] = asyncio.Queue()
        self._config_wanted = asyncio.Event()
        self._stats_dirty = asyncio.Event()
        self._resync_wanted = asyncio.Event()
        #: Events were dropped and the resync waits for the backlog (:meth:`_resync`).
        self._dropped_events = False
        self._apply_outage = Outage(log, "applying AMI events")
        self._reconcile_outage = Outage(log, "reconciliation with Asterisk")
        self._intent_outage = Outage(log, "applying agents' intents")
        self._config_outage = Outage(log, "applying the seat config")
        #: Resyncs after lost events (not counting the reconcile after each AMI login).
        self.resyncs = 0
        #: Calls completed from Asterisk's CEL (queue_manager/backfill.py).
        self.backfilled = 0
        self._seat_write_lock = asyncio.Lock()
        #: Held by each reconciliation of app_queue with the sessions (:meth:`_reconcile_seats`).
        self._reconcile_lock = asyncio.Lock()
        #: Set after each reconciliation (tests wait on it).
        self.reconciled = asyncio.Event()
        #: Which calls changed since a reconciliation's snapshot, by a count of the events
        #: received, not by a clock (a wall clock that steps ±1 h between the snapshot and a
        #: write, or differs from PostgreSQL's, closed a call that had just started, or left
        #: a gone one open): the number of the last event received per uniqueid (dropped
        #: once its call ended), and of the last event committed.
        self._received = 0
        self._committed = 0
        self._last_event: dict[str, int] = {}
        #: The marks of the reconciliations under way (what :attr:`_last_event` must keep).
        self._marks: list[int] = []
        ami.add_on_connect(self.reconcile)
        #: Subscribed before the client starts, so no event of the first link is missed.
        self._events = ami.subscribe(filter=EVENTS, name=SERVICE)

    async def run(self) -> None:
        self._config_wanted.set()  # whatever changed while we were not running
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._consume_events())
            tasks.create_task(self._resync())
            tasks.create_task(self._listen())
            tasks.create_task(self._apply_intents())
            tasks.create_task(self._apply_seat_config())
            tasks.create_task(self._notify_stats())
            tasks.create_task(
                keep_beating(
                    self.sessions,
                    SERVICE,
                    self.heartbeat_detail,
                    started_at=self.started_at,
                    interval=self.settings.heartbeat_seconds,
                )
            )

    # ------------------------------------------------------------------ events

    async def _consume_events(self) -> None:
        async for first in self._events:
            batch = [first]
            while len(batch) < EVENT_BATCH and (more := self._events.get_nowait()) is not None:
                batch.append(more)
            await self.apply_events(batch)
            if self._events.ack_resync():
                log.warning(
                    "AMI events were dropped (%d so far): resyncing from Asterisk once the "
                    "backlog (%d) is worked off",
                    self._events.dropped,
                    self._events.qsize(),
                )
                self._dropped_events = True
            backlog = self._events.qsize()
            if self._dropped_events and backlog <= self._events.maxsize * RESYNC_BACKLOG_SHARE:
                self._dropped_events = False
                self._resync_wanted.set()

    async def _resync(self) -> None:
        """Rebuild from Asterisk's own state (as after a reconnect) when events were lost: the
        subscription overflowed, or an event could not be applied (the database was away).
        At most one resync per :data:`RESYNC_MIN_SECONDS`, however many losses. After dropped
        events the consumer asks for it only once the backlog is down to
        :data:`RESYNC_BACKLOG_SHARE` of the subscription: a resync while events are still
        being dropped rebuilds a state that is wrong again at once, and its statements (one per
        live channel) take the time the consumer needs to catch up, so more are dropped."""
        while True:
            await self._resync_wanted.wait()
            self._resync_wanted.clear()
            await self.ami.fully_booted.wait()
            self.resyncs += 1
            await self.reconcile(self.ami)
            await asyncio.sleep(RESYNC_MIN_SECONDS)

    async def apply_event(self, event: AMIMessage) -> None:
        await self.apply_events([event])

    async def apply_events(self, events: list[AMIMessage]) -> None:
        """Record the events that arrived together in one transaction (one COMMIT, so one WAL
        flush, however busy AMI is: one per event was the queue manager's ceiling), then the
        seats they touched in one write and their screen-pops in one NOTIFY transaction. If the
        batch fails, each event is applied on its own, so one bad event still costs only
        itself."""
        for event in events:
            self._received += 1
            if uniqueid := event.get("Uniqueid"):
                self._last_event[uniqueid] = self._received
        received = self._received
        error = await self._record(events)
        if error is None:
            self.events_applied += len(events)
            self._apply_outage.ok()
        elif len(events) == 1:
            self._event_failed(error)
        else:
            for event in events:
                await self._apply_alone(event)
        self._committed = max(self._committed, received)
        for event in events:  # an ended call is no reconciliation's business
            uniqueid = event.get("Uniqueid")
            if event.name == "Hangup" and self._last_event.get(uniqueid or "", 0) <= received:
                self._last_event.pop(uniqueid or "", None)
        touched: list[str] = []
        pops: list[str] = []
        for event in events:
            seats = self.live.apply(event, event_time(event))
            touched += seats
            if event.name == "AgentConnect" and seats:
                pops.append(json.dumps({"seat": seats[0], "uniqueid": event.get("Uniqueid")}))
        if touched:
            try:
                await self._write_seats(touched)
            except Exception:
                log.exception("could not record seats %s", sorted(set(touched)))
        if pops:
            await self._notify_all(AGENT_CONNECT_CHANNEL, pops)
        if any(event.name in STATS_EVENTS for event in events):
            self._stats_dirty.set()

    def _event_failed(self, error: Exception) -> None:
        """One bad event must not stop the recording of every later call; what it would have
        written is rebuilt by a resync from Asterisk's state (logged once per outage)."""
        self._apply_outage.failed(error)
        self._resync_wanted.set()

    async def _apply_alone(self, event: AMIMessage) -> None:
        error = await self._record([event])
        if error is None:
            self.events_applied += 1
            self._apply_outage.ok()
        else:
            self._event_failed(error)

    async def _record(self, events: list[AMIMessage]) -> Exception | None:
        """Apply ``events`` in one transaction; the error if the database refused them. While
        the database is unavailable they are kept and tried again, in order, not dropped: a
        call whose Newchannel was lost while PostgreSQL restarted was recorded from its Hangup
        as "unanswered", and nothing repaired it. Meanwhile AMI's events wait in the
        subscription; if it overflows, the resync and the CEL back-fill mend what it drops."""
        delay = APPLY_RETRY_FIRST_SECONDS
        while True:
            try:
                async with self.sessions() as session:
                    await self.recorder.apply_batch(session, events)
                    await session.commit()
            except Exception as error:
                if not database_unavailable(error):
                    return error
                self._apply_outage.failed(error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, APPLY_RETRY_MAX_SECONDS)
            else:
                return None

    async def _write_seats(self, seats: Iterable[str]) -> None:
        """Write the seats' picture. Serialised: the event path and the intent path both write,
        and rows built before a newer picture must not commit after it (a stale row would hide
        the agent's session from the API's login confirmation)."""
        async with self._seat_write_lock:
            await self._write_seats_locked(seats)

    async def _write_seats_locked(self, seats: Iterable[str]) -> None:
        rows: list[dict[str, Any]] = []
        for name in sorted(set(seats)):
            live = self.live.seat(name)
            rows.append(
                {
                    "seat": name,
                    "in_queue": self.settings.queue_name in live.members,
                    "queues": live.queues,
                    "paused": live.paused,
                    "pause_reason": live.pause_reason,
                    "device_status": live.device_status,
                    "agent_session_id": self.session_ids.get(name),
                    "current_call_uniqueid": live.current_call,
                    "last_call_ended_at": live.last_call_ended_at,
                    "state_at": live.state_at,
                }
            )
        if not rows:
            return
        async with self.sessions() as session:
            # An executemany, in seat order.
            await execute_core(session, _upsert_seats(tuple(rows[0])), rows)
            await session.commit()

    # ------------------------------------------------------------------ reconcile

    async def reconcile(self, _ami: AMIClient) -> None:
        """After every (re)connect and after lost events: AMI never replays what we missed, so
        rebuild from queries (app_queue's members and callers, the live channels)."""
        try:
            await self._reconcile_seats(None)
            await self._record_live_channels()
            log.info("reconciled seats and live calls (AMI link %d)", self.ami.generation)
        except Exception as error:  # retried on the next intent and the next resync
            self._reconcile_outage.failed(error)
            self._intents.put_nowait("*")
            self._resync_wanted.set()
        else:
            self._reconcile_outage.ok()
        self._config_wanted.set()
        self._stats_dirty.set()
        self.reconciled.set()

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[int]:
        """A mark for :meth:`_changed_since`, taken before asking Asterisk for its state; once
        no reconciliation needs them, what is older is forgotten."""
        mark = self._committed
        self._marks.append(mark)
        try:
            yield mark
        finally:
            self._marks.remove(mark)
            floor = min(self._marks, default=self._committed)
            self._last_event = {u: n for u, n in self._last_event.items() if n > floor}

    def _changed_since(self, mark: int) -> set[str]:
        """The calls an event may have changed after ``mark`` (:attr:`_committed` taken before
        a snapshot of Asterisk): applied since, being applied, or still queued (whatever
        Asterisk sent before its answer to the snapshot is at least queued by then: a
        Hangup waiting behind a backlog must not make the call end "now"). A reconciliation
        leaves them to their own events."""
        changed = {uniqueid for uniqueid, n in self._last_event.items() if n > mark}
        changed.update(e.get("Uniqueid") or "" for e in self._events.queued())
        return changed

    async def _reconcile_seats(self, only_seat: str | None) -> None:
        """Make app_queue match the agents' sessions, then record what it holds. One at a
        time: a whole-queue reconciliation (after a reconnect or lost events) whose
        ``QueueStatus`` was taken before an agent's logout, recorded after the logout's own,
        left the seat "in queue" until the next reconnect. The picture is taken into
        :attr:`live` as soon as it arrives, before any other await, so no event applied
        meanwhile is overwritten by an older picture."""
        async with self._reconcile_lock:
            with self._snapshot() as mark:
                desired, status = await self.seats.reconcile(only_seat)
                members = self.seats.members_from(status)
                if only_seat is None:
                    self.session_ids = {s: intent.session_id for s, intent in desired.items()}
                    touched = self.live.replace_members(members, datetime.now(UTC))
                    touched |= set(desired)
                    await self._sync_waiting(status, mark)
                else:
                    if only_seat in desired:
                        self.session_ids[only_seat] = desired[only_seat].session_id
                    else:
                        self.session_ids.pop(only_seat, None)
                    touched = self.live.replace_members(
                        {only_seat: members.get(only_seat, {})}, datetime.now(UTC), only={only_seat}
                    )
            await self._write_seats(touched)
        self._stats_dirty.set()

    async def _sync_waiting(self, status: list[AMIMessage], mark: int) -> None:
        """Callers we think are waiting but app_queue does not have left meanwhile (only calls
        no event changed since before the ``QueueStatus``: a newer caller is simply not in it
        yet (:meth:`_changed_since`); and
        not a caller out of the list for a waiting-room announcement: they re-enter, or their
        hang-up ends the row)."""
        listed = {e.get("Uniqueid") for e in status if e.name == "QueueEntry"}
        waiting = (
            Call.queue_joined_at.is_not(None),
            Call.queue_left_at.is_(None),
            or_(
                Call.queue_entered_at.is_(None),
                Call.queue_exited_at.is_(None),
                Call.queue_exited_at < Call.queue_entered_at,
            ),
        )
        async with self.sessions() as session:
            # The exclusions in Python: the events queued may be thousands (too many for a
            # NOT IN's parameters), the callers we think waiting are few.
            ours = set((await session.execute(select(Call.uniqueid).where(*waiting))).scalars())
            left = ours - listed - self._changed_since(mark)
            if left:
                await session.execute(
                    update(Call)
                    .where(*waiting, Call.uniqueid.in_(left))
                    .values(queue_left_at=func.now(), updated_at=func.now())
                )
            await session.commit()

    async def _record_live_channels(self) -> None:
        with self._snapshot() as mark:
            await self._record_live_channels_since(mark)

    async def _record_live_channels_since(self, mark: int) -> None:
        before = datetime.now(UTC)  # only for the CEL's look-back (hours: a step is in it)
        channels = await self.ami.action_list("CoreShowChannels")
        live: set[str] = set()
        calls: set[str] = set()
        async with self.sessions() as session:
            for channel in channels:
                if channel.name == "CoreShowChannel":
                    live.add(channel.get("Uniqueid") or "")
                    if channel.get("Uniqueid") == channel.get("Linkedid"):
                        calls.add(channel.get("Uniqueid") or "")
                    await self.recorder.apply(session, channel)
            # What the live calls did while we were not listening (queue join, agent answer).
            await catch_up_live(session, self.recorder, calls)
            # Calls that ended while we were not listening, as Asterisk's CEL recorded them;
            # then those it did not record either (e.g. Asterisk restarted) end now.
            since = before - timedelta(minutes=self.settings.backfill_lookback_minutes)
            filled = await backfill(session, self.recorder, since)
            if filled.calls:
                log.warning("back-filled %d call(s) from Asterisk's CEL", filled.calls)
            self.backfilled += filled.calls
            open_calls = (
                await session.execute(select(Call.uniqueid).where(Call.ended_at.is_(None)))
            ).scalars()
            gone = set(open_calls) - live - self._changed_since(mark)
            for uniqueid in sorted(gone):
                await self.recorder.apply(
                    session, AMIMessage([("Event", "Hangup"), ("Uniqueid", uniqueid)])
                )
            await session.commit()

    # ------------------------------------------------------------------ intents, seat config

    async def _listen(self) -> None:
        """LISTEN for the API's signals; after every (re)connect, whatever changed while we
        were not listening is applied (every seat's intent, the seat config)."""

        def caught_up() -> None:
            self._intents.put_nowait("*")
            self._config_wanted.set()

        await listen_forever(
            self.settings,
            {
                AGENT_INTENT_CHANNEL: self._intents.put_nowait,
                SEAT_CONFIG_CHANNEL: lambda _payload: self._config_wanted.set(),
            },
            name=SERVICE,
            on_listening=caught_up,
        )

    async def _apply_intents(self) -> None:
        while True:
            seat = await self._intents.get()
            # Not dropped while Asterisk is away: applied once it is back (after the reconcile).
            await self.ami.fully_booted.wait()
            started = time.monotonic()
            try:
                await self._reconcile_seats(None if seat == "*" else seat)
            except Exception as error:
                # Nor while the database is: tried again until it works, not left for the
                # next signal or LISTEN reconnect, which a blip need not bring.
                self._intent_outage.failed(error)
                self._again_later(
                    self._intent_outage, functools.partial(self._intents.put_nowait, seat)
                )
            else:
                self._intent_outage.ok()
                log.info("intent of seat %s applied in %.3f s", seat, time.monotonic() - started)

    async def _apply_seat_config(self) -> None:
        while True:
            await self._config_wanted.wait()
            self._config_wanted.clear()
            try:
                await self.seat_config.apply()
            except Exception as error:
                self._config_outage.failed(error)
                self._again_later(self._config_outage, self._config_wanted.set)
            else:
                self._config_outage.ok()

    @staticmethod
    def _again_later(outage: Outage, again: Callable[[], None]) -> None:
        """``again()`` after 1 s, doubling per failure of ``outage`` up to 30 s."""
        delay = min(APPLY_AGAIN_FIRST_SECONDS * 2 ** (outage.failures - 1), APPLY_AGAIN_MAX_SECONDS)
        asyncio.get_running_loop().call_later(delay, again)

    # ------------------------------------------------------------------ notify, heartbeat

    async def _notify(self, channel: str, payload: str) -> None:
        await self._notify_all(channel, [payload])

    async def _notify_all(self, channel: str, payloads: list[str]) -> None:
        """One NOTIFY per payload, all in one transaction (delivered in order at its COMMIT)."""
        try:
            async with self.sessions() as session:
                await session.execute(
                    text(
                        "SELECT pg_notify(:channel, p.payload) FROM unnest(CAST(:payloads AS"
                        " text[])) WITH ORDINALITY AS p(payload, n) ORDER BY p.n"
                    ),
                    {"channel": channel, "payloads": payloads},
                )
                await session.commit()
        except Exception:
            log.exception("NOTIFY %s failed", channel)

    async def _notify_stats(self) -> None:
        while True:
            await self._stats_dirty.wait()
            self._stats_dirty.clear()
            await self._notify(STATS_CHANNEL, "")
            await asyncio.sleep(STATS_DEBOUNCE_SECONDS)

    def heartbeat_detail(self) -> dict[str, Any]:
        return {
            "ami_connected": self.ami.connected.is_set(),
            "events_applied": self.events_applied,
            "events_dropped": self._events.dropped,
            "resyncs": self.resyncs,
            "backfilled": self.backfilled,
            "seat_calls_ended_by_caller_hangup": self.live.ended_by_caller_hangup,
            "seats_in_queue": sum(
                1 for s in self.live.seats.values() if self.settings.queue_name in s.members
            ),
        }


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
        manager = QueueManager(
            settings, ami, session_factory(engine), apply_config=render_and_reload(settings)
        )
        async with ami:
            await manager.run()
    finally:
        await engine.dispose()
