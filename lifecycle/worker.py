"""``helpline sla``: the lifecycle worker process.

One loop: deliver due SMS from the outbox (woken early by the ``sms_outbox`` NOTIFY that
:func:`lifecycle.notifications.enqueue` sends at COMMIT, otherwise every
``sms_poll_seconds``), then the SLA escalation pass when one is plugged in (see
:attr:`LifecycleWorker.sla_pass`), the recordings' retention pass and the privacy pass
(lifecycle.privacy), both hourly. A heartbeat row in ``service_heartbeats`` says it lives.
SIGTERM (``helpline down``) lets the pass in flight finish, so no claimed SMS waits out a
lease needlessly, then exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.channels import SMS_OUTBOX_CHANNEL
from core.db.heartbeat import keep_beating
from core.db.session import create_engine, listen_forever, session_factory
from core.outage import Outage
from lifecycle.notifications import DeliveryReport, RetryPolicy, deliver_due
from lifecycle.privacy import PrivacySchedule
from lifecycle.recordings import RecordingSchedule
from lifecycle.sla import SlaSchedule
from lifecycle.sms_providers import SmsProvider, provider_from_settings
from lifecycle.sms_templates import templates_for

log = logging.getLogger(__name__)

#: The heartbeat row's name (``service_heartbeats.service``) and the CLI subcommand's.
SERVICE = "sla"

#: One SLA escalation pass over the open complaints at ``now``.
SlaPass = Callable[[async_sessionmaker[AsyncSession], datetime], Awaitable[None]]


class LifecycleWorker:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        provider: SmsProvider,
        *,
        sla_pass: SlaPass | None = None,
        recording_pass: SlaPass | None = None,
        privacy_pass: SlaPass | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.provider = provider
        self.policy = RetryPolicy.from_settings(settings)
        #: The SLA escalation pass (escalate overdue complaints, queue their ``escalated``
        #: SMS in the same transaction): :class:`lifecycle.sla.SlaSchedule` in :func:`serve`,
        #: every ``sla_pass_minutes``. Without it the worker only delivers SMS.
        self.sla_pass = sla_pass
        #: The recordings' retention pass (lifecycle.recordings.RecordingSchedule in
        #: :func:`serve`): deletes files past their retention, after the SLA pass.
        self.recording_pass = recording_pass
        #: The privacy pass (lifecycle.privacy.PrivacySchedule in :func:`serve`): anonymises
        #: personal data past its retention, by data class, after the recordings' pass.
        self.privacy_pass = privacy_pass
        self.started_at = datetime.now(UTC)
        self.stopping = asyncio.Event()
        self._wake = asyncio.Event()
        #: Set while the loop waits for a NOTIFY or the poll interval.
        self._idle = asyncio.Event()
        #: Set once the LISTEN is in place (a NOTIFY from then on wakes the loop).
        self.listening = asyncio.Event()
        self.totals = DeliveryReport()
        self.last_pass_at: datetime | None = None
        self._pass_outage = Outage(log, "lifecycle pass")

    def stop(self) -> None:
        self.stopping.set()
        self._wake.set()

    async def run(self) -> None:
        """Until :meth:`stop`: the loop, the LISTEN and the heartbeat."""
        helpers = [
            asyncio.create_task(self._listen(), name="sla-listen"),
            asyncio.create_task(
                keep_beating(
                    self.sessions,
                    SERVICE,
                    self.heartbeat_detail,
                    started_at=self.started_at,
                    interval=self.settings.heartbeat_seconds,
                ),
                name="sla-heartbeat",
            ),
        ]
        try:
            await self._loop()
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    async def _loop(self) -> None:
        while not self.stopping.is_set():
            self._wake.clear()
            try:
                await self.run_once(datetime.now(UTC))
            except Exception as error:
                self._pass_outage.failed(error)  # tried again after the poll interval
            else:
                self._pass_outage.ok()
            if self.stopping.is_set():
                break
            self._idle.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.sms_poll_seconds)
            self._idle.clear()

    def waiting_for_work(self) -> bool:
        """True while the loop sleeps with no wake-up pending: only a NOTIFY or the poll
        interval will start its next pass."""
        return self._idle.is_set() and not self._wake.is_set()

    async def run_once(self, now: datetime) -> DeliveryReport:
        """One pass: deliver every due SMS (batch after batch), then the SLA pass."""
        report = DeliveryReport()
        while not self.stopping.is_set():
            done = await deliver_due(
                self.sessions, self.provider, now, self.settings.sms_batch, self.policy
            )
            for name in ("claimed", "sent", "retried", "dead"):
                for target in (report, self.totals):
                    setattr(target, name, getattr(target, name) + getattr(done, name))
            if done.claimed < self.settings.sms_batch:
                break
        if self.sla_pass is not None and not self.stopping.is_set():
            await self.sla_pass(self.sessions, now)
        if self.recording_pass is not None and not self.stopping.is_set():
            await self.recording_pass(self.sessions, now)
        if self.privacy_pass is not None and not self.stopping.is_set():
            await self.privacy_pass(self.sessions, now)
        self.last_pass_at = now
        return report

    async def _listen(self) -> None:
        """LISTEN for new outbox rows (polling covers any gap); a pass runs after every
        (re)connect for rows queued while we were not listening."""
        await listen_forever(
            self.settings,
            {SMS_OUTBOX_CHANNEL: lambda _payload: self._wake.set()},
            name=SERVICE,
            on_listening=self._wake.set,
            listening=self.listening,
        )

    def heartbeat_detail(self) -> dict[str, Any]:
        return {
            "provider": self.provider.name,
            "sms_sent": self.totals.sent,
            "sms_retried": self.totals.retried,
            "sms_dead": self.totals.dead,
            "sla_pass": self.sla_pass is not None,
            "last_pass_at": self.last_pass_at.isoformat() if self.last_pass_at else None,
        }


async def serve(settings: Settings) -> None:
    """The ``sla`` process: runs until SIGTERM or SIGINT."""
    templates_for(settings)  # a broken templates file stops the start, loudly
    reference = settings.load_reference()  # broken reference data stops the start, loudly
    engine = create_engine(settings, pool_size=2)
    provider = provider_from_settings(settings)
    schedule = SlaSchedule(reference, timedelta(minutes=settings.sla_pass_minutes))
    worker = LifecycleWorker(
        settings,
        session_factory(engine),
        provider,
        sla_pass=schedule,
        recording_pass=RecordingSchedule(settings),
        privacy_pass=PrivacySchedule(settings),
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    log.info(
        "sla worker up: SMS provider %s, SLA pass every %s min",
        provider.name,
        settings.sla_pass_minutes,
    )
    try:
        await worker.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await provider.aclose()
        await engine.dispose()
        log.info("sla worker stopped")
