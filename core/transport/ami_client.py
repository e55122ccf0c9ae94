"""Thin asyncio AMI client: login, reconnect, ping watchdog, timeouts, bounded event fan-out.

All protocol logic lives in :mod:`core.protocols.ami`; this module only moves bytes and time.
Rules it keeps (each one a panoramisk defect or an Asterisk fact from DESIGN.md):

* Every action has a deadline (:class:`AMITimeout`). An action called while the link is down
  fails at once with :class:`AMIDisconnected`; it never waits for a reconnect.
* Actions pending when the link drops fail with :class:`AMIDisconnected` and are **never
  re-sent**: a re-sent ``Originate`` dials a citizen twice. The caller decides (after
  reconciling with ``CoreShowChannels``).
* ``Response: Error`` raises :class:`AMIActionError` carrying the response (the chosen
  convention: callers never have to remember to check a status field).
* A Ping every ``ping_interval``; no answer within ``ping_timeout`` means a dead link: close
  and reconnect with capped exponential backoff and jitter.
* Asterisk drops a reader that is 100 ms slow (``writetimeout``) and never replays events, so
  the reader never waits for a subscriber: each subscription is a bounded queue; on overflow the
  event is dropped, counted, and the subscription is marked :attr:`Subscription.needs_resync`
  (also set when the link drops). Services then rebuild state from ``QueueStatus`` /
  ``CoreShowChannels``, which they also do in an :meth:`AMIClient.add_on_connect` hook after
  every (re)connect.
* An exception in a subscriber, a filter or a hook is logged and counted; it never touches the
  link. ``CancelledError`` is never swallowed.

Example::

    async with AMIClient("127.0.0.1", 5038, "helpline_queue_manager", secret) as ami:
        sub = ami.subscribe(filter={"QueueMemberStatus", "QueueCallerJoin"})
        await ami.connected.wait()
        members = await ami.action_list("QueueStatus", {"Queue": "helpline"})
        async for event in sub:
            ...
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from core.protocols.ami import (
    ActionTracker,
    AMIBadGreeting,
    AMIGreeting,
    AMIMessage,
    AMIParser,
    AMIProtocolError,
    FieldsArg,
    PendingAction,
    encode_action,
    iter_fields,
)

__all__ = [
    "AMIActionError",
    "AMIAuthError",
    "AMIClient",
    "AMIDeadLink",
    "AMIDisconnected",
    "AMIError",
    "AMIStats",
    "AMISubscriptionClosed",
    "AMITimeout",
    "EventFilter",
    "EventHandler",
    "OnConnectHook",
    "Subscription",
]

log = logging.getLogger(__name__)

_READ_SIZE = 64 * 1024


class AMIError(Exception):
    """Base of the client's errors."""


class AMIDisconnected(AMIError):
    """No link to Asterisk (now, or it dropped before the answer came). Nothing was re-sent."""


class AMIDeadLink(AMIDisconnected):
    """The ping watchdog got no answer in time; the link is being closed."""


class AMITimeout(AMIError, TimeoutError):
    """No response within the action's deadline. The action may still have run in Asterisk."""


class AMIAuthError(AMIError):
    """Asterisk refused the login (``Response: Error``, ``Message: Authentication failed``)."""


class AMISubscriptionClosed(AMIError):
    """The subscription (or the client) was closed."""


class AMIActionError(AMIError):
    """Asterisk answered ``Response: Error``; :attr:`response` is the whole message."""

    def __init__(self, action: str, response: AMIMessage) -> None:
        self.action = action
        self.response = response
        self.message = response.message or ""
        super().__init__(f"AMI {action} failed: {self.message or response!r}")


EventFilter = Callable[[AMIMessage], bool] | str | Iterable[str] | None
"""Which events a subscription wants: event names (any case), a predicate, or ``None`` (all)."""
EventHandler = Callable[[AMIMessage], Awaitable[None] | None]
OnConnectHook = Callable[["AMIClient"], Awaitable[None]]


class _NameFilter:
    """A filter by event names (any case): the client routes these by name, without a call."""

    __slots__ = ("names",)

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names

    def __call__(self, msg: AMIMessage) -> bool:
        return msg.name.lower() in self.names


