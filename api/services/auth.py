"""Users and their bearer tokens: issue a token for a password, turn a token back into its
user (HTTP and WebSocket alike), check a role."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.schemas import TokenOut
from api.services.errors import Forbidden, Unauthenticated
from core.config import Settings
from core.db.audit import audit
from core.db.models import ApiToken, User
from core.domain.credentials import hash_password, new_token, token_digest, verify_password


async def issue_token(
    session: AsyncSession, settings: Settings, username: str, password: str
) -> TokenOut:
    """A new token for an active user whose password matches; the login is audited."""
    user = (
        await session.execute(select(User).where(User.username == username))
    ).scalar_one_or_none()
    if user is None or not user.active or not verify_password(password, user.password_hash):
        raise Unauthenticated("wrong username or password")
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


async def user_of_token(session: AsyncSession, token: str) -> User:
    """The active user a live token belongs to; the one check behind every request."""
    user = (
        await session.execute(
            select(User)
            .join(ApiToken, ApiToken.user_id == User.id)
            .where(ApiToken.token_hash == token_digest(token))
            .where(ApiToken.expires_at > datetime.now(UTC))
            .where(User.active.is_(True))
        )
    ).scalar_one_or_none()
    if user is None:
        raise Unauthenticated("invalid or expired token")
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
