"""Run the queue manager alone: ``python -m queue_manager`` (or ``helpline queue-manager``).

Settings come from :meth:`core.config.Settings.load`, the one way every entry point reads them
(environment, ``<state_dir>/instance.env`` and the generated ``<state_dir>/secrets.env``, which
holds this service's AMI secret).
"""

from __future__ import annotations

import asyncio

from core import logsafe
from core.config import Settings
from queue_manager.service import serve


def main() -> None:
    logsafe.configure()
    asyncio.run(serve(Settings.load()))


if __name__ == "__main__":
    main()
