"""The API's documentation pages, ``/docs`` (Swagger UI) and ``/redoc``, with every asset
served by the API itself: no CDN, and no inline script (the CSP of :mod:`api.boundary`).

Swagger UI's and ReDoc's files come from the ``fastapi-offline`` package (its ``static``
folder, nothing else of it is used); the two small start-up scripts are ours
(api/static/docs); the OAuth2 redirect page's script is FastAPI's own, served as a file.
"""

from __future__ import annotations

import re
from importlib import resources

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response

from api.services.errors import NotFound

router = APIRouter(include_in_schema=False)

#: name -> (package, path inside it, media type): the only files /docs/assets serves.
ASSETS: dict[str, tuple[str, str, str]] = {
    "swagger-ui-bundle.js": ("fastapi_offline", "static/swagger-ui-bundle.js", "text/javascript"),
    "swagger-ui.css": ("fastapi_offline", "static/swagger-ui.css", "text/css"),
    "redoc.standalone.js": ("fastapi_offline", "static/redoc.standalone.js", "text/javascript"),
    "favicon.png": ("fastapi_offline", "static/favicon.png", "image/png"),
    "swagger-init.js": ("api", "static/docs/swagger-init.js", "text/javascript"),
    "redoc-init.js": ("api", "static/docs/redoc-init.js", "text/javascript"),
}

#: URLs a bundle would load from elsewhere, and what it loads instead (the CSP would block the
#: remote one anyway: this keeps the page free of CSP violations).
LOCAL_INSTEAD: dict[str, tuple[tuple[bytes, bytes], ...]] = {
    # ReDoc's "API docs by Redocly" logo in its side menu.
    "redoc.standalone.js": (
        (b"https://cdn.redoc.ly/redoc/logo-mini.svg", b"/docs/assets/favicon.png"),
    ),
}

SWAGGER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>1076 helpline API — Swagger UI</title>
<link rel="icon" href="/docs/assets/favicon.png">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head><body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/swagger-init.js"></script>
</body></html>"""

REDOC_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>1076 helpline API — ReDoc</title>
<link rel="icon" href="/docs/assets/favicon.png">
</head><body><div id="redoc"></div>
<script src="/docs/assets/redoc.standalone.js"></script>
<script src="/docs/assets/redoc-init.js"></script>
</body></html>"""

REDIRECT_PAGE = """<!doctype html>
<html lang="en-US"><head><title>Swagger UI: OAuth2 Redirect</title></head>
<body><script src="/docs/assets/oauth2-redirect.js"></script></body></html>"""


def _redirect_script() -> str:
    page = bytes(get_swagger_ui_oauth2_redirect_html().body).decode()
    match = re.search(r"<script>(.*)</script>", page, re.DOTALL)
    assert match is not None, "FastAPI's OAuth2 redirect page has no script"
    return match.group(1)


@router.get("/docs", response_class=HTMLResponse)
async def swagger_ui() -> HTMLResponse:
    return HTMLResponse(SWAGGER_PAGE)


@router.get("/redoc", response_class=HTMLResponse)
async def redoc() -> HTMLResponse:
    return HTMLResponse(REDOC_PAGE)


@router.get("/docs/oauth2-redirect", response_class=HTMLResponse)
async def oauth2_redirect() -> HTMLResponse:
    return HTMLResponse(REDIRECT_PAGE)


@router.get("/docs/assets/{name}")
async def asset(name: str) -> Response:
    """One file of :data:`ASSETS` (or the OAuth2 redirect script); any other name is 404."""
    headers = {"Cache-Control": "public, max-age=3600"}
    if name == "oauth2-redirect.js":
        return Response(_redirect_script(), media_type="text/javascript", headers=headers)
    if name not in ASSETS:
        raise NotFound(f"no documentation asset {name}")
    package, path, media = ASSETS[name]
    content = resources.files(package).joinpath(path).read_bytes()
    for remote, local in LOCAL_INSTEAD.get(name, ()):
        content = content.replace(remote, local)
    return Response(content, media_type=media, headers=headers)
