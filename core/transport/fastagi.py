"""Thin asyncio FastAGI server over :mod:`core.protocols.agi`.

Why it exists instead of panoramisk's ``fast_agi``: Asterisk sets no deadline on a FastAGI
server, so every wait here has one (handshake, each command, the whole call); a truncated or
silent peer costs one sleeping task, never CPU; ``HANGUP`` is a sticky state, not a reply;
routes ignore the query string; ``CancelledError`` always propagates.

If a script fails, we log it with the channel's uniqueid and close the connection. Asterisk then
reports ``AGISTATUS=SUCCESS`` (EOF looks like success), so recovery is the dialplan's job: every
script sets a completion marker as its last act and the dialplan sends calls without it to the
agents' queue.

FastAGI has no authentication: bind to loopback or a private link only.
"""

# Commands take a ``timeout`` argument on purpose (ASYNC109): a deadline that fires mid-command
# must also mark the call unusable, since the late reply would be read as the next command's.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

from core.protocols.agi import (
    MAX_HANDSHAKE_BYTES,
    AGIEnvironment,
    AGIProtocolError,
    AGIReply,
    Closed,
    EnvironmentParser,
    HangupNotice,
    Progress,
    ReplyEvent,
    ReplyParser,
    digit_from_result,
    encode_command,
)

__all__ = [
    "AGICall",
    "AGICommandError",
    "AGIConnectionError",
    "AGIError",
    "AGIHangup",
    "AGITimeout",
    "FastAGIServer",
    "Script",
]

logger = logging.getLogger(__name__)

_READ_SIZE: Final = 64 * 1024
_CLOSE_TIMEOUT: Final = 1.0


class AGIError(Exception):
    """Base of every error a script can see from :class:`AGICall`."""


class AGIHangup(AGIError):
    """The caller is gone (``HANGUP`` notice, EOF, ``511`` or ``result=-1`` on a channel command).

    Sticky: once raised, every later command raises it too. A normal way for a script to end.
    """


class AGICommandError(AGIError):
    """Asterisk refused the command (``510`` unknown, ``520`` usage, other non-200 codes)."""

    def __init__(self, message: str, reply: AGIReply) -> None:
        super().__init__(message)
        self.reply = reply

    @property
    def usage(self) -> str | None:
        return self.reply.usage


class AGITimeout(AGIError):
    """A command got no reply in time. Sticky: a late reply would desynchronise the call."""


class AGIConnectionError(AGIError):
    """The peer broke the protocol or the connection; sticky."""


