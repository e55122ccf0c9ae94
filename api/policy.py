"""Who may call which route: the one access table of the API, (method, path) -> roles.

Every route of the app has a row (a test walks ``app.routes`` against it, so a new route
without a row fails); :func:`api.deps.authorize` enforces it for HTTP routes and
:func:`api.deps.websocket_user` for WebSockets (method ``WS``). ``None`` marks a public route.
A route missing from the table is refused to everyone (403), never let through.

What a role may *see* of a complaint is decided further by :mod:`api.services.access`
(officers: their department and jurisdiction) and :data:`MASKED_ROLES` (caller numbers).
The table is rendered into docs/lifecycle.md: ``python -m api.policy [--check]``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from api.problems import MEDIA_TYPE, PROBLEM_SCHEMA
from core.domain.staff import Role
from core.generated_docs import regenerate, splice
from core.logs import masked_number

AGENT, SUPERVISOR, OFFICER, CM_OFFICE, ADMIN = (
    Role.AGENT,
    Role.SUPERVISOR,
    Role.OFFICER,
    Role.CM_OFFICE,
    Role.ADMIN,
)

#: Everyone signed in.
STAFF: Final = frozenset(Role)
#: Those who sit at a seat and file complaints (supervisors and admins stand in for agents).
DESK: Final = frozenset({AGENT, SUPERVISOR, ADMIN})

#: (method, path template) -> the roles allowed, or None for a public route.
POLICY: Final[Mapping[tuple[str, str], frozenset[Role] | None]] = {
    # Probes, the login, the static wallboard page and the API's own documentation.
    ("GET", "/health"): None,
    ("GET", "/metrics"): None,
    ("GET", "/wallboard"): None,
    # The review and worklist pages: their data comes from the API with the signed-in token.
    ("GET", "/review"): None,
    ("GET", "/worklist"): None,
    ("GET", "/pages/reports.js"): None,
    # The desk's in-page phone: its script and the SIP library it uses (its settings come from
    # /agents/me/phone with the signed-in token).
    ("GET", "/pages/phone.js"): None,
    ("GET", "/pages/vendor/jssip.min.js"): None,
    # The agent desk: the page and its modules; its data comes from the API with the token.
    ("GET", "/desk"): None,
    ("GET", "/pages/desk/{name}"): None,
    ("GET", "/pages/wallboard.js"): None,
    ("POST", "/auth/token"): None,
    ("GET", "/openapi.json"): None,
    ("GET", "/docs"): None,
    ("GET", "/docs/oauth2-redirect"): None,
    ("GET", "/redoc"): None,
    ("GET", "/docs/assets/{name}"): None,
    ("GET", "/auth/me"): STAFF,
    ("POST", "/auth/logout"): STAFF,
    # An agent at a seat.
    ("GET", "/agents/me"): DESK,
    ("POST", "/agents/me/login"): DESK,
    ("POST", "/agents/me/logout"): DESK,
    ("POST", "/agents/me/pause"): DESK,
    ("POST", "/agents/me/unpause"): DESK,
    # The in-page phone's settings (the digest of the seat's WebRTC endpoint, audited).
    ("GET", "/agents/me/phone"): DESK,
    ("PUT", "/agents/{username}/routing"): frozenset({SUPERVISOR, ADMIN}),
    ("WS", "/ws/agent"): DESK,
    ("GET", "/agents/me/shift"): DESK,
    # Call history is not a department's: officers have no reason to search it.
    ("GET", "/calls"): frozenset({AGENT, SUPERVISOR, CM_OFFICE, ADMIN}),
    # The desk on a call: its agent (api.services.access.check_call_work) or a supervisor.
    ("PUT", "/calls/{uniqueid}/wrapup"): DESK,
    ("POST", "/calls/{uniqueid}/readback"): DESK,
    ("GET", "/calls/{uniqueid}/readbacks"): DESK,
    # Complaints: filed at the desk; read by everyone, officers within their jurisdiction.
    ("POST", "/complaints"): DESK,
    ("GET", "/complaints/check"): DESK,
    ("GET", "/complaints"): STAFF,
    ("GET", "/complaints/{number}"): STAFF,
    # Only the roles that see masked numbers need to unmask one (audited every time).
    ("POST", "/complaints/{number}/unmask"): frozenset({OFFICER, CM_OFFICE}),
    # The recording of the call a complaint was filed on: officers within their jurisdiction,
    # agents only calls they answered (api.services.recordings); every play audited.
    ("GET", "/complaints/{number}/recordings"): STAFF,
    ("GET", "/complaints/{number}/recordings/{recording_id}/audio"): STAFF,
    # Actions on a complaint: who may take which one is the lifecycle's table
    # (core.domain.lifecycle), within the complaint's scope; every role may ask.
    ("POST", "/complaints/{number}/transitions"): STAFF,
    # Click-to-call (through the dialer, audited): the agent or supervisor at a seat.
    ("POST", "/complaints/{number}/call"): DESK,
    ("GET", "/complaints/{number}/call"): DESK,
    # Accountability: an officer their own scorecard and worklist (api.services.reports checks
    # the post), the monthly review for the CM office and those who run the helpline.
    ("GET", "/officers/{username}/scorecard"): frozenset({OFFICER, SUPERVISOR, CM_OFFICE, ADMIN}),
    ("GET", "/officers/{username}/worklist"): frozenset({OFFICER, SUPERVISOR, CM_OFFICE, ADMIN}),
    ("GET", "/reports/monthly"): frozenset({SUPERVISOR, CM_OFFICE, ADMIN}),
    ("GET", "/reports/feedback"): frozenset({SUPERVISOR, CM_OFFICE, ADMIN}),
    # The outbound dialer: supervisors and admins run the campaigns and the do-not-call list.
    ("GET", "/campaigns"): frozenset({SUPERVISOR, CM_OFFICE, ADMIN}),
    ("PUT", "/campaigns/{name}"): frozenset({SUPERVISOR, ADMIN}),
    ("POST", "/dnc"): frozenset({SUPERVISOR, ADMIN}),
    # Users: an admin disables one (every token and WebSocket of theirs ends; audited).
    ("PUT", "/users/{username}/active"): frozenset({ADMIN}),
    ("GET", "/reference/departments"): STAFF,
    ("GET", "/reference/districts"): STAFF,
    # Seats and live numbers: supervisors watch, admins configure; the CM office reads reports.
    ("GET", "/seats"): frozenset({SUPERVISOR, ADMIN}),
    ("PUT", "/seats/count"): frozenset({ADMIN}),
    ("GET", "/seats/{name}/credentials"): frozenset({ADMIN}),
    ("GET", "/stats"): frozenset({SUPERVISOR, CM_OFFICE, ADMIN}),
    ("GET", "/capacity"): frozenset({SUPERVISOR, CM_OFFICE, ADMIN}),
    ("WS", "/ws/stats"): frozenset({SUPERVISOR, CM_OFFICE, ADMIN}),
}

#: Roles that see a caller's number masked (``98XXXXX210``) in complaints, read or listed:
#: officers and the CM office act on the grievance, not the phone call; unmasking one number
#: is ``POST /complaints/{number}/unmask``, audited. Agents, supervisors and admins work the
#: calls (filing, call-backs, quality checks) and see numbers as they are.
MASKED_ROLES: Final = frozenset({OFFICER, CM_OFFICE})


class NoPolicy(LookupError):
    """A route the table does not list."""


def roles_for(method: str, path: str) -> frozenset[Role] | None:
    """The roles allowed on ``method path`` (None: public); :class:`NoPolicy` if unlisted."""
    try:
        return POLICY[(method, path)]
    except KeyError:
        raise NoPolicy(f"no access policy for {method} {path}") from None


def allows(method: str, path: str, role: str | None) -> bool:
    """Whether ``role`` (None: no token) may call ``method path``."""
    roles = POLICY.get((method, path), frozenset())
    return roles is None or (role is not None and role in roles)


def mask_caller_number(number: str | None) -> str | None:
    """``9876543210`` as ``98XXXXX210``: enough to tell two callers apart on a list, not
    enough to ring one (the same form the logs use, :func:`core.logs.masked_number`)."""
    return None if number is None else masked_number(number)


#: The bearer scheme as /openapi.json shows it (its "Authorize" button), put on every operation
#: the table asks a role of. Documented here rather than by a security dependency on each
#: route, which FastAPI would solve on every request for nothing: the table decides.
BEARER_SCHEME: Final[Mapping[str, Any]] = {
    "OAuth2PasswordBearer": {
        "type": "oauth2",
        "flows": {"password": {"scopes": {}, "tokenUrl": "/auth/token"}},
    }
}


def document_refusals(openapi: dict[str, Any]) -> dict[str, Any]:
    """Add to ``openapi`` (in place, idempotent) the bearer scheme on every operation that
    asks for a role (:data:`BEARER_SCHEME`), and the refusals every operation can give, each
    as the one problem shape (``application/problem+json``, :mod:`api.problems`): 401 and
    403 where the table asks for a role (naming the roles); 400 and 413 where a body is read;
    422 where there is any input (body, path or query); 503 everywhere (the connection
    limit, or the database away); the routes' own (404, 409, 429)."""
    openapi.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    openapi["components"].setdefault("securitySchemes", {}).update(BEARER_SCHEME)
    schemas = openapi["components"]["schemas"]
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    content = {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in openapi.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            roles = POLICY.get((method.upper(), path), frozenset())
            if roles is not None:
                allowed = ", ".join(role.value for role in _ORDER if role in roles) or "none"
                operation.setdefault("security", [{name: []} for name in BEARER_SCHEME])
                responses.setdefault("401", {"description": "no token, or an expired one"})
                responses.setdefault("403", {"description": f"allowed roles: {allowed}"})
            if "requestBody" in operation:
                responses.setdefault("400", {"description": "the body could not be parsed"})
                responses.setdefault("413", {"description": "the body is too large"})
            if "requestBody" in operation or operation.get("parameters"):
                responses["422"] = {"description": "the input is not valid"}
            # Any route: the server at its connection limit, or the database away (Retry-After).
            responses.setdefault("503", {"description": "unavailable for now; try again"})
            for code, response in responses.items():
                if code[:1] in ("4", "5") and not _own_model(response):
                    response["content"] = content
    return openapi


def _own_model(response: dict[str, Any]) -> bool:
    """A refusal whose route declared its own body (``/health``'s 503 is the health report,
    not a problem) keeps it."""
    refs = {
        str(media.get("schema", {}).get("$ref", ""))
        for media in response.get("content", {}).values()
    }
    return any(ref and not ref.endswith(("/HTTPValidationError", "/Problem")) for ref in refs)


# ----------------------------------------------------------------------------- the document

DOC_PATH = Path(__file__).resolve().parents[1] / "docs" / "lifecycle.md"
DOC_BEGIN = "<!-- access policy: generated from api/policy.py by python -m api.policy -->"
DOC_END = "<!-- end of the access policy -->"
_ORDER: Final = (AGENT, SUPERVISOR, OFFICER, CM_OFFICE, ADMIN)


def render_doc_section() -> str:
    """The table as Markdown, one row per route, between the two markers."""
    lines = [
        DOC_BEGIN,
        "",
        "| method | path | " + " | ".join(role.value for role in _ORDER) + " |",
        "|---|---|" + "---|" * len(_ORDER),
    ]
    for (method, path), roles in sorted(POLICY.items(), key=lambda item: (item[0][1], item[0][0])):
        cells = ["public"] * len(_ORDER) if roles is None else []
        if roles is not None:
            cells = ["yes" if role in roles else "-" for role in _ORDER]
        lines.append(f"| {method} | `{path}` | " + " | ".join(cells) + " |")
    masked = ", ".join(role.value for role in _ORDER if role in MASKED_ROLES)
    lines += ["", f"Caller numbers are masked for: {masked}.", ""]
    # Which objects of those routes each role reaches.
    from api.services.access import render_ownership  # noqa: PLC0415 - access imports us

    lines += ["Ownership (`api/services/access.py`, `OWNERSHIP`):", ""]
    lines += [*render_ownership(_ORDER), "", DOC_END]
    return "\n".join(lines)


def splice_doc(document: str, section: str) -> str:
    """``document`` with the policy section replaced by ``section`` (appended if absent)."""
    return splice(document, section, DOC_BEGIN, DOC_END)


def main(argv: Sequence[str] | None = None) -> int:
    return regenerate(
        argv,
        prog="api.policy",
        description="Regenerate docs/lifecycle.md's access policy table",
        default_path=DOC_PATH,
        rewrite=lambda document: splice_doc(document, render_doc_section()),
    )


if __name__ == "__main__":
    sys.exit(main())
