"""Call recordings on a real PostgreSQL: the queue manager's row from AMI events (once, and
none for a call no agent answered), who may list and play a complaint's recording (each play
audited), and the retention pass (idempotent; open complaints keep theirs; 410 afterwards)."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.models import AgentSession, AuditLog, Call, Complaint, Recording, User
from core.domain.complaints import ComplaintStatus
from core.domain.queues import interface_of_seat
from core.domain.recordings import recording_path
from core.protocols.ami import AMIMessage
from core.reference import Reference
from helpline.seed import seed_demo_users, seed_seats
from lifecycle.recordings import RETENTION_REASON, prune
from queue_manager.recorder import CallRecorder
from tests.api_app import api_client

Users = dict[str, list[dict[str, str]]]

UNIQUEID = "helpline-svc-1733443200.7"
T0 = 1733443200.0
SECONDS = 3


def wav(seconds: float) -> bytes:
    """A canonical 8 kHz 16-bit mono wav of a ramp, as MixMonitor writes one."""
    samples = b"".join(
        struct.pack("<h", (i * 37) % 20000 - 10000) for i in range(int(8000 * seconds))
    )
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + len(samples),
        b"WAVE",
        b"fmt ",
        16,
        1,
        1,
        8000,
        16000,
        2,
        16,
        b"data",
        len(samples),
    )
    return header + samples


def event(name: str, at: float, **fields: str) -> AMIMessage:
    return AMIMessage([("Event", name), ("Timestamp", f"{at:.3f}"), *fields.items()])


@pytest.fixture
def settings(db_settings: Settings, tmp_path: Path) -> Settings:
    """The test database, with the recordings directory under a temporary "chroot"."""
    return db_settings.model_copy(update={"asterisk_root": tmp_path / "root"})


@pytest.fixture
async def users(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], reference_data: Reference
) -> Users:
    async with sessions() as session:
        await seed_seats(session, 2)
        seeded = await seed_demo_users(session, settings, reference_data)
        await session.commit()
    return seeded


@pytest.fixture
async def client(settings: Settings, users: Users) -> AsyncIterator[httpx.AsyncClient]:
    async for http in api_client(settings):
        yield http


async def headers(client: httpx.AsyncClient, user: dict[str, str]) -> dict[str, str]:
    response = await client.post(
        "/auth/token", data={"username": user["username"], "password": user["password"]}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def officer(users: Users, post: str) -> dict[str, str]:
    return next(u for u in users["officer"] if u.get("officer") == post)


async def record_call(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    agent_username: str,
    *,
    answered: bool = True,
    uniqueid: str = UNIQUEID,
) -> None:
    """The AMI events of a citizen's call as Asterisk sends them, MixMonitor's file written
    between its start and stop (the dialplan's hang-up handler stops it before the Hangup)."""
    recorder = CallRecorder(settings)
    path = recording_path(uniqueid)
    assert path is not None
    file = settings.recordings_dir / path
    async with sessions() as session:
        agent_id = (
            await session.execute(select(User.id).where(User.username == agent_username))
        ).scalar_one()
        session.add(AgentSession(user_id=agent_id, seat="agent0001"))
        await session.commit()
    steps = [
        event(
            "Newchannel",
            T0,
            Uniqueid=uniqueid,
            Linkedid=uniqueid,
            Context="from-trunk",
            Exten="1076",
            CallerIDNum="9876543210",
            Channel="PJSIP/trunk-1",
        ),
        event("QueueCallerJoin", T0 + 5, Uniqueid=uniqueid, Queue="helpline"),
        event("MixMonitorStart", T0 + 5, Uniqueid=uniqueid, Context="route-queue"),
    ]
    if answered:
        steps.append(
            event(
                "AgentConnect",
                T0 + 8,
                Uniqueid=uniqueid,
                Queue="helpline",
                Interface=interface_of_seat("agent0001"),
                HoldTime="3",
            )
        )
    for step in steps:
        async with sessions() as session:
            await recorder.apply(session, step)
            await session.commit()
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_bytes(wav(SECONDS) if answered else wav(0))
    ending = [
        event("MixMonitorStop", T0 + 20, Uniqueid=uniqueid),
        event("Hangup", T0 + 20, Uniqueid=uniqueid, Context="recording-stop", Cause="16"),
        # A replayed stop changes nothing.
        event("MixMonitorStop", T0 + 30, Uniqueid=uniqueid),
    ]
    for step in ending:
        async with sessions() as session:
            await recorder.apply(session, step)
            await session.commit()


async def file_on_call(
    client: httpx.AsyncClient,
    supervisor: dict[str, str],
    sessions: async_sessionmaker[AsyncSession],
) -> str:
    """A police complaint at Hazratganj thana, tied to the recorded call."""
    response = await client.post(
        "/complaints",
        json={
            "description": "FIR not registered",
            "department": "police",
            "category": "police.fir_not_registered",
            "district": "lucknow",
            "thana": "lucknow_hazratganj",
            "caller_number": "9876543210",
        },
        headers=supervisor,
    )
    assert response.status_code == 201, response.text
    number: str = response.json()["number"]
    async with sessions() as session:
        call_id = (
            await session.execute(select(Call.id).where(Call.uniqueid == UNIQUEID))
        ).scalar_one()
        await session.execute(
            update(Complaint).where(Complaint.number == number).values(call_id=call_id)
        )
        await session.commit()
    return number


async def the_recording(sessions: async_sessionmaker[AsyncSession]) -> Recording:
    async with sessions() as session:
        return (await session.execute(select(Recording))).scalar_one()


async def test_the_queue_manager_records_an_answered_call_once(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], users: Users
) -> None:
    await record_call(settings, sessions, users["agent"][0]["username"])
    row = await the_recording(sessions)
    assert row.path == recording_path(UNIQUEID)
    assert row.started_at == datetime.fromtimestamp(T0 + 5, UTC)
    assert row.ended_at == datetime.fromtimestamp(T0 + 20, UTC)  # the first stop, not the replay
    assert row.bytes == 44 + SECONDS * 16000 and row.duration_seconds == SECONDS
    assert row.retain_until == row.ended_at + timedelta(days=settings.recording_retention_days)
    assert row.deleted_at is None


