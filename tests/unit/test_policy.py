"""The access table against the app's routes and docs/lifecycle.md; caller number masking."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.routing import APIWebSocketRoute, iter_route_contexts

from api import policy
from api.app import create_app
from core.config import Settings
from core.domain.staff import Role


def app_routes() -> set[tuple[str, str]]:
    """Every (method, path template) the app answers; WebSockets as method ``WS``."""
    app = create_app(Settings(), connect_ami=False)
    found: set[tuple[str, str]] = set()
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIWebSocketRoute):
            found.add(("WS", route.path_format))
            continue
        for method in route.methods or ():
            if method != "HEAD":  # Starlette's own twin of GET
                found.add((method, route.path_format))
    return found


def test_every_route_has_a_policy_row_and_every_row_a_route() -> None:
    routes = app_routes()
    assert routes - set(policy.POLICY) == set(), "routes without a row in api/policy.py"
    assert set(policy.POLICY) - routes == set(), "rows in api/policy.py for no route"


def test_only_probes_login_pages_and_documentation_are_public() -> None:
    public = {key for key, roles in policy.POLICY.items() if roles is None}
    assert public == {
        ("GET", "/health"),
        ("GET", "/metrics"),
        # Pages without data: they sign in and read the API with the user's token.
        ("GET", "/wallboard"),
        ("GET", "/review"),
        ("GET", "/worklist"),
        ("GET", "/pages/reports.js"),
        # The desk's in-page phone's scripts (its settings need the agent's token).
        ("GET", "/pages/phone.js"),
        ("GET", "/pages/vendor/jssip.min.js"),
        # The agent desk's page and its modules (its data needs the agent's token).
        ("GET", "/desk"),
        ("GET", "/pages/desk/{name}"),
        ("GET", "/pages/wallboard.js"),
        ("POST", "/auth/token"),
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
        ("GET", "/docs/oauth2-redirect"),
        ("GET", "/redoc"),
        # Swagger UI's and ReDoc's files, served locally (no CDN).
        ("GET", "/docs/assets/{name}"),
    }
    # Officers are kept off the desk's and the supervisors' routes.
    officer = {key for key, roles in policy.POLICY.items() if roles and Role.OFFICER in roles}
    assert officer == {
        ("GET", "/auth/me"),
        ("POST", "/auth/logout"),
        ("GET", "/complaints"),
        ("GET", "/complaints/{number}"),
        ("POST", "/complaints/{number}/unmask"),
        # The recording of a complaint's call, in their scope (api.services.recordings).
        ("GET", "/complaints/{number}/recordings"),
        ("GET", "/complaints/{number}/recordings/{recording_id}/audio"),
        # Their work: actions on complaints in their scope, their own scorecard and worklist.
        ("POST", "/complaints/{number}/transitions"),
        ("GET", "/officers/{username}/scorecard"),
        ("GET", "/officers/{username}/worklist"),
        ("GET", "/reference/departments"),
        ("GET", "/reference/districts"),
    }


def test_an_unlisted_route_is_refused_to_everyone() -> None:
    with pytest.raises(policy.NoPolicy, match="GET /nowhere"):
        policy.roles_for("GET", "/nowhere")
    assert not any(policy.allows("GET", "/nowhere", role) for role in (*Role, None))
    assert policy.allows("GET", "/health", None)
    assert not policy.allows("GET", "/stats", None)
    assert policy.allows("GET", "/stats", Role.CM_OFFICE)
    assert not policy.allows("GET", "/stats", Role.AGENT)


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("9876543210", "98XXXXX210"),
        ("5222234567", "52XXXXX567"),
        ("12345", "XXXXX"),
        (None, None),
    ],
)
def test_caller_numbers_are_masked_but_the_ends(number: str | None, masked: str | None) -> None:
    assert policy.mask_caller_number(number) == masked


def test_docs_hold_the_table() -> None:
    assert policy.main(["--check"]) == 0, "docs/lifecycle.md is out of date: python -m api.policy"
    text = policy.DOC_PATH.read_text(encoding="utf-8")
    assert "| POST | `/complaints/{number}/unmask` | - | - | yes | yes | - |" in text
    assert "## Reference data" in text  # the hand-written sections stay


def test_the_doc_check_fails_on_a_stale_file_and_the_writer_fixes_it(tmp_path: Path) -> None:
    stale = tmp_path / "lifecycle.md"
    stale.write_text(f"intro\n\n{policy.DOC_BEGIN}\nold\n{policy.DOC_END}\n\noutro\n")
    assert policy.main(["--check", str(stale)]) == 1
    assert policy.main([str(stale)]) == 0
    assert policy.main(["--check", str(stale)]) == 0
    text = stale.read_text()
    assert text.startswith("intro\n\n") and text.endswith("\n\noutro\n") and "old" not in text


def test_ownership_names_every_role_for_every_subject_and_reaches_no_further_than_the_routes() -> (
    None
):
    """Every subject of api.services.access.OWNERSHIP says something of every role, and a role
    the access table keeps off all of a subject's routes reaches none of its objects."""
    from api.services.access import OWNERSHIP, Reach, Subject

    routes = {
        Subject.CALL_HISTORY: [("GET", "/calls")],
        Subject.CALL_WORK: [("PUT", "/calls/{uniqueid}/wrapup")],
        Subject.OFFICER_REPORT: [("GET", "/officers/{username}/worklist")],
        Subject.SCREEN_POP: [("WS", "/ws/agent")],
        Subject.CLICK_CALL: [("GET", "/complaints/{number}/call")],
    }
    for subject in Subject:
        assert set(OWNERSHIP[subject]) == set(Role), subject
        for method, path in routes.get(subject, []):
            allowed = policy.POLICY[(method, path)] or frozenset(Role)
            for role in Role:
                if role not in allowed:
                    assert OWNERSHIP[subject][role] is Reach.NONE, (subject, role)
