"""A scripted stand-in for Asterisk's side of FastAGI, for unit tests of IVR scripts.

It sends an environment (sane defaults, a Hindi caller name, overridable), then answers each
command from a list of rules, can inject ``HANGUP`` or close mid-call, and records every command
it received. It speaks over real sockets: a ``socket.socketpair()`` for :func:`run_fake_call`
(no port, no server) or loopback TCP via :meth:`FakeAsterisk.connect` against a started
:class:`~core.transport.fastagi.FastAGIServer`.

Example::

    from core.transport.fake_agi import FakeAsterisk, Rule, run_fake_call

    async def main_menu(call):
        await call.answer()
        digits, timed_out = await call.get_data("hi/menu", 5000, 1)
        await call.set_variable("IVR_DONE", "1")

    async def test_menu_choice_1():
        peer = FakeAsterisk(
            [
                Rule("ANSWER"),
                Rule.data("GET DATA hi/menu", "1"),
                Rule("SET VARIABLE IVR_DONE 1", "200 result=1"),
            ],
            script="ivr/main",
        )
        result = await run_fake_call(main_menu, peer)
        result.raise_for_error()        # the script raised nothing, every rule was used
        assert peer.commands[1] == "GET DATA hi/menu 5000 1"

A rule matches when its ``expect`` words are a prefix of the command's words (compared without
case, after Asterisk-style unquoting). ``VERBOSE`` commands are answered ``200 result=1``
without consuming a rule (``passthrough``). A command that matches no rule is recorded in
``unexpected`` and answered ``510 Invalid or unknown command``, as Asterisk would.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlencode

from core.protocols.agi import parse_command_line
from core.transport.fastagi import AGICall, AGIHangup, FastAGIServer, Script

__all__ = [
    "DEAD_CHANNEL",
    "DEFAULT_ENV",
    "Exchange",
    "FakeAsterisk",
    "FakeCallResult",
    "Responder",
    "Rule",
    "run_fake_call",
]

#: What Asterisk 22 answers on a channel that is gone.
DEAD_CHANNEL = "511 Command Not Permitted on a dead channel or intercept routine"
UNKNOWN_COMMAND = "510 Invalid or unknown command"

#: A realistic handshake from a trunk call to 1076 (keys as Asterisk sends them).
DEFAULT_ENV: Mapping[str, str] = {
    "agi_network": "yes",
    "agi_channel": "PJSIP/trunk-00000001",
    "agi_language": "hi",
    "agi_type": "PJSIP",
    "agi_uniqueid": "1700000000.1",
    "agi_version": "22.0.0",
    "agi_callerid": "9876543210",
    "agi_calleridname": "रमेश कुमार",
    "agi_callingpres": "0",
    "agi_callingani2": "0",
    "agi_callington": "0",
    "agi_callingtns": "0",
    "agi_dnid": "1076",
    "agi_rdnis": "unknown",
    "agi_context": "ivr",
    "agi_extension": "1076",
    "agi_priority": "2",
    "agi_enhanced": "0.0",
    "agi_accountcode": "",
    "agi_threadid": "140000000000001",
}

#: A callable rule: gets the command's words, returns reply line(s), or ``None`` to not match.
Responder = Callable[[list[str]], str | Sequence[str] | None]


@dataclass(frozen=True)
class Rule:
    """Answer the next command if it starts with ``expect``.

    ``hangup="before"`` sends ``HANGUP`` ahead of the reply (the caller left while the command
    was on its way); ``"after"`` sends it just after (how Asterisk reports a hang-up during a
    prompt: ``200 result=-1`` then ``HANGUP``). From then on every command gets ``511``.
    ``close=True`` closes the connection after the reply (``reply=()`` for no reply at all);
    ``delay`` waits before replying (to exercise timeouts).
    """

    expect: str
    reply: str | Sequence[str] = "200 result=0"
    hangup: Literal["before", "after"] | None = None
    close: bool = False
    delay: float = 0.0

    @classmethod
    def digit(cls, expect: str, key: str, endpos: int = 8000) -> Rule:
        """``STREAM FILE``/``GET OPTION``/``WAIT FOR DIGIT`` answered with a key press."""
        suffix = f" endpos={endpos}" if not expect.upper().startswith("WAIT") else ""
        return cls(expect, f"200 result={ord(key) if key else 0}{suffix}")

    @classmethod
    def data(cls, expect: str, digits: str, *, timeout: bool = False) -> Rule:
        """``GET DATA`` answered with ``digits`` (``timeout=True`` as when the caller stopped)."""
        return cls(expect, f"200 result={digits}{' (timeout)' if timeout else ''}")

    @classmethod
    def variable(cls, expect: str, value: str | None) -> Rule:
        """``GET VARIABLE`` answered with ``value`` (``None``: not set)."""
        return cls(expect, "200 result=0" if value is None else f"200 result=1 ({value})")

    @classmethod
    def hangup_during(cls, expect: str) -> Rule:
        """The caller hangs up while this command runs."""
        return cls(expect, "200 result=-1 endpos=0", hangup="after")


@dataclass(frozen=True)
class Exchange:
    """One command received and the lines sent back."""

    line: str
    argv: list[str]
    reply: list[str]


@dataclass
class FakeCallResult:
    peer: FakeAsterisk
    error: BaseException | None = None

    def raise_for_error(self) -> None:
        """Re-raise the script's exception (a hang-up counts as a clean end), then check the
        peer used every rule and saw nothing unexpected."""
        if self.error is not None and not isinstance(self.error, AGIHangup):
            raise self.error
        self.peer.assert_done()


@dataclass
class FakeAsterisk:
    """Asterisk's side of one FastAGI connection, driven by ``rules`` (see module docstring).

    ``script``/``query``/``args`` build ``agi_network_script``, ``agi_request`` and
    ``agi_arg_N``; ``env`` overrides or adds handshake keys. ``hangup_at=n`` injects ``HANGUP``
    before answering the n-th command (0-based). ``chunk_size`` splits everything sent into
    writes of that many bytes (to test reassembly over a real socket).
    """

    rules: Sequence[Rule | Responder] = ()
    script: str = "ivr"
    query: Mapping[str, str] = field(default_factory=dict)
    args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    hangup_at: int | None = None
    passthrough: Sequence[str] = ("VERBOSE",)
    chunk_size: int | None = None
    transcript: list[Exchange] = field(default_factory=list, init=False)
    unexpected: list[str] = field(default_factory=list, init=False)
    _next_rule: int = field(default=0, init=False, repr=False)
    _dead: bool = field(default=False, init=False, repr=False)

    @property
    def commands(self) -> list[str]:
        """Every command line received, in order (without the newline)."""
        return [exchange.line for exchange in self.transcript]

    def environment(self) -> dict[str, str]:
        network_script = self.script + (f"?{urlencode(self.query)}" if self.query else "")
        env = dict(DEFAULT_ENV)
        env["agi_request"] = f"agi://127.0.0.1:4573/{network_script}"
        env["agi_network_script"] = network_script
        for n, arg in enumerate(self.args, start=1):
            env[f"agi_arg_{n}"] = arg
        env.update(self.env)
        return env

    def handshake(self) -> bytes:
        lines = [f"{key}: {value}\n" for key, value in self.environment().items()]
        return ("".join(lines) + "\n").encode()

    def assert_done(self) -> None:
        """Fail if a rule was not used or a command matched no rule."""
        left = len(self.rules) - self._next_rule
        assert not self.unexpected, f"unexpected AGI commands: {self.unexpected}"
        assert left == 0, f"{left} rule(s) never used; commands were: {self.commands}"

    async def connect(self, host: str, port: int) -> None:
        """Play one call against a listening FastAGI server."""
        reader, writer = await asyncio.open_connection(host, port)
        await self.serve(reader, writer)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Send the handshake, then answer commands until the other side closes."""
        try:
            await self._send(writer, self.handshake())
            while True:
                raw = await reader.readline()
                if not raw.endswith(b"\n"):
                    return  # EOF: the script ended (or died)
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                keep_open = await self._answer(line, writer)
                if not keep_open:
                    return
        except (ConnectionError, OSError):
            return
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _answer(self, line: str, writer: asyncio.StreamWriter) -> bool:
        argv = parse_command_line(line)
        step = len(self.transcript)
        out: list[str] = []
        rule: Rule | None = None
        if self.hangup_at == step and not self._dead:
            out.append("HANGUP")
            self._dead = True
        if self._dead and not out:
            out.append(DEAD_CHANNEL)
        elif _matches(argv, self.passthrough):
            out.append("200 result=1")
        else:
            lines, rule = self._next(argv)
            if lines is None:
                self.unexpected.append(line)
                lines = [UNKNOWN_COMMAND]
            if rule is not None and rule.hangup == "before" and not self._dead:
                out.append("HANGUP")
                self._dead = True
            out.extend(lines)
            if rule is not None and rule.hangup == "after" and not self._dead:
                out.append("HANGUP")
                self._dead = True
        self.transcript.append(Exchange(line, argv, out))
        if rule is not None and rule.delay:
            await asyncio.sleep(rule.delay)
        if out:
            await self._send(writer, "".join(f"{reply}\n" for reply in out).encode())
        return not (rule is not None and rule.close)

    def _next(self, argv: list[str]) -> tuple[list[str] | None, Rule | None]:
        if self._next_rule >= len(self.rules):
            return None, None
        candidate = self.rules[self._next_rule]
        if isinstance(candidate, Rule):
            if not _matches(argv, [candidate.expect]):
                return None, None
            self._next_rule += 1
            reply = candidate.reply
            return ([reply] if isinstance(reply, str) else list(reply)), candidate
        answer = candidate(argv)
        if answer is None:
            return None, None
        self._next_rule += 1
        return ([answer] if isinstance(answer, str) else list(answer)), None

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        size = self.chunk_size or len(data) or 1
        for start in range(0, len(data), size):
            writer.write(data[start : start + size])
            await writer.drain()


