"""ReplyParser under noise: only AGIProtocolError escapes and no buffer outgrows its cap.

10,000 examples; one binary and one seed per example (cheap to generate) keep this file fast.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.protocols.agi import (
    AGIProtocolError,
    AGIReply,
    Closed,
    HangupNotice,
    Progress,
    ReplyParser,
)
from tests.unit.agi_noise import SEED, mangle


@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200), SEED)
def test_reply_parser_never_crashes_and_respects_caps(noise: bytes, seed: int) -> None:
    parser = ReplyParser(max_line=80, max_usage=160)
    try:
        for chunk in mangle(noise, seed):
            for event in parser.feed(chunk):
                assert isinstance(event, AGIReply | HangupNotice | Progress)
                if isinstance(event, AGIReply):
                    assert 0 <= event.code <= 999 and isinstance(event.raw, str)
            assert parser.buffered <= 80
            assert parser.usage_buffered <= 160
        if seed % 2:
            assert parser.feed_eof()[-1:] in ([Closed(True)], [Closed(False)])
    except AGIProtocolError:
        pass
