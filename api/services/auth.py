"""Users and their bearer tokens: issue a token for a password (throttled, hashed off the
event loop), turn a token back into its user (HTTP and WebSocket alike), revoke one, check a
role, disable a user."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.problems import ErrorLog
from api.schemas import TokenOut, UserActiveOut
from api.services.errors import Conflict, Forbidden, NotFound, TooMany, Unauthenticated
from core.config import Settings
from core.db.audit import audit
from core.db.channels import TOKEN_REVOKED_CHANNEL, USER_ACCESS_CHANNEL
from core.db.models import ApiToken, AuthThrottle, User
from core.domain.credentials import hash_password, new_token, token_digest, verify_password
from core.domain.phone import safe_text

#: One line per failed login, the client's address first and the user name escaped after it
#: (a name cannot forge a line or an address): what fail2ban's ``helpline-api`` filter reads
#: (deploy/fail2ban, docs/operations.md "fail2ban"). The throttle bounds the failures per
#: address; this budget, apart from the error log's, bounds a storm from many addresses.
FAILED_LOGINS = ErrorLog(logging.getLogger("api.auth"), burst=100, period=10.0)


class _Hasher:
    """Checks passwords off the event loop: scrypt takes tens of milliseconds of CPU (and
    releases the GIL), so a storm of logins costs these threads, not every request. One per
    process; bounded: past ``threads + queue`` logins at once, 429 at once."""

    def __init__(self) -> None:
        self.pool: ThreadPoolExecutor | None = None
        #: Logins hashing or waiting for a thread in this process.
        self.busy = 0
        #: Hashed once per process: a login for a user name that does not exist is checked
        #: against it, so it costs what a wrong password costs (no user-existence oracle).
        self.dummy: str | None = None

    async def verify(self, settings: Settings, password: str, stored: str | None) -> bool:
        if self.busy >= settings.login_hash_threads + settings.login_hash_queue:
            raise TooMany("too many logins at once; try again", retry_after=1)
        if self.pool is None:
            self.pool = ThreadPoolExecutor(settings.login_hash_threads, thread_name_prefix="scrypt")
        self.busy += 1
        try:
            loop = asyncio.get_running_loop()
            if stored is not None:
                return await loop.run_in_executor(self.pool, verify_password, password, stored)
            if self.dummy is None:
                self.dummy = await loop.run_in_executor(self.pool, hash_password, "-")
            await loop.run_in_executor(self.pool, verify_password, password, self.dummy)
            return False
        finally:
            self.busy -= 1


_HASHER = _Hasher()


def _address_for_log(address: str | None) -> str:
    """The client's address as an IP address, else ``unknown`` (a forwarded header that is no
    address must not reach the line a ban is made from)."""
    try:
        return str(ipaddress.ip_address(address or ""))
    except ValueError:
        return "unknown"


def _throttle_keys(username: str, address: str | None) -> list[tuple[str, str]]:
    """(key, kind) of a login: its user name, and its address when known."""
    keys = [(f"user:{username[:150]}", "user")]
    if address:
        keys.append((f"addr:{address[:150]}", "address"))
    return keys


_BLOCKED = text(
    "SELECT max(blocked_until) - now() FROM auth_throttle"
    " WHERE key = ANY(:keys) AND blocked_until > now()"
)
#: One failure counted, atomically, whatever other API processes do at the same moment: a
#: window that ran out starts again at 1; reaching the limit blocks the key.
_FAILED = text(
    """
    INSERT INTO auth_throttle AS t (key, failures, window_started_at, blocked_until)
    VALUES (:key, 1, now(),
            CASE WHEN 1 >= :limit THEN now() + make_interval(secs => :block) END)
    ON CONFLICT (key) DO UPDATE SET
        failures = CASE WHEN t.window_started_at < now() - make_interval(secs => :window)
                        THEN 1 ELSE t.failures + 1 END,
        window_started_at = CASE WHEN t.window_started_at < now() - make_interval(secs => :window)
                                 THEN now() ELSE t.window_started_at END,
        blocked_until = CASE
            WHEN (CASE WHEN t.window_started_at < now() - make_interval(secs => :window)
                       THEN 1 ELSE t.failures + 1 END) >= :limit
            THEN now() + make_interval(secs => :block)
            ELSE t.blocked_until END
    """
)


async def _check_throttle(session: AsyncSession, keys: list[tuple[str, str]]) -> None:
    remaining = (await session.execute(_BLOCKED, {"keys": [key for key, _ in keys]})).scalar()
    if remaining is not None:
        raise TooMany(
            "too many failed logins; try again later",
            retry_after=max(1, math.ceil(remaining.total_seconds())),
        )


async def _count_failure(
    session: AsyncSession, settings: Settings, keys: list[tuple[str, str]]
) -> None:
    limits = {
        "user": settings.login_failures_per_user,
        "address": settings.login_failures_per_address,
    }
    for key, kind in keys:
        await session.execute(
            _FAILED,
            {
                "key": key,
                "limit": limits[kind],
                "window": float(settings.login_window_seconds),
                "block": float(settings.login_block_seconds),
            },
        )
    await session.commit()


async def issue_token(
    session: AsyncSession,
    settings: Settings,
    username: str,
    password: str,
    *,
    address: str | None = None,
) -> TokenOut:
    """A new token for an active user whose password matches; the login is audited.

    Throttled per user name and per ``address`` (429 with Retry-After while blocked); the
    password is checked in the hashing pool, against a dummy hash when there is no such user,
    so neither a wrong name nor a disabled user answers faster than a wrong password."""
    keys = _throttle_keys(username, address)
    await _check_throttle(session, keys)
    user = (
        await session.execute(
            select(User.id, User.role, User.active, User.password_hash).where(
                User.username == username
            )
        )
    ).one_or_none()
    # The connection goes back to the pool while the password is hashed: a storm of logins
    # waiting for the hashing threads must not hold every database connection.
    await session.commit()
    matches = await _HASHER.verify(settings, password, None if user is None else user.password_hash)
    if user is None or not matches or not user.active:
        await _count_failure(session, settings, keys)
        FAILED_LOGINS.error(
            logging.WARNING,
            "login failed from %s for user '%s'",
            _address_for_log(address),
            safe_text(username, 64) or "",
        )
        raise Unauthenticated("wrong username or password")
    # A success forgives the user name's failures (not the address's).
    await session.execute(delete(AuthThrottle).where(AuthThrottle.key == keys[0][0]))
    token = new_token()
    now = datetime.now(UTC)
    expires = now + timedelta(seconds=settings.token_ttl_seconds)
    # Expired tokens of this user go as new ones come, so the table does not grow forever.
    await session.execute(
        delete(ApiToken).where(ApiToken.user_id == user.id, ApiToken.expires_at < now)
    )
    session.add(ApiToken(token_hash=token_digest(token), user_id=user.id, expires_at=expires))
    audit(
        session,
        service="api",
        actor_user_id=user.id,
        action="login",
        entity="user",
        entity_id=str(user.id),
    )
    await session.commit()
    return TokenOut(access_token=token, role=user.role, expires_at=expires)


async def revoke_token(
    session: AsyncSession, user: User, token: str, cache: TokenCache | None = None
) -> None:
    """End ``token`` (logout): every later request with it answers 401, in every API process
    (``cache`` forgets it before this returns, the others on the NOTIFY); audited."""
    digest = token_digest(token)
    await session.execute(delete(ApiToken).where(ApiToken.token_hash == digest))
    await session.execute(select(func.pg_notify(TOKEN_REVOKED_CHANNEL, str(user.id))))
    audit(
        session,
        service="api",
        actor_user_id=user.id,
        action="logout",
        entity="user",
        entity_id=str(user.id),
    )
    await session.commit()
    if cache is not None:
        cache.forget(digest)


async def set_active(
    session: AsyncSession,
    username: str,
    active: bool,
    *,
    actor: User | None = None,
    cache: TokenCache | None = None,
) -> UserActiveOut:
    """Enable or disable a user (not committed: the caller decides). Disabling ends all of
    the user's tokens at once (every later request with one is 401, as :func:`user_of_token`
    also asks for ``active``) and notifies every API process (sent at COMMIT) to close the
    user's open WebSockets and forget the user's cached tokens (``cache``, this process's, at
    once); a disabled user's login answers as a wrong password does. With an ``actor`` (the
    admin route), audited, and an admin may not disable themselves."""
    if actor is not None and not active and actor.username == username:
        raise Conflict("you cannot disable yourself; ask another admin")
    user_id = (
        await session.execute(
            update(User).where(User.username == username).values(active=active).returning(User.id)
        )
    ).scalar_one_or_none()
    if user_id is None:
        raise NotFound(f"no user {username}")
    ended = 0
    if not active:
        ended = len(
            (
                await session.execute(
                    delete(ApiToken).where(ApiToken.user_id == user_id).returning(ApiToken.user_id)
                )
            ).all()
        )
        await session.execute(select(func.pg_notify(USER_ACCESS_CHANNEL, str(user_id))))
        if cache is not None:
            cache.forget_user(user_id)
    if actor is not None:
        audit(
            session,
            service="api",
            actor_user_id=actor.id,
            action="user_enabled" if active else "user_disabled",
            entity="user",
            entity_id=str(user_id),
            detail={"username": username, "tokens_ended": ended},
        )
    return UserActiveOut(username=username, active=active, tokens_ended=ended)


_users = User.__table__
_tokens = ApiToken.__table__
#: Built once, Core: every request runs it, and building a statement (and its cache key) anew,
#: or loading an ORM entity from it, costs about as much CPU as running it (bench/api.py;
#: docs/benchmarks.md). No password hash: nothing past the login needs it.
_USER_OF_TOKEN = (
    select(
        _users.c.id,
        _users.c.username,
        _users.c.full_name,
        _users.c.role,
        _users.c.skills,
        _users.c.active,
        _users.c.created_at,
        _tokens.c.expires_at.label("token_expires_at"),
    )
    .join(_tokens, _tokens.c.user_id == _users.c.id)
    .where(_tokens.c.token_hash == bindparam("digest"))
    .where(_tokens.c.expires_at > bindparam("now"))
    .where(_users.c.active.is_(True))
)


class TokenCache:
    """Whose each live token is, remembered by one API process for ``seconds``.

    The token check was one of a complaint read's two round trips to PostgreSQL, and ~20 % of
    its CPU (py-spy under ``bench api``). An entry is used only while the token is unexpired
    and for at most ``seconds`` after it was read. Revocation reaches every process at once:
    a logout forgets the token here before it answers and NOTIFYs
    :data:`~core.db.channels.TOKEN_REVOKED_CHANNEL`, disabling a user NOTIFYs
    :data:`~core.db.channels.USER_ACCESS_CHANNEL`, and each process forgets that user's
    tokens (:meth:`forget_payload`); a re-made LISTEN link forgets everything
    (notifications may have been lost). ``seconds`` bounds only a lost notification. Holds
    at most ``entries`` tokens; past that, the oldest is dropped."""

    def __init__(
        self,
        seconds: float,
        entries: int = 20_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = seconds
        self.entries = entries
        self.clock = clock
        #: digest -> (the user, the token's expiry, when it was read: ``clock``).
        self._users: dict[str, tuple[User, datetime, float]] = {}
        #: Moves on at every forgetting: a user read before one is not remembered after it
        #: (the read may predate the revocation the forgetting stands for).
        self.generation = 0
        self.hits = 0
        self.misses = 0

    def get(self, digest: str, now: datetime) -> User | None:
        entry = self._users.get(digest)
        if entry is not None:
            user, expires_at, read_at = entry
            if now < expires_at and self.clock() - read_at < self.seconds:
                self.hits += 1
                return user
            del self._users[digest]
        self.misses += 1
        return None

    def put(self, digest: str, user: User, expires_at: datetime, generation: int) -> None:
        """Remember ``user``, read when the cache was at ``generation`` (not if it has moved
        on since: a revocation came while the read was on its way)."""
        if self.seconds <= 0 or generation != self.generation:
            return
        if len(self._users) >= self.entries:
            del self._users[next(iter(self._users))]
        self._users[digest] = (user, expires_at, self.clock())

    def forget(self, digest: str) -> None:
        self.generation += 1
        self._users.pop(digest, None)

    def forget_user(self, user_id: int) -> None:
        self.generation += 1
        for digest in [d for d, (user, _, _) in self._users.items() if user.id == user_id]:
            del self._users[digest]

    def forget_payload(self, payload: str) -> None:
        """A NOTIFY naming a user whose tokens ended (a payload that is no id: everything)."""
        try:
            self.forget_user(int(payload))
        except ValueError:
            self.clear()

    def clear(self) -> None:
        self.generation += 1
        self._users.clear()


async def user_of_token(session: AsyncSession, token: str, cache: TokenCache | None = None) -> User:
    """The active user a live token belongs to; the one check behind every request (from
    ``cache`` while it remembers the token).

    The user is read as a row and handed back as a transient :class:`User` (not in
    ``session``): who is asking, read-only, and shared by the requests ``cache`` answers. A
    change to a user goes through a statement (:func:`set_active`, :func:`set_password`),
    never through this object."""
    digest, now = token_digest(token), datetime.now(UTC)
    if cache is not None and (user := cache.get(digest, now)) is not None:
        return user
    generation = cache.generation if cache is not None else 0
    row = (await session.execute(_USER_OF_TOKEN, {"digest": digest, "now": now})).one_or_none()
    if row is None:
        raise Unauthenticated("invalid or expired token")
    fields = row._asdict()
    expires_at = fields.pop("token_expires_at")
    user = User(**fields)
    if cache is not None:
        cache.put(digest, user, expires_at, generation)
    return user


def check_role(user: User, roles: Collection[str]) -> None:
    if user.role not in roles:
        raise Forbidden(f"needs role: {', '.join(roles)}")


async def create_user(
    session: AsyncSession, *, username: str, full_name: str, role: str, password: str
) -> User:
    """Add a user with a hashed password (not committed: the caller decides)."""
    user = User(
        username=username, full_name=full_name, role=role, password_hash=hash_password(password)
    )
    session.add(user)
    return user


async def usernames(session: AsyncSession) -> set[str]:
    return set((await session.execute(select(User.username))).scalars())


async def set_password(session: AsyncSession, username: str, password: str) -> None:
    """Give ``username`` a new password (not committed: the caller decides)."""
    await session.execute(
        update(User).where(User.username == username).values(password_hash=hash_password(password))
    )


async def user_ids(session: AsyncSession, names: Collection[str]) -> dict[str, int]:
    """The ids of those of ``names`` that are users."""
    rows = await session.execute(select(User.username, User.id).where(User.username.in_(names)))
    return {username: user_id for username, user_id in rows}
