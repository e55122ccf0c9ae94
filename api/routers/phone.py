"""The desk's in-page phone (docs/agents.md): ``GET /pages/phone.js`` (the phone, a plain ES
module), ``GET /pages/vendor/jssip.min.js`` (JsSIP from the npm registry, bundled at set-up by
``scripts/web-deps.sh``: served from here, never from a CDN) and ``GET /phone``, a page of its
own for the phone until ``/desk`` mounts it. Its settings: ``GET /agents/me/phone``."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

router = APIRouter(tags=["phone"], include_in_schema=False)

#: Where scripts/web-deps.sh writes the bundle (git-ignored; `make deps` makes it).
JSSIP_BUNDLE = Path(__file__).resolve().parents[2] / "build" / "web" / "jssip.min.js"


def _static(name: str) -> str:
    return resources.files("api").joinpath(name).read_text(encoding="utf-8")


@router.get("/phone", response_class=HTMLResponse)
async def phone_page() -> HTMLResponse:
    """Sign in (``#token=…`` or the form), sit at a seat, and the phone registers it."""
    return HTMLResponse(_static("templates/phone.html"), headers={"Cache-Control": "no-store"})


@router.get("/pages/phone.js")
async def phone_script() -> Response:
    return Response(
        _static("static/phone.js"),
        media_type="text/javascript",
        headers={"Cache-Control": "no-cache"},
    )


@router.get("/pages/vendor/jssip.min.js")
async def jssip_bundle() -> Response:
    try:
        bundle = JSSIP_BUNDLE.read_bytes()
    except FileNotFoundError:
        return PlainTextResponse(
            "JsSIP is not bundled on this machine: run `make deps` (scripts/web-deps.sh)",
            status_code=503,
        )
    return Response(bundle, media_type="text/javascript", headers={"Cache-Control": "no-cache"})