class AGICall:
    """One FastAGI call: the parsed environment plus a command channel to Asterisk.

    Commands are serialised (one in flight at a time). ``hung_up`` turns true when a hang-up is
    *seen*, i.e. while waiting for a reply; a notice that arrives while the script is busy
    elsewhere is seen by its next command, which then raises :class:`AGIHangup` unsent.
    """

    def __init__(
        self,
        env: AGIEnvironment,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        command_timeout: float = 60.0,
        leftover: bytes = b"",
    ) -> None:
        self.env = env
        self._reader = reader
        self._writer = writer
        self._command_timeout = command_timeout
        self._parser = ReplyParser()
        self._pending: deque[ReplyEvent] = deque()
        self._lock = asyncio.Lock()
        self._failure: AGIError | None = None
        self.hung_up = False
        # Per-command deadlines share one lazily re-armed timer per call (see _arm_watchdog).
        self._watchdog: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._waiting: asyncio.Task[object] | None = None
        self._expired = False
        if leftover:
            self._feed(leftover)

    # -- environment shortcuts ------------------------------------------------------------

    @property
    def script(self) -> str:
        return self.env.script

    @property
    def args(self) -> tuple[str, ...]:
        return self.env.args

    @property
    def query(self) -> Mapping[str, str]:
        return self.env.query

    @property
    def uniqueid(self) -> str:
        return self.env.uniqueid

    @property
    def caller_id(self) -> str:
        return self.env.caller_id

    @property
    def caller_name(self) -> str:
        return self.env.caller_name

    # -- raw commands ---------------------------------------------------------------------

    async def command(self, *parts: str, timeout: float | None = None) -> AGIReply:
        """Send one command and return its final ``200`` reply.

        Raises :class:`AGIHangup`, :class:`AGICommandError` (510/520/…), :class:`AGITimeout`
        (after ``timeout`` or the server's ``command_timeout``), :class:`AGIConnectionError`,
        or :class:`ValueError` for an argument that cannot be encoded (CR/LF/NUL).
        """
        line = encode_command(*parts)
        async with self._lock:
            self._raise_if_unusable()
            budget = self._command_timeout if timeout is None else timeout
            task = asyncio.current_task()
            assert task is not None, "AGICall.command must run in a task"
            cancelling = task.cancelling()
            self._arm_watchdog(task, budget)
            try:
                self._writer.write(line)
                await self._writer.drain()
                reply = await self._read_reply()
            except OSError:
                raise self._hangup("connection lost") from None
            except asyncio.CancelledError:
                if self._expired and task.uncancel() <= cancelling:
                    raise self._fail(
                        AGITimeout(
                            f"no reply to {parts[0]!r} within {budget:g} s ({self.uniqueid})"
                        )
                    ) from None
                # Cancelled mid-command (call deadline, shutdown, a caller's own timeout): the
                # reply may still come and would answer the next command; refuse any more.
                self._fail(AGIConnectionError(f"{parts[0]!r} was cancelled awaiting its reply"))
                raise
            finally:
                self._waiting = None
        if reply.code == 200:
            return reply
        if reply.code == 511:
            raise self._hangup(reply.raw)
        raise AGICommandError(f"{parts[0]!r} refused: {reply.raw.splitlines()[0]}", reply)

    async def _channel_command(self, *parts: str, timeout: float | None = None) -> AGIReply:
        """A command acting on the channel: ``result=-1`` is Asterisk's "error or hang-up".

        We treat it as a hang-up: carrying on with a menu after a failed prompt would leave the
        caller lost; if the channel is in fact alive, the dialplan falls back to the agents.
        """
        reply = await self.command(*parts, timeout=timeout)
        if reply.result == "-1":
            raise self._hangup(f"{parts[0]} returned -1")
        return reply

    def _extra(self, seconds: float) -> float:
        return self._command_timeout + max(0.0, seconds)

    # -- convenience ----------------------------------------------------------------------

    async def answer(self) -> None:
        await self._channel_command("ANSWER")

    async def stream_file(
        self, name: str, escape_digits: str = "", *, timeout: float | None = None
    ) -> str:
        """Play a prompt; return the escape digit pressed, or ``""``."""
        reply = await self._channel_command("STREAM FILE", name, escape_digits, timeout=timeout)
        return digit_from_result(reply.result)

    async def get_data(
        self,
        prompt: str,
        timeout_ms: int = 5000,
        max_digits: int = 1,
        *,
        timeout: float | None = None,
    ) -> tuple[str, bool]:
        """Play ``prompt`` and collect up to ``max_digits``: ``(digits, timed_out)``."""
        budget = timeout if timeout is not None else self._extra(timeout_ms / 1000 * max_digits)
        reply = await self._channel_command(
            "GET DATA", prompt, str(timeout_ms), str(max_digits), timeout=budget
        )
        return reply.result, reply.data == "timeout"

    async def get_option(
        self,
        prompt: str,
        escape_digits: str,
        timeout_ms: int = 5000,
        *,
        timeout: float | None = None,
    ) -> str:
        """Play ``prompt``, wait ``timeout_ms`` for one of ``escape_digits``; ``""`` if none."""
        budget = timeout if timeout is not None else self._extra(timeout_ms / 1000)
        reply = await self._channel_command(
            "GET OPTION", prompt, escape_digits, str(timeout_ms), timeout=budget
        )
        return digit_from_result(reply.result)

    async def wait_for_digit(self, timeout_ms: int, *, timeout: float | None = None) -> str:
        """One key press within ``timeout_ms`` (``-1`` waits up to the command deadline)."""
        budget = timeout if timeout is not None else self._extra(timeout_ms / 1000)
        reply = await self._channel_command("WAIT FOR DIGIT", str(timeout_ms), timeout=budget)
        return digit_from_result(reply.result)

    async def set_variable(self, name: str, value: str) -> None:
        await self.command("SET VARIABLE", name, value)

    async def get_variable(self, name: str) -> str | None:
        """The channel variable's value, or ``None`` if it is not set."""
        reply = await self.command("GET VARIABLE", name)
        if reply.result == "1":
            return reply.data if reply.data is not None else ""
        return None

    async def exec(self, app: str, *args: str, timeout: float | None = None) -> str:
        """Run a dialplan application; ``args`` are joined with ``,`` as the dialplan does."""
        reply = await self._channel_command("EXEC", app, ",".join(args), timeout=timeout)
        if reply.result == "-2":
            raise AGICommandError(f"no such dialplan application: {app!r}", reply)
        return reply.result

    async def verbose(self, message: str, level: int = 1) -> None:
        await self.command("VERBOSE", message, str(level))

    async def hangup(self) -> None:
        """Hang the channel up. Unlike other commands, a no-op if the call is already gone."""
        if self.hung_up:
            return
        await self.command("HANGUP")
        self.hung_up = True
        self._failure = AGIHangup(f"hung up by the script ({self.uniqueid})")

    # -- internals ------------------------------------------------------------------------

    def _arm_watchdog(self, task: asyncio.Task[object], budget: float) -> None:
        """Give the command in flight a deadline ``budget`` seconds from now.

        ``asyncio.timeout`` per command created, scheduled and cancelled a timer each time (a
        third of our CPU per command in ``python -m bench agi``). Instead one timer per call
        stays armed at an earlier deadline and, when it fires, either cancels the command that
        overran or moves itself to the current command's deadline: re-arming only happens when
        a command's deadline is *earlier* than the armed one.
        """
        loop = task.get_loop()
        self._deadline = loop.time() + budget
        self._waiting = task
        self._expired = False
        watchdog = self._watchdog
        if watchdog is None or watchdog.when() > self._deadline:
            if watchdog is not None:
                watchdog.cancel()
            self._watchdog = loop.call_at(self._deadline, self._on_watchdog, loop)

    def _on_watchdog(self, loop: asyncio.AbstractEventLoop) -> None:
        self._watchdog = None
        task = self._waiting
        if task is None or task.done():
            return  # no command in flight; the next one re-arms
        if loop.time() >= self._deadline:
            self._expired = True
            task.cancel()
        else:
            self._watchdog = loop.call_at(self._deadline, self._on_watchdog, loop)

    def _release(self) -> None:
        """The call is over: drop the timer (it would keep this call alive until it fires)."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._waiting = None

    def _fail(self, error: AGIError) -> AGIError:
        if self._failure is None:
            self._failure = error
        return error

    def _hangup(self, why: str) -> AGIHangup:
        self.hung_up = True
        error = AGIHangup(f"caller hung up ({why}; uniqueid={self.uniqueid})")
        self._fail(error)
        return error

    def _raise_if_unusable(self) -> None:
        while self._pending and self._failure is None:
            event = self._pending.popleft()
            if isinstance(event, HangupNotice | Closed):
                self._hangup("HANGUP notice" if isinstance(event, HangupNotice) else "EOF")
            elif isinstance(event, AGIReply):
                self._fail(AGIConnectionError(f"unsolicited reply from Asterisk: {event.raw!r}"))
        if self._failure is not None:
            failure = self._failure
            raise type(failure)(*failure.args)

    def _feed(self, data: bytes) -> None:
        try:
            events = self._parser.feed(data) if data else self._parser.feed_eof()
        except AGIProtocolError as exc:
            raise self._fail(AGIConnectionError(str(exc))) from exc
        self._pending.extend(events)

    async def _read_reply(self) -> AGIReply:
        while True:
            while self._pending:
                event = self._pending.popleft()
                if isinstance(event, AGIReply):
                    return event
                if isinstance(event, Progress):
                    continue
                raise self._hangup("HANGUP notice" if isinstance(event, HangupNotice) else "EOF")
            self._feed(await self._reader.read(_READ_SIZE))


Script = Callable[[AGICall], Awaitable[None]]


class FastAGIServer:
    """Routes ``agi://host:port/<script>?<query>`` to ``routes[script]``.

    Route keys are script paths without the query string (``"ivr/main"``; a leading ``/`` is
    tolerated); the query string is for the script (``call.query``), not for routing.

    ``handshake_timeout`` bounds the env exchange, ``command_timeout`` each command (the
    convenience methods add their own ``timeout_ms``), ``call_timeout`` the whole script. An
    unknown script is logged and the connection closed; the dialplan falls back.
    """

    def __init__(
        self,
        routes: Mapping[str, Script],
        *,
        host: str = "127.0.0.1",
        port: int = 4573,
        backlog: int = 4096,
        handshake_timeout: float = 5.0,
        command_timeout: float = 60.0,
        call_timeout: float = 3600.0,
        max_handshake_bytes: int = MAX_HANDSHAKE_BYTES,
    ) -> None:
        self._routes = routes  # read per call (not copied), so routes may be added while live
        self._host = host
        self._port = port
        self._backlog = backlog
        self.handshake_timeout = handshake_timeout
        self.command_timeout = command_timeout
        self.call_timeout = call_timeout
        self._max_handshake = max_handshake_bytes
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with ``port=0``)."""
        if self._server is not None and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return self._port

    @property
    def active_calls(self) -> int:
        return len(self._tasks)

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("FastAGIServer already started")
        self._server = await asyncio.start_server(
            self.serve_connection, self._host, self._port, backlog=self._backlog
        )
        logger.info("FastAGI listening on %s:%d", self._host, self.port)

    async def close(self, drain_timeout: float = 10.0) -> None:
        """Stop accepting, give live calls ``drain_timeout`` seconds, then cancel the rest."""
        if self._server is not None:
            self._server.close()
        live = set(self._tasks)
        if live:
            _, pending = await asyncio.wait(live, timeout=drain_timeout)
            for task in pending:
                task.cancel()
            if pending:
                logger.warning("cancelling %d FastAGI calls still live at shutdown", len(pending))
                await asyncio.wait(pending)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> FastAGIServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Serve one connection (public so the in-memory fake can drive it over a socketpair)."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            if task is not None:
                self._tasks.discard(task)
            await _close_writer(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _small_reads(writer.transport)
        peer = writer.get_extra_info("peername")
        try:
            async with asyncio.timeout(self.handshake_timeout):
                env, leftover = await self._read_handshake(reader)
        except TimeoutError:
            logger.warning("FastAGI handshake from %s timed out", peer)
            return
        except _Probe:
            logger.debug("connection from %s closed before any byte (a probe)", peer)
            return
        except AGIProtocolError as exc:
            logger.warning("bad FastAGI handshake from %s: %s", peer, exc)
            return
        except OSError as exc:
            logger.warning("FastAGI handshake from %s failed: %s", peer, exc)
            return
        script = self._routes.get(env.script) or self._routes.get("/" + env.script)
        if script is None:
            logger.warning(
                "no FastAGI script %r (uniqueid=%s); closing so the dialplan falls back",
                env.script,
                env.uniqueid,
            )
            return
        call = AGICall(env, reader, writer, command_timeout=self.command_timeout, leftover=leftover)
        try:
            async with asyncio.timeout(self.call_timeout) as deadline:
                try:
                    await script(call)
                finally:
                    call._release()
        except AGIHangup:
            logger.info("caller hung up during %r (uniqueid=%s)", env.script, env.uniqueid)
        except TimeoutError:
            if not deadline.expired():
                logger.exception("AGI script %r failed (uniqueid=%s)", env.script, env.uniqueid)
            else:
                logger.warning(
                    "AGI script %r exceeded call_timeout %g s (uniqueid=%s)",
                    env.script,
                    self.call_timeout,
                    env.uniqueid,
                )
        except Exception:
            logger.exception("AGI script %r failed (uniqueid=%s)", env.script, env.uniqueid)

    async def _read_handshake(self, reader: asyncio.StreamReader) -> tuple[AGIEnvironment, bytes]:
        parser = EnvironmentParser(self._max_handshake)
        received = 0
        while True:
            data = await reader.read(4096)
            if not data and not received:
                raise _Probe  # connected and closed: a health check, not a broken peer
            received += len(data)
            if not data:
                parser.feed_eof()  # raises: EOF before the empty line (no spinning on EOF)
            env = parser.feed(data)
            if env is not None:
                return env, parser.leftover


class _Probe(Exception):
    """A peer that connected and closed without sending anything (e.g. ``GET /health``)."""


def _small_reads(transport: asyncio.BaseTransport) -> None:
    """Read at most ``_READ_SIZE`` bytes per ``recv`` instead of the selector transport's 256 KiB.

    Measured (``python -m bench agi``, strace): a 256 KiB ``recv`` buffer is above glibc's mmap
    threshold, so every read of a 14-byte reply cost ``mmap`` + ``mremap`` + ``munmap`` and fresh
    page faults. 64 KiB comes from the heap. ``max_size`` is the attribute asyncio's selector
    transport reads per ``recv``; other transports (e.g. uvloop) lack it and are left alone.
    """
    if isinstance(getattr(transport, "max_size", None), int):
        transport.max_size = _READ_SIZE  # type: ignore[attr-defined]


async def _close_writer(writer: asyncio.StreamWriter) -> None:
    """Close without waiting forever on a peer that does not read (then abort)."""
    writer.close()
    if writer.transport.get_write_buffer_size() == 0:
        # Nothing left to send: the transport closes on the next loop turn, so no deadline
        # (and no timer per call) is needed.
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
    try:
        async with asyncio.timeout(_CLOSE_TIMEOUT):
            await writer.wait_closed()
    except TimeoutError:
        writer.transport.abort()
    except OSError:
        pass
