"""The complaint reads cost a fixed number of SQL statements, however many rows they return.

Issue 14: a list that ran one query per row (an author, a call, a duplicate's number...) is
what 500 agents find first. Counted with SQLAlchemy's ``before_cursor_execute`` on the engine
the services use, so a per-row query added later anywhere under them fails here. The queue
manager's recorder is counted too: a channel that is no call of ours writes nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from api.services import auth, complaints, transitions
from asterisk_config.render import channel_variable_fields
from core.config import Settings
from core.db.models import (
    Call,
    CallbackRequest,
    Complaint,
    ComplaintHistory,
    User,
    complaint_sequence,
)
from core.db.session import create_engine, session_factory
from core.domain.complaints import ComplaintStatus, HistoryAction, complaint_number
from core.domain.phone import CallerNumber
from core.protocols.ami import AMIMessage
from core.reference import Reference
from queue_manager.recorder import CallRecorder
from tests.statements import statements_sent

MANY = 50
CALLER_MANY = "9876500050"
CALLER_ONE = "9876500001"


@pytest.fixture
async def engine(db_settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_settings, pool_size=1)
    yield engine
    await engine.dispose()


async def _file(
    session: AsyncSession,
    reference: Reference,
    author: User,
    caller: str,
    index: int,
    *,
    history: int,
    duplicate_of: int | None = None,
) -> Complaint:
    """A complaint with everything a row can name: an author, a call, an officer, a possible
    duplicate, ``history`` history rows by different users."""
    now = datetime.now(UTC) - timedelta(minutes=index)
    call = Call(uniqueid=f"1733000000.{caller[-3:]}{index}", caller_number=caller, started_at=now)
    session.add(call)
    await session.flush()
    sequence = (await session.execute(select(complaint_sequence.next_value()))).scalar_one()
    officer = sorted(reference.officers)[index % len(reference.officers)]
    complaint = Complaint(
        number=complaint_number(sequence),
        caller_number=caller,
        description=f"Complaint {index} of {caller}",
        call_id=call.id,
        created_by=author.id,
        created_at=now,
        due_at=now + timedelta(days=7),
        department="police",
        category="police.harassment",
        district="lucknow",
        status=ComplaintStatus.ASSIGNED,
        assigned_officer=officer,
        duplicate_of=duplicate_of,
    )
    session.add(complaint)
    await session.flush()
    for step in range(history):
        session.add(
            ComplaintHistory(
                complaint_id=complaint.id,
                at=now + timedelta(seconds=step),
                actor_user_id=author.id if step % 2 else None,
                action=HistoryAction.REGISTER if step == 0 else HistoryAction.ASSIGN,
                to_status=ComplaintStatus.ASSIGNED,
                to_officer=officer,
            )
        )
    return complaint


async def _statements(engine: AsyncEngine, work: Callable[[AsyncSession], Awaitable[Any]]) -> int:
    """How many statements ``work`` sends to PostgreSQL (in a fresh session)."""
    with statements_sent(engine) as sent:
        async with session_factory(engine)() as session:
            await work(session)
    return len(sent)


async def test_list_and_read_queries_do_not_grow_with_rows(
    engine: AsyncEngine, reference_data: Reference
) -> None:
    async with session_factory(engine)() as session:
        authors = [
            await auth.create_user(
                session, username=name, full_name=name, role=role, password="pw-" + name
            )
            for name, role in (("asha", "agent"), ("bhanu", "agent"), ("chitra", "supervisor"))
        ]
        await session.flush()
        first = await _file(session, reference_data, authors[0], CALLER_MANY, 0, history=1)
        for index in range(1, MANY):
            await _file(
                session,
                reference_data,
                authors[index % len(authors)],
                CALLER_MANY,
                index,
                history=1 + index % 3,
                duplicate_of=first.id,
            )
        lone = await _file(session, reference_data, authors[0], CALLER_ONE, 0, history=1)
        busy = await _file(session, reference_data, authors[1], "9876500002", 0, history=MANY)
        await session.commit()
    viewer = authors[2]

    async def listed(caller: str, expected: int) -> int:
        async def work(session: AsyncSession) -> None:
            rows = await complaints.latest(
                session, reference_data, viewer=viewer, caller=CallerNumber(caller), limit=MANY
            )
            assert len(rows) == expected
            assert all(row.created_by != "?" and row.call_uniqueid for row in rows)

        return await _statements(engine, work)

    assert await listed(CALLER_ONE, 1) == await listed(CALLER_MANY, MANY)

    async def read(number: str, history: int) -> int:
        async def work(session: AsyncSession) -> None:
            detail = await transitions.detail(session, reference_data, number, viewer=viewer)
            assert len(detail.history) == history

        return await _statements(engine, work)

    one, many = await read(lone.number, 1), await read(busy.number, MANY)
    assert one == many
    # The complaint with its names and its history: one statement (before the pool's own).
    assert await read(first.number, 1) == one


async def test_a_seats_leg_writes_nothing_and_the_citizens_call_is_still_recorded(
    engine: AsyncEngine, db_settings: Settings
) -> None:
    """The queue manager's statements per call (issue 14's capacity runs): the seat's leg of
    an answered call (its Linkedid is the citizen's) has no ``calls`` row, so its answer and
    hang-up send nothing; the citizen's own events still write their row."""
    recorder = CallRecorder(db_settings)
    citizen, seat_leg = "1733000100.1", "1733000100.2"

    def event_of(name: str, uniqueid: str, **fields: str) -> AMIMessage:
        return AMIMessage.from_fields(
            [("Event", name), ("Uniqueid", uniqueid), ("Linkedid", citizen), *fields.items()]
        )

    async def apply(session: AsyncSession, *events: AMIMessage) -> None:
        for one in events:
            await recorder.apply(session, one)
        await session.commit()

    trunk = {"Channel": "PJSIP/trunk-1", "Context": "from-trunk", "CallerIDNum": CALLER_ONE}
    seat = {"Channel": "PJSIP/agent0001-2", "Context": "seat-phones"}
    assert await _statements(engine, lambda s: apply(s, event_of("Newchannel", citizen, **trunk)))
    leg = [
        event_of("Newchannel", seat_leg, **seat),
        event_of("Newstate", seat_leg, ChannelStateDesc="Up"),
        event_of("Hangup", seat_leg, Cause="16", **seat),
    ]
    assert await _statements(engine, lambda s: apply(s, *leg)) == 0
    answered = event_of("Newstate", citizen, ChannelStateDesc="Up")
    hangup = event_of("Hangup", citizen, Cause="16", **trunk)
    assert await _statements(engine, lambda s: apply(s, answered, hangup)) > 0
    async with session_factory(engine)() as session:
        call = (await session.execute(select(Call).where(Call.uniqueid == citizen))).scalar_one()
        assert call.answered_at is not None and call.disposition == "unanswered"
        assert await session.scalar(select(Call.id).where(Call.uniqueid == seat_leg)) is None


async def test_a_calls_ivr_variables_in_one_batch_are_one_update(
    engine: AsyncEngine, db_settings: Settings
) -> None:
    """The dialplan and the IVR send 4-6 ``VarSet`` events per call; in one batch of the queue
    manager they are one UPDATE, written before the next event of that call, with the last
    value of each variable winning as if each had been applied alone."""
    recorder = CallRecorder(db_settings)
    citizen, other = "1733000200.1", "1733000200.2"

    def event_of(name: str, uniqueid: str, **fields: str) -> AMIMessage:
        return AMIMessage.from_fields(
            [("Event", name), ("Uniqueid", uniqueid), ("Linkedid", uniqueid), *fields.items()]
        )

    def var(uniqueid: str, name: str, value: str) -> AMIMessage:
        return event_of("VarSet", uniqueid, Variable=name, Value=value)

    trunk = {"Context": "from-trunk", "CallerIDNum": CALLER_ONE}
    batch = [
        event_of("Newchannel", citizen, Channel="PJSIP/trunk-1", **trunk),
        event_of("Newchannel", other, Channel="PJSIP/trunk-2", **trunk),
        var(citizen, "IVR_DONE", ""),
        var(citizen, "IVR_FALLBACK", ""),
        var(other, "IVR_LANG", "en"),
        var(citizen, "IVR_PATH", "welcome>main_menu>key:1"),
        var(citizen, "IVR_LANG", "hi"),
        var(citizen, "IVR_DONE", "1"),
        event_of("QueueCallerJoin", citizen, Queue="helpline"),
    ]

    async def apply(session: AsyncSession) -> None:
        await recorder.apply_batch(session, batch)
        await session.commit()

    # The two inserts (one executemany), the citizen's variables once, then its join, with
    # the other call's variable beside them; the join's queue event: 5 statements, where one
    # per VarSet made 10.
    assert await _statements(engine, apply) == 5
    async with session_factory(engine)() as session:
        rows = {
            row.uniqueid: row
            for row in (
                await session.execute(select(Call).where(Call.uniqueid.in_([citizen, other])))
            )
            .scalars()
            .all()
        }
    call = rows[citizen]
    assert call.ivr_done is True and call.ivr_fallback is False
    assert call.ivr_path == "welcome>main_menu>key:1" and call.ivr_lang == "hi"
    assert call.queue == "helpline" and call.queue_joined_at is not None
    assert rows[other].ivr_lang == "en"


def channel_event(name: str, uniqueid: str, variables: dict[str, str], **fields: str) -> AMIMessage:
    """An event about a citizen's channel as the real Asterisk sends it with our config: every
    channel variable appended, empty while unset."""
    head = [("Event", name), ("Uniqueid", uniqueid), ("Linkedid", uniqueid)]
    return AMIMessage.from_fields([*head, *fields.items(), *channel_variable_fields(variables)])


async def test_empty_channel_variables_write_nothing(
    engine: AsyncEngine, db_settings: Settings
) -> None:
    """As the real Asterisk sends a call's IVR state (manager.conf: ``channelvars``, and
    ``VarSet`` disabled): every event about the channel carries every variable, empty while
    unset. The empty ones are no news: the Newchannel is its insert alone and the ringing
    Newstate writes nothing; the queue join carries what the IVR set, in the join's UPDATE."""
    recorder = CallRecorder(db_settings)
    citizen = "1733000250.1"

    set_by_ivr = {"IVR_DONE": "1", "IVR_PATH": "welcome>main_menu>key:1", "IVR_LANG": "hi"}
    trunk = {"Channel": "PJSIP/trunk-1", "Context": "from-trunk", "CallerIDNum": CALLER_ONE}
    batch = [
        channel_event("Newchannel", citizen, {}, **trunk),
        channel_event("Newstate", citizen, {}, ChannelStateDesc="Ring"),
        channel_event("QueueCallerJoin", citizen, set_by_ivr, Queue="helpline"),
    ]

    async def apply(session: AsyncSession) -> None:
        await recorder.apply_batch(session, batch)
        await session.commit()

    # The insert, the join's UPDATE with the IVR's columns, the join's queue event.
    assert await _statements(engine, apply) == 3
    async with session_factory(engine)() as session:
        call = (await session.execute(select(Call).where(Call.uniqueid == citizen))).scalar_one()
    assert call.ivr_done is True and call.ivr_fallback is False
    assert call.ivr_path == "welcome>main_menu>key:1" and call.ivr_lang == "hi"
    assert call.queue == "helpline" and call.queue_joined_at is not None


async def test_repeated_channel_variables_make_no_new_row_version(
    engine: AsyncEngine, db_settings: Settings
) -> None:
    """Once set, the IVR's variables come again on every event about the channel; an event
    that brings nothing else (an agent rung) leaves the row as it is (no new version, no
    WAL), and one that brings a change writes it."""
    recorder = CallRecorder(db_settings)
    citizen = "1733000260.1"

    async def apply(*events: AMIMessage) -> str:
        """The row's version (``xmin``) after the events."""
        async with session_factory(engine)() as session:
            await recorder.apply_batch(session, list(events))
            await session.commit()
            query = text("SELECT xmin::text FROM calls WHERE uniqueid = :u")
            return str((await session.execute(query, {"u": citizen})).scalar_one())

    ivr = {"IVR_DONE": "1", "IVR_PATH": "welcome>main_menu>key:1", "IVR_LANG": "hi"}
    trunk = {"Channel": "PJSIP/trunk-1", "Context": "from-trunk", "CallerIDNum": CALLER_ONE}
    rung = {"Queue": "helpline", "Interface": "Local/agent0001@seat-phones"}
    joined = await apply(
        channel_event("Newchannel", citizen, {}, **trunk),
        channel_event("QueueCallerJoin", citizen, ivr, Queue="helpline"),
    )
    assert await apply(channel_event("AgentCalled", citizen, ivr, **rung)) == joined
    changed = await apply(channel_event("AgentCalled", citizen, {**ivr, "IVR_LANG": "en"}, **rung))
    assert changed != joined
    async with session_factory(engine)() as session:
        call = (await session.execute(select(Call).where(Call.uniqueid == citizen))).scalar_one()
    assert call.ivr_lang == "en" and call.ivr_done is True


async def test_a_hang_up_sets_the_disposition_in_its_own_update(
    engine: AsyncEngine, db_settings: Settings
) -> None:
    """A citizen's hang-up is three statements (the row made if its Newchannel was missed; its
    update, with the disposition computed in it by PostgreSQL; the recording's look-up), where
    reading the row back, looking up a callback request and the ORM's UPDATE made five or six; the
    disposition is what the row says: answered, owed a callback (not abandoned), abandoned."""
    recorder = CallRecorder(db_settings)
    answered, owed, abandoned = "1733000300.1", "1733000300.2", "1733000300.3"

    def event_of(name: str, uniqueid: str, **fields: str) -> AMIMessage:
        return AMIMessage.from_fields(
            [("Event", name), ("Uniqueid", uniqueid), ("Linkedid", uniqueid), *fields.items()]
        )

    trunk = {"Channel": "PJSIP/trunk-1", "Context": "from-trunk", "CallerIDNum": CALLER_ONE}
    async with session_factory(engine)() as session:
        for uniqueid in (answered, owed, abandoned):
            await recorder.apply(session, event_of("Newchannel", uniqueid, **trunk))
            await recorder.apply(session, event_of("QueueCallerJoin", uniqueid, Queue="helpline"))
            await recorder.apply(
                session, event_of("QueueCallerAbandon", uniqueid, Queue="helpline")
            )
        await recorder.apply(
            session, event_of("AgentConnect", answered, Interface="Local/agent0001@seat-phones")
        )
        session.add(CallbackRequest(uniqueid=owed, lang="hi", reason="wait", ivr_path="a>b"))
        await session.commit()

    async def hang_up(uniqueid: str) -> Callable[[AsyncSession], Awaitable[None]]:
        async def work(session: AsyncSession) -> None:
            await recorder.apply(session, event_of("Hangup", uniqueid, Cause="16", **trunk))
            await session.commit()

        return work

    assert await _statements(engine, await hang_up(answered)) == 3
    for uniqueid in (owed, abandoned):
        await _statements(engine, await hang_up(uniqueid))
    async with session_factory(engine)() as session:
        rows = {
            row.uniqueid: row
            for row in (
                await session.execute(select(Call).where(Call.uniqueid.like("1733000300.%")))
            )
            .scalars()
            .all()
        }
    assert rows[answered].disposition == "answered"
    assert rows[owed].disposition == "callback" and rows[owed].abandoned_at is None
    assert rows[abandoned].disposition == "abandoned" and rows[abandoned].abandoned_at is not None
    assert all(row.ended_at is not None for row in rows.values())


async def test_a_batch_sends_the_same_statements_for_one_call_or_many_and_stores_the_same(
    engine: AsyncEngine, db_settings: Settings
) -> None:
    """A batch of the queue manager holds its calls' writes and sends each statement's rows
    together (one executemany per statement and turn), so its statements do not grow with the
    calls in it (at the peak a batch holds ~20 calls' events). What it stores is what the same
    events store applied one at a time."""
    recorder = CallRecorder(db_settings)

    def life(uniqueid: str, seat: str) -> list[AMIMessage]:
        """A whole answered call: in, IVR, queue, agent, hang-up."""

        def event_of(name: str, **fields: str) -> AMIMessage:
            return AMIMessage.from_fields(
                [
                    ("Event", name),
                    ("Uniqueid", uniqueid),
                    ("Linkedid", uniqueid),
                    ("Timestamp", f"1733000{len(fields)}00.5"),
                    *fields.items(),
                ]
            )

        trunk = {"Channel": "PJSIP/trunk-1", "Context": "from-trunk", "CallerIDNum": CALLER_ONE}
        return [
            event_of("Newchannel", **trunk),
            event_of("Newstate", ChannelStateDesc="Up"),
            event_of("VarSet", Variable="IVR_LANG", Value="hi"),
            event_of("VarSet", Variable="IVR_DONE", Value="1"),
            event_of("QueueCallerJoin", Queue="helpline"),
            event_of("AgentConnect", Queue="helpline", HoldTime="7", Interface=seat),
            event_of("AgentComplete", Queue="helpline", TalkTime="95", Interface=seat),
            event_of("Hangup", Cause="16", **trunk),
        ]

    def interleaved(calls: list[list[AMIMessage]]) -> list[AMIMessage]:
        return [event for step in zip(*calls, strict=True) for event in step]

    async def batch(prefix: str, count: int) -> int:
        calls = [life(f"{prefix}.{n}", f"Local/agent{n:04d}@seat-phones") for n in range(count)]

        async def work(session: AsyncSession) -> None:
            await recorder.apply_batch(session, interleaved(calls))
            await session.commit()

        return await _statements(engine, work)

    one, many = await batch("1733000400", 1), await batch("1733000500", MANY)
    # Each turn's statement (the row; the answer; the variables; the join; the agent; the
    # completion; the hang-up's row, made if its Newchannel was missed, and its update), the
    # recordings' look-up, the queue events: 10 for one call or fifty (event by event, nine
    # statements per call).
    assert one == many == 10, (one, many)
    async with session_factory(engine)() as session:
        for event in life("1733000600.0", "Local/agent0000@seat-phones"):
            await recorder.apply(session, event)
        await session.commit()

    columns = [c for c in Call.__table__.c if c.name not in ("id", "uniqueid", "linkedid")]
    columns = [c for c in columns if c.name not in ("created_at", "updated_at")]
    async with session_factory(engine)() as session:
        stored = {
            row[0]: tuple(row[1:])
            for row in await session.execute(
                select(Call.uniqueid, *columns).where(
                    Call.uniqueid.in_(["1733000400.0", "1733000500.0", "1733000600.0"])
                )
            )
        }
    assert len(stored) == 3
    alone = stored.pop("1733000600.0")
    assert all(row == alone for row in stored.values()), (stored, alone)
    assert alone[columns.index(Call.__table__.c.disposition)] == "answered"
    async with session_factory(engine)() as session:
        seats = dict(
            (
                await session.execute(
                    select(Call.uniqueid, Call.agent_seat).where(
                        Call.uniqueid.like("1733000500.%"), Call.disposition == "answered"
                    )
                )
            ).all()
        )
    assert seats == {f"1733000500.{n}": f"agent{n:04d}" for n in range(MANY)}
