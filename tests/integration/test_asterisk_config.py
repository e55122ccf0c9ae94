"""The rendered configuration, proven against a REAL Asterisk 22 and real SIP calls (sipp).

A private instance ("itest-config", its own ports) is provisioned (sid chroot, reused across
runs), rendered, started once for the module and stopped at the end. A throwaway FastAGI
responder written here plays the IVR. Each test is bounded with ``asyncio.timeout``.

Needs root (chroot), ``sipp`` (sip-tester) and, on first run, debootstrap + the Debian mirror.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import secrets
import shutil
import struct
import time
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from asterisk_config import AsteriskInstance, ProvisionError, SeatCredential
from asterisk_config.provision import is_provisioned
from asterisk_config.render import AMI_DISABLED_EVENTS
from core.config import AMI_SERVICES, Settings
from helpline.sipp import AgentSeat, citizen_call

pytestmark = pytest.mark.integration

AGI_PORT = 24573
QUEUE = "helpline"


def _settings(state_dir: Path) -> Settings:
    secrets_kw = {f"ami_secret_{s}": secrets.token_urlsafe(24) for s in AMI_SERVICES}
    return Settings(
        instance="itest-config",
        state_dir=state_dir,
        ami_port=25038,
        sip_port=25060,
        agi_port=AGI_PORT,
        rtp_port_start=30000,
        rtp_port_end=30999,
        **secrets_kw,
    )


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return _settings(tmp_path_factory.mktemp("state"))


@pytest.fixture(scope="module")
def seats() -> list[SeatCredential]:
    return [SeatCredential(f"agent{i:04d}", secrets.token_urlsafe(12)) for i in range(1, 6)]


@pytest.fixture(scope="module")
def asterisk(settings: Settings, seats: list[SeatCredential]) -> Iterator[AsteriskInstance]:
    if shutil.which("sipp") is None:
        pytest.skip("sipp missing (apt-get install sip-tester)")
    inst = AsteriskInstance(settings)
    if os.geteuid() != 0 and inst.root is not None and not is_provisioned(inst.root):
        pytest.skip("the Asterisk chroot needs root to build")
    try:
        inst.provision()
    except ProvisionError as exc:
        pytest.fail(f"provisioning failed: {exc}")
    inst.stop()  # a leftover from an interrupted run
    inst.render(seats)
    took = inst.start(timeout=60)
    print(f"asterisk itest-config started in {took:.2f} s")
    try:
        yield inst
    finally:
        inst.stop()


# --------------------------------------------------------------------------- FastAGI stand-in


class FakeAgi:
    """Just enough FastAGI: read the environment, run a script, close.

    mode ``ok``: optional extra commands, then ``IVR_ROUTE=queue`` and ``IVR_DONE=1`` last;
    mode ``drop``: set IVR_ROUTE only, then close the socket without the completion marker.
    """

    def __init__(self, mode: str = "ok", commands: tuple[str, ...] = ()) -> None:
        self.mode = mode
        self.commands = commands
        self.envs: list[dict[str, str]] = []
        self.replies: list[str] = []

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(20):
                env: dict[str, str] = {}
                while line := (await reader.readline()).decode().strip():
                    key, _, value = line.partition(": ")
                    env[key] = value
                self.envs.append(env)
                script = [*self.commands, "SET VARIABLE IVR_ROUTE queue"]
                if self.mode == "ok":
                    script.append("SET VARIABLE IVR_DONE 1")
                for cmd in script:
                    writer.write(cmd.encode() + b"\n")
                    await writer.drain()
                    self.replies.append((await reader.readline()).decode().strip())
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[FakeAgi]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", AGI_PORT)
        try:
            yield self
        finally:
            server.close()
            await server.wait_closed()


@contextlib.contextmanager
def queue_member(ast: AsteriskInstance, seat: str) -> Iterator[None]:
    ast.cli(f"queue add member PJSIP/{seat} to {QUEUE}")
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            ast.cli(f"queue remove member PJSIP/{seat} from {QUEUE}")


def trunk_channel_vars(ast: AsteriskInstance) -> dict[str, str]:
    """Variables of the (single) citizen channel currently up."""
    chans = [ln.split("!")[0] for ln in ast.cli("core show channels concise").splitlines()]
    trunk = [c for c in chans if c.startswith("PJSIP/trunk-")]
    assert trunk, f"no citizen channel up: {chans}"
    out = ast.cli(f"core show channel {trunk[0]}")
    return dict(re.findall(r"^\s*(\w+)=(.*)$", out, flags=re.MULTILINE))


def write_tone(path: Path, seconds: float = 0.5, hz: float = 440.0) -> None:
    """A prompt as Asterisk likes it: 8 kHz, mono, 16-bit wav."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(8000 * seconds)
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * hz * i / 8000))) for i in range(n)
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(frames)


