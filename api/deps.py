"""Dependencies shared by the routers, as ``Annotated`` aliases, and the WebSocket twin of
the bearer check. Both authenticate through :mod:`api.services.auth` (one path) and let a
role through only where the access table (:mod:`api.policy`) says so (one mechanism)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, WebSocket
from fastapi.requests import HTTPConnection
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession

from api import policy
from api.services import auth
from api.services.errors import Forbidden, Unauthenticated
from api.services.notify import Notifications
from core.config import Settings
from core.db.models import User
from core.domain.staff import Role
from core.reference import Reference

_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Any])

#: WebSocket close codes: the 4000 range mirrors HTTP 401 and 403.
WS_UNAUTHORISED = 4401
WS_FORBIDDEN = 4403
#: An open WebSocket whose user was disabled (RFC 6455's policy violation).
WS_POLICY_VIOLATION = 1008


# The getters are ``async def`` although they only read app.state: FastAPI runs a plain
# ``def`` dependency in its thread pool, a thread hop on every request for an attribute read.
async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def reads_only(endpoint: _Endpoint) -> _Endpoint:
    """Mark a route that only reads (its token check included): its session, which
    :func:`authorize` shares, runs without a transaction, each statement in a snapshot of its
    own. BEGIN and ROLLBACK were two of a read's four round trips to PostgreSQL (py-spy put
    them at ~17 % of the API's CPU under ``bench api``). Never on a route that writes: a
    write there would commit statement by statement."""
    endpoint.reads_only = True  # type: ignore[attr-defined]
    return endpoint


async def get_session(connection: HTTPConnection) -> AsyncIterator[AsyncSession]:
    endpoint = getattr(connection.scope.get("route"), "endpoint", None)
    state = connection.app.state
    factory = state.read_sessions if getattr(endpoint, "reads_only", False) else state.sessions
    async with factory() as session:
        yield session


async def get_reference(request: Request) -> Reference:
    reference: Reference = request.app.state.reference
    return reference


async def get_notifications(request: Request) -> Notifications:
    notifications: Notifications = request.app.state.notifications
    return notifications


async def get_token_cache(request: Request) -> auth.TokenCache:
    cache: auth.TokenCache = request.app.state.token_cache
    return cache


async def get_ami(request: Request) -> Any:
    """The API's AMI client (None when the app was built without one)."""
    return request.app.state.ami


SettingsDep = Annotated[Settings, Depends(get_settings)]
AmiDep = Annotated[Any, Depends(get_ami)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
NotificationsDep = Annotated[Notifications, Depends(get_notifications)]
ReferenceDep = Annotated[Reference, Depends(get_reference)]
TokenCacheDep = Annotated[auth.TokenCache, Depends(get_token_cache)]


def bearer_token(connection: HTTPConnection) -> str | None:
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def authorize(connection: HTTPConnection, session: SessionDep) -> User | None:
    """The app-wide gate: the matched route's row of :data:`api.policy.POLICY` decides.
    Public routes pass (None); others need a live token (401) of an allowed role (403).

    WebSockets pass here: :func:`websocket_caller` checks them against the same table after
    accepting, since a browser sees a close code (4401, 4403) but never an HTTP refusal."""
    if connection.scope["type"] != "http":
        return None
    route = connection.scope.get("route")
    path = route.path_format if isinstance(route, APIRoute) else connection.url.path
    try:
        roles = policy.roles_for(connection.scope["method"], path)
    except policy.NoPolicy as missing:
        raise Forbidden(str(missing)) from None
    if roles is None:
        return None
    token = bearer_token(connection)
    if token is None:
        raise Unauthenticated("not authenticated")
    user = await auth.user_of_token(session, token, connection.app.state.token_cache)
    auth.check_role(user, [role for role in Role if role in roles])
    return user


async def authorized_user(user: Annotated[User | None, Depends(authorize)]) -> User:
    """The caller of a non-public route (the same :func:`authorize`, run once per request;
    /openapi.json shows the bearer scheme on it: :data:`api.policy.BEARER_SCHEME`)."""
    if user is None:
        raise RuntimeError("a public route in api.policy asks for a user: give it roles")
    return user


#: The signed-in user, let through by the access table.
CurrentUser = Annotated[User, Depends(authorized_user)]


async def websocket_user(
    websocket: WebSocket, token: str | None, roles: Collection[str]
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


async def websocket_caller(websocket: WebSocket, token: str | None) -> User | None:
    """:func:`websocket_user` with the roles the access table gives this WebSocket's path
    (method ``WS``); a path the table does not list is refused (4403)."""
    route = websocket.scope.get("route")
    path = getattr(route, "path_format", websocket.url.path)
    try:
        # No WebSocket is public (None): every one carries a caller's or the centre's data.
        roles = policy.roles_for("WS", path) or frozenset()
    except policy.NoPolicy:
        roles = frozenset()
    return await websocket_user(websocket, token, [role for role in Role if role in roles])
