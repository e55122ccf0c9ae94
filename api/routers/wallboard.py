"""``GET /wallboard``: the supervisors' live page (plain HTML + JS over ``/ws/stats``)."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

router = APIRouter(tags=["stats"])


@router.get("/wallboard", response_class=HTMLResponse)
async def wallboard() -> HTMLResponse:
    """The page needs a supervisor's token: ``/wallboard#token=…`` or its login form."""
    page = resources.files("api").joinpath("static/wallboard.html").read_text(encoding="utf-8")
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


@router.get("/pages/wallboard.js", include_in_schema=False)
async def wallboard_script() -> Response:
    """The wallboard's script, a file and not inline (the CSP allows no inline script)."""
    script = resources.files("api").joinpath("static/wallboard.js").read_text(encoding="utf-8")
    return Response(script, media_type="text/javascript", headers={"Cache-Control": "no-cache"})
