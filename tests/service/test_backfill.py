"""The CEL back-fill (issue 15): Asterisk's own channel events, as ``cel_pgsql`` wrote them for
two real calls through the real Asterisk (one answered by agent0001, one abandoned in the
queue), become the AMI events the recorder applies, and then complete call records."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.models import AsteriskCel, Call
from queue_manager.backfill import agent_seat, backfill, catch_up_live, events_from_cel
from queue_manager.recorder import CallRecorder

ANSWERED, ABANDONED = "c-1796535152.0", "c-1796535162.4"
COLUMNS = [
    *("eventtime", "eventtype", "channame", "uniqueid", "linkedid", "context", "exten"),
    *("appname", "appdata", "peer", "extra", "cid_num"),
]

#: CEL rows as cel_pgsql wrote them (one per line, fields split by "|"), uniqueids shortened.
CEL_ROWS = (Path(__file__).parent / "cel_two_calls.psv").read_text()


def cel_rows() -> list[AsteriskCel]:
    rows = []
    for line in CEL_ROWS.splitlines():
        values = dict(zip(COLUMNS, line.split("|"), strict=True))
        at = datetime.fromisoformat(values.pop("eventtime"))
        rows.append(AsteriskCel(eventtime=at, **{k: v or None for k, v in values.items()}))
    return rows


def of_call(rows: list[AsteriskCel], linkedid: str) -> list[AsteriskCel]:
    return [row for row in rows if row.linkedid == linkedid]


def names(rows: list[AsteriskCel]) -> list[str]:
    return [event.name for event in events_from_cel(rows)]


def test_an_answered_call_becomes_the_events_app_queue_would_have_sent() -> None:
    events = events_from_cel(of_call(cel_rows(), ANSWERED))
    assert [e.name for e in events] == [
        "Newchannel",
        "Newstate",
        "QueueCallerJoin",
        "AgentConnect",
        "AgentComplete",
        "Hangup",
    ]
    new, _up, join, connect, complete, hangup = events
    assert new.get("CallerIDNum") == "9876543210" and new.get("Context") == "from-trunk"
    assert join.get("Queue") == "helpline"
    assert connect.get("Interface") == "Local/agent0001@seat-phones"
    assert complete.get("TalkTime") == "2" and hangup.get("Cause") == "16"
    assert float(hangup.get("Timestamp") or 0) == pytest.approx(1796535162.323939)


def test_the_agent_is_found_whichever_leg_entered_the_bridge_first() -> None:
    """The caller's own BRIDGE_ENTER names no peer when it entered before the agent's leg."""
    rows = of_call(cel_rows(), ANSWERED)
    caller_enter = next(r for r in rows if r.eventtype == "BRIDGE_ENTER" and r.uniqueid == ANSWERED)
    caller_enter.peer = None
    rows.remove(caller_enter)
    rows.insert(rows.index(next(r for r in rows if r.eventtype == "BRIDGE_ENTER")), caller_enter)
    assert names(rows).count("AgentConnect") == 1 and "AgentComplete" in names(rows)


def test_an_abandoned_call_joins_and_hangs_up_without_an_agent() -> None:
    assert names(of_call(cel_rows(), ABANDONED)) == [
        "Newchannel",
        "Newstate",
        "QueueCallerJoin",
        "Hangup",
    ]


@pytest.mark.parametrize(
    ("peer", "seat"),
    [
        ("Local/agent0001@seat-phones-0000000a;1", "agent0001"),
        ("PJSIP/agent0042-000001f3", "agent0042"),
        ("PJSIP/agent0042-web-000001f3", "agent0042"),
        ("Local/agent0001@seat-phones-0000000a;2", None),
        ("PJSIP/trunk-00000000", None),
        ("", None),
        (None, None),
    ],
)
def test_agent_seat_of_a_bridge_peer(peer: str | None, seat: str | None) -> None:
    assert agent_seat(peer) == seat


async def test_backfill_completes_missed_calls_once(
    db_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The answered call was seen to start (its row is open); the abandoned one not at all."""
    started = datetime(2026, 12, 6, 5, 32, 32, 698467, tzinfo=UTC)
    async with sessions() as session:
        session.add_all(cel_rows())
        session.add(Call(uniqueid=ANSWERED, linkedid=ANSWERED, started_at=started))
        await session.commit()
    recorder = CallRecorder(db_settings)
    since = started - timedelta(minutes=1)
    async with sessions() as session:
        done = await backfill(session, recorder, since)
        await session.commit()
    assert (done.calls, done.events) == (2, 10)
    async with sessions() as session:
        calls = {c.uniqueid: c for c in (await session.execute(select(Call))).scalars()}
        again = await backfill(session, recorder, since)
    assert again.calls == 0  # complete now: never selected again
    answered, abandoned = calls[ANSWERED], calls[ABANDONED]
    assert answered.disposition == "answered" and answered.agent_seat == "agent0001"
    assert answered.talk_seconds == 2 and answered.hangup_cause == 16
    assert answered.ended_at == datetime(2026, 12, 6, 5, 32, 42, 323939, tzinfo=UTC)
    assert abandoned.disposition == "abandoned" and abandoned.caller_number == "9876543211"
    assert abandoned.queue_joined_at is not None and abandoned.agent_connected_at is None
    assert abandoned.ended_at == datetime(2026, 12, 6, 5, 32, 50, 227716, tzinfo=UTC)