def _compile_filter(flt: EventFilter) -> Callable[[AMIMessage], bool] | None:
    if flt is None:
        return None
    if isinstance(flt, str):
        return _NameFilter(frozenset({flt.lower()}))
    if callable(flt):
        return flt
    return _NameFilter(frozenset(name.lower() for name in flt))


class Subscription:
    """A bounded queue of events for one consumer; iterate it with ``async for``.

    The client's reader only ever calls :meth:`_offer` or :meth:`_put`, which never block: when
    the queue is full the event is dropped, :attr:`dropped` counts it and :attr:`needs_resync`
    turns true. The reader wakes the consumer once per read, not per event.
    """

    def __init__(self, maxsize: int, flt: EventFilter = None, *, name: str = "") -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.maxsize = maxsize
        self.name = name
        self._filter = _compile_filter(flt)
        self._items: deque[AMIMessage] = deque()
        self._wakeup = asyncio.Event()
        self._closed = False
        self._on_close: Callable[[Subscription], None] | None = None
        #: Events dropped because the queue was full.
        self.dropped = 0
        #: Events accepted into the queue.
        self.delivered = 0
        #: Filter calls that raised (the event was skipped for this subscription only).
        self.filter_errors = 0
        #: Handler calls that raised (for subscriptions made by :meth:`AMIClient.add_handler`).
        self.handler_errors = 0
        #: Events may have been missed (overflow or link loss): rebuild state from queries.
        self.needs_resync = False

    def __repr__(self) -> str:
        return (
            f"<Subscription {self.name!r} size={len(self._items)}/{self.maxsize} "
            f"dropped={self.dropped} resync={self.needs_resync} closed={self._closed}>"
        )

    @property
    def closed(self) -> bool:
        return self._closed

    def qsize(self) -> int:
        return len(self._items)

    def ack_resync(self) -> bool:
        """Return :attr:`needs_resync` and clear it (call just before rebuilding state)."""
        flag, self.needs_resync = self.needs_resync, False
        return flag

    def queued(self) -> list[AMIMessage]:
        """The events received and not yet read, oldest first (they stay queued)."""
        return list(self._items)

    def get_nowait(self) -> AMIMessage | None:
        return self._items.popleft() if self._items else None

    async def get(self) -> AMIMessage:
        """Next event; raises :class:`AMISubscriptionClosed` once closed and drained."""
        while not self._items:
            if self._closed:
                raise AMISubscriptionClosed(f"subscription {self.name!r} closed")
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._items.popleft()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> AMIMessage:
        try:
            return await self.get()
        except AMISubscriptionClosed:
            raise StopAsyncIteration from None

    def close(self) -> None:
        """Unsubscribe; queued events can still be read, then iteration ends."""
        if self._closed:
            return
        self._closed = True
        self._wakeup.set()
        if self._on_close is not None:
            self._on_close(self)

    def _mark_resync(self) -> None:
        self.needs_resync = True

    def _wake(self) -> None:
        """Wake the consumer if events wait (the reader calls this once per read)."""
        if self._items:
            self._wakeup.set()

    def _offer(self, msg: AMIMessage) -> None:
        """Called by the reader for every event: never blocks, never raises."""
        if self._closed:
            return
        if self._filter is not None:
            try:
                if not self._filter(msg):
                    return
            except Exception:
                self.filter_errors += 1
                log.exception("AMI subscription %r: filter raised; event skipped", self.name)
                return
        self._put(msg)

    def _put(self, msg: AMIMessage) -> None:
        """Queue an event that passed the filter (the client checked a name filter itself)."""
        if self._closed:
            return
        if len(self._items) >= self.maxsize:
            self.dropped += 1
            if not self.needs_resync:
                log.warning(
                    "AMI subscription %r full (%d): dropping events, resync needed",
                    self.name,
                    self.maxsize,
                )
            self.needs_resync = True
            return
        self._items.append(msg)
        self.delivered += 1


@dataclass(slots=True)
class AMIStats:
    """Counters for metrics and tests."""

    connect_attempts: int = 0
    logins: int = 0
    login_failures: int = 0
    disconnects: int = 0
    dead_links: int = 0
    protocol_errors: int = 0
    events: int = 0
    unsolicited: int = 0
    hook_errors: int = 0
    actions_failed_on_disconnect: int = 0


