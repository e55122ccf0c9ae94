"""Token login (OAuth2 password flow, so the OpenAPI page's "Authorize" button works)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm

from api.deps import CurrentUser, SessionDep, SettingsDep
from api.schemas import TokenOut, UserOut
from api.services import auth

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/token", responses={401: {"description": "wrong username or password"}})
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    settings: SettingsDep,
) -> TokenOut:
    return await auth.issue_token(session, settings, form.username, form.password)


@router.get("/me")
async def me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user)
