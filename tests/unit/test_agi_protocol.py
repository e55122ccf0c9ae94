"""Sans-I/O AGI parsers and encoder: captured transcripts, every split, and property tests."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.protocols.agi import (
    MAX_HANDSHAKE_BYTES,
    AGIEnvironment,
    AGIProtocolError,
    AGIReply,
    Closed,
    EnvironmentParser,
    HangupNotice,
    Progress,
    ReplyEvent,
    ReplyParser,
    digit_from_result,
)

# A handshake as Asterisk 22 sends it for AGI(agi://127.0.0.1:4573/ivr/main?lang=hi&dept=pwd,x y,z)
HANDSHAKE = (
    "agi_network: yes\n"
    "agi_network_script: ivr/main?lang=hi&dept=pwd\n"
    "agi_request: agi://127.0.0.1:4573/ivr/main?lang=hi&dept=pwd\n"
    "agi_channel: PJSIP/trunk-0000002a\n"
    "agi_language: hi\n"
    "agi_type: PJSIP\n"
    "agi_uniqueid: 1732860000.42\n"
    "agi_version: 22.1.0\n"
    "agi_callerid: 9415012345\n"
    "agi_calleridname: रमेश कुमार\n"
    "agi_callingpres: 0\n"
    "agi_callingani2: 0\n"
    "agi_callington: 0\n"
    "agi_callingtns: 0\n"
    "agi_dnid: 1076\n"
    "agi_rdnis: unknown\n"
    "agi_context: ivr\n"
    "agi_extension: 1076\n"
    "agi_priority: 2\n"
    "agi_enhanced: 0.0\n"
    "agi_accountcode: \n"
    "agi_threadid: 139872631625280\n"
    "agi_arg_1: x y\n"
    "agi_arg_2: z\n"
    "\n"
).encode()

USAGE_520 = (
    b"520-Invalid command syntax.  Proper usage follows:\n"
    b" Usage: STREAM FILE <filename> <escape_digits> [sample offset]\n"
    b"Send the given file, allowing playback to be interrupted by the given digits, if any.\n"
    b"\n"
    b"520 End of proper usage.\n"
)

# Lines Asterisk sends after commands, in one captured session (with a hang-up racing a reply).
REPLIES = (
    b"200 result=0\n"
    b"100 result=0 Trying...\n"
    b"200 result=49 endpos=11040\n"
    b"200 result=12 (timeout)\n"
    b"200 result= (timeout)\n"
    b"200 result=1 (\xe0\xa4\xb0\xe0\xa4\xae\xe0\xa5\x87\xe0\xa4\xb6 (x) y)\n"
    + USAGE_520
    + b"510 Invalid or unknown command\n"
    b"HANGUP\n"
    b"200 result=-1 endpos=0\n"
    b"511 Command Not Permitted on a dead channel or intercept routine\n"
)

EXPECTED: list[ReplyEvent] = [
    AGIReply(200, "0", None, None, "200 result=0", {}),
    Progress("100 result=0 Trying..."),
    AGIReply(200, "49", None, 11040, "200 result=49 endpos=11040", {}),
    AGIReply(200, "12", "timeout", None, "200 result=12 (timeout)", {}),
    AGIReply(200, "", "timeout", None, "200 result= (timeout)", {}),
    AGIReply(200, "1", "रमेश (x) y", None, "200 result=1 (रमेश (x) y)", {}),
    AGIReply(
        520,
        "",
        None,
        None,
        USAGE_520.decode().rstrip("\n"),
        {},
        " Usage: STREAM FILE <filename> <escape_digits> [sample offset]\n"
        "Send the given file, allowing playback to be interrupted by the given digits, if any.\n",
    ),
    AGIReply(510, "", None, None, "510 Invalid or unknown command", {}),
    HangupNotice(),
    AGIReply(200, "-1", None, 0, "200 result=-1 endpos=0", {}),
    AGIReply(
        511,
        "",
        None,
        None,
        "511 Command Not Permitted on a dead channel or intercept routine",
        {},
    ),
]


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for point in [*points, len(data)]:
        out.append(data[prev:point])
        prev = point
    return out


def _parse_env(chunks: list[bytes]) -> AGIEnvironment:
    parser = EnvironmentParser()
    env = None
    for chunk in chunks:
        assert env is None
        env = parser.feed(chunk)
    assert env is not None
    return env


def _parse_replies(chunks: list[bytes], parser: ReplyParser | None = None) -> list[ReplyEvent]:
    parser = parser or ReplyParser()
    events: list[ReplyEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    return events


# --------------------------------------------------------------------------- environment


def _check_env(env: AGIEnvironment) -> None:
    assert env.caller_name == "रमेश कुमार"
    assert env.caller_id == "9415012345"
    assert env.uniqueid == "1732860000.42"
    assert env.script == "ivr/main"
    assert dict(env.query) == {"lang": "hi", "dept": "pwd"}
    assert env.args == ("x y", "z")
    assert env.get("accountcode") == ""
    assert env.get("agi_context") == "ivr"


def test_env_whole() -> None:
    _check_env(_parse_env([HANDSHAKE]))


def test_env_one_byte_at_a_time() -> None:
    # Every Devanagari character is split across two or three feeds.
    _check_env(_parse_env([HANDSHAKE[i : i + 1] for i in range(len(HANDSHAKE))]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(HANDSHAKE)), max_size=40))
def test_env_random_chunks(cuts: list[int]) -> None:
    _check_env(_parse_env([c for c in _chunks(HANDSHAKE, cuts) if c]))


def test_env_crlf_and_leftover() -> None:
    parser = EnvironmentParser()
    env = parser.feed(b"agi_network_script: a\r\nagi_uniqueid: 1.2\r\n\r\n200 result=0\n")
    assert env is not None and env.script == "a" and env.uniqueid == "1.2"
    assert parser.leftover == b"200 result=0\n"


def test_env_invalid_utf8_is_replaced_not_fatal() -> None:
    env = _parse_env([b"agi_calleridname: \xe0\xa4\n", b"agi_network_script: s\n\n"])
    assert env.caller_name == "\ufffd"


def test_env_cap() -> None:
    parser = EnvironmentParser()
    with pytest.raises(AGIProtocolError, match="larger than"):
        for n in range(MAX_HANDSHAKE_BYTES):
            parser.feed(b"agi_x%d: " % n + b"y" * 100 + b"\n")
    assert parser.buffered <= MAX_HANDSHAKE_BYTES
    with pytest.raises(AGIProtocolError, match="larger than"):
        EnvironmentParser().feed(b"a" * (MAX_HANDSHAKE_BYTES + 1))


def test_env_truncated_and_malformed() -> None:
    parser = EnvironmentParser()
    parser.feed(b"agi_network: yes\nagi_chan")
    with pytest.raises(AGIProtocolError, match="closed during the AGI handshake"):
        parser.feed_eof()
    with pytest.raises(AGIProtocolError, match="malformed"):
        EnvironmentParser().feed(b"GET / HTTP/1.1\n")


#: Handshakes a real Asterisk never sends: an injected or overriding key, a key of other
#: characters. Each must end the session with the reason, whatever the reads.
_DUPLICATE_ID = b"agi_callerid: 1\nagi_callerid: 2\n"
HOSTILE_HANDSHAKES: list[tuple[bytes, str]] = [
    (HANDSHAKE.replace(b"agi_arg_2: z\n", b"agi_arg_2: z\nagi_network_script: admin\n"), "twice"),
    (HANDSHAKE.replace(b"agi_callerid: 9415012345\n", _DUPLICATE_ID), "twice"),
    (HANDSHAKE.replace(b"agi_dnid: 1076\n", b"agi_dnid: 1076\nAGI_DNID: 1\n"), "malformed"),
    (HANDSHAKE.replace(b"agi_dnid: 1076\n", b"agi_dnid: 1076\n agi_dnid: 1\n"), "malformed"),
    (HANDSHAKE.replace(b"agi_dnid: 1076\n", b"agi_dnid: 1076\nagi_x-y: 1\n"), "malformed"),
    (HANDSHAKE.replace(b"agi_dnid: 1076\n", b"agi_dnid: 1076\nagi_x : 1\n"), "malformed"),
    (HANDSHAKE.replace(b"agi_dnid: 1076\n", b"agi_dnid: 1076\nagi_\xe0\xa4\x95: 1\n"), "malformed"),
]

#: What a carrier may put in a caller name: kept as sent (the caller keeps the IVR); every use
#: of it encodes it (tests/unit/test_injection.py, tests/service/test_ivr_store.py).
CONTROLLED_NAMES = [b"x\ry", b"\x1b[2J", b"a\x00b", b"a\tb", b"a\x7fb", "a\x85b".encode()]


@pytest.mark.parametrize("name", CONTROLLED_NAMES)
def test_env_keeps_a_value_with_control_characters(name: bytes) -> None:
    stream = HANDSHAKE.replace("रमेश".encode(), name)
    for chunks in ([stream], [stream[i : i + 1] for i in range(len(stream))]):
        parser = EnvironmentParser()
        env = None
        for chunk in chunks:
            env = parser.feed(chunk) or env
        assert env is not None
        assert env.caller_name.startswith(name.decode())


def _refusal(chunks: list[bytes]) -> str:
    parser = EnvironmentParser()
    with pytest.raises(AGIProtocolError) as refused:
        for chunk in chunks:
            assert parser.feed(chunk) is None
    assert parser.environment is None
    return str(refused.value)


@pytest.mark.parametrize(("stream", "reason"), HOSTILE_HANDSHAKES)
def test_env_refuses_injected_and_duplicated_keys(stream: bytes, reason: str) -> None:
    assert reason in _refusal([stream])
    assert reason in _refusal([stream[i : i + 1] for i in range(len(stream))])


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(HOSTILE_HANDSHAKES),
    st.lists(st.integers(min_value=0, max_value=len(HANDSHAKE) + 40), max_size=30),
)
def test_env_refusals_do_not_depend_on_the_reads(
    hostile: tuple[bytes, str], cuts: list[int]
) -> None:
    stream, reason = hostile
    assert reason in _refusal([c for c in _chunks(stream, cuts) if c])


def test_env_key_sent_twice_across_reads_is_refused() -> None:
    parser = EnvironmentParser()
    parser.feed(b"agi_network_script: ivr\nagi_callerid: 94150")
    with pytest.raises(AGIProtocolError, match="sent twice: agi_network_script"):
        parser.feed(b"12345\nagi_network_script: readback\n\n")


def test_env_script_from_request_and_percent_decoding() -> None:
    env = AGIEnvironment.from_variables({"agi_request": "agi://h:4573/ivr/%E0%A4%95?a=1&a=2&b="})
    assert env.script == "ivr/क"
    assert dict(env.query) == {"a": "1", "b": ""}
    assert env.query_items == (("a", "1"), ("a", "2"), ("b", ""))
    assert AGIEnvironment.from_variables({"agi_network_script": "/x/"}).script == "x"


# --------------------------------------------------------------------------- replies


def test_replies_whole() -> None:
    assert _parse_replies([REPLIES]) == EXPECTED


def test_replies_one_byte_at_a_time() -> None:
    assert _parse_replies([REPLIES[i : i + 1] for i in range(len(REPLIES))]) == EXPECTED


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(REPLIES)), max_size=60))
def test_replies_random_chunks(cuts: list[int]) -> None:
    assert _parse_replies(_chunks(REPLIES, cuts)) == EXPECTED


def test_hangup_between_command_and_reply_is_a_notice() -> None:
    events = ReplyParser().feed(b"HANGUP\n200 result=0 endpos=1600\n")
    assert events == [HangupNotice(), AGIReply(200, "0", None, 1600, "200 result=0 endpos=1600")]


def test_data_and_fields() -> None:
    (reply,) = ReplyParser().feed(b"200 result=1 (speech) endpos=99 results=2 x=\n")
    assert isinstance(reply, AGIReply)
    assert (reply.data, reply.endpos, dict(reply.fields)) == (
        "speech",
        99,
        {"results": "2", "x": ""},
    )
    (reply,) = ReplyParser().feed(b"200 result=1 (unterminated data\n")
    assert isinstance(reply, AGIReply) and reply.data == "unterminated data"
    (reply,) = ReplyParser().feed(b"200 result=1 (a) b=c)\n")
    assert isinstance(reply, AGIReply) and reply.data == "a) b=c"
    (reply,) = ReplyParser().feed(b"200 result=0 endpos=\xd9\xa3\n")  # Arabic-Indic digit
    assert isinstance(reply, AGIReply) and reply.endpos is None and reply.fields["endpos"] == "٣"
    (reply,) = ReplyParser().feed(b"520 Invalid command syntax.  Proper usage not available.\n")
    assert isinstance(reply, AGIReply) and reply.code == 520 and reply.usage is not None


def test_eof() -> None:
    parser = ReplyParser()
    assert parser.feed(b"200 res") == []
    assert parser.feed_eof() == [Closed(truncated=True)]
    assert parser.feed_eof() == []
    with pytest.raises(AGIProtocolError):
        parser.feed(b"x")
    assert ReplyParser().feed_eof() == [Closed(truncated=False)]


def test_reply_caps_and_garbage() -> None:
    parser = ReplyParser(max_line=100)
    with pytest.raises(AGIProtocolError, match="longer than 100"):
        parser.feed(b"2" * 101)
    assert parser.buffered == 0
    with pytest.raises(AGIProtocolError, match="longer than 100"):
        ReplyParser(max_line=100).feed(b"200 result=" + b"1" * 100 + b"\n")
    usage = ReplyParser(max_usage=200)
    usage.feed(b"520-Invalid command syntax.  Proper usage follows:\n")
    with pytest.raises(AGIProtocolError, match="usage block"):
        usage.feed(b"usage line\n" * 50)
    with pytest.raises(AGIProtocolError, match="unexpected line"):
        ReplyParser().feed(b"Hello there\n")
    with pytest.raises(AGIProtocolError, match="continuation"):
        ReplyParser().feed(b"200-what\n")


def test_digit_from_result() -> None:
    assert [digit_from_result(r) for r in ("49", "35", "42", "0", "", "-1", "x")] == [
        "1",
        "#",
        "*",
        "",
        "",
        "",
        "",
    ]
    assert digit_from_result("9" * 5000) == ""


# --------------------------------------------------------------------------- properties


@settings(max_examples=500, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(REPLIES)), max_size=20), st.data())
def test_reply_chunking_is_invisible_after_hangup_too(cuts: list[int], data: st.DataObject) -> None:
    """However the stream is cut, HANGUP stays a separate notice and replies stay in order."""
    prefix = data.draw(st.sampled_from([b"", b"HANGUP\n", b"100 result=0 Trying...\n"]))
    stream = prefix + REPLIES
    expected = _parse_replies([stream])
    assert _parse_replies(_chunks(stream, cuts)) == expected
