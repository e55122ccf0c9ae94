"""A real call is recorded, tied to the complaint filed on it, and played by those allowed.

sipp plays the citizen (DTMF through the IVR, then about 7 s of speech once an agent has
answered) and the agent's softphone; Asterisk 22's MixMonitor records the bridged
conversation into the instance's recordings directory; the queue manager stores the row from
AMI; a supervisor downloads the wav through the API (whole, and a Range), each play audited;
an officer of another department is refused.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.models import AuditLog, Recording, User
from core.domain.recordings import recording_path
from helpline.sipp import AgentSeat, citizen_call
from tests.integration.browser import chromium
from tests.integration.test_walking_skeleton import seat_password, wait_call
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


async def _headers(api: httpx.AsyncClient, user: dict[str, str]) -> dict[str, str]:
    response = await api.post(
        "/auth/token", data={"username": user["username"], "password": user["password"]}
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _samples(wav: bytes) -> list[int]:
    """The 16-bit samples of a canonical 44-byte-header PCM wav."""
    count = (len(wav) - 44) // 2
    return list(struct.unpack_from(f"<{count}h", wav, 44))


async def test_an_answered_call_is_recorded_and_played_from_its_complaint(
    stack_settings: Settings,
    demo_users: Any,
    api: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    settings = stack_settings
    agent = await _headers(api, demo_users["agent"][0])
    password = await seat_password(db, "agent0001")
    async with AgentSeat(settings, "agent0001", password, answer_delay=0.5) as seat:
        login = await api.post("/agents/me/login", json={"seat": "agent0001"}, headers=agent)
        assert login.status_code == 200, login.text
        started = time.time()
        outcome = await citizen_call(
            settings,
            "11",
            hold=14.0,
            caller_id="9876543211",
            first_digit_delay=3.0,
            speech_after=4.0,
        )
        assert outcome.answered, outcome.errors
        await seat.wait_answered(1, within=5)
        call = await wait_call(db, started, disposition="answered")
        body = {
            "description": "हैंडपंप दो महीने से खराब है।",
            "department": "food",
            "category": "food.ration_card",
            "district": "lucknow",
            "tehsil": "lucknow_sadar",
        }
        created = await api.post("/complaints", json=body, headers=agent)
        assert created.status_code == 201, created.text
        number = created.json()["number"]
        post = created.json()["assigned_officer"]["code"]
        await api.post("/agents/me/logout", headers=agent)

    async def finished() -> Recording | None:
        async with db() as session:
            row = (
                await session.execute(select(Recording).where(Recording.call_id == call.id))
            ).scalar_one_or_none()
        return row if row is not None and row.ended_at is not None else None

    # mypy cannot solve wait_for's ``T | Awaitable[T]`` for an async check (as in
    # test_walking_skeleton.py); the value is the Recording the check returned.
    recording: Recording = await wait_for(
        finished,  # type: ignore[arg-type]
        15,
        what="the call's recording row, completed",
    )
    assert recording.path == recording_path(call.uniqueid)
    assert recording.deleted_at is None and recording.retain_until is not None
    assert recording.duration_seconds is not None and recording.duration_seconds > 1.0
    file = settings.recordings_dir / recording.path
    assert file.stat().st_size == recording.bytes

    supervisor_user = demo_users["supervisor"][0]
    supervisor = await _headers(api, supervisor_user)
    listed = await api.get(f"/complaints/{number}/recordings", headers=supervisor)
    assert listed.status_code == 200, listed.text
    [item] = listed.json()
    assert item["id"] == recording.id and item["call"] == call.uniqueid and item["playable"]
    assert item["duration_seconds"] == pytest.approx(recording.duration_seconds)

    audio_url = f"/complaints/{number}/recordings/{recording.id}/audio"
    audio = await api.get(audio_url, headers=supervisor)
    assert audio.status_code == 200, audio.text
    assert audio.headers["content-type"] == "audio/wav"
    wav = audio.content
    assert len(wav) == int(audio.headers["content-length"]) == recording.bytes
    riff, riff_size, wave = struct.unpack_from("<4sI4s", wav, 0)
    assert (riff, wave) == (b"RIFF", b"WAVE") and riff_size + 8 == len(wav)
    fmt, _, pcm, channels, rate, _, _, bits = struct.unpack_from("<4sIHHIIHH", wav, 12)
    assert (fmt, pcm, channels, rate, bits) == (b"fmt ", 1, 1, 8000, 16)
    data, data_size = struct.unpack_from("<4sI", wav, 36)
    assert data == b"data" and data_size == len(wav) - 44
    # The citizen's speech is in it, not only silence.
    assert max(abs(s) for s in _samples(wav)) > 1000

    partial = await api.get(audio_url, headers={**supervisor, "Range": "bytes=0-99"})
    assert partial.status_code == 206 and partial.content == wav[:100]

    # The agent who answered may hear it; an officer of another department may not even see it.
    assert (await api.get(audio_url, headers=agent)).status_code == 200
    stranger = next(o for o in demo_users["officer"] if o["department"] != "food")
    officer = await _headers(api, stranger)
    assert (await api.get(f"/complaints/{number}/recordings", headers=officer)).status_code == 404
    assert (await api.get(audio_url, headers=officer)).status_code == 404

    async with db() as session:
        plays = (
            await session.execute(
                select(User.username, AuditLog.detail)
                .join(User, User.id == AuditLog.actor_user_id)
                .where(
                    AuditLog.action == "recording_played",
                    AuditLog.entity == "recording",
                    AuditLog.entity_id == str(recording.id),
                )
                .order_by(AuditLog.id)
            )
        ).all()
    assert [username for username, _ in plays] == [
        supervisor_user["username"],
        supervisor_user["username"],
        demo_users["agent"][0]["username"],
    ]
    assert all(detail["complaint"] == number for _, detail in plays)
    assert plays[1][1]["range"] == "bytes=0-99"

    # The worklist's play control, in headless Chromium: the supervisor opens the routed
    # officer's worklist and plays the complaint's recording (fetched with the token, played
    # from a blob); Chromium decodes the 8 kHz wav to its full length.
    token = supervisor["Authorization"].removeprefix("Bearer ")
    base = f"http://{settings.api_host}:{settings.api_port}"
    url = f"{base}/worklist?officer={post}#token={token}"
    async with chromium(url, tmp_path / "chromium", "worklist") as page:
        await page.wait_for("Number(document.body.dataset.loaded || 0) >= 1")
        await page.evaluate(f"document.querySelector('button[data-play=\"{number}\"]').click()")
        element = f"document.querySelector('tr[data-number=\"{number}\"] audio[data-recording]')"
        await page.wait_for(f"{element} !== null && {element}.readyState >= 1")
        duration = await page.evaluate(f"{element}.duration")
        assert duration == pytest.approx(recording.duration_seconds, abs=0.05)
        assert await page.evaluate(f"{element}.dataset.recording") == str(recording.id)
    async with db() as session:
        played = (
            await session.execute(
                select(func.count())
                .select_from(AuditLog)
                .where(
                    AuditLog.action == "recording_played",
                    AuditLog.entity_id == str(recording.id),
                )
            )
        ).scalar()
    assert played == len(plays) + 1
