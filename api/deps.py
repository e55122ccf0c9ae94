"""Dependencies shared by the routers, as ``Annotated`` aliases, and the WebSocket twin of
the bearer check. Both authenticate through :mod:`api.services.auth` (one path)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, WebSocket
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from api.services import auth
from api.services.errors import Forbidden, Unauthenticated
from api.services.notify import Notifications
from core.config import Settings
from core.db.models import User
from core.reference import Reference

oauth2 = OAuth2PasswordBearer(tokenUrl="/auth/token")

AGENT_ROLES = ("agent", "supervisor", "admin")
STAFF_ROLES = ("agent", "supervisor", "officer", "cm_office", "admin")
SUPERVISOR_ROLES = ("supervisor", "admin")
ADMIN_ROLES = ("admin",)

#: WebSocket close codes: the 4000 range mirrors HTTP 401 and 403.
WS_UNAUTHORISED = 4401
WS_FORBIDDEN = 4403


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessions() as session:
        yield session


def get_reference(request: Request) -> Reference:
    reference: Reference = request.app.state.reference
    return reference


def get_notifications(request: Request) -> Notifications:
    notifications: Notifications = request.app.state.notifications
    return notifications


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
NotificationsDep = Annotated[Notifications, Depends(get_notifications)]
ReferenceDep = Annotated[Reference, Depends(get_reference)]


async def current_user(session: SessionDep, token: Annotated[str, Depends(oauth2)]) -> User:
    return await auth.user_of_token(session, token)


CurrentUser = Annotated[User, Depends(current_user)]


def require_role(*roles: str) -> Callable[[User], Coroutine[Any, Any, User]]:
    """A dependency that lets only users with one of ``roles`` through (403 otherwise)."""

    async def check(user: CurrentUser) -> User:
        auth.check_role(user, roles)
        return user

    return check


AgentUser = Annotated[User, Depends(require_role(*AGENT_ROLES))]
StaffUser = Annotated[User, Depends(require_role(*STAFF_ROLES))]
SupervisorUser = Annotated[User, Depends(require_role(*SUPERVISOR_ROLES))]
AdminUser = Annotated[User, Depends(require_role(*ADMIN_ROLES))]


async def websocket_user(
    websocket: WebSocket, token: str | None, roles: tuple[str, ...]
) -> User | None:
    """The user of ``?token=`` (browsers cannot send an ``Authorization`` header on a
    WebSocket), or None after closing the socket with 4401 (bad token) or 4403 (wrong role)."""
    try:
        if not token:
            raise Unauthenticated("token required (?token=)")
        async with websocket.app.state.sessions() as session:
            user = await auth.user_of_token(session, token)
        auth.check_role(user, roles)
    except Unauthenticated as error:
        await websocket.close(code=WS_UNAUTHORISED, reason=error.message)
        return None
    except Forbidden as error:
        await websocket.close(code=WS_FORBIDDEN, reason=error.message)
        return None
    return user
