"""Hostile-bytes property of the AMI parser (10,000 examples): feeding anything never raises;
only :class:`AMIProtocolError` comes out of ``next_event``; buffered memory and every message
stay within the caps; the parser resynchronises and stays usable."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.protocols.ami import AMIMessage, AMIParser, AMIProtocolError
from tests.unit.ami_transcripts import CODES, PROPERTY

MAX_LINE, MAX_MESSAGE, MAX_HEADERS = 40, 200, 8
NOISE = [
    b"\r\n",
    b"\n",
    b"\r",
    b"\r\n\r\n",
    b"Response: Follows\r\n",
    b"Response: Success\r\n",
    b"--END COMMAND--",
    b"Event: X\r\n",
    b"Output: y\r\n",
    b"ActionID: 5\r\n",
    b"aCTIONid: 6\r\n",
    b"Asterisk Call Manager/11.0.0\r\n",
    "रमेश".encode()[:5],
    b"\xff\xfe\xe0",
    b"A: " + b"z" * 50,
    b"B: 1",
    b":",
    b"\0",
]


def noise_of(codes: list[int]) -> list[bytes]:
    """Chunks of hostile bytes: protocol fragments, raw bytes, over-long runs."""
    chunks: list[bytes] = []
    for code in codes:
        kind = code % 4
        if kind == 0:
            chunks.append(bytes([(code >> 2) & 0xFF]) * (1 + (code >> 10) % 70))
        else:
            parts = [NOISE[(code >> (2 + 4 * j)) % len(NOISE)] for j in range(kind)]
            chunks.append(b"".join(parts))
    return chunks


def drain(p: AMIParser) -> list[AMIMessage]:
    out: list[AMIMessage] = []
    while True:
        try:
            item = p.next_event()
        except AMIProtocolError:
            continue
        if item is None:
            return out
        if isinstance(item, AMIMessage):
            out.append(item)


@PROPERTY
@given(CODES, st.booleans())
def test_hostile_bytes_keep_caps_and_only_protocol_errors(codes: list[int], greeting: bool) -> None:
    p = AMIParser(
        expect_greeting=greeting,
        max_line=MAX_LINE,
        max_message=MAX_MESSAGE,
        max_headers=MAX_HEADERS,
    )
    for chunk in noise_of(codes):
        p.feed(chunk)  # never raises
        assert p.pending_bytes <= MAX_LINE + 1 + MAX_MESSAGE
        for item in drain(p):
            assert 0 < len(item) <= MAX_HEADERS
            size = sum(len(k.encode()) + len(v.encode()) for k, v in item)
            # Decoding may turn one bad byte into a 3-byte U+FFFD.
            assert size <= 3 * MAX_MESSAGE
            assert all("\n" not in k + v for k, v in item)
    # Still usable: after any garbage, a valid message comes out once framing resyncs.
    p.feed(b"\r\n\r\n--END COMMAND--\r\n\r\nEvent: Sentinel\r\n\r\n")
    assert [m.name for m in drain(p)][-1:] == ["Sentinel"]
