"""Drive real SIP calls with ``sipp`` (Debian package ``sip-tester``): citizens and agents' seats.

Used by the integration tests and by ``helpline call``. Two roles:

* :func:`citizen_call` -- a citizen on the "PSTN trunk": sipp bound to ``settings.trunk_address``
  INVITEs ``<number>@sip_host:sip_port`` offering PCMU + telephone-event/8000, plays RFC 4733 DTMF
  digits (sip-tester's ``dtmf_2833_<d>.pcap``) at given delays after the ACK, stays up until
  Asterisk hangs up or ``hold`` seconds pass, then hangs up. Returns a :class:`CallOutcome`.
* :func:`seat_dial` -- an agent's seat dials a number (digest-authenticated INVITE), as a
  softphone's keypad does; the dialplan decides what it reaches.
* :class:`AgentSeat` -- an agent's softphone: REGISTERs as ``agentNNNN`` (401, then digest auth),
  then a UAS on the same port answers INVITEs (180, optional delay, 200 with SDP, ACK, BYE) or
  never answers. An async context manager; counts calls answered.

Every sipp process is bounded in time (``-timeout`` and our own deadline) and killed on exit.
Scenarios live in ``helpline/sipp_scenarios``; those with Jinja markup are rendered per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import shutil
import signal
import socket
import struct
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

import jinja2

from core.config import Settings

SCENARIO_DIR = Path(__file__).with_name("sipp_scenarios")
DTMF_PCAP_DIR = Path("/usr/share/sip-tester")
_DTMF_FILES = {str(d): str(d) for d in range(10)} | {"*": "star", "#": "pound"}
_ENTRY_START = re.compile(r"(?=\d{4}-\d{2}-\d{2}\t\d{2}:\d{2}:\d{2}\.)")
_LOG_LINE = re.compile(r"^(?P<what>[A-Z_]+)(?: (?P<arg>\S+))?(?: (?P<tick>\d+))?\s*$")
#: Ports for sipp's SIP and media sockets are picked at random from here (outside Asterisk's RTP).
_PORT_RANGE = (40000, 59990)

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(SCENARIO_DIR)),
    undefined=jinja2.StrictUndefined,
    autoescape=True,  # XML: a caller name cannot break the scenario
    keep_trailing_newline=True,
)


class SippError(RuntimeError):
    """sipp is missing, could not start, or a step (e.g. REGISTER) failed."""


def sipp_binary() -> str:
    found = shutil.which("sipp")
    if found is None:
        raise SippError("sipp is not installed: `apt-get install -y sip-tester`")
    return found


def free_udp_port(host: str, *, span: int = 1, avoid: tuple[int, int] | None = None) -> int:
    """A port P on ``host`` such that P..P+span-1 are free for UDP right now (even P)."""
    for _ in range(200):
        port = random.randrange(_PORT_RANGE[0], _PORT_RANGE[1], 2)
        if avoid and avoid[0] - span < port <= avoid[1]:
            continue
        socks: list[socket.socket] = []
        try:
            for p in range(port, port + span):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((host, p))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return port
    raise SippError(f"no free UDP port on {host}")


@dataclass(frozen=True, slots=True)
class DtmfStep:
    """Send ``digit`` ``delay`` seconds after the previous step (the first: after the ACK)."""

    digit: str
    delay: float = 0.5


@dataclass(slots=True)
class CallOutcome:
    """What happened to one citizen call."""

    answered: bool
    #: ``"citizen"`` (we sent BYE after ``hold``), ``"remote"`` (Asterisk sent BYE), or ``None``.
    hangup_by: Literal["citizen", "remote"] | None
    #: INVITE sent -> 200 OK received, seconds.
    setup_time: float | None
    #: 200 OK -> end of call, seconds.
    duration: float | None
    #: DTMF digits played, in order.
    digits_sent: str
    #: sipp's exit code: 0 all calls succeeded, 1 some failed, other: fatal/killed.
    returncode: int | None
    #: Whether sipp counted the call as successful.
    successful: bool
    #: Our log lines (``ANSWERED <tick>`` ...) and the tail of sipp's error log.
    events: list[str] = field(default_factory=list)
    errors: str = ""
    workdir: Path | None = None


def _parse_events(path: Path) -> list[tuple[str, str | None, int | None]]:
    out: list[tuple[str, str | None, int | None]] = []
    with contextlib.suppress(OSError):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            m = _LOG_LINE.match(line.strip())
            if m is None:
                continue
            arg, tick = m.group("arg"), m.group("tick")
            if tick is None and arg is not None and arg.isdigit():
                arg, tick = None, arg
            out.append((m.group("what"), arg, int(tick) if tick is not None else None))
    return out


async def _terminate(proc: asyncio.subprocess.Process, grace: float = 2.0) -> None:
    """Ask sipp to quit (SIGUSR1), then SIGKILL; always reap."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGUSR1)
        try:
            async with asyncio.timeout(grace):
                await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    with contextlib.suppress(ProcessLookupError):
        await asyncio.shield(proc.wait())


