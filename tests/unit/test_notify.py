"""api.services.notify.wait_until: a NOTIFY that arrives while the row is being read is not
lost, and a watch is removed when the wait ends. No PostgreSQL: notifications are delivered
by hand, as the LISTEN callback would."""

from __future__ import annotations

import asyncio

from api.services.notify import Notifications, wait_until
from core.config import Settings

CHANNEL = "queue_stats"
NEVER = 3600.0  # a wait that ends by its deadline fails the hang guard instead
HANG_GUARD = 5.0


def notifications() -> Notifications:
    return Notifications(Settings(), (CHANNEL, "other"))


async def test_a_notify_during_the_read_makes_another_read() -> None:
    hub = notifications()
    reads: list[int] = []

    async def read() -> int:
        reads.append(len(reads))
        if len(reads) == 1:
            # The queue manager commits and notifies after we read, before we wait.
            hub.deliver(CHANNEL, "")
        return len(reads)

    async with asyncio.timeout(HANG_GUARD):
        assert await wait_until(hub, CHANNEL, read, lambda n: n == 2, NEVER) == 2
    assert hub._watchers[CHANNEL] == set()


async def test_other_channels_do_not_wake_and_the_deadline_gives_the_last_read() -> None:
    hub = notifications()
    reads = 0

    async def read() -> int:
        nonlocal reads
        reads += 1
        hub.deliver("other", "")
        return reads

    assert await wait_until(hub, CHANNEL, read, lambda n: n > 5, 0.2) == 2


async def test_waiters_each_wake_and_payload_handlers_see_the_payload() -> None:
    hub = notifications()
    payloads: list[str] = []
    hub.on(CHANNEL, payloads.append)
    all_read = asyncio.Event()
    state = {"confirmed": False, "reads": 0}

    async def read() -> bool:
        state["reads"] += 1
        if state["reads"] == 3:
            all_read.set()  # each waiter watches before it reads
        return bool(state["confirmed"])

    waiters = [asyncio.create_task(wait_until(hub, CHANNEL, read, bool, NEVER)) for _ in range(3)]
    async with asyncio.timeout(HANG_GUARD):
        await all_read.wait()
        state["confirmed"] = True
        hub.deliver(CHANNEL, '{"seat": "agent0001"}')
        assert await asyncio.gather(*waiters) == [True, True, True]
    assert payloads == ['{"seat": "agent0001"}']
