"""Sections of ``docs/`` generated from code (the lifecycle's tables, the access policy): each
sits between two marker comments, is written by a small command and checked by a test, so the
docs cannot drift from the code."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path


def splice(document: str, section: str, begin: str, end: str) -> str:
    """``document`` with the section between ``begin`` and ``end`` (markers included) replaced
    by ``section``; appended when the markers are absent."""
    start = document.find(begin)
    stop = document.find(end)
    if start < 0 or stop < start:
        return document.rstrip("\n") + "\n\n" + section + "\n"
    return document[:start] + section + document[stop + len(end) :]


def regenerate(
    argv: Sequence[str] | None,
    *,
    prog: str,
    description: str,
    default_path: Path,
    rewrite: Callable[[str], str],
) -> int:
    """The command line of a generated section: rewrite the file (``PATH``, default
    ``default_path``) with ``rewrite``, or with ``--check`` exit 1 if it is out of date."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("path", nargs="?", type=Path, default=default_path)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    args = parser.parse_args(argv)
    current = args.path.read_text(encoding="utf-8")
    wanted = rewrite(current)
    if args.check:
        if current != wanted:
            print(f"{args.path} is out of date: run python -m {prog}", file=sys.stderr)
            return 1
        return 0
    if current != wanted:
        args.path.write_text(wanted, encoding="utf-8")
    return 0
