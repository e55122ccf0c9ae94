"""Thin asyncio FastAGI server over :mod:`core.protocols.agi`.

Why it exists instead of panoramisk's ``fast_agi``: Asterisk sets no deadline on a FastAGI
server, so every wait here has one (handshake, each command, the whole call); a truncated or
silent peer costs one sleeping protocol object, never CPU; ``HANGUP`` is a sticky state, not a
reply; routes ignore the query string; ``CancelledError`` always propagates.

Each connection is an :class:`asyncio.Protocol` (no StreamReader/StreamWriter): bytes go
straight from ``data_received`` into the call's sans-I/O :class:`~core.protocols.agi.ReplyParser`
(:meth:`AGICall.receive`), a reply resolves the future the script awaits, commands
go out with ``transport.write``, and one entry per connection in the server's deadline heap
(:class:`_Deadlines`, moved only when a deadline comes earlier) serves the handshake, every
command and the whole call. A task exists only once a handshake is complete and routed.
``python -m bench agi`` measured this against the stream-based version it replaced.

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
import gc
import heapq
import logging
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, cast

from core.protocols.agi import (
    MAX_HANDSHAKE_BYTES,
    AGIEnvironment,
    AGIProtocolError,
    AGIReply,
    Closed,
    EnvironmentParser,
    HangupNotice,
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
    "tune_gc_for_serving",
]

logger = logging.getLogger(__name__)

_READ_SIZE: Final = 64 * 1024
#: The stdlib loop's ``time()``: ``time.monotonic()`` and nothing else (see _Deadlines.clock).
_BASE_LOOP_TIME: Final = asyncio.BaseEventLoop.time
#: _Deadlines re-arms its loop timer at most this often, so a deadline may be this late.
_TICK: Final = 0.05
#: _Deadlines rebuilds its heap once it holds more cancelled entries than this and than live.
_MAX_DEAD: Final = 256
_CLOSE_TIMEOUT: Final = 1.0
#: Command lines and replies a server remembers (see FastAGIServer.encode, ReplyParser).
_MAX_REMEMBERED: Final = 1024
_NEVER: Final = float("inf")
#: A timer may fire up to the clock resolution early; treat that as on time.
_SLACK: Final = 0.001
#: Gen-0 threshold for a serving process (CPython's default is 700), see tune_gc_for_serving.
GC_GEN0_THRESHOLD: Final = 50_000


def tune_gc_for_serving(gen0_threshold: int = GC_GEN0_THRESHOLD) -> None:
    """Call once start-up is done: freeze the start-up heap and collect young objects less often.

    Why: with thousands of live calls, CPython's cyclic collector walks every call's objects
    (tasks, coroutine frames, parsers), and a full pass stalled every call for tens of
    milliseconds in ``python -m bench agi``. ``gc.freeze()`` moves everything allocated at
    start-up (modules, menus, prompt catalogue) out of the collector's sight, and a higher
    gen-0 threshold makes young passes rarer; the per-call objects are acyclic and are freed by
    reference counting anyway, so the collector has little to find.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)


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
    *seen*: at once while a command awaits its reply; a notice that arrives while the script is
    busy elsewhere is kept and seen by its next command, which then raises :class:`AGIHangup`
    unsent. Created by the server for each routed connection.

    A command is one future, not a coroutine: :meth:`_send` writes the line and returns the
    future, which :meth:`receive` settles when the connection hands it the reply's bytes (with
    the reply, or with the error to raise). The convenience methods await it directly: in
    ``python -m bench agi`` the coroutine level of :meth:`command` in between and its
    bookkeeping cost ~6k instructions per command. A cancelled wait is noticed when the call
    next acts (see :meth:`_abandoned`), not by a callback per command.
    """

    def __init__(self, env: AGIEnvironment, conn: _Connection, *, command_timeout: float) -> None:
        self.env = env
        self._conn = conn
        self._command_timeout = command_timeout
        self._parser = ReplyParser(replies=conn.server.replies)
        # The first event nobody was waiting for (a HANGUP, EOF or an unsolicited reply): it
        # decides the call's fate at the next command, and nothing after it matters.
        self._pending: ReplyEvent | None = None
        # The command in flight: set when sent, cleared when settled. A future the awaiting
        # task's cancellation cancelled stays here until noticed (see _abandoned).
        self._waiter: asyncio.Future[AGIReply] | None = None
        self._command_name = ""
        self._command_budget = 0.0
        self._command_deadline = 0.0
        self._failure: AGIError | None = None
        self._busy = False  # a command holds the turn (in flight, or being handed the turn)
        self._turns: deque[asyncio.Future[None]] | None = None
        self.hung_up = False

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
        return self.env.variables.get("agi_uniqueid", "")

    @property
    def caller_id(self) -> str:
        return self.env.variables.get("agi_callerid", "")

    @property
    def caller_name(self) -> str:
        return self.env.variables.get("agi_calleridname", "")

    # -- raw commands ---------------------------------------------------------------------

    async def command(self, *parts: str, timeout: float | None = None) -> AGIReply:
        """Send one command and return its final ``200`` reply.

        Raises :class:`AGIHangup`, :class:`AGICommandError` (510/520/…), :class:`AGITimeout`
        (after ``timeout`` or the server's ``command_timeout``), :class:`AGIConnectionError`,
        or :class:`ValueError` for an argument that cannot be encoded (CR/LF/NUL).
        """
        return await self._send(parts, timeout)

    def _channel_failed(self, verb: str) -> AGIHangup:
        """A command acting on the channel answered ``result=-1``: Asterisk's "error or hang-up".

        We treat it as a hang-up: carrying on with a menu after a failed prompt would leave the
        caller lost; if the channel is in fact alive, the dialplan falls back to the agents.
        """
        return self._hangup(f"{verb} returned -1")

    def _extra(self, seconds: float) -> float:
        return self._command_timeout + max(0.0, seconds)

    # -- convenience ----------------------------------------------------------------------
    # Each awaits _send()'s future itself (no coroutine in between) and checks ``result=-1``
    # inline on the channel commands.

    async def answer(self) -> None:
        reply = await self._send(("ANSWER",))
        if reply.result == "-1":
            raise self._channel_failed("ANSWER")

    async def stream_file(
        self, name: str, escape_digits: str = "", *, timeout: float | None = None
    ) -> str:
        """Play a prompt; return the escape digit pressed, or ``""``."""
        reply = await self._send(("STREAM FILE", name, escape_digits), timeout)
        result = reply.result
        if result == "0":
            return ""  # played to the end, no key: the usual answer
        if result == "-1":
            raise self._channel_failed("STREAM FILE")
        return digit_from_result(result)

    async def get_data(
        self,
        prompt: str,
        timeout_ms: int = 5000,
        max_digits: int = 1,
        *,
        timeout: float | None = None,
    ) -> tuple[str, bool]:
        """Play ``prompt`` and collect up to ``max_digits``: ``(digits, timed_out)``."""
        if timeout is None:
            timeout = self._command_timeout + max(0.0, timeout_ms / 1000 * max_digits)
        reply = await self._send(("GET DATA", prompt, str(timeout_ms), str(max_digits)), timeout)
        if reply.result == "-1":
            raise self._channel_failed("GET DATA")
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
        reply = await self._send(("GET OPTION", prompt, escape_digits, str(timeout_ms)), budget)
        if reply.result == "-1":
            raise self._channel_failed("GET OPTION")
        return digit_from_result(reply.result)

    async def wait_for_digit(self, timeout_ms: int, *, timeout: float | None = None) -> str:
        """One key press within ``timeout_ms`` (``-1`` waits up to the command deadline)."""
        budget = timeout if timeout is not None else self._extra(timeout_ms / 1000)
        reply = await self._send(("WAIT FOR DIGIT", str(timeout_ms)), budget)
        if reply.result == "-1":
            raise self._channel_failed("WAIT FOR DIGIT")
        return digit_from_result(reply.result)

    async def set_variable(self, name: str, value: str) -> None:
        await self._send(("SET VARIABLE", name, value))

    async def get_variable(self, name: str) -> str | None:
        """The channel variable's value, or ``None`` if it is not set."""
        reply = await self._send(("GET VARIABLE", name))
        if reply.result == "1":
            return reply.data if reply.data is not None else ""
        return None

    async def exec(self, app: str, *args: str, timeout: float | None = None) -> str:
        """Run a dialplan application; ``args`` are joined with ``,`` as the dialplan does."""
        reply = await self._send(("EXEC", app, ",".join(args)), timeout)
        if reply.result == "-1":
            raise self._channel_failed("EXEC")
        if reply.result == "-2":
            raise AGICommandError(f"no such dialplan application: {app!r}", reply)
        return reply.result

    async def verbose(self, message: str, level: int = 1) -> None:
        await self._send(("VERBOSE", message, str(level)))

    async def hangup(self) -> None:
        """Hang the channel up. Unlike other commands, a no-op if the call is already gone."""
        if self.hung_up:
            return
        await self._send(("HANGUP",))
        self.hung_up = True
        self._failure = AGIHangup(f"hung up by the script ({self.uniqueid})")

    # -- internals: sending, serialising commands -----------------------------------------

    def _send(self, parts: tuple[str, ...], timeout: float | None = None) -> Awaitable[AGIReply]:
        """Encode and send one command; return what to await for its final ``200`` reply.

        Usually the reply's future itself (the connection settles it with the reply or the
        error); a coroutine that first waits for its turn if another command is in flight.
        """
        line = self._conn.server.encode(parts)
        if self._busy and not self._abandoned():
            return self._queued(line, parts[0], timeout)
        self._busy = True
        return self._start(line, parts[0], timeout)

    def _start(self, line: bytes, name: str, timeout: float | None) -> asyncio.Future[AGIReply]:
        """Send ``line``, holding the turn; the connection's bytes settle the returned future."""
        if self._failure is not None or self._pending is not None:
            self._release()
            raise self._unusable()
        budget = self._command_timeout if timeout is None else timeout
        conn = self._conn
        waiter: asyncio.Future[AGIReply] = conn.loop.create_future()
        self._command_deadline = deadline = conn.clock() + budget
        self._command_name = name
        self._command_budget = budget
        self._waiter = waiter
        if deadline < conn.timer_when:
            conn.arm(deadline)
        if self._turns:
            waiter.add_done_callback(self._watch)  # someone queued behind: see _queued
        try:
            conn.transport.write(line)
        except BaseException:
            self._waiter = None
            self._release()
            raise
        return waiter

    async def _queued(self, line: bytes, name: str, timeout: float | None) -> AGIReply:
        """Wait for the command in flight (FIFO), then send (an ``asyncio.Lock`` costs more)."""
        turn: asyncio.Future[None] = self._conn.loop.create_future()
        if self._turns is None:
            self._turns = deque()
        self._turns.append(turn)
        if self._waiter is not None:
            # If its task is cancelled, nothing else may come to hand the turn on.
            self._waiter.add_done_callback(self._watch)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release()  # handed the turn, then cancelled: pass it on
            raise
        return await self._start(line, name, timeout)

    def _watch(self, waiter: asyncio.Future[AGIReply]) -> None:
        if waiter is self._waiter and waiter.cancelled():
            self._abandoned()

    def _release(self) -> None:
        """The command holding the turn is done with it: hand it to the next, or free it."""
        if self._turns:
            self._next_turn()
        else:
            self._busy = False

    def _next_turn(self) -> None:
        turns = self._turns
        while turns:
            turn = turns.popleft()
            if not turn.done():
                turn.set_result(None)  # _busy stays true: the turn is handed over
                return
        self._busy = False

    def _abandoned(self) -> bool:
        """Was the command in flight cancelled (its task's deadline, shutdown, a caller's own
        timeout)? Then its reply may still come and would answer the next command: refuse any
        more. Checked when the call next acts (no callback per command); true if this freed
        the turn."""
        waiter = self._waiter
        if waiter is None or not waiter.cancelled():
            return False
        self._waiter = None
        self._fail(AGIConnectionError(f"{self._command_name!r} was cancelled awaiting its reply"))
        self._release()
        return not self._busy

    def _settle(self) -> asyncio.Future[AGIReply]:
        """Take the command in flight off the call (the caller resolves the returned future)."""
        waiter = self._waiter
        assert waiter is not None
        self._waiter = None
        self._release()
        return waiter

    # -- what the connection calls ---------------------------------------------------------

    def receive(self, data: bytes) -> None:
        """Bytes from Asterisk after the handshake: settle the command in flight, or keep the
        first event nobody waited for (it decides the next command's fate)."""
        waiter = self._waiter
        if waiter is not None and waiter.cancelled():
            self._abandoned()
        if self._failure is not None or self._pending is not None:
            self._conn.transport.pause_reading()  # nothing more can matter; don't spend CPU
            return
        try:
            events = self._parser.feed(data)
        except AGIProtocolError as exc:
            error = self._fail(AGIConnectionError(str(exc)))
            if self._waiter is not None:
                self._settle().set_exception(error)
            self._conn.transport.pause_reading()
            return
        self._on_events(events)

    def receive_eof(self) -> None:
        """The peer closed (or the connection was lost)."""
        self._abandoned()
        self._on_events(self._parser.feed_eof())

    def _on_events(self, events: list[ReplyEvent]) -> None:
        for event in events:
            if self._waiter is None:
                if self._pending is None and type(event) in _DECISIVE:
                    self._pending = event
                continue
            if type(event) is AGIReply:
                if event.code == 200:
                    self._settle().set_result(event)
                elif event.code == 511:
                    self._settle().set_exception(self._hangup(event.raw))
                else:
                    first = event.raw.splitlines()[0]
                    error = AGICommandError(f"{self._command_name!r} refused: {first}", event)
                    self._settle().set_exception(error)
            elif type(event) is HangupNotice:
                self._settle().set_exception(self._hangup("HANGUP notice"))
            elif type(event) is Closed:
                self._settle().set_exception(self._hangup("EOF"))
            # Progress ("100 Trying"): the final reply is still to come.

    def check_deadline(self, now: float) -> float | None:
        """The connection's timer fired: expire the command in flight, or say when it is due."""
        self._abandoned()
        if self._waiter is None:
            return None
        if now + _SLACK >= self._command_deadline:
            error = self._fail(
                AGITimeout(
                    f"no reply to {self._command_name!r} within "
                    f"{self._command_budget:g} s ({self.uniqueid})"
                )
            )
            self._settle().set_exception(error)
            return None
        return self._command_deadline

    def _fail(self, error: AGIError) -> AGIError:
        """Make the call unusable (the first failure sticks); return ``error`` to raise."""
        if self._failure is None:
            # A copy: the raised instance gets a traceback whose frames hold this call, and
            # keeping it here would be a reference cycle left to the cyclic GC.
            self._failure = type(error)(*error.args)
        return error

    def _hangup(self, why: str) -> AGIHangup:
        self.hung_up = True
        error = AGIHangup(f"caller hung up ({why}; uniqueid={self.uniqueid})")
        self._fail(error)
        return error

    def _unusable(self) -> AGIError:
        """The error a command raises unsent once the call cannot be used (a fresh copy)."""
        event = self._pending
        if event is not None and self._failure is None:
            self._pending = None
            if type(event) is HangupNotice:
                self._hangup("HANGUP notice")
            elif type(event) is Closed:
                self._hangup("EOF")
            else:
                assert isinstance(event, AGIReply)
                self._fail(AGIConnectionError(f"unsolicited reply from Asterisk: {event.raw!r}"))
        failure = self._failure
        assert failure is not None
        return type(failure)(*failure.args)


_DECISIVE: Final = frozenset({AGIReply, HangupNotice, Closed})

Script = Callable[[AGICall], Awaitable[None]]


class _Connection(asyncio.Protocol):
    """One FastAGI connection: the handshake, then the call's task and its I/O.

    One entry in the server's :class:`_Deadlines` serves every deadline: it is set at the
    earliest one and, when due, handles what expired and is set at the next; a later deadline
    never moves it (nothing per command).
    """

    def __init__(self, server: FastAGIServer, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.loop = loop
        self._deadlines = server._deadlines_on(loop)
        self.clock = self._deadlines.clock
        self.transport: asyncio.Transport = _NO_TRANSPORT
        self.call: AGICall | None = None
        self.task: asyncio.Task[None] | None = None
        # Set by serve_connection/serve_socket: learns the routed script (None: no call).
        self.ready: asyncio.Future[Script | None] | None = None
        self.finished = False
        self._env: EnvironmentParser | None = EnvironmentParser(server._max_handshake)
        self._received = 0
        self._lost = False  # connection_lost() was called
        self._entry: list[Any] | None = None  # in self._deadlines
        self.timer_when = _NEVER  # when the entry is due (commands check this before arm())
        self._handshake_deadline = 0.0
        self._call_deadline = 0.0
        self._call_expired = False
        self._abort_timer: asyncio.TimerHandle | None = None
        self._done: asyncio.Future[None] | None = None

    # -- protocol callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport; not isinstance-checked, since uvloop's TCPTransport does not
        # subclass asyncio.Transport and the server must run on either loop.
        self.transport = cast(asyncio.Transport, transport)
        _small_reads(transport)
        self.server._connections.add(self)
        self._handshake_deadline = self.clock() + self.server.handshake_timeout
        self.arm(self._handshake_deadline)

    def data_received(self, data: bytes) -> None:
        call = self.call
        if call is not None:
            call.receive(data)
            return
        parser = self._env
        if parser is None:
            return  # the handshake failed; we are closing
        self._received += len(data)
        try:
            env = parser.feed(data)
        except AGIProtocolError as exc:
            self.server._bad_handshakes.warn("bad FastAGI handshake from %s: %s", self._peer, exc)
            self.close()
            return
        if env is not None:
            self._route(env, parser.leftover)

    def eof_received(self) -> bool:
        call = self.call
        if call is not None:
            call.receive_eof()
        elif self._env is not None:
            if not self._received:
                # Connected and closed: a health check, not a broken peer.
                logger.debug("connection from %s closed before any byte (a probe)", self._peer())
            else:
                try:
                    self._env.feed_eof()
                except AGIProtocolError as exc:
                    self.server._bad_handshakes.warn(
                        "bad FastAGI handshake from %s: %s", self._peer, exc
                    )
            self.close()
        return True  # keep the transport: we close it when the script is done

    def connection_lost(self, exc: Exception | None) -> None:
        if self._abort_timer is not None:
            self._abort_timer.cancel()
            self._abort_timer = None
        self._lost = True
        call = self.call
        if call is not None:
            call.receive_eof()  # the call's task ends in its own time and finishes the connection
            if self.finished:
                self.call = None  # see _finish
            return
        if self._env is not None and exc is not None:
            self.server._bad_handshakes.warn(
                "FastAGI handshake from %s failed: %s", self._peer, exc
            )
        self.close()

    # -- deadlines ------------------------------------------------------------------------

    def arm(self, when: float) -> None:
        """Make sure the connection is checked (_on_timer) no later than ``when``."""
        entry = self._entry
        if entry is None or self.timer_when > when:
            if entry is not None:
                self._deadlines.cancel(entry)
            self._entry = self._deadlines.add(when, self)
            self.timer_when = when

    def _on_timer(self) -> None:
        """Our entry is due (called by _Deadlines): handle what expired, set the next check."""
        self._entry = None
        self.timer_when = _NEVER
        if self.finished:
            return
        now = self.clock()
        call = self.call
        if call is None:
            if self._env is None:
                return
            if now + _SLACK >= self._handshake_deadline:
                self.server._bad_handshakes.warn("FastAGI handshake from %s timed out", self._peer)
                self.close()
            else:
                self.arm(self._handshake_deadline)
            return
        if not self._call_expired and now + _SLACK >= self._call_deadline:
            self._call_expired = True
            if self.task is not None:
                self.task.cancel()
        command_due = call.check_deadline(now)
        if command_due is not None:
            self.arm(command_due)
        elif not self._call_expired:
            self.arm(self._call_deadline)

    # -- the call -------------------------------------------------------------------------

    def _route(self, env: AGIEnvironment, leftover: bytes) -> None:
        self._env = None
        routes = self.server._routes
        script = routes.get(env.script) or routes.get("/" + env.script)
        if script is None:
            logger.warning(
                "no FastAGI script %r (uniqueid=%s); closing so the dialplan falls back",
                env.script,
                env.uniqueid,
            )
            self.close()
            return
        call = AGICall(env, self, command_timeout=self.server.command_timeout)
        self.call = call
        if leftover:
            call.receive(leftover)
        self._call_deadline = self.clock() + self.server.call_timeout
        self.arm(self._call_deadline)
        if self.ready is not None:
            if not self.ready.done():
                self.ready.set_result(script)
        else:
            self.task = self.loop.create_task(self.run(script, call))

    async def run(self, script: Script, call: AGICall) -> None:
        """Run the script; log how it ended; close. Only a foreign cancellation propagates."""
        task = self.task
        assert task is not None, "the call's task is set before it runs"
        cancelling = task.cancelling()
        env = call.env
        try:
            await script(call)
        except AGIHangup:
            logger.info("caller hung up during %r (uniqueid=%s)", env.script, env.uniqueid)
        except asyncio.CancelledError:
            if not (self._call_expired and task.uncancel() <= cancelling):
                raise
            logger.warning(
                "AGI script %r exceeded call_timeout %g s (uniqueid=%s)",
                env.script,
                self.server.call_timeout,
                env.uniqueid,
            )
        except Exception:
            logger.exception("AGI script %r failed (uniqueid=%s)", env.script, env.uniqueid)
        finally:
            self.close()
            self._finish()

    def close(self) -> None:
        """Close the connection (abort it if the peer does not take what is left to send)."""
        if self._entry is not None:
            self._deadlines.cancel(self._entry)
            self._entry = None
            self.timer_when = _NEVER
        self._env = None
        if self.ready is not None and not self.ready.done():
            self.ready.set_result(None)
        transport = self.transport
        if not transport.is_closing():
            transport.close()
            if transport.get_write_buffer_size():
                self._abort_timer = self.loop.call_later(_CLOSE_TIMEOUT, transport.abort)
        if self.task is None:
            self._finish()

    def stop(self) -> None:
        """Server shutdown after the drain: cancel the call, or drop a pending handshake."""
        if self.task is not None:
            self.task.cancel()
        else:
            self.close()

    def _finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        if self._lost:
            # Nothing can reach the call any more: break the call <-> connection cycle, so that
            # reference counting frees both at once instead of the cyclic GC, later (measured by
            # ``python -m bench agi``: collections of these cycles were ~2 % of the CPU).
            self.call = None
        self.server._forget(self)
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    def wait_done(self) -> asyncio.Future[None]:
        if self._done is None:
            self._done = self.loop.create_future()
            if self.finished:
                self._done.set_result(None)
        return self._done

    def _peer(self) -> object:
        return self.transport.get_extra_info("peername")


class _Deadlines:
    """When each connection of a server is next due a check, in one heap with one loop timer.

    Why not a loop timer per connection: in ``python -m bench agi`` each cost ~20k instructions
    per call (a TimerHandle, and asyncio's heap comparing TimerHandles with a Python ``__lt__``).
    Here an entry is a list ``[when, seq, connection]``, compared in C. Cancelling an entry drops
    its connection (a dead entry is skipped when popped), and the heap is rebuilt once most of it
    is dead. The loop timer is armed at the earliest entry, but after it fires not sooner than
    ``_TICK`` later, so a deadline may be enforced up to ``_TICK`` late.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        # loop.time, or time.monotonic itself where that is all it does (the stdlib loop): read
        # once per command, the C function costs a fraction of the method around it.
        self.clock: Callable[[], float] = (
            time.monotonic if type(loop).time is _BASE_LOOP_TIME else loop.time
        )
        self._heap: list[list[Any]] = []
        self._seq = 0
        self._dead = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = _NEVER  # -inf while _fire runs: it arms the timer itself

    def add(self, when: float, conn: _Connection) -> list[Any]:
        """Call ``conn._on_timer()`` at ``when`` (or up to ``_TICK`` later)."""
        self._seq += 1
        entry = [when, self._seq, conn]
        heapq.heappush(self._heap, entry)
        if when < self._timer_when:
            self._arm(when)
        return entry

    def cancel(self, entry: list[Any]) -> None:
        entry[2] = None
        self._dead += 1
        heap = self._heap
        if self._dead == len(heap):
            heap.clear()  # nothing live: drop everything and the timer
            self._dead = 0
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
                self._timer_when = _NEVER
        elif self._dead > _MAX_DEAD and self._dead * 2 > len(heap):
            heap[:] = [live for live in heap if live[2] is not None]
            heapq.heapify(heap)
            self._dead = 0

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_at(when, self._fire)
        self._timer_when = when

    def _fire(self) -> None:
        self._timer = None
        self._timer_when = -_NEVER
        heap = self._heap
        now = self.clock()
        try:
            while heap and heap[0][0] <= now + _SLACK:
                entry = heapq.heappop(heap)
                conn = entry[2]
                if conn is None:
                    self._dead -= 1
                else:
                    entry[2] = None
                    conn._on_timer()  # may add entries, due ones too: this loop takes them
        finally:
            self._timer_when = _NEVER
            if self._dead == len(heap):
                heap.clear()  # only cancelled entries left: no timer for them
                self._dead = 0
            if heap:
                self._arm(max(heap[0][0], now + _TICK))


class _BadHandshakeLog:
    """Warnings about failed handshakes: the first of every ``interval`` in full, then a count.

    Why: only Asterisk should connect, so a failed handshake is worth a warning, but a flood
    of them (a port scan, a peer cut off mid-handshake again and again) would write a line per
    connection: a journal flood, and more event-loop time than the peers themselves cost
    (logging was the largest part of our work per truncated handshake in
    ``python -m bench robustness``). The rest of each interval is reported as one line when it
    ends, so nothing goes unsaid.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.total = 0  # every failed handshake since the server started
        self._until = -_NEVER  # the current interval's end
        self._untold = 0
        self._report: asyncio.TimerHandle | None = None

    def warn(self, message: str, peer: Callable[[], object], *details: object) -> None:
        """Log ``message % (peer(), *details)``, or count it if this interval logged one."""
        self.total += 1
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now >= self._until:
            self._until = now + self.interval
            logger.warning(message, peer(), *details)
            return
        self._untold += 1
        if self._report is None:
            self._report = loop.call_at(self._until, self.flush)

    def flush(self) -> None:
        """Log the count of failed handshakes not logged one by one (at the interval's end)."""
        if self._report is not None:
            self._report.cancel()
            self._report = None
        if self._untold:
            logger.warning(
                "%d more failed FastAGI handshakes in the last %g s (logged as a count only)",
                self._untold,
                self.interval,
            )
            self._untold = 0


class _NoTransport(asyncio.Transport):
    """Placeholder before ``connection_made`` (keeps ``transport`` non-optional and typed)."""

    def is_closing(self) -> bool:
        return True


_NO_TRANSPORT: Final = _NoTransport()


class FastAGIServer:
    """Routes ``agi://host:port/<script>?<query>`` to ``routes[script]``.

    Route keys are script paths without the query string (``"ivr/main"``; a leading ``/`` is
    tolerated); the query string is for the script (``call.query``), not for routing.

    ``handshake_timeout`` bounds the env exchange, ``command_timeout`` each command (the
    convenience methods add their own ``timeout_ms``), ``call_timeout`` the whole script. An
    unknown script is logged and the connection closed; the dialplan falls back. Failed
    handshakes are logged one per ``bad_handshake_log_interval`` seconds, the rest as a count
    (see :class:`_BadHandshakeLog`); :attr:`bad_handshakes` counts them all.
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
        bad_handshake_log_interval: float = 10.0,
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
        self._connections: set[_Connection] = set()
        self._idle: asyncio.Event | None = None
        self._deadlines: _Deadlines | None = None
        self._bad_handshakes = _BadHandshakeLog(bad_handshake_log_interval)
        #: What this server's calls sent and heard before (see encode and ReplyParser).
        self._encoded: dict[tuple[str, ...], bytes] = {}
        self.replies: dict[str, AGIReply] = {}

    def encode(self, parts: tuple[str, ...]) -> bytes:
        """``encode_command(*parts)``, remembered (bounded) for this server's calls.

        Why: an IVR sends the same prompts and variables on every call, and encoding is ~1 us
        of a command's ~25 (``python -m bench agi``, see docs/capacity.md "Plain path"). The
        line was checked when it was encoded; a command with an unhashable part is encoded
        every time (and refused there).
        """
        try:
            line = self._encoded.get(parts)
        except TypeError:
            return encode_command(*parts)
        if line is None:
            line = encode_command(*parts)
            if len(self._encoded) < _MAX_REMEMBERED:
                self._encoded[parts] = line
        return line

    @property
    def bad_handshakes(self) -> int:
        """Connections whose handshake failed (truncated, malformed, too large or too slow)."""
        return self._bad_handshakes.total

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with ``port=0``)."""
        if self._server is not None and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return self._port

    @property
    def active_calls(self) -> int:
        """Connections being served: in the handshake or running a script."""
        return len(self._connections)

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("FastAGIServer already started")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self, loop), self._host, self._port, backlog=self._backlog
        )
        logger.info("FastAGI listening on %s:%d", self._host, self.port)

    async def close(self, drain_timeout: float = 10.0) -> None:
        """Stop accepting, give live calls ``drain_timeout`` seconds, then cancel the rest."""
        if self._server is not None:
            self._server.close()
        if not await self._drained(drain_timeout):
            pending = list(self._connections)
            logger.warning("cancelling %d FastAGI calls still live at shutdown", len(pending))
            for conn in pending:
                conn.stop()
            await self._drained(None)
        if self._server is not None:
            await self._server.wait_closed()
        self._bad_handshakes.flush()

    async def _drained(self, timeout: float | None) -> bool:
        if not self._connections:
            return True
        if self._idle is None:
            self._idle = asyncio.Event()
        self._idle.clear()
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return not self._connections
        return True

    def _deadlines_on(self, loop: asyncio.AbstractEventLoop) -> _Deadlines:
        deadlines = self._deadlines
        if deadlines is None or deadlines.loop is not loop:
            deadlines = self._deadlines = _Deadlines(loop)
        return deadlines

    def _forget(self, conn: _Connection) -> None:
        self._connections.discard(conn)
        if not self._connections and self._idle is not None:
            self._idle.set()

    async def __aenter__(self) -> FastAGIServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def serve_socket(self, sock: socket.socket) -> None:
        """Serve one already-connected socket through the production protocol path.

        Used by the in-memory fake over a ``socketpair``. Returns when the call is over;
        cancelling it cancels the call and propagates.
        """
        loop = asyncio.get_running_loop()
        conn = _Connection(self, loop)
        conn.ready = loop.create_future()
        await loop.connect_accepted_socket(lambda: conn, sock)
        await self._serve_inline(conn)

    async def serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Serve one connection given as asyncio streams (an adapter onto the protocol path).

        Kept for callers that already hold streams; the bytes read are fed to the same
        connection object the listener uses, and commands go out on the writer's transport.
        """
        loop = asyncio.get_running_loop()
        conn = _Connection(self, loop)
        conn.ready = loop.create_future()
        conn.connection_made(writer.transport)
        pump = loop.create_task(_pump(reader, conn))
        try:
            await self._serve_inline(conn)
        finally:
            pump.cancel()
            await _close_writer(writer)

    async def _serve_inline(self, conn: _Connection) -> None:
        """Run the call's script in the current task (the connection's own ``ready`` path)."""
        conn.task = asyncio.current_task()
        assert conn.ready is not None
        try:
            script = await conn.ready
            if script is not None and conn.call is not None:
                await conn.run(script, conn.call)
        finally:
            conn.close()
            conn._finish()


async def _pump(reader: asyncio.StreamReader, conn: _Connection) -> None:
    """Feed a StreamReader's bytes to a connection (``serve_connection``'s adapter)."""
    try:
        while data := await reader.read(_READ_SIZE):
            conn.data_received(data)
        conn.eof_received()
        conn.connection_lost(None)
    except OSError as exc:
        conn.connection_lost(exc)


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
