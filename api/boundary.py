"""The API's outer boundary: one pure ASGI middleware around the whole app, so it covers every
route, present and future, before any router, dependency (the token check included) or body
parser runs.

For each HTTP request, in order:

0. **Load.** Past ``api_max_concurrency`` requests in flight, a 503 problem with
   ``Retry-After``. A WebSocket is not a request: past ``api_max_sockets`` open, a new one
   is refused with 503 before the upgrade. (uvicorn's ``limit_concurrency`` counts every
   connection, sockets included: 1,000 desks' screen-pop sockets would have turned every
   request away; it is only the outer guard on connections now, see ``api/__main__.py``.)
1. **Size.** A ``Content-Length`` over ``api_max_body_bytes`` is refused (413) before a byte
   of the body is read; a chunked body is counted as it streams and refused as soon as it
   passes the limit. The app never sees a body it has not been allowed to hold.
2. **Text.** A NUL byte in the path or query string, a body of JSON with ``NaN``,
   ``Infinity``, a number that overflows to infinity (``1e400``), an integer too long to
   parse, nesting too deep, a NUL or a lone surrogate in any string or key, or a form body
   with a NUL: refused with 422 (PostgreSQL cannot store NUL or lone surrogates, and JSON
   cannot carry NaN back out; all three used to be 500s).
3. **Headers.** Every response, errors included, gets the security headers
   (:func:`security_headers`; the CSP lets pages connect to the desk phone's WSS only).
4. **Crashes.** An exception nothing else handled answers a 500 problem with no traceback;
   the traceback goes to the log, once. One that says the database cannot be reached
   (restarting, killed, unreachable: :func:`core.db.session.database_unavailable`) answers
   503 with ``Retry-After`` instead, and one log line without a traceback.

Errors are :func:`api.problems.problem` responses (RFC 9457).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import ERRORS, problem
from core.db.session import database_unavailable

#: What a 503 for an unavailable database asks the client to wait before trying again.
RETRY_AFTER_SECONDS = 2
#: What a 503 for a full API (requests in flight, sockets open) asks the client to wait.
BUSY_RETRY_AFTER_SECONDS = 1


#: Scripts only from the API itself (the pages' and the API docs' scripts are files it serves,
#: never inline); inline styles stay allowed (the pages set bar widths and colours).
def content_security_policy(phone_url: str | None = None) -> str:
    """The pages' CSP. ``phone_url``: the desk phone's SIP-over-WebSocket address (Asterisk's
    own TLS listener, another origin), the one place besides the API a page may connect to."""
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "connect-src 'self'" + (f" {phone_url}" if phone_url else ""),
            # The worklist plays a call's recording from a blob it fetched with the token.
            "media-src 'self' blob:",
            "font-src 'self'",
            # ReDoc runs its search in a worker it builds from a blob.
            "worker-src 'self' blob:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


def security_headers(phone_url: str | None = None) -> tuple[tuple[bytes, bytes], ...]:
    """Set on every HTTP response (a route's own value of one of these wins)."""
    return (
        (b"content-security-policy", content_security_policy(phone_url).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
        (b"permissions-policy", b"camera=(), geolocation=(), microphone=(self)"),
    )


#: JSON nesting deeper than this is refused (no route's body nests more than 3 deep).
MAX_DEPTH = 32


class Refused(ValueError):
    """The body's text is refused; ``loc`` is where, as in a validation error."""

    def __init__(self, loc: list[str | int], message: str, kind: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message
        self.kind = kind


def _reject_constant(name: str) -> float:
    raise Refused(["body"], f"{name} is not a JSON number", "finite_number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise Refused(["body"], f"{text[:20]} is out of range", "finite_number")
    return value


def _bad_text(text: str) -> str | None:
    """Why ``text`` cannot be stored, or None."""
    if "\x00" in text:
        return "NUL characters are not allowed"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "lone surrogates are not allowed"
    return None


def _walk(value: Any, loc: list[str | int], depth: int = 0) -> Iterator[Refused]:
    if depth > MAX_DEPTH:
        yield Refused(loc, "nested too deep", "too_deep")
    elif isinstance(value, str):
        if (reason := _bad_text(value)) is not None:
            yield Refused(loc, reason, "string_characters")
    elif isinstance(value, dict):
        for key, item in value.items():
            if (reason := _bad_text(key)) is not None:
                yield Refused(loc, f"a key: {reason}", "string_characters")
            else:
                yield from _walk(item, [*loc, key], depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, [*loc, index], depth + 1)


def check_json(body: bytes) -> list[Refused]:
    """What is refused in a JSON body (empty: it may go on; a body that is not JSON at all
    also goes on, to be refused by FastAPI's own parse as ``json_invalid``)."""
    try:
        value = json.loads(body, parse_constant=_reject_constant, parse_float=_finite_float)
    except Refused as refused:
        return [refused]
    except RecursionError:
        return [Refused(["body"], "nested too deep", "too_deep")]
    except json.JSONDecodeError:
        return []
    except ValueError as error:  # an integer past Python's digit limit, bad UTF-8
        return [Refused(["body"], str(error)[:100], "json_invalid")]
    return list(_walk(value, ["body"]))[:20]


def _has_nul(raw: bytes) -> bool:
    return b"\x00" in unquote_to_bytes(raw.replace(b"+", b" "))


def _media_type(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return str(value.split(b";", 1)[0].strip().lower().decode("latin-1"))
    return ""


class Boundary:
    """See the module's docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_in_flight: int,
        max_sockets: int,
        phone_url: str | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_in_flight = max_in_flight
        self.max_sockets = max_sockets
        self.headers = security_headers(phone_url)
        #: HTTP requests being served and WebSockets open, now.
        self.in_flight = 0
        self.sockets = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._socket(scope, receive, send)
        elif scope["type"] != "http":
            await self.app(scope, receive, send)
        elif self.in_flight >= self.max_in_flight:
            await self._busy("requests in flight", scope, receive, send)
        else:
            self.in_flight += 1
            try:
                await self._request(scope, receive, send)
            finally:
                self.in_flight -= 1

    async def _socket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.sockets >= self.max_sockets:
            await self._busy("WebSockets open", scope, receive, send)
            return
        self.sockets += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.sockets -= 1

    async def _busy(self, what: str, scope: Scope, receive: Receive, send: Send) -> None:
        """503 with Retry-After: the API is at its limit of ``what``. A WebSocket's answer is
        an HTTP response before the upgrade (the ASGI ``websocket.http.response`` extension);
        a server without it can only refuse the upgrade (403)."""
        response = problem(
            503,
            f"the API is at its limit of {what}; try again",
            headers={"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)},
            scope=scope,
        )
        if scope["type"] == "http":

            async def send_with_headers(message: Message) -> None:
                await send(self._headed(message))

            await response(scope, receive, send_with_headers)
        elif "websocket.http.response" in scope.get("extensions", {}):
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": response.status_code,
                    "headers": response.raw_headers,
                }
            )
            await send({"type": "websocket.http.response.body", "body": response.body})
        else:
            await send({"type": "websocket.close", "code": 1013})

    def _headed(self, message: Message) -> Message:
        """``message`` with the security headers if it starts a response (a route's own value
        of one of them wins)."""
        if message["type"] != "http.response.start":
            return message
        present = {name.lower() for name, _ in message.get("headers", ())}
        extra = [(name, value) for name, value in self.headers if name not in present]
        return {**message, "headers": [*message.get("headers", ()), *extra]}

    async def _request(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(self._headed(message))

        try:
            refusal = self._refuse_head(scope)
            if refusal is not None:
                await refusal(scope, receive, send_with_headers)
                return
            body = await self._read_body(scope, receive, send_with_headers)
            if body is None:
                return
            refusal = self._refuse_body(scope, body)
            if refusal is not None:
                await refusal(scope, receive, send_with_headers)
                return
            await self.app(scope, _replay(body, receive), send_with_headers)
        except Exception as error:
            if database_unavailable(error) and not started:
                # PostgreSQL restarting, killed or unreachable: the client should try again
                # (an idempotent retry is safe); no traceback, one line per outage burst.
                ERRORS.error(
                    logging.WARNING,
                    "%s %s 503 database unavailable: %s",
                    scope.get("method"),
                    scope.get("path"),
                    type(error).__name__,
                )
                response = problem(
                    503,
                    "the database is unavailable; try again",
                    headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                    logged=True,
                )
                await response(scope, receive, send_with_headers)
                return
            ERRORS.error(
                logging.ERROR,
                "%s %s 500 unhandled",
                scope.get("method"),
                scope.get("path"),
                exc_info=True,
            )
            if started:
                raise
            response = problem(500, "internal error", logged=True)
            await response(scope, receive, send_with_headers)

    def _refuse_head(self, scope: Scope) -> Any:
        if "\x00" in scope["path"] or _has_nul(scope.get("query_string", b"")):
            return problem(
                422,
                "NUL characters are not allowed",
                errors=[{"loc": ["query"], "msg": "NUL", "type": "string_characters"}],
                scope=scope,
            )
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    return problem(400, "Content-Length is not a number", scope=scope)
                if length > self.max_body_bytes:
                    return self._too_large(scope)
        return None

    def _too_large(self, scope: Scope) -> Any:
        detail = f"the request body is larger than {self.max_body_bytes} bytes"
        return problem(413, detail, headers={"Connection": "close"}, scope=scope)

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole body, or None once refused (413) or the client went away."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._too_large(scope)(scope, receive, send)
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _refuse_body(self, scope: Scope, body: bytes) -> Any:
        if not body:
            return None
        media = _media_type(scope)
        refused: list[Refused] = []
        if media in ("", "application/json") or media.endswith("+json"):
            refused = check_json(body)
        elif media == "application/x-www-form-urlencoded" and _has_nul(body):
            refused = [Refused(["body"], "NUL characters are not allowed", "string_characters")]
        if not refused:
            return None
        errors = [{"loc": one.loc, "msg": one.message, "type": one.kind} for one in refused]
        return problem(422, refused[0].message, errors=errors, scope=scope)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` that gives the app the body already read, then the client's later messages
    (a disconnect)."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
