"""Run the API alone: ``python -m api`` (or ``helpline api``).

Settings come from :meth:`core.config.Settings.load`, the one way every entry point reads them
(environment, ``<state_dir>/instance.env`` and the generated ``<state_dir>/secrets.env``).
"""

from __future__ import annotations

import uvicorn

from api.app import create_app
from core.config import Settings


def main() -> None:
    settings = Settings.load()
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level="info",
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