def _matches(argv: list[str], prefixes: Sequence[str]) -> bool:
    for prefix in prefixes:
        words = parse_command_line(prefix)
        if len(words) <= len(argv) and all(
            a.casefold() == w.casefold() for a, w in zip(argv, words, strict=False)
        ):
            return True
    return False


async def run_fake_call(
    script: Script,
    peer: FakeAsterisk,
    *,
    command_timeout: float = 5.0,
    call_timeout: float = 30.0,
) -> FakeCallResult:
    """Run ``script`` as the FastAGI server would, against ``peer``, over a socketpair.

    The script's exception (if any) is returned in :attr:`FakeCallResult.error` rather than
    only logged, so tests can assert on it.
    """
    result = FakeCallResult(peer)

    async def capturing(call: AGICall) -> None:
        try:
            await script(call)
        except Exception as exc:
            result.error = exc
            raise

    server = FastAGIServer(
        {peer.script: capturing}, command_timeout=command_timeout, call_timeout=call_timeout
    )
    ours, theirs = socket.socketpair()
    peer_reader, peer_writer = await asyncio.open_connection(sock=theirs)
    async with asyncio.TaskGroup() as group:
        # The production path: our side is the same asyncio.Protocol the listener uses.
        group.create_task(server.serve_socket(ours))
        group.create_task(peer.serve(peer_reader, peer_writer))
    return result
