"""The AGI parsers against the rules written plainly here (an oracle), on generated streams cut
into random chunks: whatever the reads, the handshake and the replies come out as the rules say.

The oracle reads a whole stream line by line with the simplest code that states each rule; the
parsers are incremental and work per read. Caps are left out (test_agi_*_properties.py).
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from core.protocols.agi import (
    AGIEnvironment,
    AGIProtocolError,
    AGIReply,
    Closed,
    EnvironmentParser,
    HangupNotice,
    Progress,
    ReplyEvent,
    ReplyParser,
)

# --------------------------------------------------------------------------- the rules


def handshake_rules(stream: bytes) -> tuple[dict[str, str], bytes] | str | None:
    """``(variables, leftover)``, ``"error"``, or ``None`` while the empty line is missing.

    Lines end with LF, a CR before it is dropped; the first empty line ends the handshake; a
    line is ``key:value``, one space after the colon dropped. The key is ``agi_`` and 1-60
    lower-case ASCII letters, digits or ``_`` (what Asterisk sends); a line whose key is
    otherwise, or without a colon, is an error; so is a key sent twice. A value is kept as sent,
    control characters included (the carrier's caller name may hold a TAB).
    """
    variables: dict[str, str] = {}
    lines = stream.split(b"\n")
    for n, raw in enumerate(lines[:-1]):
        line = raw.removesuffix(b"\r").decode("utf-8", "replace")
        if not line:
            return variables, b"\n".join(lines[n + 1 :])
        key, colon, value = line.partition(":")
        name = key.removeprefix("agi_")
        if (
            not colon
            or not key.startswith("agi_")
            or not 1 <= len(name) <= 60
            or any(c not in "abcdefghijklmnopqrstuvwxyz0123456789_" for c in name)
            or key in variables
        ):
            return "error"
        variables[key] = value.removeprefix(" ")
    return None


def body_200_rules(line: str, body: str) -> AGIReply:
    """``result=R``, then ``(data)`` up to the last ``)`` followed only by ``key=value`` words,
    then ``key=value`` words; ``endpos`` as an int when it is ASCII digits."""
    result, data, fields = "", None, {}
    head = re.fullmatch(r"result=([^ ]*)(?: +(.*))?", body, re.DOTALL)
    if head is not None:
        result, rest = head[1], head[2] or ""
        if rest.startswith("("):
            tail = re.fullmatch(r"\((.*)\)((?: +[A-Za-z_]\w*=\S*)*) *", rest, re.ASCII | re.DOTALL)
            if tail is None:
                data = rest[1:]  # unterminated: everything after "(" is data
            else:
                data, rest = tail[1], tail[2]
        if data is None or tail is not None:
            fields = dict(w.split("=", 1) for w in rest.split() if "=" in w)
    endpos = None
    if "endpos" in fields and re.fullmatch("[0-9]{1,18}", fields["endpos"]):
        endpos = int(fields.pop("endpos"))
    return AGIReply(200, result, data, endpos, line, fields)


def reply_rules(stream: bytes) -> list[ReplyEvent | str]:
    """The events of a stream's whole lines; ``"error"`` where the stream breaks the rules."""
    events: list[ReplyEvent | str] = []
    usage: list[str] | None = None
    for raw in stream.split(b"\n")[:-1]:
        line = raw.removesuffix(b"\r").decode("utf-8", "replace")
        if usage is not None:  # inside a 520 block, up to its "520 " line
            if line.startswith("520 "):
                events.append(
                    AGIReply(
                        520, "", None, None, "\n".join([*usage, line]), {}, "\n".join(usage[1:])
                    )
                )
                usage = None
            else:
                usage.append(line)
            continue
        if line.strip() == "HANGUP":
            events.append(HangupNotice())
            continue
        match = re.fullmatch(r"([0-9]{3})(?:([ -])(.*))?", line, re.DOTALL)
        if match is None or (match[2] == "-" and match[1] != "520"):
            return [*events, "error"]
        code, body = int(match[1]), match[3] or ""
        if match[2] == "-":
            usage = [line]
        elif code == 100:
            events.append(Progress(line))
        elif code == 200:
            events.append(body_200_rules(line, body))
        else:
            events.append(AGIReply(code, "", None, None, line, {}, body if code == 520 else None))
    return events


# --------------------------------------------------------------------------- feeding


def chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


CUTS = st.lists(st.integers(min_value=0, max_value=10_000), max_size=12)


def parse_handshake(pieces: list[bytes]) -> tuple[dict[str, str], bytes] | str | None:
    parser = EnvironmentParser()
    try:
        for n, piece in enumerate(pieces):
            env = parser.feed(piece)
            if env is not None:
                return dict(env.variables), parser.leftover + b"".join(pieces[n + 1 :])
    except AGIProtocolError:
        return "error"
    return None


#: A memo shared by the examples, as a server shares one between its calls.
MEMO: dict[str, AGIReply] = {}


