"""The desk's in-page phone (docs/agents.md): ``GET /pages/phone.js`` (the phone, a plain ES
module) and ``GET /pages/vendor/jssip.min.js`` (JsSIP from the npm registry, bundled at set-up
by ``scripts/web-deps.sh``: served from here, never from a CDN). ``/desk`` loads both and
mounts the phone at the agent's seat; its settings: ``GET /agents/me/phone``. (There is no page
of the phone's own: a second page registering the seat would replace the desk's phone.)"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response

router = APIRouter(tags=["phone"], include_in_schema=False)

#: Where scripts/web-deps.sh writes the bundle (git-ignored; `make deps` makes it).
JSSIP_BUNDLE = Path(__file__).resolve().parents[2] / "build" / "web" / "jssip.min.js"


def _static(name: str) -> str:
    return resources.files("api").joinpath(name).read_text(encoding="utf-8")


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
