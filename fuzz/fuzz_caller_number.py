"""Coverage-guided fuzzing of caller-number parsing and of the logs' number masking (atheris).

Run standalone: ``.venv/bin/python fuzz/fuzz_caller_number.py -atheris_runs=100000``.
Invariants: ``parse_caller_id`` never raises and gives None or 10 digits; ``CallerNumber``
raises only ValueError and agrees with it; a number's spellings (+91, 0, spaced) parse back
to it; ``raw_caller_id`` is bounded and has no control characters; ``mask_numbers`` never
raises and leaves no valid number behind.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Our modules only: instrumenting phonenumbers' metadata would cost seconds at every start.
with atheris.instrument_imports(include=["core"]):
    from core.domain.phone import RAW_CALLER_ID_LENGTH, CallerNumber, parse_caller_id, raw_caller_id
    from core.logs import mask_numbers

NATIONAL = re.compile(r"[1-9][0-9]{9}")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
TOKENS = ["+91", "091", "0", "91", " ", "-", "tel:", "9415012345", "anonymous", "०", "(", ")"]


def _text(fdp: atheris.FuzzedDataProvider) -> str:
    parts = []
    for _ in range(fdp.ConsumeIntInRange(1, 6)):
        if fdp.ConsumeBool():
            parts.append(TOKENS[fdp.ConsumeIntInRange(0, len(TOKENS) - 1)])
        else:
            parts.append(fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 16)))
    return "".join(parts)


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    text = _text(fdp)
    parsed = parse_caller_id(text)
    try:
        strict = CallerNumber(text)
    except ValueError:
        strict = None
    assert strict == parsed, (text, strict, parsed)
    if parsed is not None:
        assert NATIONAL.fullmatch(parsed), parsed
        for spelling in (parsed.e164, "0" + parsed, f"+91 {parsed[:5]} {parsed[5:]}"):
            assert CallerNumber(spelling) == parsed, spelling
        assert parsed not in mask_numbers(f"call from {parsed.e164} ended")
    raw = raw_caller_id(text)
    assert raw is None or (len(raw) <= RAW_CALLER_ID_LENGTH and not CONTROL.search(raw))
    masked = mask_numbers(text)
    assert mask_numbers(masked) == masked, (text, masked)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