def parse_replies(pieces: list[bytes], memo: bool) -> list[ReplyEvent | str]:
    parser = ReplyParser(replies=MEMO if memo else None)
    events: list[ReplyEvent | str] = []
    try:
        for piece in pieces:
            events += parser.feed(piece)
    except AGIProtocolError:
        events.append("error")
    return events


# --------------------------------------------------------------------------- streams

HANDSHAKE_PIECES = st.sampled_from(
    [
        "agi_",
        "agi_network_script",
        "agi_arg_1",
        "agi_calleridname",
        "x",
        ":",
        ": ",
        " ",
        "\t",
        "\r",
        "\r\n",
        "\n",
        "\xa0",
        "\x1b",
        "\x85",
        "\x7f",
        "रमेश",
        "?",
        "=",
        "&",
        "/",
        "%E0%A4%95",
    ]
)
HANDSHAKE_LINE = st.one_of(
    st.builds(
        lambda key, sep, value: f"{key}{sep}{value}",
        st.sampled_from(
            ["agi_network_script", "agi_request", "agi_arg_1", "agi_arg_2", "agi_x", "agi_X", "x"]
        ),
        st.sampled_from([": ", ":", ":  ", " : ", "\t:"]),
        st.lists(HANDSHAKE_PIECES, max_size=4).map("".join),
    ),
    st.lists(HANDSHAKE_PIECES, max_size=5).map("".join),
)


@settings(max_examples=2000, deadline=None)
@given(st.lists(HANDSHAKE_LINE, max_size=8), st.binary(max_size=8), st.booleans(), CUTS)
def test_handshake_follows_the_rules_however_it_is_cut(
    lines: list[str], after: bytes, ended: bool, cuts: list[int]
) -> None:
    stream = "\n".join(lines).encode() + (b"\n\n" + after if ended else b"")
    expected = handshake_rules(stream)
    assert parse_handshake(chunks(stream, cuts)) == expected
    if isinstance(expected, tuple):  # what a script reads comes from those variables
        env = EnvironmentParser().feed(stream)
        assert env == AGIEnvironment.from_variables(expected[0])


REPLY_PIECES = st.sampled_from(
    [
        "200 result=",
        "0",
        "1",
        "-1",
        "49",
        " ",
        "  ",
        "(",
        ")",
        "timeout",
        "endpos=",
        "16000",
        "٣",
        "x=",
        "=",
        "रमेश",
        "\t",
        "\r",
        "\udce0\udca4",  # a Devanagari letter cut short: invalid UTF-8
    ]
)
REPLY_LINE = st.one_of(
    st.lists(REPLY_PIECES, max_size=8).map(lambda p: "200 result=" + "".join(p)),
    st.sampled_from(
        [
            "200 result=0",
            "200 result=0 endpos=16000",
            "200 result= (timeout)",
            "100 result=0 Trying...",
            "HANGUP",
            " HANGUP ",
            "510 Invalid or unknown command",
            "511 Command Not Permitted on a dead channel or intercept routine",
            "520-Invalid command syntax.  Proper usage follows:",
            " Usage: STREAM FILE <filename> <escape_digits> [sample offset]",
            "",
            "520 End of proper usage.",
            "520 Invalid command syntax.  Proper usage not available.",
            "200",
            "200-x",
            "Hello",
        ]
    ),
)


@settings(max_examples=3000, deadline=None)
@given(st.lists(REPLY_LINE, max_size=10), st.sampled_from(["\n", "\r\n"]), CUTS, st.booleans())
def test_replies_follow_the_rules_however_they_are_cut(
    lines: list[str], end: str, cuts: list[int], memo: bool
) -> None:
    stream = "".join(line + end for line in lines).encode("utf-8", "surrogateescape")
    expected = reply_rules(stream)
    got = parse_replies(chunks(stream, cuts), memo)
    if expected[-1:] == ["error"]:  # the events of the read that broke the rules are lost
        assert got[-1:] == ["error"] and got[:-1] == expected[: len(got) - 1]
    else:
        assert got == expected
    if stream and "error" not in expected:  # a stream cut mid-line is truncated at EOF
        parser = ReplyParser()
        parser.feed(stream[:-1])
        assert parser.feed_eof() == [Closed(truncated=True)]


def test_the_reply_memo_keeps_only_data_less_replies_and_is_bounded() -> None:
    memo: dict[str, AGIReply] = {}
    first = ReplyParser(replies=memo).feed(b"200 result=0 endpos=16000\n")[0]
    second = ReplyParser(replies=memo).feed(b"200 result=0 endpos=16000\r\n")[0]
    assert first is second and first == AGIReply(200, "0", None, 16000, "200 result=0 endpos=16000")
    ReplyParser(replies=memo).feed(b"200 result=1 (x)\n200 result=1 results=2\n")
    assert list(memo) == ["200 result=0 endpos=16000"]  # data and fields are not kept
    for n in range(2000):
        ReplyParser(replies=memo).feed(f"200 result={n}\n".encode())
    assert len(memo) == 1024
