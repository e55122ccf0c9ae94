"""Coverage-guided fuzzing of the IVR's data validation: the prompt catalogue and the menu
tree, as an operator may edit them (atheris).

Run standalone: ``.venv/bin/python fuzz/fuzz_ivr_data.py -atheris_runs=100000``. Inputs are the
shipped ``prompts.json`` and ``menus.json`` with a fuzzer-chosen slice replaced by fuzzed text
(so most stay JSON and reach the validation), or fuzzed text alone. Invariants: a bad file is
refused only with CatalogueError / MenuError, never another exception; the shipped files
themselves load.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with atheris.instrument_imports(include=["ivr"]):
    from ivr.catalogue import CATALOGUE_PATH, CatalogueError, parse_catalogue
    from ivr.menus import MENUS_PATH, MenuError, parse_menus

PROMPTS = CATALOGUE_PATH.read_text(encoding="utf-8")
MENUS = MENUS_PATH.read_text(encoding="utf-8")
CATALOGUE = parse_catalogue(PROMPTS)
parse_menus(MENUS, CATALOGUE)


def _edited(fdp: atheris.FuzzedDataProvider, text: str) -> str:
    if fdp.ConsumeIntInRange(0, 7) == 0:
        return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 256))
    start = fdp.ConsumeIntInRange(0, len(text))
    end = min(len(text), start + fdp.ConsumeIntInRange(0, 40))
    return text[:start] + fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 24)) + text[end:]


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    if fdp.ConsumeBool():
        with contextlib.suppress(CatalogueError):
            parse_catalogue(_edited(fdp, PROMPTS))
    else:
        with contextlib.suppress(MenuError):
            parse_menus(_edited(fdp, MENUS), CATALOGUE)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
