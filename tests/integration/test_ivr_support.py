"""Helpers for the IVR's real-call tests: prompt durations from the built audio (so DTMF timings
follow the prompts), the stored IVR session of a call, and a sipp UAS playing the emergency
service on the trunk side."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import tempfile
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import jinja2
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from asterisk_config.instance import AsteriskInstance
from core.config import Settings
from core.db.models import Call, IvrSession
from helpline.cli import sounds_root
from helpline.sipp import SCENARIO_DIR, free_udp_port, sipp_binary
from tests.waiting import wait_for, wait_for_sync


def seconds(settings: Settings, *prompt_ids: str, lang: str = "hi") -> float:
    """How long the built prompts last (what the caller waits through)."""
    root = Path(sounds_root(AsteriskInstance(settings)))
    total = 0.0
    for pid in prompt_ids:
        with wave.open(str(root / lang / "helpline" / f"{pid}.wav"), "rb") as w:
            total += w.getnframes() / w.getframerate()
    return total


def language_key_at(settings: Settings) -> float:
    """When a caller who listens before pressing picks Hindi: near the end of its prompt."""
    return seconds(settings, "welcome", "emergency_choice", "language_choice") - 0.3


async def ivr_session(
    db: async_sessionmaker[AsyncSession], caller_raw: str, since: datetime, within: float = 20
) -> IvrSession:
    """The finished IVR session of the newest call from ``caller_raw`` since ``since``."""

    async def finished() -> IvrSession | None:
        async with db() as session:
            row = await session.scalar(
                select(IvrSession)
                .where(
                    IvrSession.caller_number_raw == caller_raw,
                    IvrSession.started_at >= since,
                )
                .order_by(IvrSession.id.desc())
                .limit(1)
            )
        return row if row is not None and row.outcome is not None else None

    return await wait_for(finished, within, what=f"the finished IVR session of {caller_raw}")


async def call_row(
    db: async_sessionmaker[AsyncSession], uniqueid: str, within: float = 15, **want: object
) -> Call:
    """The queue manager's row of the call once it has every ``want``ed value."""

    async def recorded() -> Call | None:
        async with db() as session:
            row = await session.scalar(select(Call).where(Call.uniqueid == uniqueid))
        if row is not None and all(getattr(row, k) == v for k, v in want.items()):
            return row
        return None

    return await wait_for(recorded, within, what=f"call {uniqueid} with {want}")


@dataclass
class EmergencyLine:
    """112/108 on the PSTN side: a sipp UAS on the trunk address that answers every INVITE."""

    ip: str
    port: int
    workdir: Path
    proc: subprocess.Popen[bytes]

    def invites(self) -> list[tuple[str, float]]:
        """(request-URI user, wall-clock time) of each INVITE received, in order."""
        times = [p.stat().st_mtime for p in sorted((self.workdir / "events").glob("INVITE.*"))]
        messages = (self.workdir / "uas.messages").read_text(errors="replace")
        users = [
            line.split("sip:", 1)[1].split("@", 1)[0]
            for line in messages.splitlines()
            if line.startswith("INVITE sip:")
        ]
        return list(zip(users, times, strict=False))


@contextlib.contextmanager
def emergency_line(settings: Settings) -> Iterator[EmergencyLine]:
    ip = settings.trunk_address
    avoid = (settings.rtp_port_start, settings.rtp_port_end)
    port = free_udp_port(ip, avoid=avoid)
    media = free_udp_port(ip, span=4, avoid=avoid)
    wd = Path(tempfile.mkdtemp(prefix="emergency-"))
    (wd / "events").mkdir()
    template = jinja2.Template((SCENARIO_DIR / "agent_uas.xml").read_text(), autoescape=True)
    (wd / "uas.xml").write_text(template.render(answer=True, answer_delay_ms=200, events=True))
    args = [
        *("-sf", str(wd / "uas.xml"), "-s", "emergency", "-i", ip, "-mi", ip),
        *("-p", str(port), "-mp", str(media), "-nostdin", "-aa"),
        *("-trace_msg", "-message_file", str(wd / "uas.messages")),
        *("-trace_err", "-error_file", str(wd / "uas.errors"), "-timeout", "600s"),
    ]
    with (wd / "uas.stdout").open("wb") as out:
        proc = subprocess.Popen(
            [sipp_binary(), *args], stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=wd
        )

    def listening() -> bool:
        """sipp has bound its SIP port (or died: then say why)."""
        assert proc.poll() is None, (wd / "uas.stdout").read_text(errors="replace")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((ip, port))
            except OSError:
                return True
        return False

    wait_for_sync(listening, 10, interval=0.05, what="the emergency line's sipp listening")
    try:
        yield EmergencyLine(ip, port, wd, proc)
    finally:
        proc.kill()
        proc.wait()


def wait_agi(settings: Settings, within: float = 15.0) -> None:
    """Until the FastAGI service accepts connections again (after a restart)."""

    def accepts() -> bool:
        try:
            socket.create_connection((settings.agi_host, settings.agi_port), timeout=1).close()
        except OSError:
            return False
        return True

    wait_for_sync(accepts, within, what="the FastAGI service accepting connections")
