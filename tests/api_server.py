"""The API under the real server (uvicorn, with the options ``python -m api`` uses) in a
child process, for tests that need a socket: memory under large bodies, pages in Chromium."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from bench.common import free_port
from core.config import Settings
from tests.waiting import wait_for_sync

SERVER = """
import sys, uvicorn
from api.__main__ import uvicorn_options
from api.app import create_app
from bench.common import free_port
from core.config import Settings
settings = Settings(database_url=sys.argv[1], api_port=int(sys.argv[2]))
app = create_app(settings, connect_ami=False)
uvicorn.run(app, log_level="warning", **uvicorn_options(settings))
"""


@contextlib.contextmanager
def running_api(settings: Settings) -> Iterator[tuple[int, int]]:
    """(port, pid) of an API serving ``settings``' database, until the block ends."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, settings.database_url, str(port)],
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "HELPLINE_STATE_DIR": str(settings.state_dir)},
    )
    try:

        def up() -> bool:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                return True
            return False

        wait_for_sync(up, 30, what="the API listening")
        yield port, server.pid
    finally:
        server.terminate()
        server.wait(10)
