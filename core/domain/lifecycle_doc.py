"""Writes (or checks) the generated section of docs/lifecycle.md from the transition table and
the reference data: ``python -m core.domain.lifecycle_doc [--check] [PATH]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from core.domain.lifecycle import render_doc_section, splice_doc
from core.reference import load_reference

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "lifecycle.md"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="core.domain.lifecycle_doc", description="Regenerate docs/lifecycle.md's tables"
    )
    parser.add_argument("path", nargs="?", type=Path, default=DOC_PATH)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    args = parser.parse_args(argv)
    current = args.path.read_text(encoding="utf-8")
    wanted = splice_doc(current, render_doc_section(load_reference()))
    if args.check:
        if current != wanted:
            print(
                f"{args.path} is out of date: run python -m core.domain.lifecycle_doc",
                file=sys.stderr,
            )
            return 1
        return 0
    if current != wanted:
        args.path.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