async def _call_reaches_agent(
    ast: AsteriskInstance,
    settings: Settings,
    seat: SeatCredential,
    tmp_path: Path,
    *,
    hold: float = 6.0,
) -> tuple[dict[str, str], float]:
    """A citizen calls 1076; returns the citizen channel's variables while the agent talks and
    the seconds from INVITE to the agent's answer."""
    async with AgentSeat(settings, seat.name, seat.password, workdir=tmp_path) as agent:
        with queue_member(ast, seat.name):
            t0 = time.monotonic()
            call = asyncio.create_task(citizen_call(settings, hold=hold, workdir=tmp_path))
            await agent.wait_answered(1, within=15)
            to_agent = time.monotonic() - t0
            variables = await asyncio.to_thread(trunk_channel_vars, ast)
            outcome = await call
    assert outcome.answered, outcome
    assert outcome.hangup_by == "citizen", outcome  # nobody dropped the call before we did
    assert outcome.successful, outcome
    print(f"{seat.name}: answered {to_agent:.2f} s after INVITE; setup {outcome.setup_time} s")
    return variables, to_agent


# --------------------------------------------------------------------------- tests


def test_the_events_no_service_reads_are_disabled_in_asterisk(
    asterisk: AsteriskInstance,
) -> None:
    """manager.conf's ``disabledevents`` as Asterisk 22 read it: those events are never built
    (a version without the option would ignore the line and build them all)."""
    line = next(
        ln for ln in asterisk.cli("manager show settings").splitlines() if "Disabled events" in ln
    )
    assert line.split(":", 1)[1].split() == [",".join(AMI_DISABLED_EVENTS)], line


async def test_ivr_then_queue_then_agent(
    asterisk: AsteriskInstance, settings: Settings, seats: list[SeatCredential], tmp_path: Path
) -> None:
    """(i) citizen from the trunk -> AGI ivr (env, marker) -> queue -> registered agent answers.
    Also proves the prompt path convention: helpline/<name> is found per CHANNEL(language)."""
    write_tone(asterisk.sounds_dir("hi") / "itest-hi.wav")
    write_tone(asterisk.sounds_dir("en") / "itest-en.wav", hz=660.0)
    agi = FakeAgi(
        "ok",
        commands=(
            'STREAM FILE helpline/itest-hi ""',
            "SET VARIABLE CHANNEL(language) en",
            'STREAM FILE helpline/itest-en ""',
        ),
    )
    async with asyncio.timeout(60), agi.serving():
        variables, _ = await _call_reaches_agent(asterisk, settings, seats[0], tmp_path)
    assert len(agi.envs) == 1
    env = agi.envs[0]
    assert env["agi_network_script"] == "ivr"
    assert env["agi_extension"] == settings.helpline_number
    assert env["agi_context"] == "from-trunk"
    assert env["agi_language"] == "hi"  # the trunk endpoint's default language
    assert env["agi_channel"].startswith("PJSIP/trunk-")
    # STREAM FILE found both prompts (endpos > 0: audio was played, not "file not found").
    assert all(r.startswith("200 result=") for r in agi.replies), agi.replies
    endpos = [int(m.group(1)) for r in agi.replies if (m := re.search(r"endpos=(\d+)", r))]
    assert len(endpos) == 2 and all(e > 0 for e in endpos), agi.replies
    assert variables.get("IVR_DONE") == "1"
    assert variables.get("IVR_ROUTE") == "queue"
    assert variables.get("IVR_FALLBACK", "") == ""


