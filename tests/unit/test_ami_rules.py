"""The AMI framer against the line rules written plainly here (an oracle), on generated streams
cut into random chunks (10,000 examples): whatever the reads, the same messages come out, with
the headers, names, ActionIDs and look-ups the rules give.

The oracle reads a whole stream one line at a time with the simplest code that states each
rule; the parser frames each read at once. Caps and hostile bytes: test_ami_hostile.py.
"""

from __future__ import annotations

from hypothesis import given

from core.protocols.ami import AMIMessage, AMIParser, AMIProtocolError
from tests.unit.ami_transcripts import CODES, CUTS, PROPERTY, split_at

FOLLOWS_HEADERS = {b"privilege", b"actionid", b"message", b"commandid"}


def headers_of(lines: list[bytes], body: int = -1) -> tuple[tuple[str, str], ...]:
    """A message's lines, decoded together: key before the first colon and one space dropped
    after it, a line without a colon is all value (key ""); output lines are ``Output``."""
    texts = b"\n".join(lines).decode("utf-8", "replace").split("\n")
    headers = []
    for n, text in enumerate(texts):
        key, colon, value = text.partition(":")
        if 0 <= body <= n:
            headers.append(("Output", text))
        elif colon:
            headers.append((key, value.removeprefix(" ")))
        else:
            headers.append(("", text))
    return tuple(headers)


def frame_by_rules(stream: bytes) -> list[tuple[tuple[str, str], ...]]:
    """The messages of a stream's whole lines: a line ends at LF, a CR before it is dropped;
    an empty line ends a message (empty lines between messages are nothing); a message whose
    first line is ``Response: Follows`` (any case) takes the Follows headers, then output
    lines, empty ones too, up to a line ending in ``--END COMMAND--`` (an empty line before
    any output ends it)."""
    messages: list[tuple[tuple[str, str], ...]] = []
    lines: list[bytes] = []
    follows, body = False, -1
    for raw in stream.split(b"\n")[:-1]:
        line = raw.removesuffix(b"\r")
        if follows:
            if body < 0:
                key, colon, _ = line.partition(b":")
                if colon and key.strip().lower() in FOLLOWS_HEADERS:
                    lines.append(line)
                    continue
                if not line:
                    messages.append(headers_of(lines))
                    lines, follows = [], False
                    continue
                body = len(lines)
            if line.endswith(b"--END COMMAND--"):
                if line != b"--END COMMAND--":
                    lines.append(line.removesuffix(b"--END COMMAND--"))
                messages.append(headers_of(lines, body))
                lines, follows, body = [], False, -1
                continue
            lines.append(line)
            continue
        if not line:
            if lines:
                messages.append(headers_of(lines))
            lines = []
            continue
        if (
            not lines
            and line[:9].lower() == b"response:"
            and line[9:].strip().lower() == b"follows"
        ):
            follows = True
        lines.append(line)
    return messages


def fold(key: str) -> str:
    """Asterisk's header-name comparison (strncasecmp): ASCII letters only."""
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in key)


#: Lines of a stream: headers of every kind, Devanagari, CR/LF in odd places, empty lines,
#: legacy Follows responses and their end.
LINE_PIECES = [
    b"Event: Newchannel",
    b"event: QueueMemberStatus",
    b"Response: Success",
    b"Response: Follows",
    b"RESPONSE:follows ",
    b"ActionID: 5f1c-1",
    b"actionid:7",
    b"Privilege: Command",
    b"Message: Queue status will follow",
    b"EventList: Complete",
    "CallerIDName: रमेश कुमार".encode(),
    "Name: एजेंट एक".encode()[:11],  # a letter cut short: invalid UTF-8
    b"Uniqueid: 1718000000.7",
    b"ChanVariable: DISTRICT=x",
    b"Output: a: b",
    b"nocolon",
    b": leading colon",
    b"Key:  two spaces",
    b" Event: not an event",
    b"Uptime: 3 days",
    b"text--END COMMAND--",
    b"--END COMMAND--",
    b"x\ry",
    b"\xff",
    b"",
    b"",
    b"",
]
LINE_ENDS = [b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r\r\n"]


def stream_of(codes: list[int]) -> bytes:
    return b"".join(
        LINE_PIECES[code % len(LINE_PIECES)] + LINE_ENDS[(code >> 8) % len(LINE_ENDS)]
        for code in codes
    )


def framed(chunks: list[bytes]) -> list[AMIMessage]:
    parser = AMIParser(expect_greeting=False)
    messages: list[AMIMessage] = []
    for chunk in chunks:
        parser.feed(chunk)
        for item in parser.take():
            assert not isinstance(item, AMIProtocolError), item
            assert isinstance(item, AMIMessage)
            messages.append(item)
    return messages


PROBES = ["Event", "EVENT", "ActionID", "Uniqueid", "CallerIDName", "Output", "", "Message"]


@PROPERTY
@given(CODES, CUTS)
def test_framing_follows_the_line_rules_however_the_stream_is_cut(
    codes: list[int], cuts: list[int]
) -> None:
    stream = stream_of(codes)
    expected = frame_by_rules(stream)
    messages = framed(split_at(stream, cuts))
    assert [m.headers for m in messages] == expected
    for msg, headers in zip(messages, expected, strict=True):
        # (A key "event" means the first line had a colon: one without is all value.)
        assert msg.name == (headers[0][1] if fold(headers[0][0]) == "event" else "")
        for probe in PROBES:
            values = [v for k, v in headers if fold(k) == fold(probe)]
            assert msg.getall(probe) == values
            assert msg.get(probe) == (values[0] if values else None)
        ids = [v for k, v in headers if fold(k) == "actionid"]
        assert msg.action_id == (ids[0] if ids else None)