async def _run_to_end(
    args: Sequence[str], wd: Path, name: str, within: float
) -> tuple[int | None, int | None]:
    """Run one sipp to its end (at most ``within`` s, then it is stopped): its own exit code
    (None when it had to be stopped), and the exit code it ended with either way."""
    proc = await _spawn(args, wd, name)
    try:
        async with asyncio.timeout(within):
            rc: int | None = await proc.wait()
    except TimeoutError:
        rc = None
    finally:
        await _terminate(proc)
    return rc, proc.returncode


async def _spawn(args: Sequence[str], workdir: Path, name: str) -> asyncio.subprocess.Process:
    # A local file: opening it cannot block for long.
    out = open(workdir / f"{name}.stdout", "wb")  # noqa: SIM115, ASYNC230 - handed to the child
    try:
        return await asyncio.create_subprocess_exec(
            sipp_binary(),
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            cwd=str(workdir),
            start_new_session=True,
        )
    finally:
        out.close()


def _workdir(workdir: Path | None, prefix: str) -> Path:
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=workdir))
    return Path(tempfile.mkdtemp(prefix=prefix))


def _common_args(workdir: Path, name: str, timeout_s: float) -> list[str]:
    return [
        "-nostdin",
        "-trace_logs",
        "-log_file",
        str(workdir / f"{name}.log"),
        "-trace_err",
        "-error_file",
        str(workdir / f"{name}.errors"),
        "-timeout",
        f"{max(1, int(timeout_s + 0.999))}s",
        "-aa",  # auto-answer OPTIONS/UPDATE/INFO/NOTIFY (e.g. connected-line updates)
    ]


