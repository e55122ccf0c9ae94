"""In-memory fake of Asterisk's AMI side, on a real loopback TCP socket, for fast unit tests.

Why a socket and not a mock: the defects we guard against (split UTF-8, slow readers dropped
by ``writetimeout``, dead links, reconnects) live in the transport, so the client under test
must talk TCP. Why not a real Asterisk: unit tests must run in milliseconds and anywhere; the
integration tests check the same behaviour against Asterisk 22.

What it models, with the wording of Asterisk 22's ``manager.c``/``app_queue.c``:

* greeting ``Asterisk Call Manager/11.0.0``; ``Login`` with ``Username``/``Secret`` answered
  ``Authentication accepted`` then ``Event: FullyBooted``, or ``Authentication failed`` and the
  connection closed; any other action before login gets ``Permission denied``;
* ``Ping`` (``Ping: Pong``), ``QueueAdd``/``QueueRemove``/``QueuePause`` keeping member state
  (and raising ``QueueMemberAdded``/``QueueMemberRemoved``/``QueueMemberPause``),
  ``QueueStatus`` (``QueueParams``, ``QueueMember``, ``QueueEntry``, ``QueueStatusComplete``
  with ``EventList: Complete``), ``CoreShowChannels``, ``Originate``, ``Command`` (``Output:``
  lines), ``Events``, ``Logoff``; anything else ``Invalid/unknown command``;
* ``writetimeout``: a client that does not read fast enough (our send buffer stays full for
  longer than ``writetimeout``, 100 ms by default as in manager.conf) is disconnected;
* faults on demand: :meth:`FakeAMIServer.drop_connections`, :attr:`FakeAMIServer.silent`
  (no answers at all: a dead link), :meth:`FakeAMIServer.pause_accepting`, raw bytes.

A pluggable ``handler(session, action)`` may answer any action first: return a list of
messages (mappings or ``(key, value)`` pairs, or raw ``bytes``) to send, ``[]`` to send nothing
(an action that never gets an answer), or ``None`` to fall back to the built-in behaviour.

Example::

    async with FakeAMIServer(username="u", secret="s") as fake:
        fake.add_channel(Channel="PJSIP/trunk-00000001", Uniqueid="1700000000.1")
        async with AMIClient("127.0.0.1", fake.port, "u", "s", ping_interval=0.2) as ami:
            await ami.connected.wait()
            await ami.action("QueueAdd", Queue="helpline", Interface="PJSIP/agent0001")
            members = await ami.action_list("QueueStatus", Queue="helpline")
            await fake.push_event("Hangup", {"Uniqueid": "1700000000.1", "Cause": "16"})
            await fake.drop_connections()  # the client reconnects and reconciles
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from core.protocols.ami import (
    AMIGreeting,
    AMIMessage,
    AMIParser,
    AMIProtocolError,
    FieldsArg,
    encode_message,
    iter_fields,
)

__all__ = [
    "ActionHandler",
    "FakeAMIServer",
    "FakeAMISession",
    "FakeQueueMember",
    "FakeStats",
    "Reply",
]

#: A message to send: fields (mapping or pairs), or raw bytes sent as they are.
ReplyItem = FieldsArg | bytes
Reply = Sequence[ReplyItem]
ActionHandler = Callable[["FakeAMISession", AMIMessage], Awaitable[Reply | None] | Reply | None]


@dataclass(slots=True)
class FakeQueueMember:
    """One app_queue member as ``QueueStatus`` reports it."""

    interface: str
    name: str
    state_interface: str
    penalty: int = 0
    paused: bool = False
    paused_reason: str = ""
    #: ast_device_state: 1 = NOT_INUSE, 2 = INUSE, 5 = UNAVAILABLE...
    status: int = 1
    calls_taken: int = 0
    dynamic: bool = True
    in_call: bool = False
    wrapuptime: int = 0
    login_time: int = field(default_factory=lambda: int(time.time()))


def _member_state(m: FakeQueueMember) -> list[tuple[str, str]]:
    """The state fields app_queue writes for a member, in its order (QueueMember and
    QueueMemberStatus share them)."""
    return [
        ("StateInterface", m.state_interface),
        ("Membership", "dynamic" if m.dynamic else "static"),
        ("Penalty", str(m.penalty)),
        ("CallsTaken", str(m.calls_taken)),
        ("LastCall", "0"),
        ("LastPause", "0"),
        ("LoginTime", str(m.login_time)),
        ("InCall", "1" if m.in_call else "0"),
        ("Status", str(m.status)),
        ("Paused", "1" if m.paused else "0"),
        ("PausedReason", m.paused_reason),
    ]


@dataclass(slots=True)
class FakeStats:
    connections: int = 0
    disconnects: int = 0
    logins: int = 0
    login_failures: int = 0
    writetimeout_drops: int = 0


class FakeAMISession:
    """One client connection as the fake sees it."""

    def __init__(
        self, server: FakeAMIServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.authenticated = False
        self.username: str | None = None
        self.closed = False
        #: Actions this session sent, in order.
        self.actions: list[AMIMessage] = []
        #: Set while the raw bytes pushed so far end on a message boundary (``\r\n\r\n``).
        #: Asterisk's session thread writes each message whole: TCP may cut it into any reads,
        #: but an action's answer never lands inside an event. So an answer waits for this;
        #: without it a Ping's answer (and its ``Timestamp``) spliced into a half-pushed
        #: Hangup made one corrupt message: the call ended "now" and the Ping was lost.
        self.at_boundary = asyncio.Event()
        self.at_boundary.set()
        self._raw_tail = b""

    async def send(self, data: bytes, *, raw: bool = False) -> bool:
        """Write ``data``; drop the client if it is not read within ``writetimeout``.

        Asterisk writes with a ``writetimeout`` deadline and closes a session whose writes
        cannot complete in time; it does not buffer events for a slow reader. ``raw`` bytes
        (:meth:`FakeAMIServer.push_raw`) may stop mid-message: until the rest follows, answers
        wait (:meth:`send_whole`).
        """
        if self.closed:
            return False
        if raw and data:
            self._raw_tail = (self._raw_tail + data)[-4:]
            if self._raw_tail.endswith(b"\r\n\r\n"):
                self.at_boundary.set()
            else:
                self.at_boundary.clear()
        try:
            self.writer.write(data)
            async with asyncio.timeout(self.server.writetimeout):
                await self.writer.drain()
        except TimeoutError:
            self.server.stats.writetimeout_drops += 1
            self.abort()
            return False
        except (ConnectionError, OSError):
            self.abort()
            return False
        return True

    async def send_whole(self, data: bytes) -> bool:
        """Write a whole message once the raw stream is at a message boundary."""
        while not self.at_boundary.is_set():  # re-checked: a newer push may have cut again
            await self.at_boundary.wait()
        return await self.send(data)

    async def send_message(self, fields: FieldsArg) -> bool:
        return await self.send_whole(encode_message(iter_fields(fields)))

    async def send_event(self, name: str, fields: FieldsArg | None = None) -> bool:
        return await self.send_whole(encode_message([("Event", name), *iter_fields(fields)]))

    def abort(self) -> None:
        """Drop the connection at once (no flush), as a dying Asterisk or a cut cable would."""
        self.closed = True
        self.at_boundary.set()  # nothing waits on a dead session
        self.writer.transport.abort()


def _response(
    action: AMIMessage,
    response: str,
    message: str | None = None,
    *extra: tuple[str, str],
    event_list: str | None = None,
) -> list[tuple[str, str]]:
    """A response laid out as ``astman_send_response_full`` writes it."""
    pairs = [("Response", response)]
    if action.action_id:
        pairs.append(("ActionID", action.action_id))
    if event_list:
        pairs.append(("EventList", event_list))
    if message is not None:
        pairs.append(("Message", message))
    pairs.extend(extra)
    return pairs


def _list_complete(action: AMIMessage, event: str, count: int) -> list[tuple[str, str]]:
    pairs = [("Event", event)]
    if action.action_id:
        pairs.append(("ActionID", action.action_id))
    pairs += [("EventList", "Complete"), ("ListItems", str(count))]
    return pairs


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "yes", "true", "y", "t", "on")


class FakeAMIServer:
    """A loopback AMI server (see the module docstring); ``async with`` it or :meth:`start` it."""

    def __init__(
        self,
        username: str = "helpline_test",
        secret: str = "test-secret",
        *,
        handler: ActionHandler | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        version: str = "11.0.0",
        writetimeout: float = 0.1,
        fully_booted: bool = True,
        auth_delay: float = 0.0,
        send_buffer: int = 64 * 1024,
        queues: Iterable[str] = ("helpline",),
    ) -> None:
        self.username = username
        self.secret = secret
        self.handler = handler
        self.host = host
        self._port = port
        self.version = version
        self.writetimeout = writetimeout
        self.fully_booted = fully_booted
        #: Asterisk sleeps 1 s before refusing a login; 0 here keeps tests fast.
        self.auth_delay = auth_delay
        self.send_buffer = send_buffer
        #: When true the server reads but answers nothing and sends nothing (a dead link).
        self.silent = False
        self.queues: dict[str, dict[str, FakeQueueMember]] = {q: {} for q in queues}
        #: Callers waiting per queue (fields of ``QueueEntry``: Channel, Uniqueid, ...).
        self.entries: dict[str, list[dict[str, str]]] = {q: [] for q in self.queues}
        #: Live channels, as ``CoreShowChannel`` fields.
        self.channels: list[dict[str, str]] = []
        #: ``Command`` answers: CLI command -> output text.
        self.commands: dict[str, str] = {
            "core show version": "Asterisk 22.9.0 built by fake @ loopback on x86_64 running Linux"
        }
        #: Every action received by any session, in order.
        self.actions: list[AMIMessage] = []
        self.sessions: set[FakeAMISession] = set()
        self.stats = FakeStats()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = time.monotonic()
        self._changed = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        """The bound port (0 before :meth:`start`)."""
        return self._port

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self.host, self._port, reuse_address=True
        )
        self._port = self._server.sockets[0].getsockname()[1]
        self._started = time.monotonic()

    async def close(self) -> None:
        """Stop listening, drop every session and wait for their tasks."""
        self.pause_accepting()
        await self.drop_connections()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def pause_accepting(self) -> None:
        """Stop listening (new connections are refused); live sessions stay up."""
        if self._server is not None:
            self._server.close()
            self._server = None

    async def resume_accepting(self) -> None:
        """Listen again on the same port."""
        if self._server is None:
            await self.start()

    async def drop_connections(self) -> None:
        """Abort every session (no Goodbye), as an Asterisk crash or a cut link would."""
        for session in list(self.sessions):
            session.abort()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)

    # ------------------------------------------------------------------ test helpers

    def actions_named(self, name: str) -> list[AMIMessage]:
        lname = name.lower()
        return [a for a in self.actions if (a.get("Action") or "").lower() == lname]

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` is true; re-checked on each change the fake sees (an
        action, a connection, a login, a disconnect). Bound it with ``asyncio.timeout``."""
        while not predicate():
            self._changed.clear()
            await self._changed.wait()

    async def wait_for_action(self, name: str, count: int = 1) -> AMIMessage:
        """Wait until ``count`` actions called ``name`` arrived; return the ``count``-th."""
        await self.wait_until(lambda: len(self.actions_named(name)) >= count)
        return self.actions_named(name)[count - 1]

    def add_member(
        self,
        queue: str,
        interface: str,
        *,
        name: str | None = None,
        paused: bool = False,
        penalty: int = 0,
        dynamic: bool = False,
    ) -> FakeQueueMember:
        """Add a member directly (a static member from queues.conf by default)."""
        member = FakeQueueMember(
            interface, name or interface, interface, penalty, paused, dynamic=dynamic
        )
        self.queues.setdefault(queue, {})[interface] = member
        self.entries.setdefault(queue, [])
        return member

    def add_channel(self, **fields: str) -> dict[str, str]:
        """Add a live channel; ``fields`` are ``CoreShowChannel`` headers (Channel, Uniqueid...)."""
        self.channels.append(dict(fields))
        return self.channels[-1]

    async def push_event(self, name: str, fields: FieldsArg | None = None, **kw: str) -> int:
        """Send ``Event: name`` to every logged-in session; returns how many got it in time."""
        pairs = [("Event", name), *iter_fields(fields), *kw.items()]
        return await self.push_raw(encode_message(pairs))

    async def push_raw(self, data: bytes, *, logged_in_only: bool = True) -> int:
        """Send raw bytes to every (logged-in) session, concurrently, under ``writetimeout``."""
        targets = [s for s in self.sessions if s.authenticated or not logged_in_only]
        results = await asyncio.gather(*(s.send(data, raw=True) for s in targets))
        return sum(results)

    # ------------------------------------------------------------------ serving

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        writer.transport.set_write_buffer_limits(high=self.send_buffer)
        session = FakeAMISession(self, reader, writer)
        self.sessions.add(session)
        self.stats.connections += 1
        self._changed.set()
        try:
            if not self.silent:
                await session.send(f"Asterisk Call Manager/{self.version}\r\n".encode())
            parser = AMIParser(expect_greeting=False)
            while not session.closed:
                data = await reader.read(65536)
                if not data:
                    break
                parser.feed(data)
                while not session.closed:
                    try:
                        item = parser.next_event()
                    except AMIProtocolError:
                        continue
                    if item is None:
                        break
                    if isinstance(item, AMIGreeting):  # pragma: no cover - no greeting expected
                        continue
                    self.actions.append(item)
                    session.actions.append(item)
                    self._changed.set()
                    if not self.silent:
                        await self._handle(session, item)
        except (ConnectionError, OSError):
            pass
        finally:
            self.sessions.discard(session)
            self.stats.disconnects += 1
            session.abort()
            self._tasks.discard(task)
            self._changed.set()

    async def _reply(self, session: FakeAMISession, reply: Reply) -> None:
        for item in reply:
            data = item if isinstance(item, bytes) else encode_message(iter_fields(item))
            if not await session.send_whole(data):
                return

    async def _broadcast(self, pairs: list[tuple[str, str]]) -> None:
        await self.push_raw(encode_message(pairs))

    async def _handle(self, session: FakeAMISession, action: AMIMessage) -> None:
        name = (action.get("Action") or "").strip()
        lname = name.lower()
        if not name:
            await self._reply(session, [_response(action, "Error", "Missing action in request")])
            return
        if lname == "login":
            await self._login(session, action)
            return
        if not session.authenticated and lname not in ("logoff", "challenge"):
            await self._reply(session, [_response(action, "Error", "Permission denied")])
            return
        if self.handler is not None:
            result = self.handler(session, action)
            if inspect.isawaitable(result):
                result = await result
            if result is not None:
                await self._reply(session, result)
                return
        method = getattr(self, f"_action_{lname}", None)
        if method is None:
            await self._reply(
                session,
                [
                    _response(
                        action,
                        "Error",
                        f"Invalid/unknown command: {name}. "
                        "Use Action: ListCommands to show available commands.",
                    )
                ],
            )
            return
        await method(session, action)

    async def _login(self, session: FakeAMISession, action: AMIMessage) -> None:
        if session.authenticated:
            await self._reply(session, [_response(action, "Success", "Already authenticated")])
            return
        if action.get("Username") != self.username or action.get("Secret") != self.secret:
            self.stats.login_failures += 1
            if self.auth_delay:
                await asyncio.sleep(self.auth_delay)
            await self._reply(session, [_response(action, "Error", "Authentication failed")])
            session.abort()
            return
        session.authenticated = True
        session.username = self.username
        self.stats.logins += 1
        self._changed.set()
        reply: list[ReplyItem] = [_response(action, "Success", "Authentication accepted")]
        if self.fully_booted:
            uptime = str(int(time.monotonic() - self._started))
            reply.append(
                [
                    ("Event", "FullyBooted"),
                    ("Privilege", "system,all"),
                    ("Uptime", uptime),
                    ("LastReload", uptime),
                    ("Status", "Fully Booted"),
                ]
            )
        await self._reply(session, reply)

    # ------------------------------------------------------------------ built-in actions

    async def _action_logoff(self, session: FakeAMISession, action: AMIMessage) -> None:
        await self._reply(session, [_response(action, "Goodbye", "Thanks for all the fish.")])
        with contextlib.suppress(Exception):
            session.writer.close()
        session.closed = True

    async def _action_ping(self, session: FakeAMISession, action: AMIMessage) -> None:
        now = time.time()
        reply = _response(action, "Success", None, ("Ping", "Pong"), ("Timestamp", f"{now:.6f}"))
        await self._reply(session, [reply])

    async def _action_events(self, session: FakeAMISession, action: AMIMessage) -> None:
        on = (action.get("EventMask") or "").lower() != "off"
        reply = _response(action, "Success", None, ("Events", "On" if on else "Off"))
        await self._reply(session, [reply])

    async def _action_originate(self, session: FakeAMISession, action: AMIMessage) -> None:
        await self._reply(session, [_response(action, "Success", "Originate successfully queued")])

    async def _action_command(self, session: FakeAMISession, action: AMIMessage) -> None:
        command = (action.get("Command") or "").strip()
        if not command:
            await self._reply(session, [_response(action, "Error", "No command provided")])
            return
        output = self.commands.get(command)
        status = "Success"
        if output is None:
            status = "Error"
            output = f"No such command '{command}' (type 'core show help {command}' for help)"
        reply = _response(
            action,
            status,
            "Command output follows",
            *(("Output", line) for line in output.rstrip("\n").split("\n")),
        )
        await self._reply(session, [reply])

    def _member_event(self, event: str, queue: str, m: FakeQueueMember) -> list[tuple[str, str]]:
        return [
            ("Event", event),
            ("Privilege", "agent,all"),
            ("Queue", queue),
            ("MemberName", m.name),
            ("Interface", m.interface),
            *_member_state(m),
            ("Ringinuse", "0"),
            ("Wrapuptime", str(m.wrapuptime)),
        ]

    async def _action_queueadd(self, session: FakeAMISession, action: AMIMessage) -> None:
        queue, interface = action.get("Queue"), action.get("Interface")
        if not queue:
            await self._reply(session, [_response(action, "Error", "'Queue' not specified.")])
            return
        if not interface:
            await self._reply(session, [_response(action, "Error", "'Interface' not specified.")])
            return
        members = self.queues.get(queue)
        if members is None:
            msg = "Unable to add interface to queue: No such queue"
        elif interface in members:
            msg = "Unable to add interface: Already there"
        else:
            member = FakeQueueMember(
                interface,
                action.get("MemberName") or interface,
                action.get("StateInterface") or interface,
                int(action.get("Penalty") or 0),
                _truthy(action.get("Paused")),
                action.get("Reason") or "",
            )
            members[interface] = member
            await self._reply(session, [_response(action, "Success", "Added interface to queue")])
            await self._broadcast(self._member_event("QueueMemberAdded", queue, member))
            return
        await self._reply(session, [_response(action, "Error", msg)])

    async def _action_queueremove(self, session: FakeAMISession, action: AMIMessage) -> None:
        queue, interface = action.get("Queue"), action.get("Interface")
        if not queue or not interface:
            err = "Need 'Queue' and 'Interface' parameters."
            await self._reply(session, [_response(action, "Error", err)])
            return
        members = self.queues.get(queue)
        if members is None:
            msg = "Unable to remove interface from queue: No such queue"
        elif interface not in members:
            msg = "Unable to remove interface: Not there"
        elif not members[interface].dynamic:
            msg = "Member not dynamic"
        else:
            member = members.pop(interface)
            await self._reply(
                session, [_response(action, "Success", "Removed interface from queue")]
            )
            await self._broadcast(self._member_event("QueueMemberRemoved", queue, member))
            return
        await self._reply(session, [_response(action, "Error", msg)])

    async def _action_queuepause(self, session: FakeAMISession, action: AMIMessage) -> None:
        interface, paused_s = action.get("Interface"), action.get("Paused")
        if not interface or not paused_s:
            err = "Need 'Interface' and 'Paused' parameters."
            await self._reply(session, [_response(action, "Error", err)])
            return
        paused = _truthy(paused_s)
        queue_filter = action.get("Queue")
        changed: list[tuple[str, FakeQueueMember]] = []
        for qname, members in self.queues.items():
            if queue_filter and qname != queue_filter:
                continue
            member = members.get(interface)
            if member is not None:
                member.paused = paused
                member.paused_reason = (action.get("Reason") or "") if paused else ""
                changed.append((qname, member))
        if not changed:
            await self._reply(session, [_response(action, "Error", "Interface not found")])
            return
        text = "Interface paused successfully" if paused else "Interface unpaused successfully"
        await self._reply(session, [_response(action, "Success", text)])
        for qname, member in changed:
            await self._broadcast(self._member_event("QueueMemberPause", qname, member))

    async def _action_queuestatus(self, session: FakeAMISession, action: AMIMessage) -> None:
        queue_filter, member_filter = action.get("Queue"), action.get("Member")
        idtext = [("ActionID", action.action_id)] if action.action_id else []
        out: list[ReplyItem] = [
            _response(action, "Success", "Queue status will follow", event_list="start")
        ]
        for qname, members in self.queues.items():
            if queue_filter and qname.lower() != queue_filter.lower():
                continue
            entries = self.entries.get(qname, [])
            out.append(
                [
                    ("Event", "QueueParams"),
                    ("Queue", qname),
                    ("Max", "0"),
                    ("Strategy", "rrmemory"),
                    ("Calls", str(len(entries))),
                    ("Holdtime", "0"),
                    ("TalkTime", "0"),
                    ("Completed", "0"),
                    ("Abandoned", "0"),
                    ("ServiceLevel", "60"),
                    ("ServicelevelPerf", "0.0"),
                    ("ServicelevelPerf2", "0.0"),
                    ("Weight", "0"),
                    *idtext,
                ]
            )
            for m in members.values():
                if member_filter and member_filter not in (m.interface, m.name):
                    continue
                out.append(
                    [
                        ("Event", "QueueMember"),
                        ("Queue", qname),
                        ("Name", m.name),
                        ("Location", m.interface),
                        *_member_state(m),
                        ("Wrapuptime", str(m.wrapuptime)),
                        *idtext,
                    ]
                )
            for pos, entry in enumerate(entries, 1):
                out.append(
                    [
                        ("Event", "QueueEntry"),
                        ("Queue", qname),
                        ("Position", str(pos)),
                        ("Channel", entry.get("Channel", "")),
                        ("Uniqueid", entry.get("Uniqueid", "")),
                        ("CallerIDNum", entry.get("CallerIDNum", "unknown")),
                        ("CallerIDName", entry.get("CallerIDName", "unknown")),
                        ("ConnectedLineNum", entry.get("ConnectedLineNum", "unknown")),
                        ("ConnectedLineName", entry.get("ConnectedLineName", "unknown")),
                        ("Wait", entry.get("Wait", "0")),
                        ("Priority", entry.get("Priority", "0")),
                        *idtext,
                    ]
                )
        out.append(_list_complete(action, "QueueStatusComplete", len(out) - 1))
        await self._reply(session, out)

    async def _action_coreshowchannels(self, session: FakeAMISession, action: AMIMessage) -> None:
        idtext = [("ActionID", action.action_id)] if action.action_id else []
        out: list[ReplyItem] = [
            _response(action, "Success", "Channels will follow", event_list="start")
        ]
        for chan in self.channels:
            out.append([("Event", "CoreShowChannel"), *idtext, *chan.items()])
        out.append(_list_complete(action, "CoreShowChannelsComplete", len(self.channels)))
        await self._reply(session, out)
