"""Coverage-guided fuzzing of the AGI handshake parser (atheris).

Run standalone: ``.venv/bin/python fuzz/fuzz_agi_env.py -atheris_runs=100000``. The input is
split into chunks of fuzzer-chosen sizes (a Devanagari character may be cut anywhere).
Invariants: only AGIProtocolError escapes; the buffer never exceeds the cap; a parsed
environment has a str script, str query values and a tuple of args, and only what Asterisk
sends: keys ``agi_[a-z0-9_]+``, each once (a duplicated or injected key must have been
refused); values may hold any character but LF (they are encoded where used).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with atheris.instrument_imports():
    from core.protocols.agi import AGIProtocolError, EnvironmentParser

MAX_BYTES = 512
KEY = re.compile(r"agi_[a-z0-9_]{1,60}")

TOKENS = [
    b"agi_network_script: ",
    b"agi_arg_1: ",
    b"agi_arg_2: ",
    b"agi_request: agi://127.0.0.1:4573/",
    b"agi_calleridname: ",
    "रमेश कुमार".encode(),
    b"?lang=hi&x=%E0%A4",
    b": ",
    b"\n",
    b"\r\n",
    b"\r",
    b"\x1b[2J",
    b"\x00",
    b"\xc2\x85",
    b"AGI_X: ",
    b" agi_x: ",
    b"agi_network_script: admin\n",
]


def _chunk(fdp: atheris.FuzzedDataProvider) -> bytes:
    """A protocol token (so the fuzzer gets past "unexpected line" quickly) or raw bytes."""
    if fdp.ConsumeIntInRange(0, 2) == 0:
        return TOKENS[int(fdp.ConsumeIntInRange(0, len(TOKENS) - 1))]
    return bytes(fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 48)))


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    parser = EnvironmentParser(max_bytes=MAX_BYTES)
    try:
        while fdp.remaining_bytes():
            chunk = _chunk(fdp)
            env = parser.feed(chunk)
            assert parser.buffered <= MAX_BYTES, parser.buffered
            if env is not None:
                assert isinstance(env.script, str)
                assert all(isinstance(v, str) for v in env.query.values())
                assert isinstance(env.args, tuple)
                lines = parser._text.split("\n")[:-1]  # the lines as taken
                keys = [line.partition(":")[0] for line in lines]
                assert len(keys) == len(set(keys)), keys
                assert all(KEY.fullmatch(key) for key in keys), keys
                assert not any("\n" in v for v in env.variables.values())
                assert len(parser.leftover) <= len(chunk)
                return
        parser.feed_eof()
        raise AssertionError("feed_eof() accepted an incomplete handshake")
    except AGIProtocolError:
        pass


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