def _tail(path: Path, n: int = 15) -> str:
    """Last lines of a sipp error log, minus its banner and our own scripted receive timeouts."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    # sipp does not always end an entry with a newline: "... jumping to label 10<date>\t...
    # Aborting call on an unexpected BYE" is one line; each entry starts with its date.
    lines = [ln for line in text.splitlines() for ln in _ENTRY_START.split(line)]
    keep = [
        ln
        for ln in lines
        if ln.strip()
        and ln.strip() != "The following events occurred:"
        and "jumping to label" not in ln
    ]
    return "\n".join(keep[-n:])


# --------------------------------------------------------------------------- citizen


def _dtmf_steps(dtmf: str | Sequence[DtmfStep], gap: float, first_delay: float) -> list[DtmfStep]:
    if isinstance(dtmf, str):
        return [DtmfStep(d, first_delay if i == 0 else gap) for i, d in enumerate(dtmf)]
    return list(dtmf)


def _step_pcap(workdir: Path, index: int, digit: str) -> Path:
    """sip-tester's RFC 4733 pcap for ``digit``, renumbered for the ``index``-th key press.

    Each pcap carries fixed RTP sequence numbers and one event timestamp, so the same digit
    played twice looks to Asterisk like a retransmission of the first event and is dropped
    (and another digit's pcap may even go back in sequence). Every step gets its own copy
    with increasing sequence numbers and event timestamps, as a phone would send.
    """
    data = bytearray((DTMF_PCAP_DIR / f"dtmf_2833_{_DTMF_FILES[digit]}.pcap").read_bytes())
    magic, link = struct.unpack_from("<I", data, 0)[0], struct.unpack_from("<I", data, 20)[0]
    if magic != 0xA1B2C3D4 or link != 1:
        raise SippError(f"unexpected pcap format for DTMF {digit!r} (magic {magic:#x})")
    offset, packet = 24, 0
    while offset + 16 <= len(data):
        captured = struct.unpack_from("<I", data, offset + 8)[0]
        frame = offset + 16
        rtp = frame + 14 + (data[frame + 14] & 0x0F) * 4 + 8  # Ethernet, IPv4, UDP
        struct.pack_into("!HI", data, rtp + 2, 1000 + index * 50 + packet, 160_000 + index * 16_000)
        offset, packet = frame + captured, packet + 1
    path = workdir / f"dtmf_{index:02d}_{_DTMF_FILES[digit]}.pcap"
    path.write_bytes(bytes(data))
    return path


def _alaw_to_linear(byte: int) -> int:
    """One G.711 A-law byte as a 16-bit sample (ITU-T G.711)."""
    byte ^= 0x55
    exponent, mantissa = (byte >> 4) & 0x07, byte & 0x0F
    sample = (mantissa << 4) + 8 if exponent == 0 else ((mantissa << 4) + 0x108) << (exponent - 1)
    return sample if byte & 0x80 else -sample


def _linear_to_ulaw(sample: int) -> int:
    """A 16-bit sample as one G.711 mu-law byte (ITU-T G.711, bias 0x84)."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = max(0, magnitude.bit_length() - 8)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


#: A-law byte -> mu-law byte.
_ALAW_TO_ULAW = bytes(_linear_to_ulaw(_alaw_to_linear(b)) for b in range(256))


def speech_pcap(workdir: Path) -> Path:
    """sip-tester's ``g711a.pcap`` (about 7 s of speech) as PCMU, the codec our citizen offers:
    each payload transcoded A-law to mu-law, payload type 0, sequence numbers and timestamps
    after the DTMF steps', UDP checksums cleared (the payload changed)."""
    data = bytearray((DTMF_PCAP_DIR / "g711a.pcap").read_bytes())
    magic, link = struct.unpack_from("<I", data, 0)[0], struct.unpack_from("<I", data, 20)[0]
    if magic != 0xA1B2C3D4 or link != 1:
        raise SippError(f"unexpected pcap format of g711a.pcap (magic {magic:#x})")
    offset, packet = 24, 0
    while offset + 16 <= len(data):
        captured = struct.unpack_from("<I", data, offset + 8)[0]
        frame = offset + 16
        udp = frame + 14 + (data[frame + 14] & 0x0F) * 4
        rtp = udp + 8
        struct.pack_into("!H", data, udp + 6, 0)
        if data[rtp + 1] & 0x7F == 8:
            data[rtp + 1] = data[rtp + 1] & 0x80  # PCMA (8) -> PCMU (0), marker kept
            struct.pack_into("!HI", data, rtp + 2, 20_000 + packet, 4_000_000 + packet * 160)
            end = frame + captured
            data[rtp + 12 : end] = data[rtp + 12 : end].translate(_ALAW_TO_ULAW)
            packet += 1
        offset = frame + captured
    path = workdir / "speech_pcmu.pcap"
    path.write_bytes(bytes(data))
    return path


async def citizen_call(
    settings: Settings,
    dtmf: str | Sequence[DtmfStep] = "",
    *,
    hold: float = 10.0,
    number: str | None = None,
    caller_id: str = "9876543210",
    caller_name: str = "Citizen",
    first_digit_delay: float = 2.0,
    digit_gap: float = 0.6,
    max_duration: float | None = None,
    workdir: Path | None = None,
    speech_after: float | None = None,
    rtp_echo: bool = False,
) -> CallOutcome:
    """Place one citizen call to ``number`` (default: the helpline) and wait for its end.

    ``dtmf`` is a string of digits (first after ``first_digit_delay`` s, then every ``digit_gap``
    s) or explicit :class:`DtmfStep`s. After the last digit the call stays up for at most ``hold``
    seconds (less if Asterisk hangs up). ``timeout`` bounds everything (default: a margin over
    the scripted length). ``speech_after``: the citizen speaks (:func:`speech_pcap`, about 7 s)
    that many seconds after the last digit, e.g. to the agent once answered.
    With ``rtp_echo`` the citizen sends back every RTP packet it
    gets (sipp's ``-rtp_echo``): the agent hears themselves, so media both ways can be measured.
    """
    steps = _dtmf_steps(dtmf, digit_gap, first_digit_delay)
    for st in steps:
        if st.digit not in _DTMF_FILES:
            raise ValueError(f"not a DTMF digit: {st.digit!r}")
    if not re.fullmatch(r"[0-9+*#]{1,32}", caller_id):
        raise ValueError(f"caller_id must be digits: {caller_id!r}")
    target = number or settings.helpline_number
    if not re.fullmatch(r"[0-9A-Za-z+*#_.-]{1,64}", target):
        raise ValueError(f"bad number {target!r}")
    scripted = sum(s.delay for s in steps) + hold
    limit = max_duration if max_duration is not None else scripted + 30.0
    wd = _workdir(workdir, "citizen-")
    speech = None
    if speech_after is not None:
        speech = {"delay_ms": max(0, int(speech_after * 1000)), "pcap": str(speech_pcap(wd))}
    scenario = wd / "citizen_uac.xml"
    scenario.write_text(
        _ENV.get_template("citizen_uac.xml").render(
            caller_id=caller_id,
            caller_name=caller_name,
            hold_ms=max(1, int(hold * 1000)),
            speech=speech,
            dtmf=[
                {
                    "digit": s.digit,
                    "delay_ms": max(0, int(s.delay * 1000)),
                    "pcap": str(_step_pcap(wd, i, s.digit)),
                }
                for i, s in enumerate(steps)
            ],
        ),
        encoding="utf-8",
    )
    ip = settings.trunk_address
    rtp_avoid = (settings.rtp_port_start, settings.rtp_port_end)
    sip_port = free_udp_port(ip, avoid=rtp_avoid)
    media_port = free_udp_port(ip, span=4, avoid=rtp_avoid)
    args = [
        f"{settings.sip_host}:{settings.sip_port}",
        "-sf",
        str(scenario),
        "-s",
        target,
        "-i",
        ip,
        "-mi",
        ip,
        "-p",
        str(sip_port),
        "-mp",
        str(media_port),
        "-m",
        "1",
        "-l",
        "1",
        *(["-rtp_echo"] if rtp_echo else []),
        *_common_args(wd, "citizen", limit),
    ]
    rc, returncode = await _run_to_end(args, wd, "citizen", limit + 5.0)
    events = _parse_events(wd / "citizen.log")
    ticks: dict[str, int | None] = {what: tick for what, _, tick in events}
    answered = "ANSWERED" in ticks
    t_invite, t_answer = ticks.get("INVITE"), ticks.get("ANSWERED")
    setup = (
        (t_answer - t_invite) / 1000.0 if t_answer is not None and t_invite is not None else None
    )
    errors = _tail(wd / "citizen.errors")
    hangup_by: Literal["citizen", "remote"] | None = None
    if "REMOTE_BYE" in ticks:
        hangup_by = "remote"
    elif "LOCAL_BYE" in ticks:
        hangup_by = "citizen"
    elif answered and "BYE" in errors:
        hangup_by = "remote"  # BYE arrived while we were still sending DTMF
    end_tick = ticks.get("END") or ticks.get("REMOTE_BYE") or ticks.get("LOCAL_BYE")
    duration = (
        (end_tick - t_answer) / 1000.0 if end_tick is not None and t_answer is not None else None
    )
    return CallOutcome(
        answered=answered,
        hangup_by=hangup_by,
        setup_time=setup,
        duration=duration,
        digits_sent="".join(arg or "" for what, arg, _ in events if what == "DTMF"),
        returncode=returncode,
        successful=rc == 0 and "END" in ticks,
        events=[f"{w} {a or ''} {t or ''}".strip() for w, a, t in events],
        errors=errors,
        workdir=wd,
    )


async def seat_dial(
    settings: Settings,
    seat: str,
    password: str,
    number: str,
    *,
    hold: float = 30.0,
    ip: str = "127.0.0.1",
    workdir: Path | None = None,
) -> CallOutcome:
    """An agent's seat dials ``number`` (digest-authenticated INVITE) and stays up until
    Asterisk hangs up or ``hold`` seconds pass. What a softphone's keypad does."""
    if not re.fullmatch(r"agent[0-9]{2,8}", seat):
        raise ValueError(f"bad seat name {seat!r}")
    if not re.fullmatch(r"[0-9A-Za-z+*#]{1,32}", number):
        raise ValueError(f"bad number {number!r}")
    if ip == settings.trunk_address:
        raise ValueError("a seat must not use the trunk's address (it would be the trunk)")
    wd = _workdir(workdir, f"{seat}-dial-")
    scenario = wd / "agent_dial_uac.xml"
    scenario.write_text(
        _ENV.get_template("agent_dial_uac.xml").render(seat=seat, hold_ms=int(hold * 1000)),
        encoding="utf-8",
    )
    avoid = (settings.rtp_port_start, settings.rtp_port_end)
    limit = hold + 30.0
    args = [
        f"{settings.sip_host}:{settings.sip_port}",
        *("-sf", str(scenario), "-s", number, "-au", seat, "-ap", password),
        *("-i", ip, "-mi", ip, "-p", str(free_udp_port(ip, avoid=avoid))),
        *("-mp", str(free_udp_port(ip, span=4, avoid=avoid)), "-m", "1", "-l", "1"),
        *_common_args(wd, "dial", limit),
    ]
    rc, returncode = await _run_to_end(args, wd, "dial", limit + 5.0)
    events = _parse_events(wd / "dial.log")
    ticks: dict[str, int | None] = {what: tick for what, _, tick in events}
    t_invite, t_answer = ticks.get("INVITE"), ticks.get("ANSWERED")
    end_tick = ticks.get("REMOTE_BYE") or ticks.get("LOCAL_BYE")
    hangup_by: Literal["citizen", "remote"] | None = None
    if "REMOTE_BYE" in ticks:
        hangup_by = "remote"
    elif "LOCAL_BYE" in ticks:
        hangup_by = "citizen"
    return CallOutcome(
        answered=t_answer is not None,
        hangup_by=hangup_by,
        setup_time=(t_answer - t_invite) / 1000.0 if t_answer and t_invite else None,
        duration=(end_tick - t_answer) / 1000.0 if end_tick and t_answer else None,
        digits_sent="",
        returncode=returncode,
        successful=rc == 0 and "END" in ticks,
        events=[f"{w} {a or ''} {t or ''}".strip() for w, a, t in events],
        errors=_tail(wd / "dial.errors"),
        workdir=wd,
    )


# --------------------------------------------------------------------------- agent seat


class AgentSeat:
    """An agent's softphone: registers, then answers (or ignores) calls until the block ends.

    ::

        async with AgentSeat(settings, "agent0001", password) as seat:
            ...  # place calls
            await seat.wait_answered(1, within=20)
    """

    def __init__(
        self,
        settings: Settings,
        name: str,
        password: str,
        *,
        answer: bool = True,
        answer_delay: float = 0.0,
        ip: str = "127.0.0.1",
        port: int | None = None,
        lifetime: float = 300.0,
        register_timeout: float = 10.0,
        workdir: Path | None = None,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
            raise ValueError(f"bad seat name {name!r}")
        if ip == settings.trunk_address:
            raise ValueError("an agent must not use the trunk's address (it would be the trunk)")
        self.settings = settings
        self.name = name
        self._password = password
        self.answer = answer
        self.answer_delay = answer_delay
        self.ip = ip
        self.port = port
        self.lifetime = lifetime
        self.register_timeout = register_timeout
        self._workdir_base = workdir
        self.workdir: Path | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self.registered_in: float | None = None

    async def register(self) -> float:
        """REGISTER (401, then digest) from this seat's port; returns seconds taken."""
        if self.workdir is None:
            self.workdir = _workdir(self._workdir_base, f"{self.name}-")
        if self.port is None:
            self.port = free_udp_port(
                self.ip, avoid=(self.settings.rtp_port_start, self.settings.rtp_port_end)
            )
        wd = self.workdir
        args = [
            f"{self.settings.sip_host}:{self.settings.sip_port}",
            "-sf",
            str(SCENARIO_DIR / "agent_register.xml"),
            "-s",
            self.name,
            "-au",
            self.name,
            "-ap",
            self._password,
            "-key",
            "expires",
            str(max(60, int(self.lifetime) + 60)),
            "-i",
            self.ip,
            "-p",
            str(self.port),
            "-m",
            "1",
            *_common_args(wd, "register", self.register_timeout),
        ]
        t0 = time.monotonic()
        rc, _ = await _run_to_end(args, wd, "register", self.register_timeout + 3.0)
        if rc != 0 or not any(w == "REGISTERED" for w, _, _ in _parse_events(wd / "register.log")):
            raise SippError(
                f"{self.name} failed to register (sipp exit {rc}); see {wd}\n"
                + _tail(wd / "register.errors")
            )
        self.registered_in = time.monotonic() - t0
        return self.registered_in

    async def __aenter__(self) -> Self:
        await self.register()
        assert self.workdir is not None and self.port is not None
        wd = self.workdir
        (wd / "events").mkdir(exist_ok=True)
        scenario = wd / "agent_uas.xml"
        scenario.write_text(
            _ENV.get_template("agent_uas.xml").render(
                answer=self.answer,
                answer_delay_ms=max(1, int(self.answer_delay * 1000)),
                events=True,
            ),
            encoding="utf-8",
        )
        media_port = free_udp_port(
            self.ip, span=4, avoid=(self.settings.rtp_port_start, self.settings.rtp_port_end)
        )
        args = [
            "-sf",
            str(scenario),
            "-s",
            self.name,
            "-i",
            self.ip,
            "-mi",
            self.ip,
            "-p",
            str(self.port),
            "-mp",
            str(media_port),
            *_common_args(wd, "uas", self.lifetime),
        ]
        self._proc = await _spawn(args, wd, "uas")
        await asyncio.sleep(0.2)
        if self._proc.returncode is not None:
            raise SippError(f"{self.name}: sipp UAS exited at once; see {wd}/uas.stdout")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._proc is not None:
            await _terminate(self._proc)

    def _count(self, event: str) -> int:
        if self.workdir is None:
            return 0
        return sum(1 for _ in (self.workdir / "events").glob(f"{event}.*"))

    @property
    def calls_offered(self) -> int:
        """INVITEs received so far."""
        return self._count("INVITE")

    @property
    def calls_answered(self) -> int:
        """Calls answered (200 OK acknowledged) so far."""
        return self._count("ANSWERED")

    @property
    def calls_cancelled(self) -> int:
        return self._count("CANCELLED")

    async def wait_answered(self, count: int = 1, within: float = 30.0) -> None:
        """Wait until this seat answered ``count`` calls; TimeoutError after ``within`` s."""
        async with asyncio.timeout(within):
            while self.calls_answered < count:
                if self._proc is not None and self._proc.returncode is not None:
                    raise SippError(f"{self.name}: sipp UAS exited; see {self.workdir}")
                await asyncio.sleep(0.1)

    def __repr__(self) -> str:
        return f"AgentSeat({self.name!r}, {self.ip}:{self.port})"


__all__ = [
    "AgentSeat",
    "CallOutcome",
    "DtmfStep",
    "SippError",
    "citizen_call",
    "free_udp_port",
    "seat_dial",
    "sipp_binary",
]
