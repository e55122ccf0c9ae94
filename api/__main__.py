"""Run the API alone: ``python -m api`` (or ``helpline api``)."""

from __future__ import annotations

import uvicorn

from api.app import create_app
from core.config import Settings


def main() -> None:
    settings = Settings()
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level="info",
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
