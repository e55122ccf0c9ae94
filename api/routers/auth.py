"""Token login (OAuth2 password flow, so the OpenAPI page's "Authorize" button works) and
logout."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from api.deps import CurrentUser, SessionDep, SettingsDep, TokenCacheDep, bearer_token
from api.schemas import TokenOut, UserOut
from api.services import auth

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/token",
    responses={
        401: {"description": "wrong username or password"},
        429: {"description": "too many failed logins for this user or address (Retry-After)"},
    },
)
async def login(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    settings: SettingsDep,
) -> TokenOut:
    address = request.client.host if request.client else None
    return await auth.issue_token(session, settings, form.username, form.password, address=address)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(
    request: Request, user: CurrentUser, session: SessionDep, tokens: TokenCacheDep
) -> Response:
    """End the token this request carries (other sessions of the user keep theirs)."""
    token = bearer_token(request)
    assert token is not None  # CurrentUser needed it
    await auth.revoke_token(session, user, token, tokens)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me")
async def me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user)
