"""The tests' wait helper: returns the condition's value as soon as it holds, says what it
waited for when it never does. (No timing is asserted: the deadlines here are 0 or never hit.)"""

from __future__ import annotations

import itertools

import pytest

from tests.waiting import wait_for, wait_for_sync


async def test_returns_the_first_truthy_value_sync_or_async() -> None:
    counter = itertools.count()
    assert await wait_for(lambda: next(counter) >= 3 and "ready", 60, interval=0) == "ready"

    async def row() -> dict[str, int] | None:
        n = next(counter)
        return {"n": n} if n >= 6 else None

    assert await wait_for(row, 60, interval=0) == {"n": 6}
    assert wait_for_sync(lambda: next(counter) >= 9 and 9, 60, interval=0) == 9


async def test_a_condition_that_never_holds_names_what_was_awaited() -> None:
    with pytest.raises(TimeoutError, match=r"the seat in the queue: not within 0 s \(last: \[\]\)"):
        await wait_for(list, 0, what="the seat in the queue")
    with pytest.raises(TimeoutError, match=r"dict: not within 0 s \(last: \{\}\)"):
        wait_for_sync(dict, 0)


async def test_an_exception_from_the_condition_ends_the_wait() -> None:
    def died() -> bool:
        raise AssertionError("sipp exited")

    with pytest.raises(AssertionError, match="sipp exited"):
        await wait_for(died, 60)

    async def slow_query() -> bool:
        raise TimeoutError("statement timeout")

    with pytest.raises(TimeoutError, match="statement timeout"):
        await wait_for(slow_query, 60)
