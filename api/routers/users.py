"""Users, as an admin manages them: disable (ending every token and WebSocket at once) or
enable again."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from api.deps import CurrentUser, SessionDep, TokenCacheDep
from api.schemas import UserActiveIn, UserActiveOut
from api.services import auth

router = APIRouter(prefix="/users", tags=["users"])

Username = Annotated[str, Path(min_length=1, max_length=64)]


@router.put(
    "/{username}/active",
    responses={
        404: {"description": "no such user"},
        409: {"description": "an admin cannot disable themselves"},
    },
)
async def set_active(
    username: Username,
    body: UserActiveIn,
    user: CurrentUser,
    session: SessionDep,
    tokens: TokenCacheDep,
) -> UserActiveOut:
    """Disable (``{"active": false}``) or enable a user; audited. Disabling ends all of the
    user's tokens at once, closes their open WebSockets (code 1008) within a second or two,
    and their logins answer 401 like a wrong password."""
    changed = await auth.set_active(session, username, body.active, actor=user, cache=tokens)
    await session.commit()
    return changed
