"""``python -m asterisk_config [provision]``: provision Asterisk for the instance's settings.

(``helpline asterisk ...`` is the full command line; this entry point needs nothing but root.)
"""

from __future__ import annotations

import sys

from asterisk_config.provision import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if args not in ([], ["provision"]):
        print("usage: python -m asterisk_config [provision]", file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(main(args))
