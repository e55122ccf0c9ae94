"""Noise for the AGI parser property tests: random bytes with protocol tokens spliced in."""

from __future__ import annotations

import random

from hypothesis import strategies as st

SEED = st.integers(min_value=0, max_value=2**32 - 1)

_TOKENS = [
    b"200 result=0\n",
    b"200 result=1 (x) endpos=5\n",
    b"HANGUP\n",
    b"100 result=0 Trying...\n",
    b"520-Invalid command syntax.  Proper usage follows:\n",
    b"520 End of proper usage.\n",
    b"510 Invalid or unknown command\n",
    b"\xe0\xa4\xb0\xe0\xa4",
    b"(",
    b")",
    b" ",
    b"\n",
    b"\r\n",
    b"=",
    b"agi_",
    b": ",
    b"\n\n",
    b"agi_network_script: a/b?c=d&e",
]


def mangle(noise: bytes, seed: int) -> list[bytes]:
    """Splice protocol tokens into ``noise`` and cut the result into chunks, from ``seed``."""
    rng = random.Random(seed)
    pieces = [noise[i : i + 16] for i in range(0, len(noise), 16)]
    for _ in range(rng.randrange(12)):
        pieces.insert(rng.randrange(len(pieces) + 1), rng.choice(_TOKENS))
    stream = b"".join(pieces)
    return _chunks(stream, [rng.randrange(len(stream) + 1) for _ in range(rng.randrange(8))])


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for point in [*points, len(data)]:
        out.append(data[prev:point])
        prev = point
    return out
