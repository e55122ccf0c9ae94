"""One shape for every error the API answers: RFC 9457 ``application/problem+json``.

``{"type", "title", "status", "detail"}``, plus ``errors`` (a list of ``{loc, msg, type}``)
when a request's input was refused. Every refusal goes through :func:`problem`: the services'
errors, FastAPI's validation errors, Starlette's HTTP errors (404, 405), the boundary's 413
and 422 (:mod:`api.boundary`) and an unexpected exception (500, never with a traceback).

Each error is logged once, through :class:`ErrorLog`, which writes at most ``burst`` lines per
``period`` seconds and then one line saying how many it left out, so a flood of bad requests
cannot flood the log.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.services.errors import (
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    InvalidField,
    NotFound,
    ServiceError,
    TooMany,
    Unauthenticated,
)

log = logging.getLogger("api.errors")

MEDIA_TYPE = "application/problem+json"

#: The HTTP status of each refusal a service raises.
STATUS_OF: dict[type[ServiceError], int] = {
    NotFound: status.HTTP_404_NOT_FOUND,
    Conflict: status.HTTP_409_CONFLICT,
    Invalid: status.HTTP_422_UNPROCESSABLE_CONTENT,
    Unauthenticated: status.HTTP_401_UNAUTHORIZED,
    Forbidden: status.HTTP_403_FORBIDDEN,
    TooMany: status.HTTP_429_TOO_MANY_REQUESTS,
    Gone: status.HTTP_410_GONE,
}


class ProblemResponse(JSONResponse):
    media_type = MEDIA_TYPE


class ErrorLog:
    """One line per error, at most ``burst`` lines per ``period`` seconds; the lines left out
    are counted and reported in the next line written."""

    def __init__(self, logger: logging.Logger, *, burst: int = 20, period: float = 10.0) -> None:
        self.logger = logger
        self.burst = burst
        self.period = period
        self._lock = threading.Lock()
        self._window_start = -math.inf
        self._written = 0
        self.suppressed = 0

    def _admit(self) -> int | None:
        """None to drop this line; else how many lines were dropped before it."""
        now = time.monotonic()
        with self._lock:
            if now - self._window_start >= self.period:
                self._window_start, self._written = now, 0
            if self._written >= self.burst:
                self.suppressed += 1
                return None
            self._written += 1
            dropped, self.suppressed = self.suppressed, 0
            return dropped

    def error(self, level: int, message: str, *args: object, exc_info: bool = False) -> bool:
        """Write the line if the budget allows; True if written."""
        dropped = self._admit()
        if dropped is None:
            return False
        if dropped:
            message += " (%d earlier error lines left out)"
            args = (*args, dropped)
        self.logger.log(level, message, *args, exc_info=exc_info)
        return True


ERRORS = ErrorLog(log)


def problem(
    code: int,
    detail: str,
    *,
    errors: Sequence[Mapping[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
    request: Request | None = None,
    scope: Mapping[str, Any] | None = None,
    logged: bool = False,
) -> ProblemResponse:
    """The one error response; also writes the error's one log line (unless ``logged``)."""
    phrase = HTTPStatus(code).phrase if code in HTTPStatus._value2member_map_ else "Error"
    body: dict[str, Any] = {
        # RFC 9457's "no more than the status says": the title is the status phrase.
        "type": "about:blank",
        "title": phrase,
        "status": code,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = [dict(error) for error in errors]
    scope = request.scope if request is not None else scope
    where = f"{scope.get('method', '-')} {scope.get('path', '-')}" if scope else "-"
    if not logged:
        ERRORS.error(logging.INFO, "%s %d %s", where, code, detail[:200])
    return ProblemResponse(body, status_code=code, headers=dict(headers or {}))


def _plain(value: Any) -> Any:
    """A JSON-safe copy of a validation error's ``loc`` or ``ctx`` entry."""
    if isinstance(value, str | int | bool) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


def validation_errors(raw: Sequence[Any]) -> list[dict[str, Any]]:
    """pydantic's errors as ``{loc, msg, type}``, without the ``input`` (which may hold the
    very NaN, NUL or megabyte that was refused) and with every part JSON-safe."""
    return [
        {
            "loc": [_plain(part) for part in error.get("loc", ())],
            "msg": str(error.get("msg", "")),
            "type": str(error.get("type", "")),
        }
        for error in raw
    ]


async def service_error(request: Request, error: Exception) -> ProblemResponse:
    """A service's refusal with its status."""
    assert isinstance(error, ServiceError)
    code = next(
        (code for kind, code in STATUS_OF.items() if isinstance(error, kind)),
        status.HTTP_400_BAD_REQUEST,
    )
    headers = dict(getattr(error, "headers", None) or {})
    if isinstance(error, Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    errors = None
    if isinstance(error, InvalidField):
        # Shown by a desk next to the field, like a schema error.
        errors = [{"loc": [error.where, error.field], "msg": error.reason, "type": "reference"}]
    return problem(code, error.message, errors=errors, headers=headers, request=request)


async def request_validation_error(request: Request, error: Exception) -> ProblemResponse:
    assert isinstance(error, RequestValidationError)
    errors = validation_errors(error.errors())
    return problem(422, "the request's input is not valid", errors=errors, request=request)


async def http_error(request: Request, error: Exception) -> ProblemResponse:
    """Starlette's and FastAPI's HTTP errors (an unknown path, a wrong method)."""
    assert isinstance(error, StarletteHTTPException)
    detail = error.detail if isinstance(error.detail, str) else HTTPStatus(error.status_code).phrase
    return problem(error.status_code, detail, headers=error.headers, request=request)


#: The schema of the problem body, as /openapi.json declares it for every error response.
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details; `errors` lists the input refused.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["loc", "msg", "type"],
                "properties": {
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}
