"""uvicorn's h11 protocol with a deadline for a request's head (issue 16: "request size and
header time limits before any parsing").

uvicorn bounds a head's size (``h11_max_incomplete_event_size``) and idle keep-alive time, but
not how long a client may take to send a head: a slow-headers client (one byte every few
seconds) held its connection for ever, and enough of them reach ``limit_concurrency`` and shut
every agent out. Here a connection whose peer has not finished a request head within
``head_timeout`` seconds -- from the connection's start, or from the first byte of a following
request on a kept-alive connection -- is closed. The application never sees it (nothing was
parsed into a request).
"""

from __future__ import annotations

import asyncio
import logging

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)


class HeadDeadlineH11Protocol(H11Protocol):
    """:class:`H11Protocol` whose request heads must arrive within :attr:`head_timeout` s."""

    head_timeout: float = 10.0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:  # a (next) head is on its way
            self._arm_head_timer()
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # the head is complete (or the peer failed)
            self._cancel_head_timer()

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_too_slow)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            log.info("closed a connection whose request head took over %gs", self.head_timeout)
            self.transport.close()


def with_head_timeout(seconds: float) -> type[HeadDeadlineH11Protocol]:
    """The protocol class for uvicorn's ``http=`` option, with this deadline."""
    return type("HeadDeadlineH11Protocol", (HeadDeadlineH11Protocol,), {"head_timeout": seconds})
