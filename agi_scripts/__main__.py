"""Run the FastAGI service alone: ``python -m agi_scripts`` (or ``helpline agi``).

Settings come from :meth:`core.config.Settings.load`, the one way every entry point reads them
(environment, ``<state_dir>/instance.env`` and the generated ``<state_dir>/secrets.env``).
"""

from __future__ import annotations

import asyncio

from agi_scripts.service import serve
from core import logsafe
from core.config import Settings


def main() -> None:
    logsafe.configure()
    asyncio.run(serve(Settings.load()))


if __name__ == "__main__":
    main()
