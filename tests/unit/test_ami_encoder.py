"""Property test of the AMI action encoder (10,000 examples): any name, keys and values
either raise ValueError or encode to exactly one action with exactly those headers, so no
header injection is possible."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.protocols.ami import AMIMessage, AMIParser, encode_action
from tests.unit.ami_transcripts import CODES, PROPERTY, TOKENS, parse_chunks, text_of

ANY_PIECES = [*TOKENS, "\r", "\n", "\0", "\r\n\r\nAction: Hangup", "Action", "ActionID"]


@PROPERTY
@given(st.integers(min_value=0, max_value=2**24), CODES)
def test_encoder_never_injects(name_code: int, codes: list[int]) -> None:
    name = text_of(name_code, ANY_PIECES)
    pairs = [
        (text_of(a, ANY_PIECES), text_of(b, ANY_PIECES))
        for a, b in zip(codes[::2], codes[1::2], strict=False)
    ]
    try:
        data = encode_action(name, pairs, action_id="t-1")
    except ValueError:
        for text in [name, *(k + v for k, v in pairs)]:
            if any(c in text for c in "\r\n\0"):
                return
        assert any(
            not k or ":" in k or k != k.strip() or k.lower() in ("action", "actionid")
            for k, _ in pairs
        )
        return
    items, errors = parse_chunks([data], AMIParser(expect_greeting=False))
    assert errors == []
    (msg,) = items
    assert isinstance(msg, AMIMessage)
    assert msg.headers == (("Action", name), ("ActionID", "t-1"), *pairs)
