"""Coverage-guided fuzzing of the AGI reply parser (atheris).

Run standalone: ``.venv/bin/python fuzz/fuzz_agi_reply.py -atheris_runs=100000`` (add a corpus
directory, e.g. ``fuzz/corpus-reply``, to keep findings). The input is split into chunks of
fuzzer-chosen sizes, so line reassembly across reads is fuzzed too. Invariants: only
AGIProtocolError escapes; buffered bytes never exceed the caps; events are the documented types.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with atheris.instrument_imports():
    from core.protocols.agi import (
        AGIProtocolError,
        AGIReply,
        Closed,
        HangupNotice,
        Progress,
        ReplyParser,
    )

MAX_LINE = 96
MAX_USAGE = 192

TOKENS = [
    b"200 result=",
    b"200 result=1 (",
    b") endpos=",
    b"100 result=0 Trying...\n",
    b"HANGUP\n",
    b"510 Invalid or unknown command\n",
    b"511 Command Not Permitted on a dead channel\n",
    b"520-Invalid command syntax.  Proper usage follows:\n",
    b"520 End of proper usage.\n",
    "रमेश".encode(),
    b"\n",
    b"\r\n",
]


def _chunk(fdp: atheris.FuzzedDataProvider) -> bytes:
    """A protocol token (so the fuzzer gets past "unexpected line" quickly) or raw bytes."""
    if fdp.ConsumeIntInRange(0, 2) == 0:
        return TOKENS[int(fdp.ConsumeIntInRange(0, len(TOKENS) - 1))]
    return bytes(fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 48)))


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    parser = ReplyParser(max_line=MAX_LINE, max_usage=MAX_USAGE)
    try:
        while fdp.remaining_bytes():
            chunk = _chunk(fdp)
            for event in parser.feed(chunk):
                assert isinstance(event, AGIReply | HangupNotice | Progress), event
                if isinstance(event, AGIReply):
                    assert 0 <= event.code <= 999
                    assert event.endpos is None or event.endpos >= 0
            assert parser.buffered <= MAX_LINE, parser.buffered
            assert parser.usage_buffered <= MAX_USAGE, parser.usage_buffered
        end = parser.feed_eof()
        assert len(end) == 1 and isinstance(end[0], Closed)
    except AGIProtocolError:
        pass


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
