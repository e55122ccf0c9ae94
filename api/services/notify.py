"""One LISTEN connection per API process, fanned out to whoever waits on a channel.

A service that must wait for the queue manager (seat login confirmed, seats applied) watches a
channel, reads the row, and reads it again on every NOTIFY until it is what it wants or the
deadline passes: the watch is registered before the first read, so a notification that comes
between the read and the wait is not missed. When the LISTEN link is re-made, every watcher is
woken once (notifications may have been lost while it was down).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from functools import partial
from typing import TypeVar

from core.config import Settings
from core.db.session import listen_forever

log = logging.getLogger(__name__)

PayloadHandler = Callable[[str], None]
T = TypeVar("T")


class Notifications:
    """LISTEN on ``channels``; :meth:`watch` for wake-ups, :meth:`on` for payloads."""

    def __init__(self, settings: Settings, channels: Iterable[str]) -> None:
        self.settings = settings
        self.channels = tuple(channels)
        self._watchers: dict[str, set[asyncio.Event]] = {
            channel: set() for channel in self.channels
        }
        self._handlers: dict[str, list[PayloadHandler]] = {ch: [] for ch in self.channels}
        self._on_listening: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        #: Set while the LISTEN connection is up.
        self.listening = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="notifications listen")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @contextlib.contextmanager
    def watch(self, *channels: str) -> Iterator[asyncio.Event]:
        """An event set on every NOTIFY on ``channels`` (clear it before each read)."""
        event = asyncio.Event()
        for channel in channels:
            self._watchers[channel].add(event)
        try:
            yield event
        finally:
            for channel in channels:
                self._watchers[channel].discard(event)

    def on(self, channel: str, handler: PayloadHandler) -> None:
        """Call ``handler(payload)`` for every NOTIFY on ``channel`` (must not block)."""
        self._handlers[channel].append(handler)

    def on_listening(self, handler: Callable[[], None]) -> None:
        """Call ``handler()`` each time the LISTEN link is made (notifications may have been
        lost while it was down)."""
        self._on_listening.append(handler)

    def deliver(self, channel: str, payload: str) -> None:
        for event in self._watchers.get(channel, ()):
            event.set()
        for handler in self._handlers.get(channel, ()):
            try:
                handler(payload)
            except Exception:
                log.exception("handler of NOTIFY %s failed", channel)

    def _wake_all(self) -> None:
        for handler in self._on_listening:
            handler()
        for events in self._watchers.values():
            for event in events:
                event.set()

    async def _listen(self) -> None:
        await listen_forever(
            self.settings,
            {channel: partial(self.deliver, channel) for channel in self.channels},
            name="api",
            on_listening=self._wake_all,
            listening=self.listening,
        )


async def wait_until(
    notifications: Notifications | None,
    channel: str,
    read: Callable[[], Awaitable[T]],
    ready: Callable[[T], bool],
    seconds: float,
) -> T:
    """``read()`` until ``ready`` of it, re-reading on each NOTIFY on ``channel``; after
    ``seconds``, the last read as it is. Without ``notifications``: one read."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    if notifications is None:
        return await read()
    with notifications.watch(channel) as changed:
        while True:
            changed.clear()
            value = await read()
            if ready(value) or loop.time() >= deadline:
                return value
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await changed.wait()