class AMIClient:
    """One AMI login, kept alive. See the module docstring for the rules it keeps.

    Lifecycle: ``await client.start()`` (or ``async with client:``) runs :meth:`run` in a task;
    :meth:`close` stops it. A service that supervises its own tasks may instead run
    ``tg.create_task(client.run())`` and cancel it.

    State for services: :attr:`connected` (set while logged in), :attr:`fully_booted` (set once
    Asterisk's ``FullyBooted`` event arrived on this link), :attr:`generation` (counts successful
    logins) and :meth:`add_on_connect` hooks, run after each login once Asterisk is fully booted
    (or ``boot_wait`` seconds passed), to reconcile state.
    """

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        action_timeout: float = 10.0,
        ping_interval: float = 5.0,
        ping_timeout: float | None = None,
        connect_timeout: float = 5.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        event_queue_size: int = 10_000,
        events: str | None = "on",
        boot_wait: float = 10.0,
        name: str = "",
        rng: random.Random | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self._secret = secret
        self.action_timeout = action_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout if ping_timeout is not None else ping_interval
        self.connect_timeout = connect_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.event_queue_size = event_queue_size
        self.events = events
        self.boot_wait = boot_wait
        self.name = name or f"{username}@{host}:{port}"
        self._rng = rng or random.Random()

        #: Set while logged in; cleared the moment the link is lost.
        self.connected = asyncio.Event()
        #: Set when ``FullyBooted`` arrived on the current link.
        self.fully_booted = asyncio.Event()
        #: Number of successful logins so far; a change means "state may be stale".
        self.generation = 0
        self.stats = AMIStats()
        #: Last connection/login error, for health endpoints.
        self.last_error: BaseException | None = None
        #: ``time.monotonic()`` of the last bytes Asterisk sent (a Ping's answer at least every
        #: ``ping_interval``): how fresh ``/health``'s view of Asterisk is.
        self.last_heard: float | None = None
        #: AMI version from the greeting of the current/last link.
        self.server_version: str | None = None

        self._subs: list[Subscription] = []
        # Lower-cased event name -> what to call for each subscription, in subscription order
        # (see _route); cleared whenever a subscription comes or goes.
        self._routes: dict[str, tuple[Callable[[AMIMessage], None], ...]] = {}
        self._hooks: list[OnConnectHook] = []
        self._handlers: list[tuple[Subscription, EventHandler]] = []
        self._tg: asyncio.TaskGroup | None = None
        self._runner: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._tracker: ActionTracker | None = None
        self._futures: dict[str, asyncio.Future[PendingAction]] = {}
        self._greeted = asyncio.Event()
        self._closing = False

    def __repr__(self) -> str:
        state = "connected" if self.connected.is_set() else "disconnected"
        return f"<AMIClient {self.name} {state} gen={self.generation}>"

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Run the client in a background task (idempotent). Does not wait for the login."""
        if self._closing:
            raise RuntimeError("a closed AMIClient is not restarted; make a new one")
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self.run(), name=f"ami-client {self.name}")

    async def close(self) -> None:
        """Log off (best effort), stop the background task, fail what is pending."""
        self._closing = True
        writer = self._writer
        if writer is not None and self.connected.is_set() and not writer.is_closing():
            with contextlib.suppress(OSError, TimeoutError):
                writer.write(encode_action("Logoff", action_id=f"{self.name}-logoff"))
                async with asyncio.timeout(0.2):
                    await writer.drain()
        runner, self._runner = self._runner, None
        if runner is not None and not runner.done():
            runner.cancel()
            try:
                await runner
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
        for sub in list(self._subs):
            sub.close()
        for _, fut in list(self._futures.items()):
            if not fut.done():
                fut.set_exception(AMIDisconnected("AMI client closed"))

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

    async def run(self) -> None:
        """Connect, log in, read, and reconnect with backoff until cancelled."""
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            try:
                for sub, handler in self._handlers:
                    tg.create_task(self._run_handler(sub, handler))
                await self._connection_loop()
            finally:
                self._tg = None

    # ------------------------------------------------------------------ subscriptions, hooks

    def subscribe(
        self, maxsize: int | None = None, filter: EventFilter = None, *, name: str = ""
    ) -> Subscription:
        """A new bounded event queue (``maxsize`` defaults to ``event_queue_size``)."""
        sub = Subscription(maxsize or self.event_queue_size, filter, name=name)
        sub._on_close = self._unsubscribe
        self._subs.append(sub)
        self._routes.clear()
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with contextlib.suppress(ValueError):
            self._subs.remove(sub)
        self._routes.clear()

    def add_handler(
        self,
        handler: EventHandler,
        *,
        filter: EventFilter = None,
        maxsize: int | None = None,
        name: str = "",
    ) -> Subscription:
        """Call ``handler(event)`` (sync or async) for each matching event, in its own task.

        Its queue is bounded like any subscription; an exception in the handler is logged and
        counted in :attr:`Subscription.handler_errors`, and the handler goes on with the next
        event. The link is never affected.
        """
        sub = self.subscribe(maxsize, filter, name=name or getattr(handler, "__name__", ""))
        self._handlers.append((sub, handler))
        if self._tg is not None:
            self._tg.create_task(self._run_handler(sub, handler))
        return sub

    async def _run_handler(self, sub: Subscription, handler: EventHandler) -> None:
        async for event in sub:
            try:
                result = handler(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                sub.handler_errors += 1
                log.exception("AMI handler %r raised on %s; link unaffected", sub.name, event.name)

    def add_on_connect(self, hook: OnConnectHook) -> None:
        """Run ``await hook(client)`` after every login (reconcile state there).

        Hooks run in order once ``FullyBooted`` arrived (or ``boot_wait`` passed); they are
        cancelled if the link drops meanwhile, and run again after the next login.
        """
        self._hooks.append(hook)

    # ------------------------------------------------------------------ actions

    async def action(
        self,
        name: str,
        fields: FieldsArg | None = None,
        /,
        *,
        response_timeout: float | None = None,
        **kwargs: str | int,
    ) -> AMIMessage:
        """Send an action and return its response.

        Raises :class:`AMIDisconnected` (not connected, or the link dropped: not re-sent),
        :class:`AMITimeout`, :class:`AMIActionError` (``Response: Error``), or
        :class:`ValueError` (CR/LF/NUL in a field; nothing was sent).
        """
        pending = await self._request(name, _merge(fields, kwargs), response_timeout)
        assert pending.response is not None
        return pending.response

    async def action_list(
        self,
        name: str,
        fields: FieldsArg | None = None,
        /,
        *,
        response_timeout: float | None = None,
        **kwargs: str | int,
    ) -> list[AMIMessage]:
        """Send a list action (``QueueStatus``...) and return its events.

        The events are those carrying the action's ActionID up to, excluding, the event with
        ``EventList: Complete``. The whole list must arrive within the deadline. An action that
        does not answer with ``EventList: start`` returns ``[]``.
        """
        pending = await self._request(name, _merge(fields, kwargs), response_timeout)
        return pending.events

    async def _request(
        self,
        name: str,
        fields: FieldsArg | None,
        response_timeout: float | None,
        *,
        internal: bool = False,
    ) -> PendingAction:
        if self._closing:
            raise AMIDisconnected(f"AMI client {self.name} is closed; {name} not sent")
        tracker, writer = self._tracker, self._writer
        if (
            (not internal and not self.connected.is_set())
            or tracker is None
            or writer is None
            or writer.is_closing()
        ):
            raise AMIDisconnected(f"not connected to AMI {self.name}; {name} not sent")
        pending, data = tracker.start(name, fields)  # ValueError on injection: nothing sent
        fut: asyncio.Future[PendingAction] = asyncio.get_running_loop().create_future()
        self._futures[pending.action_id] = fut
        timeout = self.action_timeout if response_timeout is None else response_timeout
        try:
            async with asyncio.timeout(timeout):
                writer.write(data)
                await writer.drain()
                done = await fut
        except TimeoutError:
            raise AMITimeout(
                f"AMI {name} (ActionID {pending.action_id}) got no complete response "
                f"within {timeout}s"
            ) from None
        except OSError as exc:
            raise AMIDisconnected(f"AMI link {self.name} failed while sending {name}") from exc
        finally:
            self._futures.pop(pending.action_id, None)
            if not fut.done():
                fut.cancel()
                tracker.abandon(pending.action_id)
        if not internal and done.response is not None and done.response.is_error:
            raise AMIActionError(name, done.response)
        return done

    # ------------------------------------------------------------------ connection

    def _backoff(self, attempt: int) -> float:
        """Capped exponential backoff with equal jitter (never zero, never above the cap)."""
        cap = min(self.backoff_max, self.backoff_initial * float(1 << min(attempt, 32)))
        return cap / 2 + self._rng.uniform(0, cap / 2)

    async def _connection_loop(self) -> None:
        attempt = 0
        while True:
            generation = self.generation
            try:
                await self._connect_once()
            except AMIAuthError as exc:
                self.last_error = exc
                self.stats.login_failures += 1
                log.error("%s", exc)
            except (OSError, TimeoutError, AMIError, AMIProtocolError) as exc:
                self.last_error = exc
                log.warning("AMI %s: link down: %r", self.name, exc)
            if self.generation != generation:
                attempt = 0  # the link had logged in: start the backoff over
            delay = self._backoff(attempt)
            attempt += 1
            log.info("AMI %s: reconnecting in %.2fs", self.name, delay)
            await asyncio.sleep(delay)

    async def _connect_once(self) -> None:
        self.stats.connect_attempts += 1
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(self.host, self.port)
        except TimeoutError:
            raise AMITimeout(f"connect to AMI {self.host}:{self.port} timed out") from None
        tracker = ActionTracker()
        generation = self.generation
        self._writer, self._tracker = writer, tracker
        self._greeted = asyncio.Event()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._read_loop(reader, tracker))
                # In the body, not a child task: on Python 3.11 a TaskGroup whose child fails
                # while the parent already waits in __aexit__ leaves the parent "cancelling".
                await self._session(tg)
        except BaseExceptionGroup as group:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise asyncio.CancelledError from None  # we are being stopped: never swallow it
            raise _pick(group) from None
        finally:
            self._link_lost(tracker, logged_in=self.generation != generation)
            writer.transport.abort()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _link_lost(self, tracker: ActionTracker, *, logged_in: bool) -> None:
        self.connected.clear()
        self.fully_booted.clear()
        if self._tracker is tracker:
            self._writer = self._tracker = None
        failed = tracker.fail_all()
        for pending in failed:
            fut = self._futures.pop(pending.action_id, None)
            if fut is not None and not fut.done():
                fut.set_exception(
                    AMIDisconnected(
                        f"AMI link {self.name} lost before {pending.name} "
                        f"(ActionID {pending.action_id}) completed; it is not re-sent"
                    )
                )
        self.stats.actions_failed_on_disconnect += len(failed)
        if logged_in:
            self.stats.disconnects += 1
            for sub in self._subs:
                sub._mark_resync()

    async def _session(self, tg: asyncio.TaskGroup) -> None:
        """Greeting, login, then the ping watchdog (runs until the link ends)."""
        try:
            async with asyncio.timeout(self.connect_timeout):
                await self._greeted.wait()
        except TimeoutError:
            raise AMITimeout(f"no AMI greeting from {self.host}:{self.port}") from None
        fields: dict[str, str] = {"Username": self.username, "Secret": self._secret}
        if self.events is not None:
            fields["Events"] = self.events
        login = await self._request(
            "Login", fields, max(self.action_timeout, self.connect_timeout), internal=True
        )
        assert login.response is not None
        if login.response.is_error:
            raise AMIAuthError(
                f"AMI login as {self.username!r} at {self.host}:{self.port} refused: "
                f"{login.response.message or 'no reason given'} (check manager.conf / secrets)"
            )
        self.generation += 1
        self.stats.logins += 1
        self.last_error = None
        self.connected.set()
        log.info("AMI %s: logged in (generation %d)", self.name, self.generation)
        tg.create_task(self._run_hooks())
        await self._ping_loop()

    async def _run_hooks(self) -> None:
        if self._hooks and not self.fully_booted.is_set():
            try:
                async with asyncio.timeout(self.boot_wait):
                    await self.fully_booted.wait()
            except TimeoutError:
                log.warning(
                    "AMI %s: no FullyBooted within %.1fs; reconciling anyway",
                    self.name,
                    self.boot_wait,
                )
        for hook in list(self._hooks):
            try:
                await hook(self)
            except Exception:
                self.stats.hook_errors += 1
                log.exception("AMI %s: on_connect hook %r raised", self.name, hook)

    async def _ping_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            try:
                await self._request("Ping", None, self.ping_timeout, internal=True)
            except AMITimeout:
                self.stats.dead_links += 1
                raise AMIDeadLink(
                    f"AMI {self.name}: no answer to Ping within {self.ping_timeout}s; "
                    "closing the link"
                ) from None

    async def _read_loop(self, reader: asyncio.StreamReader, tracker: ActionTracker) -> None:
        parser = AMIParser()
        while True:
            data = await reader.read(_READ_SIZE)
            if not data:
                self.connected.clear()
                raise AMIDisconnected(f"AMI {self.name}: connection closed by the server")
            self.last_heard = time.monotonic()
            parser.feed(data)
            self._dispatch_all(parser.take(), tracker)

    def _dispatch_all(
        self, items: Iterable[AMIGreeting | AMIMessage | AMIProtocolError], tracker: ActionTracker
    ) -> None:
        """Hand one read's worth of parsed items on (the read path; no await in here), then
        wake each consumer once. A message with our ActionID goes to the tracker; an event
        to the subscriptions that want its name (see :meth:`_route`)."""
        stats = self.stats
        routes = self._routes
        try:
            for item in items:
                if isinstance(item, AMIMessage):
                    if item.action_id is not None:  # (no search if the framer saw none)
                        result = tracker.receive(item)
                        if result.completed is not None:
                            fut = self._futures.get(result.completed.action_id)
                            if fut is not None and not fut.done():
                                fut.set_result(result.completed)
                        if result.consumed:
                            continue
                    name = item.name
                    if not name and not item.is_event:
                        stats.unsolicited += 1
                        log.debug("AMI %s: unsolicited %r", self.name, item)
                        continue
                    stats.events += 1
                    offers = routes.get(name)
                    if offers is None:
                        offers = self._route(name)
                    for offer in offers:
                        offer(item)
                elif isinstance(item, AMIGreeting):
                    self.server_version = item.version
                    self._greeted.set()
                elif isinstance(item, AMIBadGreeting):
                    raise item
                else:
                    stats.protocol_errors += 1
                    log.warning("AMI %s: %s (message discarded)", self.name, item)
        finally:
            for sub in self._subs:
                sub._wake()

    def _set_fully_booted(self, _msg: AMIMessage) -> None:
        self.fully_booted.set()

    def _route(self, name: str) -> tuple[Callable[[AMIMessage], None], ...]:
        """Who gets events called ``name`` (as sent; decided on its lower case, once per
        spelling): a name filter is decided here (its subscription is skipped or queued
        directly); other filters are still called per event. ``FullyBooted`` also sets
        :attr:`fully_booted`. Measured by ``python -m bench ami``: two name-filtered
        subscriptions cost two filter calls and two name look-ups per event before."""
        lower = name.lower()
        offers: list[Callable[[AMIMessage], None]] = []
        if lower == "fullybooted":
            offers.append(self._set_fully_booted)
        for sub in self._subs:
            flt = sub._filter
            if isinstance(flt, _NameFilter):
                if lower in flt.names:
                    offers.append(sub._put)
            else:
                offers.append(sub._offer)
        if len(self._routes) >= 1024:  # a peer inventing event names cannot grow this
            self._routes.clear()
        route = self._routes[name] = tuple(offers)
        return route


def _merge(fields: FieldsArg | None, kwargs: dict[str, str | int]) -> FieldsArg | None:
    if not kwargs:
        return fields
    return [*iter_fields(fields), *((k, str(v)) for k, v in kwargs.items())]


def _pick(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The most telling exception of a connection's task group (auth before EOF, etc.)."""
    flat: list[BaseException] = []

    def walk(g: BaseExceptionGroup[BaseException]) -> None:
        for exc in g.exceptions:
            if isinstance(exc, BaseExceptionGroup):
                walk(exc)
            else:
                flat.append(exc)

    walk(group)
    for kind in (AMIAuthError, AMIBadGreeting, AMIDeadLink):
        for exc in flat:
            if isinstance(exc, kind):
                return exc
    for exc in flat:
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return flat[0] if flat else AMIDisconnected("AMI link lost")
