"""AGI command encoder: quoting exactly as Asterisk's parse_args() (res_agi.c) splits it."""

from __future__ import annotations

import itertools
import random
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.protocols.agi import AGI_BUF_LEN, encode_command, parse_command_line


def test_encode_examples() -> None:
    assert encode_command("STREAM FILE", "welcome", "0123#") == b"STREAM FILE welcome 0123#\n"
    assert encode_command("STREAM FILE", "welcome", "") == b'STREAM FILE welcome ""\n'
    assert encode_command("ANSWER") == b"ANSWER\n"
    assert (
        encode_command("SET VARIABLE", "NAME", 'रमेश "R" \\ कुमार')
        == 'SET VARIABLE NAME "रमेश \\"R\\" \\\\ कुमार"\n'.encode()
    )
    assert encode_command("EXEC", "Playback", "a b,c") == b'EXEC Playback "a b,c"\n'


@pytest.mark.parametrize("bad", ["a\nHANGUP", "a\r", "\x00", "x\r\nEXEC System rm"])
def test_encode_refuses_crlf_nul(bad: str) -> None:
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        encode_command("SET VARIABLE", "X", bad)
    with pytest.raises(ValueError):
        encode_command(bad)


def test_encode_limits() -> None:
    with pytest.raises(ValueError, match="longer than"):
        encode_command("VERBOSE", "x" * AGI_BUF_LEN)
    with pytest.raises(ValueError, match="too many"):
        encode_command("EXEC", *(["a"] * 130))
    with pytest.raises(ValueError):
        encode_command()
    with pytest.raises(ValueError, match="verb"):
        encode_command('ST"REAM')


def test_parse_command_line_matches_res_agi_quirks() -> None:
    # Quotes toggle mid-word and are dropped; backslash makes the next character literal.
    assert parse_command_line('a"b c"d e') == ["ab cd", "e"]
    assert parse_command_line(r"a\ b \\ \"") == ["a b", "\\", '"']
    assert parse_command_line('x  ""  y\t"') == ["x", "", "y", ""]


# Bytes mapped through a table of the characters that matter (separators, quotes, backslash,
# Devanagari, astral) are far cheaper to generate than st.text(), which keeps 10,000 examples
# within the file's time budget; the seed cuts the text into arguments.
_ALPHABET = ' \t"\\' + string.ascii_letters + string.digits + string.punctuation
_ALPHABET += "रमेशकुमारसड़कगड्ढेपंचायत।॥०१२३" + "\u00a0\u200d\ufeff\U0001f600é"
_TABLE = [_ALPHABET[i % len(_ALPHABET)] for i in range(256)]
_TEXT = st.binary(max_size=60).map(lambda raw: "".join(_TABLE[b] for b in raw))
_SEED = st.integers(min_value=0, max_value=2**32 - 1)


@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_TEXT, _SEED)
def test_encode_round_trips_through_asterisk_parse_args(text: str, seed: int) -> None:
    rng = random.Random(seed)
    cuts = sorted(rng.randrange(len(text) + 1) for _ in range(rng.randrange(6)))
    args = [text[a:b] for a, b in itertools.pairwise([0, *cuts, len(text)])]
    line = encode_command("SET VARIABLE", *args)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert parse_command_line(line.decode()) == ["SET", "VARIABLE", *args]
