"""EnvironmentParser under noise: only AGIProtocolError escapes and no buffer outgrows its cap.

10,000 examples; one binary and one seed per example (cheap to generate) keep this file fast.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.protocols.agi import AGIProtocolError, EnvironmentParser
from tests.unit.agi_noise import SEED, mangle


@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200), SEED)
def test_env_parser_never_crashes_and_respects_caps(noise: bytes, seed: int) -> None:
    parser = EnvironmentParser(max_bytes=256)
    try:
        for chunk in mangle(noise, seed):
            env = parser.feed(chunk)
            assert parser.buffered <= 256
            if env is not None:
                assert isinstance(env.script, str) and isinstance(env.args, tuple)
                assert len(parser.leftover) <= len(chunk)
                break
        else:
            parser.feed_eof()
    except AGIProtocolError:
        pass
