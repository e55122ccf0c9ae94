"""Waiting for another process (Asterisk, a service, the database) to get somewhere: poll a
condition until it holds, with a deadline, instead of sleeping "long enough".

A fixed sleep is either too short on a loaded machine (a flaky test) or too long everywhere (a
slow one); a wait on the condition is as short as the machine allows and fails with what it
waited for. Sleeps that *are* the scenario (a caller staying on the line) stay sleeps.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def wait_for(
    check: Callable[[], T | Awaitable[T]],
    within: float,
    *,
    interval: float = 0.2,
    what: str | None = None,
) -> T:
    """Call ``check`` (sync or async) every ``interval`` s until it returns something truthy;
    return that. After ``within`` s: TimeoutError naming ``what`` and the last value seen.
    An exception from ``check`` (e.g. an assert that a process is still alive) ends the wait."""
    last: object = None
    deadline = asyncio.timeout(within)
    try:
        async with deadline:
            while True:
                value = check()
                result = await value if inspect.isawaitable(value) else value
                last = result
                if result:
                    return result
                await asyncio.sleep(interval)  # the poll interval, not a guess at a duration
    except TimeoutError:
        if not deadline.expired():
            raise  # the check's own timeout, not ours
        label = what or getattr(check, "__name__", repr(check))
        raise TimeoutError(f"{label}: not within {within} s (last: {last!r})") from None


def wait_for_sync(
    check: Callable[[], T], within: float, *, interval: float = 0.2, what: str | None = None
) -> T:
    """:func:`wait_for` for code outside an event loop (``check`` is called at least once)."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            label = what or getattr(check, "__name__", repr(check))
            raise TimeoutError(f"{label}: not within {within} s (last: {result!r})")
        time.sleep(interval)  # the poll interval, not a guess at a duration
