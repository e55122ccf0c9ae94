"""Writes (or checks) the generated section of docs/lifecycle.md from the transition table and
the reference data: ``python -m core.domain.lifecycle_doc [--check] [PATH]``."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from core.domain.lifecycle import render_doc_section, splice_doc
from core.generated_docs import regenerate
from core.reference import load_reference

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "lifecycle.md"


def main(argv: Sequence[str] | None = None) -> int:
    return regenerate(
        argv,
        prog="core.domain.lifecycle_doc",
        description="Regenerate docs/lifecycle.md's tables",
        default_path=DOC_PATH,
        rewrite=lambda document: splice_doc(document, render_doc_section(load_reference())),
    )


if __name__ == "__main__":
    sys.exit(main())
