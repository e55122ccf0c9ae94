"""The IVR's PostgreSQL side: complaint look-ups, the budget/wait check, callback requests and
sessions, on a real database; and whole calls (FakeAsterisk) whose sessions land in it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agi_scripts.ivr import IVRScript
from agi_scripts.service import create_ivr_engine
from agi_scripts.store import CallbackJob, PostgresStore, SessionRecord
from core.config import Settings
from core.db.models import Call, CallbackRequest, Complaint, IvrSession, User
from core.db.queries import inbound_calls_today
from core.db.session import database_unavailable, raw_connection, session_factory, warm_pool
from core.domain.calls import IvrOutcome
from core.domain.clock import day_start
from core.domain.complaints import complaint_number
from core.domain.phone import RAW_CALLER_ID_LENGTH, TRUNCATED_MARK, CallerNumber
from core.protocols.ami import AMIMessage
from core.transport.fake_agi import FakeAsterisk, run_fake_call
from ivr.menus import load_menus
from queue_manager.recorder import CallRecorder
from tests.statements import plan_of, rows_examined, statements_sent
from tests.unit.test_ivr_flow import Caller, Key, Type

#: What a carrier might send as caller ID: 10 KB with NUL, CR, invalid UTF-8 and Devanagari.
HOSTILE_CALLER_ID = b"+91\x00987\r65\xff\xfe43210" + "९८७".encode() + b"\xc3" + b"9\x01" * 5000


@pytest.fixture
async def store(
    db_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[PostgresStore]:
    yield PostgresStore(db_settings.model_copy(update={"daily_inbound_budget": 3}), sessions)


async def record_calls(
    sessions: async_sessionmaker[AsyncSession],
    *calls: tuple[str, datetime],
    **columns: datetime,
) -> None:
    """Citizens' calls as the queue manager records them (their Newchannel, which also counts
    them in the day's ``inbound_budget``), then ``columns`` set on their rows."""
    recorder = CallRecorder(Settings())
    async with sessions() as session:
        for uniqueid, at in calls:
            await recorder.apply(session, newchannel(uniqueid, at))
            if columns:
                await session.execute(
                    update(Call).where(Call.uniqueid == uniqueid).values(**columns)
                )
        await session.commit()


def newchannel(uniqueid: str, at: datetime, **fields: str) -> AMIMessage:
    """A citizen's call arriving on the trunk, stamped ``at`` (timestampevents=yes)."""
    return AMIMessage(
        [
            ("Event", "Newchannel"),
            ("Uniqueid", uniqueid),
            ("Linkedid", uniqueid),
            ("Context", "from-trunk"),
            ("Channel", "PJSIP/trunk-00000001"),
            ("CallerIDNum", fields.get("CallerIDNum", "9876543210")),
            ("Exten", "1076"),
            ("Timestamp", f"{at.timestamp():.6f}"),
        ]
    )


