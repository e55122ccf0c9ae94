"""``python -m bench <agi|ami|api|day|robustness|sipp> [options]``: the last line printed is one
JSON object.

Each benchmark measures our protocol layer and its peer (panoramisk 1.4) in the same run and
reports both plus their ratio; ``robustness`` exits non-zero when a criterion fails.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from bench import agi, ami, api, day, robustness, sipp


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    benches: dict[str, Callable[[list[str]], dict[str, Any]]] = {
        "agi": agi.run,
        "ami": ami.run,
        "api": api.run,
        "robustness": robustness.run,
        "sipp": sipp.run,
        "day": day.run,
    }
    if not args or args[0] not in benches:
        print(f"usage: python -m bench {{{'|'.join(benches)}}} [--quick] [options]")
        return 2
    result = benches[args[0]](args[1:])
    print(json.dumps(result, ensure_ascii=False))
    return 1 if result.get("failed_criteria") else 0


if __name__ == "__main__":
    sys.exit(main())
