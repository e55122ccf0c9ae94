"""``helpline dialer``: claims due jobs, dials them with AMI ``Originate``, correlates what
Asterisk reports, and moves the jobs on. Any number of these may run against one database.

One pass: make the missing feedback and follow-up jobs (set-based, idempotent), then claim
and dial until the claim stops (window, budget, channels, no due job). Each claim is one
transaction that reserves everything (``outbound_dialer.store``); only after its COMMIT is the
``Originate`` sent, once:

* ``Async: true`` with ``ChannelId: <attempt id>``: the channel's uniqueid *is* the attempt's
  id, so ``OriginateResponse`` (answered, or failed with its Reason) and ``Hangup`` (with its
  cause) name the attempt, whichever dialer process hears them;
* an ``Originate`` refused (``Response: Error``) ends the attempt as ``failed`` at once; one
  whose link dropped or whose answer did not come (it may have run) stays open for the
  reconciliation, never re-sent;
* reconciliation (``CoreShowChannels``) runs after every AMI (re)connect before any claim, and
  every ``dialer_reconcile_seconds``: an open attempt older than a grace period with no live
  channel ends as ``lost`` (retried), so nothing stays ``dialing`` forever and nothing is dialled
  while its earlier attempt may still ring.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.channels import AGENT_CONNECT_CHANNEL
from core.db.heartbeat import keep_beating
from core.db.queries import free_agents
from core.db.session import create_engine, session_factory
from core.domain.dialing import Campaign, dialable
from core.outage import Outage
from core.protocols.ami import AMIMessage
from core.reference import Reference
from core.transport.ami_client import AMIActionError, AMIClient, AMIError
from outbound_dialer.store import (
    ATTEMPT_PREFIX,
    Claimed,
    ClaimPass,
    DialRules,
    claim_jobs,
    click_seat,
    finish_attempt,
    make_callback_jobs,
    make_feedback_jobs,
    make_followup_jobs,
    mark_abandoned,
    mark_answered,
    open_attempts,
    record_dial_status,
    record_reason,
    settle_callback_requests,
)

log = logging.getLogger(__name__)

#: The heartbeat row's name and the CLI subcommand's.
SERVICE = "dialer"
AMI_SERVICE = "outbound_dialer"
#: The dialplan context of outbound calls; its extensions are the campaigns' names.
CONTEXT = "outbound"
#: Events this service acts on.
EVENTS = frozenset({"OriginateResponse", "Hangup", "QueueCallerAbandon", "DialEnd"})
#: Click-to-call: the seat's phones ring first (every phone of the seat, like a queue call).
SEAT_DIAL = "Local/{seat}@seat-phones"
#: An attempt younger than this may not have its channel yet: reconciliation leaves it.
RECONCILE_GRACE = timedelta(seconds=15)
#: Originates of one pass sent and not yet answered, at most; also the most jobs one claim
#: takes (see :meth:`Dialer.run_once`).
ORIGINATES_IN_FLIGHT = 16
#: Events of different attempts applied at once, at most (see :meth:`Dialer._consume_events`):
#: within the process's pool (3 connections and 3 more at need, :func:`serve`), leaving room
#: for the claim and the heartbeat, so that no lane waits on the pool. 16 did no better in the
#: compressed day (docs/benchmarks.md).
EVENT_LANES = 4
#: After a failed OriginateResponse, how long its channel's Hangup (with the cause) may take.
HANGUP_GRACE_SECONDS = 3.0

Clock = Callable[[], datetime]


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _is_attempt(uniqueid: str) -> bool:
    """An attempt's own channel: not an inbound call, nor an Originate of someone else, nor
    the seat's half of a click-to-call's Local channel (``<attempt>;2``)."""
    return uniqueid.startswith(ATTEMPT_PREFIX) and ";" not in uniqueid


class Dialer:
    def __init__(
        self,
        settings: Settings,
        ami: AMIClient,
        sessions: async_sessionmaker[AsyncSession],
        reference: Reference,
        *,
        clock: Clock = lambda: datetime.now(UTC),
        campaigns: frozenset[Campaign] = frozenset(Campaign),
    ) -> None:
        self.settings = settings
        self.ami = ami
        self.sessions = sessions
        #: The same pool outside a transaction (autocommit), for an event that is one
        #: statement: no BEGIN and no COMMIT around it, two of its three round trips.
        self._statements = async_sessionmaker(
            sessions.kw["bind"].execution_options(isolation_level="AUTOCOMMIT"),
            expire_on_commit=False,
        )
        self.reference = reference
        self.clock = clock
        self.campaigns = campaigns
        self.rules = DialRules.from_settings(settings)
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.started_at = datetime.now(UTC)
        self.stopping = asyncio.Event()
        #: Set once the live channels were reconciled on the current AMI link; cleared when
        #: the link drops. No claim happens while it is clear.
        self.reconciled = asyncio.Event()
        self._wake = asyncio.Event()
        self._generation = -1
        self._pending: set[asyncio.Task[None]] = set()
        #: Per attempt, the task applying its latest event (the next one waits for it).
        self._lanes: dict[str, asyncio.Task[None]] = {}
        #: When jobs were last made (monotonic: a wall clock stepped back an hour must not
        #: stop the passes for an hour).
        self._jobs_made_at: float | None = None
        #: Attempts this process originated -> when (monotonic), for the reconciliation's
        #: grace: by the wall clock, a step of +1 h made a call still ringing look an hour
        #: old (ended as lost, its channel freed while in use), -1 h kept a lost one open.
        self._originated: dict[str, float] = {}
        self.totals: dict[str, int] = {"originated": 0, "refused": 0, "answered": 0, "ended": 0}
        self.last_stop: str | None = None
        self._pass_outage = Outage(log, "dialer pass")
        ami.add_on_connect(self._on_connect)
        self._events = ami.subscribe(filter=EVENTS, name=SERVICE)

    def stop(self) -> None:
        self.stopping.set()
        self._wake.set()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            consumer = tasks.create_task(self._consume_events())
            heartbeat = tasks.create_task(
                keep_beating(
                    self.sessions,
                    SERVICE,
                    self.heartbeat_detail,
                    started_at=self.started_at,
                    interval=self.settings.heartbeat_seconds,
                )
            )
            periodic = tasks.create_task(self._periodic_reconcile())
            try:
                await self._loop()
            finally:
                for task in (consumer, heartbeat, periodic, *self._pending, *self._lanes.values()):
                    task.cancel()

    # ------------------------------------------------------------------ the claim loop

    async def _loop(self) -> None:
        while not self.stopping.is_set():
            if not self.ami.connected.is_set() or self._generation != self.ami.generation:
                self.reconciled.clear()
            if self.reconciled.is_set():
                try:
                    await self.run_once(self.clock())
                except Exception as error:
                    self._pass_outage.failed(error)  # tried again after the poll interval
                else:
                    self._pass_outage.ok()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.dialer_poll_seconds)

    async def run_once(self, now: datetime) -> list[Claimed]:
        """One pass: make missing jobs, then claim and dial until the claim stops."""
        due = (
            self._jobs_made_at is None
            or time.monotonic() - self._jobs_made_at >= self.settings.dialer_job_pass_seconds
        )
        if due:
            async with self.sessions() as session:
                made = await make_feedback_jobs(session, now)
                made += await make_followup_jobs(session, now, self.rules.followup_every)
                made += await make_callback_jobs(session)
                await settle_callback_requests(session)
                await session.commit()
            self._jobs_made_at = time.monotonic()
            if made:
                log.info("made %d job(s)", made)
        dialled: list[Claimed] = []
        state = ClaimPass()
        # Each Originate is sent while the next jobs are claimed: its answer's round trip
        # (Asterisk's, under load a few ms) no longer adds to every claim's. A claim takes as
        # many jobs as there are free places among ORIGINATES_IN_FLIGHT (one transaction for
        # them all); the pass returns when every Originate it sent is answered.
        slots = asyncio.Semaphore(ORIGINATES_IN_FLIGHT)
        sending: list[asyncio.Task[None]] = []
        try:
            async with self.sessions() as session:
                # Callbacks are dialled only for agents free now (never ahead of them).
                free = await free_agents(session, now) if Campaign.CALLBACK in self.campaigns else 0
                await session.rollback()
                while not self.stopping.is_set() and self.ami.connected.is_set():
                    await slots.acquire()
                    places = 1
                    while not slots.locked():
                        await slots.acquire()  # free now: returns at once
                        places += 1
                    claimed = await claim_jobs(
                        session,
                        self.rules,
                        now,
                        self.name,
                        state,
                        campaigns=self.campaigns,
                        callback_cap=free,
                        most=places,
                    )
                    for _ in range(places - len(claimed)):
                        slots.release()
                    if not claimed:
                        break
                    for job in claimed:
                        sending.append(asyncio.create_task(self._send(job, now, slots)))
                    dialled += claimed
        finally:
            # A claim that failed leaves the Originates already sent to finish, not cancelled.
            sent = await asyncio.gather(*sending, return_exceptions=True)
        self.last_stop = state.stopped
        for outcome in sent:
            if isinstance(outcome, BaseException):
                raise outcome
        return dialled

    async def _send(self, claimed: Claimed, now: datetime, slots: asyncio.Semaphore) -> None:
        try:
            await self.originate(claimed, now)
        finally:
            slots.release()

    async def originate(self, claimed: Claimed, now: datetime) -> None:
        """Send the one ``Originate`` of a committed attempt, if its number may be dialled.

        :func:`core.domain.dialing.dialable` decides for every call we place (click-to-call
        asks it too, for a clear 422): a 10-digit Indian mobile or landline, never an
        international, premium-rate, toll-free or short number or a SIP URI. Whatever a job
        holds, nothing else reaches the trunk's dial string or the ``Variable`` fields."""
        self._originated[claimed.attempt_id] = time.monotonic()
        if not dialable(claimed.number):
            self.totals["refused"] += 1
            log.warning("attempt %s: not a dialable number; not dialled", claimed.attempt_id)
            await self._finish(claimed.attempt_id, now, reason=0)
            return
        variables = [
            f"DIALER_ATTEMPT={claimed.attempt_id}",
            f"DIALER_CAMPAIGN={claimed.campaign.value}",
            f"DIALER_NUMBER={claimed.number}",
        ]
        if claimed.complaint_number is not None:
            variables.append(f"DIALER_COMPLAINT={claimed.complaint_number}")
        trunk = self.settings.dialer_trunk_dial.format(number=claimed.number)
        caller_id = f'"{self.settings.helpline_number}" <{self.settings.outbound_caller_id}>'
        channel = trunk
        if claimed.campaign is Campaign.CLICK and claimed.seat is not None:
            # The seat rings first, showing whom it will call; once it answers, the
            # dialplan ([outbound] click) dials the citizen through the trunk with the
            # helpline's caller ID and bridges the two.
            channel = SEAT_DIAL.format(seat=claimed.seat)
            label = f"Complaint {claimed.complaint_number}" if claimed.complaint_number else "Call"
            caller_id = f'"{label}" <{claimed.number}>'
            variables += [
                f"DIALER_TRUNK={trunk}",
                f"DIALER_CALLER_ID={self.settings.outbound_caller_id}",
                f"DIALER_CALLER_NAME={self.settings.helpline_number}",
                f"DIALER_RING={self.settings.dialer_ring_seconds}",
            ]
        fields: list[tuple[str, str]] = [
            ("Channel", channel),
            ("Context", CONTEXT),
            ("Exten", claimed.campaign.value),
            ("Priority", "1"),
            ("Timeout", str(self.settings.dialer_ring_seconds * 1000)),
            ("CallerID", caller_id),
            ("Async", "true"),
            ("ChannelId", claimed.attempt_id),
            *(("Variable", variable) for variable in variables),
        ]
        try:
            await self.ami.action("Originate", fields)
        except AMIActionError as refused:
            # Asterisk refused it: nothing dials. The attempt ends now (and is retried).
            self.totals["refused"] += 1
            log.warning("Originate %s refused: %s", claimed.attempt_id, refused.message)
            await self._finish(claimed.attempt_id, now, reason=0)
        except (AMIError, ValueError) as error:
            # It may have run (a timeout, a link lost after the send): never re-sent. The
            # reconciliation finds its channel, or ends the attempt as lost.
            log.warning(
                "Originate %s unconfirmed (%r): left to reconcile", claimed.attempt_id, error
            )
        else:
            self.totals["originated"] += 1

    # ------------------------------------------------------------------ AMI events

    async def _consume_events(self) -> None:
        """Apply the events as they come: one attempt's in their order, different attempts'
        side by side (at most EVENT_LANES at once). One after another, each its own
        transaction, they bound how fast channels were freed: the budget's ``active`` stayed
        at the cap while Hangups waited their turn, and the claims with it."""
        lanes = asyncio.Semaphore(EVENT_LANES)
        async for event in self._events:
            uniqueid = event.get("Uniqueid") or ""
            if _is_attempt(uniqueid):
                await lanes.acquire()
                before = self._lanes.get(uniqueid)
                lane = asyncio.create_task(self._apply_in_lane(event, before, lanes))
                self._lanes[uniqueid] = lane
                lane.add_done_callback(functools.partial(self._lane_done, uniqueid))
            if self._events.ack_resync() and self.ami.connected.is_set():
                # Events were dropped (we read too slowly): a Hangup may be among them.
                try:
                    await self.reconcile()
                except Exception:
                    log.exception("reconciliation after dropped events failed")

    async def _apply_in_lane(
        self, event: AMIMessage, before: asyncio.Task[None] | None, lanes: asyncio.Semaphore
    ) -> None:
        try:
            if before is not None:
                await asyncio.wait([before])  # the attempt's earlier event first
            await self.apply_event(event)
        except Exception:
            log.exception("could not apply %s %s", event.name, event.get("Uniqueid"))
        finally:
            lanes.release()

    def _lane_done(self, uniqueid: str, lane: asyncio.Task[None]) -> None:
        if self._lanes.get(uniqueid) is lane:
            del self._lanes[uniqueid]

    async def apply_event(self, event: AMIMessage) -> None:
        uniqueid = event.get("Uniqueid") or ""
        if not _is_attempt(uniqueid):
            return
        now = self.clock()
        if event.name == "DialEnd":
            status = event.get("DialStatus")
            if status:
                async with self._statements() as session:
                    await record_dial_status(session, uniqueid, status, now)
                    await session.commit()
        elif event.name == "OriginateResponse":
            if (event.get("Response") or "").lower() == "success":
                async with self._statements() as session:
                    campaign = await mark_answered(session, uniqueid, now)
                    if campaign is not None:
                        self.totals["answered"] += 1
                    seat = None
                    if campaign is Campaign.CLICK:
                        seat = await click_seat(session, uniqueid)
                    if seat is not None:
                        # The agent answered their click-to-call: the desk's screen-pop
                        # (delivered by the API's LISTEN), as AgentConnect's. Autocommit:
                        # the answer above is committed before it goes out.
                        payload = json.dumps({"seat": seat, "uniqueid": uniqueid})
                        await session.execute(
                            select(func.pg_notify(AGENT_CONNECT_CHANNEL, payload))
                        )
                    await session.commit()
            else:
                # The channel's Hangup (with its Q.850 cause) usually follows and ends the
                # attempt; a channel that was never created has none, so the reason alone
                # ends it after a grace period.
                reason = _int(event.get("Reason"))
                async with self._statements() as session:
                    await record_reason(session, uniqueid, reason)
                    await session.commit()
                self._later(self._finish_unless_hung_up(uniqueid, reason))
        elif event.name == "Hangup":
            await self._finish(uniqueid, now, cause=_int(event.get("Cause")))
        elif event.name == "QueueCallerAbandon":
            async with self._statements() as session:
                await mark_abandoned(session, uniqueid, now)
                await session.commit()

    def _later(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _finish_unless_hung_up(self, attempt_id: str, reason: int | None) -> None:
        await asyncio.sleep(HANGUP_GRACE_SECONDS)
        await self._finish(attempt_id, self.clock(), reason=reason)

    async def _finish(
        self,
        attempt_id: str,
        now: datetime,
        *,
        reason: int | None = None,
        cause: int | None = None,
        lost: bool = False,
    ) -> None:
        async with self.sessions() as session:
            done = await finish_attempt(
                session,
                attempt_id,
                now,
                self.rules,
                self.reference,
                reason=reason,
                cause=cause,
                lost=lost,
            )
            await session.commit()
        self._originated.pop(attempt_id, None)  # ended now, or already
        if done is not None:
            self.totals["ended"] += 1
            self._wake.set()  # a channel is free
            log.info(
                "attempt %s: %s (reason %s, cause %s), job %d %s",
                attempt_id,
                done.outcome,
                reason,
                cause,
                done.job_id,
                done.job_state,
            )

    # ------------------------------------------------------------------ reconciliation

    async def _on_connect(self, ami: AMIClient) -> None:
        await self.reconcile()
        self._generation = ami.generation
        self.reconciled.set()
        self._wake.set()

    async def reconcile(self) -> int:
        """End every open attempt older than the grace period that has no live channel. Its
        age is by the monotonic clock for the attempts this process originated; by their
        start (the wall clock) only for those of another process or an earlier run."""
        started = time.monotonic()
        channels = await self.ami.action_list("CoreShowChannels")
        live = {c.get("Uniqueid") for c in channels}
        now = self.clock()
        grace = RECONCILE_GRACE.total_seconds()
        async with self.sessions() as session:
            open_ids = await open_attempts(session)
        gone = [
            attempt
            for attempt, started_at in open_ids.items()
            if attempt not in live
            and (
                started - self._originated[attempt] >= grace
                if attempt in self._originated
                else started_at < now - RECONCILE_GRACE
            )
        ]
        for attempt in gone:
            await self._finish(attempt, now, lost=True)
        if gone:
            log.warning("reconciled %d attempt(s) with no live channel", len(gone))
        return len(gone)

    async def _periodic_reconcile(self) -> None:
        while True:
            await asyncio.sleep(self.settings.dialer_reconcile_seconds)
            if self.reconciled.is_set():
                try:
                    await self.reconcile()
                except Exception:
                    log.exception("periodic reconciliation failed")

    # ------------------------------------------------------------------ heartbeat

    def heartbeat_detail(self) -> dict[str, Any]:
        return {
            "ami_connected": self.ami.connected.is_set(),
            "reconciled": self.reconciled.is_set(),
            "last_stop": self.last_stop,
            **self.totals,
        }


def ami_client(settings: Settings) -> AMIClient:
    return AMIClient(
        settings.ami_host,
        settings.ami_port,
        settings.ami_username(AMI_SERVICE),
        settings.ami_secret(AMI_SERVICE),
        action_timeout=settings.ami_action_timeout,
        ping_interval=settings.ami_ping_interval,
        backoff_max=settings.ami_reconnect_max_backoff,
        name=SERVICE,
    )


async def serve(settings: Settings) -> None:
    """The ``dialer`` process: runs until SIGTERM or SIGINT."""
    reference = settings.load_reference()
    engine = create_engine(settings, pool_size=3)
    ami = ami_client(settings)
    dialer = Dialer(settings, ami, session_factory(engine), reference)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, dialer.stop)
    log.info("dialer %s up: AMI %s:%s", dialer.name, settings.ami_host, settings.ami_port)
    try:
        async with ami:
            await dialer.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await engine.dispose()
        log.info("dialer stopped")
