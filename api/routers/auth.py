"""Token login (OAuth2 password flow, so the OpenAPI page's "Authorize" button works)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import delete, select

from api.deps import CurrentUser, SessionDep, SettingsDep
from api.schemas import TokenOut, UserOut
from core.db.models import ApiToken, AuditLog, User
from core.domain.credentials import new_token, token_digest, verify_password

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/token")
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    settings: SettingsDep,
) -> TokenOut:
    user = (
        await session.execute(select(User).where(User.username == form.username))
    ).scalar_one_or_none()
    if user is None or not user.active or not verify_password(form.password, user.password_hash):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password")
    token = new_token()
    now = datetime.now(UTC)
    expires = now + timedelta(seconds=settings.token_ttl_seconds)
    # Expired tokens of this user go as new ones come, so the table does not grow forever.
    await session.execute(
        delete(ApiToken).where(ApiToken.user_id == user.id, ApiToken.expires_at < now)
    )
    session.add(ApiToken(token_hash=token_digest(token), user_id=user.id, expires_at=expires))
    session.add(
        AuditLog(
            service="api",
            actor_user_id=user.id,
            action="login",
            entity="user",
            entity_id=str(user.id),
        )
    )
    await session.commit()
    return TokenOut(access_token=token, role=user.role, expires_at=expires)


@router.get("/me")
async def me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user)
