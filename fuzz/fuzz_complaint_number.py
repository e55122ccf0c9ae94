"""Coverage-guided fuzzing of complaint numbers: the Verhoeff parse (atheris).

Run standalone: ``.venv/bin/python fuzz/fuzz_complaint_number.py -atheris_runs=100000``.
Invariants: ``is_valid_complaint_number`` never raises; a valid number has 10 ASCII digits
and is what ``complaint_number`` makes of its first nine; a single-digit change and a swap of
two different adjacent digits of a valid number (at a fuzzer-chosen place) are invalid (what
Verhoeff promises); ``verhoeff_check_digit`` raises only ValueError.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with atheris.instrument_imports(include=["core", "stdnum.verhoeff"]):
    from core.domain.complaints import (
        SEQUENCE_START,
        complaint_number,
        is_valid_complaint_number,
        verhoeff_check_digit,
    )


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    if fdp.ConsumeBool():
        text = fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 14))
    else:
        text = complaint_number(fdp.ConsumeIntInRange(SEQUENCE_START, 10**9 - 1))
    with contextlib.suppress(ValueError):
        verhoeff_check_digit(text)
    if not is_valid_complaint_number(text):
        return
    assert len(text) == 10 and text.isascii() and text.isdigit(), text
    if text[0] != "0":
        assert complaint_number(int(text[:9])) == text
    i = fdp.ConsumeIntInRange(0, 9)
    digit = str((int(text[i]) + fdp.ConsumeIntInRange(1, 9)) % 10)
    slip = text[:i] + digit + text[i + 1 :]
    assert not is_valid_complaint_number(slip), (text, slip)
    if i < 9 and text[i] != text[i + 1]:
        swapped = text[:i] + text[i + 1] + text[i] + text[i + 2 :]
        assert not is_valid_complaint_number(swapped), (text, swapped)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
