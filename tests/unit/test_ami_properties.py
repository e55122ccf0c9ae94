"""Round-trip property of the AMI parser (10,000 examples): any messages we can encode parse
back identically, however TCP splits them and whichever line ends Asterisk used.

Hostile input is in test_ami_hostile.py, the encoder in test_ami_encoder.py (one property per
file keeps each file under 30 s).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.protocols.ami import (
    AMIGreeting,
    AMIMessage,
    encode_message,
)
from tests.unit.ami_transcripts import (
    CODES,
    CUTS,
    GREETING,
    PROPERTY,
    TOKENS,
    parse_chunks,
    split_at,
    text_of,
)

KEYS = ["Event", "Uniqueid", "CallerIDName", "Variable", "ChanVariable", "Output", "X-Y_1", "a"]
FIRSTS = [
    ("Event", "Newchannel"),
    ("Event", "QueueMember"),
    ("Response", "Success"),
    ("Response", "Error"),
    ("Response", "Goodbye"),
]


def build_messages(codes: list[int]) -> list[list[tuple[str, str]]]:
    messages: list[list[tuple[str, str]]] = []
    for code in codes:
        if not messages or code % 6 == 0:
            messages.append([FIRSTS[(code // 6) % len(FIRSTS)]])
        else:
            key = KEYS[(code // 6) % len(KEYS)]
            messages[-1].append((key, text_of(code // 48, TOKENS)))
    return messages


@PROPERTY
@given(CODES, CUTS, st.booleans())
def test_round_trip_any_split(codes: list[int], cuts: list[int], bare_lf: bool) -> None:
    messages = build_messages(codes)
    wire = GREETING + b"".join(encode_message(m) for m in messages)
    if bare_lf:
        wire = wire.replace(b"\r\n", b"\n")
    items, errors = parse_chunks(split_at(wire, cuts))
    assert errors == []
    assert isinstance(items[0], AMIGreeting)
    assert [m for m in items[1:] if isinstance(m, AMIMessage)] == [AMIMessage(m) for m in messages]