async def test_inbound_count_is_the_calls_recorded_once_each(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The day's counter row equals the day's citizens' calls, whatever was replayed: a
    Newchannel seen twice (a reconnect's CoreShowChannel) counts once; another day's call and
    the dialer's call do not count today."""
    now = datetime.now(UTC)
    recorder = CallRecorder(Settings())
    events = [newchannel(f"n.{i}", now - timedelta(seconds=i)) for i in range(40)]
    async with sessions() as session:
        for event in events + events[:10]:  # ten replayed
            await recorder.apply(session, event)
        await recorder.apply(session, newchannel("old", day_start(now) - timedelta(seconds=1)))
        await session.commit()
    async with sessions() as session:
        counted = await inbound_calls_today(session, now)
        rows = await session.scalar(
            select(func.count())
            .select_from(Call)
            .where(Call.started_at >= day_start(now), Call.dialer_attempt_id.is_(None))
        )
        assert counted == rows == 40
        assert await inbound_calls_today(session, now, besides="n.3") == 39
        assert await inbound_calls_today(session, now, besides="old") == 40
        assert await inbound_calls_today(session, now - timedelta(days=1)) == 1


async def add_complaint(
    sessions: async_sessionmaker[AsyncSession], seq: int, caller: str | None, status: str
) -> str:
    async with sessions() as session:
        user = await session.scalar(select(User).limit(1))
        if user is None:
            user = User(username="agent1", full_name="A", role="agent", password_hash="x")
            session.add(user)
            await session.flush()
        number = complaint_number(seq)
        now = datetime.now(UTC)
        session.add(
            Complaint(
                number=number,
                caller_number=caller,
                description="नाली टूटी है",
                created_by=user.id,
                status=status,
                created_at=now - timedelta(days=2),
                due_at=now + timedelta(days=5),
            )
        )
        await session.commit()
    return number


async def test_complaint_lookups(
    store: PostgresStore, sessions: async_sessionmaker[AsyncSession]
) -> None:
    mine = await add_complaint(sessions, 100000001, "9876543210", "in_progress")
    await add_complaint(sessions, 100000002, "9876543210", "resolved")
    await add_complaint(sessions, 100000004, "9876543210", "rejected_duplicate")
    await add_complaint(sessions, 100000005, "9876543210", "closed")
    await add_complaint(sessions, 100000003, "9000000000", "registered")
    own = await store.open_complaints("9876543210")
    assert [c.number for c in own] == [mine]
    found = await store.find_complaint(mine)
    assert found is not None and found.status == "in_progress"
    assert found.days_open() == 2 and found.days_to_due() == 5
    assert await store.find_complaint(complaint_number(100000009)) is None


async def test_budget_counts_todays_calls_in_ist_and_the_wait_from_the_queue(
    store: PostgresStore, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # The store's "now" at least 10 minutes into today (IST): "t.3" started 9 minutes before
    # it, so in the day's first minutes the real clock would put it on yesterday (a CI run
    # that passed midnight IST saw 2 calls today, not 3).
    now = max(datetime.now(UTC), day_start() + timedelta(minutes=10))
    store = PostgresStore(store.settings, sessions, clock=lambda: now)
    midnight = day_start(now)
    await record_calls(sessions, ("y.1", midnight - timedelta(seconds=1)))  # yesterday
    await record_calls(sessions, ("t.1", midnight + timedelta(seconds=1)))
    await record_calls(
        sessions,
        ("t.2", now - timedelta(minutes=3)),
        queue_joined_at=now - timedelta(seconds=200),
    )
    # answered 5 minutes ago after 100 s in the queue
    await record_calls(
        sessions,
        ("t.3", now - timedelta(minutes=9)),
        queue_joined_at=now - timedelta(seconds=400),
        agent_connected_at=now - timedelta(seconds=300),
    )
    await record_calls(sessions, ("me", now))  # the caller asking is not counted
    check = await store.queue_check("me")
    assert check.calls_today == 3 and check.budget == 3 and check.budget_spent
    assert check.busy_reason == "budget"
    assert check.waiting == 1
    assert 199 <= check.estimated_wait_s <= 215  # the oldest waiter, longer than the mean hold
    assert not check.wait_too_long


async def test_a_queued_callers_figures_read_only_the_waiting_callers_however_busy_the_day(
    store: PostgresStore, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The queue check (every queued call) and the waiting room's position (every announcement)
    with a peak's 2 hours of answered calls in ``calls``: they read the few callers waiting,
    not every call that joined in the window (~20,000 rows per call before ix_calls_waiting);
    the 15 minutes' answers are read once per process per few seconds, not per call."""
    now = datetime.now(UTC)
    async with sessions() as session:
        # Answered after 40 s in the queue, one every 0.36 s for 2 hours (10,000 an hour).
        await session.execute(
            text(
                "INSERT INTO calls (uniqueid, linkedid, started_at, queue, queue_joined_at,"
                " agent_connected_at, ended_at)"
                " SELECT 'day.' || n, 'day.' || n, t - interval '20 seconds', 'helpline', t,"
                "        t + interval '40 seconds', t + interval '5 minutes'"
                " FROM generate_series(1, 20000) AS n, LATERAL (SELECT CAST(:now AS timestamptz)"
                "      - interval '60 seconds' - n * interval '0.36 seconds') AS s(t)"
            ),
            {"now": now},
        )
        # Three callers waiting, for 50, 49 and 48 s.
        await session.execute(
            text(
                "INSERT INTO calls (uniqueid, linkedid, started_at, queue, queue_joined_at)"
                " SELECT 'wait.' || n, 'wait.' || n, t - interval '20 seconds', 'helpline', t"
                " FROM generate_series(0, 2) AS n, LATERAL (SELECT CAST(:now AS timestamptz)"
                "      - (50 - n) * interval '1 second') AS s(t)"
            ),
            {"now": now},
        )
        await session.execute(text("ANALYZE calls"))
        await session.commit()
    await store.recent_answers()  # the process's read of the window, kept a few seconds

    with statements_sent(sessions.kw["bind"]) as statements:
        check = await store.queue_check("wait.2")
        figures = await store.wait_figures("wait.2", "helpline", None)
    assert check.waiting == 3
    assert 50 <= check.estimated_wait_s <= 60  # the oldest waiter (the mean hold is 40 s)
    # Connected in the last 15 minutes: those that joined 15 min 40 s ago or later (~2,444).
    assert figures.position == 3 and 2440 <= figures.connected_recently <= 2448
    assert statements, "no statement captured"
    async with sessions() as session:
        for statement, params in statements:
            plan = await plan_of(session, statement, params)
            assert rows_examined(plan, "calls") <= 10, (statement, plan)


async def test_the_recent_answers_are_read_once_for_many_callers_and_never_waited_for_again(
    db_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Callers queued at once share one read; once read, a stale figure is served at once while
    one task reads the next (here every figure is stale at once: the TTL is 0)."""
    store = PostgresStore(db_settings, sessions, recent_answers_ttl_s=0.0)
    try:
        with statements_sent(sessions.kw["bind"]) as sent:
            first = await asyncio.gather(*(store.recent_answers() for _ in range(20)))
        reads = [statement for statement, _ in sent if "GROUP BY calls.queue" in statement]
        assert len(reads) == 1 and {f.connected("helpline") for f in first} == {0}
        now = datetime.now(UTC)
        await record_calls(
            sessions,
            ("answered.1", now - timedelta(seconds=120)),
            queue_joined_at=now - timedelta(seconds=100),
            agent_connected_at=now - timedelta(seconds=60),
        )
        async with sessions() as session:
            await session.execute(
                update(Call).where(Call.uniqueid == "answered.1").values(queue="helpline")
            )
            await session.commit()
        assert (await store.recent_answers()).connected("helpline") == 0  # the stale figure
        for _ in range(100):
            fresh = await store.recent_answers()
            if fresh.connected("helpline") == 1:
                break
            await asyncio.sleep(0.02)
        assert fresh.connected("helpline") == 1 and fresh.mean_hold_s() == pytest.approx(40)
    finally:
        if store._recent_refresh is not None:  # the last read ends before the database goes
            await asyncio.wait([store._recent_refresh])


async def test_callback_requests_are_kept_in_order_once_per_call(store: PostgresStore) -> None:
    mine, other = CallerNumber("9876543210"), CallerNumber("9000000000")
    first = await store.add_callback(CallbackJob("c.1", mine, "hi", "budget", "a>b"))
    second = await store.add_callback(CallbackJob("c.2", other, "en", "wait", "a>c"))
    again = await store.add_callback(CallbackJob("c.1", mine, "hi", "budget", "a>b"))
    assert first < second and again == first
    async with store.sessions() as session:
        rows = (await session.execute(select(CallbackRequest).order_by(CallbackRequest.id))).all()
    assert [(r[0].uniqueid, r[0].status) for r in rows] == [("c.1", "pending"), ("c.2", "pending")]


async def test_session_upsert_completes_the_row(store: PostgresStore) -> None:
    record = SessionRecord("s.1", None, "anonymous", "hi", datetime.now(UTC))
    await store.save_session(record)
    record.path = [{"node": "welcome", "type": "play", "at_ms": 0, "ms": 6000}]
    record.outcome = IvrOutcome.ABANDONED
    record.last_node = "welcome"
    record.prompts = ["welcome"]
    await store.save_session(record)
    async with store.sessions() as session:
        rows = (await session.execute(select(IvrSession))).scalars().all()
    assert len(rows) == 1 and rows[0].outcome is IvrOutcome.ABANDONED
    assert rows[0].last_node == "welcome"
    assert rows[0].path[0]["node"] == "welcome" and rows[0].prompts == ["welcome"]


class HostileAsterisk(FakeAsterisk):
    """Sends ``caller_id`` as the raw bytes of ``agi_callerid``, whatever they are."""

    caller_id: bytes = b""

    def handshake(self) -> bytes:
        return super().handshake().replace(b"agi_callerid: HOSTILE\n", self.caller_id)


async def run_call(
    store: PostgresStore,
    steps: list[object],
    hangup_at: int | None = None,
    caller_id: bytes | None = None,
) -> None:
    caller = Caller(list(steps))  # type: ignore[arg-type]
    env = {"agi_uniqueid": "pg.1"}
    peer = FakeAsterisk([caller] * 300, env=env, hangup_at=hangup_at)
    if caller_id is not None:
        peer = HostileAsterisk([caller] * 300, env=env | {"agi_callerid": "HOSTILE"})
        peer.caller_id = b"agi_callerid: " + caller_id + b"\n"
    result = await run_fake_call(IVRScript(load_menus(), store, store.settings), peer)
    assert result.error is None and not peer.unexpected


async def test_a_whole_status_call_and_a_hang_up_are_stored(
    store: PostgresStore, sessions: async_sessionmaker[AsyncSession]
) -> None:
    number = await add_complaint(sessions, 100000011, "9876543210", "assigned")
    await run_call(store, [Key("1"), Key("2"), Key("2"), Type(number), Key("0")])
    async with sessions() as session:
        row = await session.scalar(select(IvrSession).where(IvrSession.uniqueid == "pg.1"))
    assert row is not None and row.outcome == "queued"
    assert row.detail["complaint"] == number
    assert row.prompts[row.prompts.index("enter_complaint_number") + 1] == "complaint_number_is"
    assert "status_assigned" in row.prompts
    # The same call id hung up during the main menu: the row now shows where it was left.
    await run_call(store, [Key("1")], hangup_at=12)
    async with sessions() as session:
        row = await session.scalar(select(IvrSession).where(IvrSession.uniqueid == "pg.1"))
    assert row is not None and row.outcome == "abandoned" and row.last_node == "main_menu"
    assert row.ended_at is not None


async def test_any_caller_id_keeps_the_ivr_session(
    store: PostgresStore, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """10 KB of NUL, CR, invalid UTF-8: the IVR still stores its session (a caller ID longer
    than the column used to lose the row) and treats the caller as withheld."""
    await run_call(store, [Key("1"), Key("1")], caller_id=HOSTILE_CALLER_ID)
    async with sessions() as session:
        row = await session.scalar(select(IvrSession).where(IvrSession.uniqueid == "pg.1"))
    assert row is not None and row.outcome == "queued" and row.caller_number is None
    raw = row.caller_number_raw
    assert raw is not None and len(raw) == RAW_CALLER_ID_LENGTH and raw.endswith(TRUNCATED_MARK)
    assert raw.startswith("+91\\x00987\\r65\ufffd\ufffd43210९८७\ufffd9\\x01")


async def test_budget_spent_call_stores_its_callback(
    store: PostgresStore, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await record_calls(sessions, *((f"b.{i}", datetime.now(UTC)) for i in range(3)))
    await run_call(store, [Key("1"), Key("1"), Key("1")])
    async with sessions() as session:
        job = await session.scalar(select(CallbackRequest))
        row = await session.scalar(select(IvrSession))
    assert job is not None and job.uniqueid == "pg.1" and job.reason == "budget"
    assert row is not None and row.outcome == "callback"
    assert row.detail["callback_id"] == job.id


async def test_sessions_left_open_by_a_dead_process_are_closed_as_failed(
    store: PostgresStore,
) -> None:
    """Issue 15: an IVR session whose FastAGI process died stays open for ever, unless the
    reconciliation closes it: once its call has ended (past the grace), or past the server's
    call deadline; never a live one, never one already closed."""
    now = datetime.now(UTC)
    path = [{"node": "welcome", "type": "play"}, {"node": "main_menu", "type": "menu"}]

    def opened(uniqueid: str, started: datetime) -> SessionRecord:
        record = SessionRecord(uniqueid, None, "anonymous", "hi", started)
        record.path = list(path)
        return record

    ended_long_ago = opened("dead.1", now - timedelta(minutes=5))
    deadline = timedelta(seconds=store.settings.agi_call_timeout)
    no_call_too_old = opened("dead.2", now - deadline - timedelta(minutes=1))
    ended_just_now = opened("live.1", now - timedelta(minutes=2))
    still_on_the_line = opened("live.2", now - timedelta(minutes=3))
    finished = opened("done.1", now - timedelta(minutes=5))
    for record in (ended_long_ago, no_call_too_old, ended_just_now, still_on_the_line, finished):
        await store.save_session(record)
    finished.outcome, finished.last_node = IvrOutcome.QUEUED, "queue"
    await store.save_session(finished)
    async with store.sessions() as session:
        session.add_all(
            [
                Call(
                    uniqueid="dead.1",
                    started_at=now - timedelta(minutes=5),
                    ended_at=now - timedelta(minutes=4),
                ),
                Call(
                    uniqueid="live.1",
                    started_at=now - timedelta(minutes=2),
                    ended_at=now - timedelta(seconds=5),
                ),
                Call(uniqueid="live.2", started_at=now - timedelta(minutes=3)),
                Call(
                    uniqueid="done.1",
                    started_at=now - timedelta(minutes=5),
                    ended_at=now - timedelta(minutes=4),
                ),
            ]
        )
        await session.commit()

    assert sorted(await store.close_orphaned_sessions(now)) == ["dead.1", "dead.2"]
    assert await store.close_orphaned_sessions(now) == []  # idempotent
    async with store.sessions() as session:
        rows = {r.uniqueid: r for r in (await session.execute(select(IvrSession))).scalars()}
    dead = rows["dead.1"]
    assert dead.outcome is IvrOutcome.FAILED and dead.last_node == "main_menu"
    assert dead.ended_at == now - timedelta(minutes=4) and dead.duration_ms == 60_000
    assert dead.detail["closed_by"] == "reconciliation"
    assert rows["dead.2"].outcome is IvrOutcome.FAILED and rows["dead.2"].ended_at == now
    assert rows["live.1"].outcome is None and rows["live.2"].outcome is None
    assert rows["done.1"].outcome is IvrOutcome.QUEUED and "closed_by" not in rows["done.1"].detail

    ended_just_now.outcome, ended_just_now.last_node = IvrOutcome.ABANDONED, "main_menu"
    await store.save_session(ended_just_now)  # the script's own save, late, still wins
    later = now + timedelta(minutes=1)
    assert await store.close_orphaned_sessions(later) == []


async def test_sessions_of_concurrent_calls_are_written_together_and_none_is_lost(
    store: PostgresStore, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """300 calls storing their sessions at once (each twice: on arrival, then complete) on a
    pool of two connections: every row is there once, complete."""
    now = datetime.now(UTC).replace(microsecond=0)

    def record(n: int, done: bool) -> SessionRecord:
        r = SessionRecord(f"many.{n}", CallerNumber("9876543210"), "9876543210", "hi", now)
        if done:
            r.outcome, r.ended_at, r.last_node = IvrOutcome.QUEUED, now, "new_complaint"
        return r

    await asyncio.gather(*(store.save_session(record(n, False)) for n in range(300)))
    await asyncio.gather(*(store.save_session(record(n, True)) for n in range(300)))
    async with sessions() as session:
        rows = (await session.execute(select(IvrSession))).scalars().all()
    assert len(rows) == 300
    assert all(r.outcome == IvrOutcome.QUEUED and r.ended_at == now for r in rows)


async def test_the_ivr_pool_fails_at_most_one_read_when_postgresql_drops_its_connections(
    db_settings: Settings,
) -> None:
    """The IVR's pool has no pre-ping (agi_scripts.service.create_ivr_engine): when PostgreSQL
    drops every connection (a restart), the next read fails (that caller goes to an agent
    without the budget check) and makes the pool replace every older connection: never a
    second failed read."""
    engine = create_ivr_engine(db_settings)
    try:
        await warm_pool(engine, 5)
        ivr = PostgresStore(db_settings, session_factory(engine))
        await ivr.queue_check("1733000000.1")
        async with raw_connection(db_settings) as admin:
            # Every connection of this test's database but the admin's: a restart's effect.
            dropped = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        assert dropped >= 1
        outcomes = []
        for _ in range(10):
            try:
                await ivr.queue_check("1733000000.1")
            except Exception as error:
                assert database_unavailable(error), error
                outcomes.append("failed")
            else:
                outcomes.append("ok")
        assert outcomes[1:] == ["ok"] * 9, outcomes
    finally:
        await engine.dispose()