async def test_agi_server_down_falls_back_to_queue(
    asterisk: AsteriskInstance, settings: Settings, seats: list[SeatCredential], tmp_path: Path
) -> None:
    """(ii) no AGI server listening: AGISTATUS=FAILURE; the caller still reaches an agent."""
    async with asyncio.timeout(60):
        variables, _ = await _call_reaches_agent(asterisk, settings, seats[1], tmp_path)
    assert variables.get("IVR_FALLBACK") == "1"
    assert variables.get("AGISTATUS") == "FAILURE"
    assert variables.get("IVR_DONE", "") == ""


async def test_agi_dies_mid_call_falls_back_to_queue(
    asterisk: AsteriskInstance, settings: Settings, seats: list[SeatCredential], tmp_path: Path
) -> None:
    """(iii) the AGI server closes the socket without the marker: AGISTATUS=SUCCESS, yet the
    caller reaches an agent through the fallback."""
    agi = FakeAgi("drop")
    async with asyncio.timeout(60), agi.serving():
        variables, _ = await _call_reaches_agent(asterisk, settings, seats[2], tmp_path)
    assert len(agi.envs) == 1
    assert variables.get("AGISTATUS") == "SUCCESS"
    assert variables.get("IVR_ROUTE") == "queue"  # set, but no IVR_DONE: not trusted
    assert variables.get("IVR_FALLBACK") == "1"


async def test_reload_with_1000_seats_keeps_up_call(
    asterisk: AsteriskInstance, settings: Settings, seats: list[SeatCredential], tmp_path: Path
) -> None:
    """(iv) re-render for 1000 seats and reload (core + pjsip) while a call is up: the call
    survives and every seat exists afterwards."""
    big = [*seats, *(SeatCredential(f"agent{i:04d}", secrets.token_hex(8)) for i in range(6, 1001))]
    seat = seats[3]
    agi = FakeAgi("ok")
    async with asyncio.timeout(90), agi.serving():
        async with AgentSeat(settings, seat.name, seat.password, workdir=tmp_path) as agent:
            with queue_member(asterisk, seat.name):
                call = asyncio.create_task(citizen_call(settings, hold=8.0, workdir=tmp_path))
                await agent.wait_answered(1, within=15)
                t0 = time.monotonic()
                await asyncio.to_thread(asterisk.render, big)
                await asyncio.to_thread(asterisk.reload)
                await asyncio.to_thread(asterisk.cli, "pjsip reload")
                print(f"render + reload of 1000 seats: {time.monotonic() - t0:.2f} s")
                assert "PJSIP/agent0004" in asterisk.cli(f"queue show {QUEUE}")
                outcome = await call
        assert outcome.answered and outcome.successful, outcome
        assert outcome.hangup_by == "citizen", outcome  # not dropped by the reload
        assert outcome.duration is not None and outcome.duration >= 7.5, outcome
        endpoints = asterisk.cli("pjsip show endpoints")
        assert len(re.findall(r"^ Endpoint:  agent\d{4}/", endpoints, re.MULTILINE)) == 1000
        assert re.search(r"^ Endpoint:  trunk\b", endpoints, re.MULTILINE)
        # A seat that did not exist before registers fine after the reload.
        last = big[-1]
        async with AgentSeat(settings, last.name, last.password, workdir=tmp_path) as late:
            assert late.registered_in is not None
    await asyncio.to_thread(asterisk.render, seats)
    await asyncio.to_thread(asterisk.reload)