async def test_a_call_live_across_an_ami_gap_gets_its_queue_join_and_agent_from_cel(
    db_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The queue join and the agent's answer fell in a gap of our AMI link; the live Hangup
    closed the row as ``ivr_only`` before the reconnect's catch-up from CEL landed. After it:
    answered, by agent0001, its times unchanged; a second catch-up changes nothing."""
    started = datetime(2026, 12, 6, 5, 32, 32, 698467, tzinfo=UTC)
    ended = datetime(2026, 12, 6, 5, 32, 42, 323939, tzinfo=UTC)
    async with sessions() as session:
        session.add_all(cel_rows())
        session.add(
            Call(
                uniqueid=ANSWERED,
                linkedid=ANSWERED,
                started_at=started,
                ended_at=ended,
                ivr_done=True,
                disposition="ivr_only",
            )
        )
        await session.commit()
    recorder = CallRecorder(db_settings)
    for _ in range(2):
        async with sessions() as session:
            applied = await catch_up_live(session, recorder, [ANSWERED, "not-a-call"])
            await session.commit()
        assert applied == 6  # the answered call's events only
        async with sessions() as session:
            call = (await session.execute(select(Call))).scalar_one()
        assert call.disposition == "answered" and call.agent_seat == "agent0001"
        assert call.queue_joined_at is not None and call.agent_connected_at is not None
        assert call.started_at == started and call.ended_at == ended


async def test_helpline_backfill_reaches_back_as_far_as_asked(
    db_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """``helpline backfill --since T`` in its own process, as an operator runs it after an
    outage longer than the queue manager's own look-back."""
    async with sessions() as session:
        session.add_all(cel_rows())
        await session.commit()

    def run(since: datetime) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "helpline", "backfill", "--since", since.isoformat()],
            env=dict(
                os.environ,
                HELPLINE_STATE_DIR=str(db_settings.state_dir),
                HELPLINE_DATABASE_URL=db_settings.database_url,
            ),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    last_end = datetime(2026, 12, 6, 5, 32, 50, tzinfo=UTC)
    assert run(last_end + timedelta(seconds=1)).startswith("back-filled 0 call(s)")
    assert run(last_end - timedelta(hours=1)).startswith("back-filled 2 call(s)")
    assert run(last_end - timedelta(hours=1)).startswith("back-filled 0 call(s)")
