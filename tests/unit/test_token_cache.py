"""The API's token cache (api/services/auth.py): an entry lives no longer than its token, nor
than the cache's seconds; revocations forget a user's tokens; it never grows past its size."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api.services.auth import TokenCache
from core.db.models import User

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def user(user_id: int) -> User:
    return User(id=user_id, username=f"agent{user_id}", role="agent", active=True)


def test_an_entry_lives_at_most_the_caches_seconds() -> None:
    clock = Clock()
    cache = TokenCache(10, clock=clock)
    cache.put("a", user(1), NOW + timedelta(hours=1), cache.generation)
    assert cache.get("a", NOW) is not None
    clock.now += 9.9
    assert cache.get("a", NOW) is not None
    clock.now += 0.1
    assert cache.get("a", NOW) is None
    assert (cache.hits, cache.misses) == (2, 1)


def test_an_entry_dies_with_its_token() -> None:
    cache = TokenCache(300, clock=Clock())
    cache.put("a", user(1), NOW + timedelta(seconds=5), cache.generation)
    assert cache.get("a", NOW + timedelta(seconds=4)) is not None
    assert cache.get("a", NOW + timedelta(seconds=5)) is None
    assert cache.get("a", NOW) is None  # gone, not only hidden


def test_a_notify_forgets_that_users_tokens_and_nonsense_forgets_all() -> None:
    cache = TokenCache(300, clock=Clock())
    later = NOW + timedelta(hours=1)
    cache.put("a1", user(1), later, cache.generation)
    cache.put("a2", user(1), later, cache.generation)
    cache.put("b", user(2), later, cache.generation)
    cache.forget_payload("1")
    assert cache.get("a1", NOW) is None and cache.get("a2", NOW) is None
    assert cache.get("b", NOW) is not None
    cache.forget_payload("not an id")
    assert cache.get("b", NOW) is None
    cache.put("b", user(2), later, cache.generation)
    cache.forget("b")
    assert cache.get("b", NOW) is None


def test_the_cache_keeps_its_size_and_zero_seconds_keeps_nothing() -> None:
    cache = TokenCache(300, entries=3, clock=Clock())
    for index in range(5):
        cache.put(f"t{index}", user(index), NOW + timedelta(hours=1), cache.generation)
    assert [cache.get(f"t{index}", NOW) is not None for index in range(5)] == [
        False,
        False,
        True,
        True,
        True,
    ]
    off = TokenCache(0, clock=Clock())
    off.put("a", user(1), NOW + timedelta(hours=1), off.generation)
    assert off.get("a", NOW) is None


def test_a_read_older_than_a_revocation_is_not_remembered() -> None:
    """A request read its token's user, a revocation of that user arrived (and was
    forgotten) while the read was on its way back: what it read must not be remembered."""
    cache = TokenCache(300, clock=Clock())
    read_at = cache.generation  # the request starts its read
    cache.forget_payload("1")  # NOTIFY: user 1's tokens ended (nothing cached yet)
    cache.put("a", user(1), NOW + timedelta(hours=1), read_at)  # the read comes back
    assert cache.get("a", NOW) is None
    cache.put("a", user(1), NOW + timedelta(hours=1), cache.generation)  # a fresh read
    assert cache.get("a", NOW) is not None
