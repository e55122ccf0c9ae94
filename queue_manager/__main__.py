"""Run the queue manager alone: ``python -m queue_manager`` (or ``helpline queue-manager``)."""

from __future__ import annotations

import asyncio
import logging

from core.config import Settings
from queue_manager.service import serve


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(Settings()))


if __name__ == "__main__":
    main()
