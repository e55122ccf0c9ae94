"""Run the API alone: ``python -m api`` (or ``helpline api``).

Settings come from :meth:`core.config.Settings.load`, the one way every entry point reads them
(environment, ``<state_dir>/instance.env`` and the generated ``<state_dir>/secrets.env``).
"""

from __future__ import annotations

import logging
from typing import Any

import uvicorn

from api.app import create_app
from api.http_protocol import with_head_timeout
from core import logs
from core.config import Settings
from core.fds import raise_fd_limit


def connection_cap(settings: Settings) -> int:
    """uvicorn's ``limit_concurrency``: it counts every connection (a WebSocket, an idle
    kept-alive one, a head on its way) and answers each request past it 503. The API's own
    caps are requests in flight and sockets open (:mod:`api.boundary`); this is only the
    outer guard on connections (and open files), room for both and as many idle again."""
    return 2 * (settings.api_max_concurrency + settings.api_max_sockets)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The server's own limits (docs/operations.md, "Limits"): h11, whose request-head limit
    uvicorn exposes; no ``Server`` banner; idle keep-alive connections closed; a guard on
    connections at once (:func:`connection_cap`); WebSocket messages no larger than a body; and
    a deadline for each request head (:mod:`api.http_protocol`, which uvicorn lacks)."""
    return {
        "host": settings.api_host,
        "port": settings.api_port,
        "http": with_head_timeout(settings.api_header_timeout_seconds),
        "h11_max_incomplete_event_size": settings.api_max_header_bytes,
        "timeout_keep_alive": settings.api_keep_alive_seconds,
        "limit_concurrency": connection_cap(settings),
        "ws_max_size": settings.api_max_body_bytes,
        "server_header": False,
        "proxy_headers": False,
        # Its handlers with the privacy net: the access log carries query strings (?caller=).
        "log_config": logs.uvicorn_log_config(),
    }


def main() -> None:
    settings = Settings.load()
    logs.configure()
    files, connections = raise_fd_limit(), connection_cap(settings)
    if files < connections + 100:
        logging.getLogger(__name__).warning(
            "open files limited to %d, fewer than the %d connections the API may hold: raise "
            "LimitNOFILE (deploy/systemd) or lower HELPLINE_API_MAX_SOCKETS",
            files,
            connections,
        )
    uvicorn.run(create_app(settings), log_level="info", **uvicorn_options(settings))


if __name__ == "__main__":
    main()
