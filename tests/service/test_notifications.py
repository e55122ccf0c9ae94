"""The SMS outbox on a real PostgreSQL: one event queues once, delivery is at least once and
never lost (a dead worker's claim is taken over after its lease), two live workers never send
one row twice, retries back off and end in ``dead``; the ``sla`` worker wakes on NOTIFY,
beats its heart and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.services import health
from core.config import Settings
from core.db.channels import SMS_OUTBOX_CHANNEL
from core.db.models import ServiceHeartbeat, SmsOutbox
from core.db.session import create_engine, raw_connection, session_factory
from core.domain.notifications import SmsKind, SmsStatus
from core.domain.phone import CallerNumber
from lifecycle import notifications
from lifecycle.notifications import Enqueued, RetryPolicy, deliver_due, enqueue
from lifecycle.sms_providers import SendOutcome, SendResult, SmsMessage
from lifecycle.worker import SERVICE, LifecycleWorker

CALLER = CallerNumber("9876543210")
#: The delivery passes' clock: after every row these tests queue (rows are due from COMMIT).
T0 = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
POLICY = RetryPolicy(
    max_attempts=3, base=timedelta(seconds=30), cap=timedelta(minutes=5), lease=timedelta(minutes=2)
)
#: Every wait in these tests ends by an event; this only stops a hang.
HANG_GUARD = 20.0


@pytest.fixture(autouse=True)
async def empty_outbox(db_settings: Settings) -> None:
    engine = create_engine(db_settings, pool_size=1)
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE sms_outbox RESTART IDENTITY"))
    await engine.dispose()


@dataclass
class Gateway:
    """A provider that records every message and answers from ``script`` (default: sent)."""

    name: str = "test"
    script: list[SendOutcome] = field(default_factory=list)
    messages: list[SmsMessage] = field(default_factory=list)
    #: When set, each send waits on it (a slow or dead gateway).
    gate: asyncio.Event | None = None
    received: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, message: SmsMessage) -> SendResult:
        self.messages.append(message)
        self.received.set()
        if self.gate is not None:
            await self.gate.wait()
        outcome = self.script.pop(0) if self.script else SendOutcome.SENT
        if outcome is SendOutcome.SENT:
            return SendResult(outcome, provider_message_id=f"gw-{message.outbox_id}")
        return SendResult(outcome, error=f"{outcome} from the gateway")

    async def aclose(self) -> None:
        return None

    def sent_ids(self) -> list[int]:
        return [m.outbox_id for m in self.messages]


async def queue(
    sessions: async_sessionmaker[AsyncSession],
    count: int = 1,
    *,
    caller: CallerNumber | None = CALLER,
) -> list[Enqueued]:
    async with sessions() as session:
        results = [
            await enqueue(
                session,
                kind=SmsKind.REGISTERED,
                complaint_number=f"10000{n:05d}",
                caller_number=caller,
                params={"days": "7"},
                dedupe_key="registered",
            )
            for n in range(count)
        ]
        await session.commit()
    return results


async def rows(sessions: async_sessionmaker[AsyncSession]) -> list[SmsOutbox]:
    async with sessions() as session:
        return list((await session.execute(select(SmsOutbox).order_by(SmsOutbox.id))).scalars())


async def test_one_event_queues_once_and_notifies_at_commit(
    db_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    notified: asyncio.Queue[str] = asyncio.Queue()
    async with raw_connection(db_settings) as conn:
        await conn.add_listener(SMS_OUTBOX_CHANNEL, lambda *args: notified.put_nowait(args[3]))
        async with sessions() as session:
            await enqueue(
                session,
                kind=SmsKind.RESOLVED,
                complaint_number="1000000099",
                caller_number=CALLER,
                params={},
                dedupe_key="h1",
            )
            await session.rollback()  # the complaint change failed: nothing queued or woken
        assert await queue(sessions) == [Enqueued.QUEUED]
        assert await queue(sessions) == [Enqueued.DUPLICATE]
        payload = await asyncio.wait_for(notified.get(), HANG_GUARD)
        await conn.execute("SELECT 1")  # a round trip: any further NOTIFY has arrived
    (row,) = await rows(sessions)
    assert payload == str(row.id)
    assert notified.empty()
    assert row.status is SmsStatus.PENDING
    assert row.kind is SmsKind.REGISTERED
    assert "1000000000" in row.body
    assert row.dlt_template_id == "1007000000000000101"
    assert row.caller_number == CALLER


async def test_another_discriminator_of_the_same_kind_is_another_sms(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        for key in ("breach:district:2026-12-01", "breach:division:2026-12-04"):
            assert (
                await enqueue(
                    session,
                    kind=SmsKind.ESCALATED,
                    complaint_number="1000000014",
                    caller_number=CALLER,
                    params={"officer_hi": "जिलाधिकारी, लखनऊ", "officer_en": "DM Lucknow"},
                    dedupe_key=key,
                    language="en",
                )
                is Enqueued.QUEUED
            )
        await session.commit()
    assert [r.language for r in await rows(sessions)] == ["en", "en"]
    assert all("DM Lucknow" in r.body for r in await rows(sessions))


async def test_a_withheld_number_is_recorded_as_skipped_and_never_sent(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    assert await queue(sessions, caller=None) == [Enqueued.SKIPPED]
    gateway = Gateway()
    assert (await deliver_due(sessions, gateway, T0 + timedelta(days=1), 10, POLICY)).claimed == 0
    (row,) = await rows(sessions)
    assert row.status is SmsStatus.SKIPPED
    assert row.caller_number is None
    assert gateway.messages == []


async def test_sent_once_with_the_outbox_id_as_client_reference(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await queue(sessions, 3)
    gateway = Gateway()
    report = await deliver_due(sessions, gateway, T0, 10, POLICY)
    assert (report.claimed, report.sent) == (3, 3)
    assert (await deliver_due(sessions, gateway, T0 + timedelta(days=1), 10, POLICY)).claimed == 0
    assert sorted(m.client_reference for m in gateway.messages) == ["1", "2", "3"]
    for row in await rows(sessions):
        assert row.status is SmsStatus.SENT
        assert row.attempts == 1
        assert row.sent_at == T0
        assert row.provider_message_id == f"gw-{row.id}"
        assert row.lease_token is None


async def test_two_live_workers_never_send_a_row_twice(db_settings: Settings) -> None:
    engines = [create_engine(db_settings, pool_size=2) for _ in range(2)]
    try:
        workers = [session_factory(engine) for engine in engines]
        await queue(workers[0], 30)
        gateways = [Gateway(gate=asyncio.Event()), Gateway(gate=asyncio.Event())]

        async def open_gates_once_both_hold_rows() -> None:
            # Both workers hold claimed rows in `sending` at the same time before any is sent.
            await asyncio.gather(*(g.received.wait() for g in gateways))
            for g in gateways:
                assert g.gate is not None
                g.gate.set()

        async def drain(sessions: async_sessionmaker[AsyncSession], gateway: Gateway) -> None:
            while (await deliver_due(sessions, gateway, T0, 4, POLICY)).claimed:
                pass

        async with asyncio.timeout(HANG_GUARD):
            await asyncio.gather(
                open_gates_once_both_hold_rows(),
                drain(workers[0], gateways[0]),
                drain(workers[1], gateways[1]),
            )
        first, second = (set(g.sent_ids()) for g in gateways)
        assert first and second
        assert not first & second
        assert sorted(first | second) == list(range(1, 31))
        assert sum(len(g.messages) for g in gateways) == 30
        assert {(r.status, r.attempts) for r in await rows(workers[0])} == {(SmsStatus.SENT, 1)}
    finally:
        for engine in engines:
            await engine.dispose()


async def test_a_worker_killed_after_claiming_leaves_the_row_to_another(
    db_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await queue(sessions)
    dead_engine = create_engine(db_settings, pool_size=1)
    hung = Gateway(gate=asyncio.Event())  # never opened: the worker dies mid-send
    doomed = asyncio.create_task(deliver_due(session_factory(dead_engine), hung, T0, 10, POLICY))
    await asyncio.wait_for(hung.received.wait(), HANG_GUARD)
    doomed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await doomed
    await dead_engine.dispose()
    (row,) = await rows(sessions)
    assert (row.status, row.attempts) == (SmsStatus.SENDING, 1)

    other = Gateway()
    # While the lease runs, the row is the dead worker's: nobody sends it twice.
    almost = T0 + POLICY.lease - timedelta(seconds=1)
    assert (await deliver_due(sessions, other, almost, 10, POLICY)).claimed == 0
    report = await deliver_due(sessions, other, T0 + POLICY.lease, 10, POLICY)
    assert report.sent_ids == [row.id]
    (row,) = await rows(sessions)
    assert (row.status, row.attempts) == (SmsStatus.SENT, 2)


async def test_a_worker_back_after_its_lease_cannot_overwrite_the_new_claim(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await queue(sessions)
    (slow,) = await notifications._claim(sessions, T0, 10, POLICY)
    later = T0 + POLICY.lease
    (fresh,) = await notifications._claim(sessions, later, 10, POLICY)
    assert fresh.token != slow.token
    failed = SendResult(SendOutcome.RETRY, error="late")
    assert await notifications._record(sessions, slow, failed, later, POLICY) is None
    sent = SendResult(SendOutcome.SENT, provider_message_id="gw")
    assert await notifications._record(sessions, fresh, sent, later, POLICY) is SmsStatus.SENT
    (row,) = await rows(sessions)
    assert (row.status, row.attempts, row.last_error) == (SmsStatus.SENT, 2, None)


async def test_transient_failures_back_off_then_it_is_sent_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await queue(sessions)
    gateway = Gateway(script=[SendOutcome.RETRY, SendOutcome.RETRY, SendOutcome.SENT])
    assert (await deliver_due(sessions, gateway, T0, 10, POLICY)).retried == 1
    (row,) = await rows(sessions)
    assert (row.status, row.attempts) == (SmsStatus.FAILED, 1)
    assert row.next_attempt_at == T0 + timedelta(seconds=30)
    assert row.last_error == "retry from the gateway"
    # Not due before its backoff ends.
    assert (
        await deliver_due(sessions, gateway, T0 + timedelta(seconds=29), 10, POLICY)
    ).claimed == 0
    second = T0 + timedelta(seconds=30)
    assert (await deliver_due(sessions, gateway, second, 10, POLICY)).retried == 1
    (row,) = await rows(sessions)
    assert row.next_attempt_at == second + timedelta(seconds=60)
    third = second + timedelta(seconds=60)
    assert (await deliver_due(sessions, gateway, third, 10, POLICY)).sent == 1
    (row,) = await rows(sessions)
    assert (row.status, row.attempts, row.sent_at, row.last_error) == (
        SmsStatus.SENT,
        3,
        third,
        None,
    )
    assert gateway.sent_ids() == [row.id] * 3


async def test_a_permanent_refusal_is_dead_at_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await queue(sessions)
    gateway = Gateway(script=[SendOutcome.PERMANENT])
    assert (await deliver_due(sessions, gateway, T0, 10, POLICY)).dead == 1
    assert (await deliver_due(sessions, gateway, T0 + timedelta(days=9), 10, POLICY)).claimed == 0
    (row,) = await rows(sessions)
    assert (row.status, row.attempts) == (SmsStatus.DEAD, 1)
    assert row.last_error == "permanent from the gateway"


async def test_a_failure_that_persists_is_dead_after_max_attempts(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await queue(sessions)
    gateway = Gateway(script=[SendOutcome.RETRY] * 10)
    now = T0
    for _ in range(POLICY.max_attempts):
        assert (await deliver_due(sessions, gateway, now, 10, POLICY)).claimed == 1
        now += POLICY.cap
    assert (await deliver_due(sessions, gateway, now + timedelta(days=9), 10, POLICY)).claimed == 0
    (row,) = await rows(sessions)
    assert (row.status, row.attempts) == (SmsStatus.DEAD, POLICY.max_attempts)
    assert len(gateway.messages) == POLICY.max_attempts


async def test_a_claim_whose_last_lease_ran_out_is_given_up(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await queue(sessions)
    now = T0
    for _ in range(POLICY.max_attempts):  # every attempt's worker dies after claiming
        assert len(await notifications._claim(sessions, now, 10, POLICY)) == 1
        now += POLICY.lease
    assert await notifications._claim(sessions, now, 10, POLICY) == []
    (row,) = await rows(sessions)
    assert (row.status, row.attempts) == (SmsStatus.DEAD, POLICY.max_attempts)
    assert row.last_error is not None
    assert "lease" in row.last_error


async def wait_for(
    sessions: async_sessionmaker[AsyncSession], check: Callable[[list[SmsOutbox]], bool]
) -> list[SmsOutbox]:
    async with asyncio.timeout(HANG_GUARD):
        while not check(current := await rows(sessions)):  # noqa: ASYNC110 (polls the table)
            await asyncio.sleep(0.05)
    return current


async def test_the_worker_wakes_on_notify_and_beats_its_heart(
    db_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # A poll interval far longer than the hang guard: only the NOTIFY can deliver in time.
    settings = db_settings.model_copy(update={"sms_poll_seconds": 3600.0})
    gateway = Gateway()
    worker = LifecycleWorker(settings, sessions, gateway)
    running = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(HANG_GUARD):
            await worker.listening.wait()
            # Nothing pending: from here only the NOTIFY can start a pass in time.
            while not worker.waiting_for_work():  # noqa: ASYNC110 (the loop's own state)
                await asyncio.sleep(0.05)
            await queue(sessions)
            await gateway.received.wait()
        await wait_for(sessions, lambda r: r[0].status is SmsStatus.SENT)
        async with sessions() as session:
            beat = await session.get(ServiceHeartbeat, SERVICE)
        assert beat is not None
        assert beat.pid == os.getpid()
        assert beat.detail["provider"] == "test"
        # /health lists every heartbeat; its status still rests on its three probes only.
        report = await health.check(sessions, None, settings)
        assert report.heartbeats[SERVICE].pid == os.getpid()
        assert report.heartbeats[SERVICE].age_seconds < HANG_GUARD
        assert report.status == "degraded"  # no AMI client here, as before
    finally:
        worker.stop()
        await asyncio.wait_for(running, HANG_GUARD)


async def test_helpline_sla_delivers_and_stops_on_sigterm(
    db_settings: Settings, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    state = tmp_path / "sla-state"
    state.mkdir()
    (state / "instance.env").write_text(f"HELPLINE_DATABASE_URL={db_settings.database_url}\n")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "helpline",
        "sla",
        env=dict(os.environ, HELPLINE_STATE_DIR=str(state)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(HANG_GUARD):
            while True:  # the heartbeat says the worker is up
                async with sessions() as session:
                    beat = await session.get(ServiceHeartbeat, SERVICE)
                if beat is not None and beat.pid == process.pid:
                    break
                await asyncio.sleep(0.1)
        await queue(sessions, 2)
        sent = await wait_for(sessions, lambda r: all(x.status is SmsStatus.SENT for x in r))
        assert [r.provider_message_id for r in sent] == ["log-1", "log-2"]
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), HANG_GUARD)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    log = output.decode()
    assert process.returncode == 0, log
    assert "******3210" in log
    assert "9876543210" not in log
    assert "sla worker stopped" in log
