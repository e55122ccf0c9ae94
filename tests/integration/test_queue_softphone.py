"""A real softphone from Debian (baresip, package ``baresip-core``) registered as an agent's
seat answers a queued citizen call: the setup docs/agents.md describes, run headless."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.models import Call
from helpline.sipp import citizen_call, free_udp_port
from tests.integration.queue_support import logout_all, make_agents, wait_queue_manager
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

SEAT = "agent0301"


def baresip_config(home: Path, settings: Settings, password: str) -> None:
    """The same settings docs/agents.md gives an agent, plus headless audio (baresip's
    ``aubridge`` instead of a sound card) and auto-answer so the test needs no hands."""
    port = free_udp_port("127.0.0.1", avoid=(settings.rtp_port_start, settings.rtp_port_end))
    rtp = free_udp_port(
        "127.0.0.1", span=20, avoid=(settings.rtp_port_start, settings.rtp_port_end)
    )
    home.mkdir(parents=True, exist_ok=True)
    (home / "accounts").write_text(
        f"<sip:{SEAT}@{settings.sip_host}:{settings.sip_port}>"
        f";auth_pass={password};regint=120;answermode=auto;audio_codecs=PCMU\n"
    )
    (home / "config").write_text(
        "\n".join(
            [
                "poll_method epoll",
                f"sip_listen 127.0.0.1:{port}",
                "sip_transports udp",
                "audio_player aubridge,nowhere",
                "audio_source aubridge,nowhere",
                "audio_alert aubridge,nowhere",
                f"rtp_ports {rtp}-{rtp + 19}",
                "module_path /usr/lib/baresip/modules",
                "module g711.so",
                "module aubridge.so",
                "module_app account.so",
                "module_app menu.so",
                "",
            ]
        )
    )
    (home / "contacts").write_text("")


async def test_baresip_softphone_answers_a_queued_call(
    stack_settings: Settings,
    demo_users: object,
    api: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    binary = shutil.which("baresip")
    assert binary, "baresip is missing: scripts/system-deps.sh installs baresip-core"
    settings = stack_settings
    await wait_queue_manager(db)
    (agent,) = await make_agents(db, api, "q5soft", 1)
    admin_user = demo_users["admin"][0]  # type: ignore[index]
    token = await api.post(
        "/auth/token",
        data={"username": admin_user["username"], "password": admin_user["password"]},
    )
    admin = {"Authorization": f"Bearer {token.json()['access_token']}"}
    creds = (await api.get(f"/seats/{SEAT}/credentials", headers=admin)).json()
    home = tmp_path / "baresip"
    baresip_config(home, settings, creds["password"])
    log = (tmp_path / "baresip.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        binary,
        "-f",
        str(home),
        "-t",
        "90",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=log,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def registered() -> bool:
            assert proc.returncode is None, (tmp_path / "baresip.log").read_text()
            return b"200 OK" in (tmp_path / "baresip.log").read_bytes()

        await wait_for(registered, 15, what="baresip registered")
        login = await api.post("/agents/me/login", json={"seat": SEAT}, headers=agent.headers)
        assert login.json()["state"] == "in_queue", login.text
        outcome = await citizen_call(
            settings,
            "11",
            hold=12.0,
            caller_id="9876540004",
            first_digit_delay=1.0,
            digit_gap=2.5,
            workdir=tmp_path,
        )
        assert outcome.answered and outcome.hangup_by == "citizen", outcome.events

        async def call_ended() -> Call | None:
            async with db() as session:
                call = (
                    await session.execute(
                        select(Call)
                        .where(Call.caller_number == "9876540004")
                        .order_by(Call.id.desc())
                        .limit(1)
                    )
                ).scalar_one_or_none()
            return call if call is not None and call.disposition is not None else None

        call = await wait_for(call_ended, 10, what="the call's record with its disposition")
        assert call.disposition == "answered" and call.agent_seat == SEAT
        assert call.talk_seconds is not None and call.talk_seconds >= 1
        text = (tmp_path / "baresip.log").read_text(errors="replace")
        assert "Call established" in text or "established" in text.lower(), text[-2000:]
    finally:
        await logout_all(api, [agent])
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(5):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()