async def test_a_call_no_agent_answered_keeps_no_recording(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], users: Users
) -> None:
    await record_call(settings, sessions, users["agent"][0]["username"], answered=False)
    async with sessions() as session:
        assert (await session.execute(select(func.count()).select_from(Recording))).scalar() == 0
    path = recording_path(UNIQUEID)
    assert path is not None and not (settings.recordings_dir / path).exists()


async def test_who_may_list_and_play_and_every_play_is_audited(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    users: Users,
    client: httpx.AsyncClient,
) -> None:
    answering, other_agent = users["agent"][0], users["agent"][1]
    await record_call(settings, sessions, answering["username"])
    supervisor = await headers(client, users["supervisor"][0])
    number = await file_on_call(client, supervisor, sessions)
    recording = await the_recording(sessions)
    url = f"/complaints/{number}/recordings"
    audio = f"{url}/{recording.id}/audio"
    expected = wav(SECONDS)

    allowed = {
        "supervisor": users["supervisor"][0],
        "cm_office": users["cm_office"][0],
        "admin": users["admin"][0],
        "officer in scope": officer(users, "police.thana.lucknow_hazratganj"),
        "agent who answered": answering,
    }
    for who, user in allowed.items():
        auth = await headers(client, user)
        listed = await client.get(url, headers=auth)
        assert listed.status_code == 200, (who, listed.text)
        [item] = listed.json()
        assert item["playable"] and item["call"] == UNIQUEID, who
        played = await client.get(audio, headers=auth)
        assert played.status_code == 200, (who, played.text)
        assert played.content == expected and played.headers["content-type"] == "audio/wav"

    ranged = await client.get(audio, headers={**supervisor, "Range": "bytes=44-143"})
    assert ranged.status_code == 206 and ranged.content == expected[44:144]

    # Another department's officer: not their complaint (404, as reading it). Another agent:
    # not their call (nothing listed, the audio 404).
    stranger = await headers(client, officer(users, "health.district.varanasi"))
    assert (await client.get(url, headers=stranger)).status_code == 404
    assert (await client.get(audio, headers=stranger)).status_code == 404
    colleague = await headers(client, other_agent)
    listed = await client.get(url, headers=colleague)
    assert listed.status_code == 200 and listed.json() == []
    assert (await client.get(audio, headers=colleague)).status_code == 404
    assert (
        await client.get(f"{url}/{recording.id + 1}/audio", headers=supervisor)
    ).status_code == 404

    async with sessions() as session:
        plays = (
            await session.execute(
                select(User.username, AuditLog.detail)
                .join(User, User.id == AuditLog.actor_user_id)
                .where(
                    AuditLog.action == "recording_played", AuditLog.entity_id == str(recording.id)
                )
                .order_by(AuditLog.id)
            )
        ).all()
    assert [name for name, _ in plays] == [
        *(user["username"] for user in allowed.values()),
        users["supervisor"][0]["username"],
    ]
    assert all(detail["complaint"] == number and detail["call"] == UNIQUEID for _, detail in plays)
    assert plays[-1][1]["range"] == "bytes=44-143"


async def test_retention_keeps_open_complaints_then_deletes_once_and_plays_answer_410(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    users: Users,
    client: httpx.AsyncClient,
) -> None:
    await record_call(settings, sessions, users["agent"][0]["username"])
    supervisor = await headers(client, users["supervisor"][0])
    number = await file_on_call(client, supervisor, sessions)
    recording = await the_recording(sessions)
    assert recording.retain_until is not None
    file = settings.recordings_dir / recording.path
    before = recording.retain_until - timedelta(seconds=1)
    after = recording.retain_until + timedelta(days=1)

    report = await prune(sessions, settings, before)
    assert report.deleted == [] and file.exists()
    report = await prune(sessions, settings, after)  # the complaint is still open
    assert report.deleted == [] and report.kept_open_complaint == [recording.id] and file.exists()

    async with sessions() as session:
        await session.execute(
            update(Complaint)
            .where(Complaint.number == number)
            .values(status=ComplaintStatus.CLOSED)
        )
        await session.commit()
    first, second = await asyncio.gather(
        prune(sessions, settings, after), prune(sessions, settings, after)
    )
    assert sorted(first.deleted + second.deleted) == [recording.id]  # two passes at once: once
    assert (await prune(sessions, settings, after)).deleted == []  # and again: nothing
    assert not file.exists()
    gone = await the_recording(sessions)
    assert gone.deleted_at == after and gone.deleted_reason == RETENTION_REASON

    url = f"/complaints/{number}/recordings"
    [item] = (await client.get(url, headers=supervisor)).json()
    assert not item["playable"] and RETENTION_REASON in item["unavailable"]
    played = await client.get(f"{url}/{recording.id}/audio", headers=supervisor)
    assert played.status_code == 410 and RETENTION_REASON in played.json()["detail"]
    async with sessions() as session:
        audited = (
            await session.execute(
                select(func.count())
                .select_from(AuditLog)
                .where(AuditLog.action == "recording_played")
            )
        ).scalar()
    assert audited == 0  # a refused play is not a play
