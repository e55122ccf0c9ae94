"""Lazy AMI messages: what the framer hands out keeps its bytes, searched per look-up.

The headers and get/getall (byte searches plus one value decoded) must give what the line
rules, written plainly here (:func:`reference`, :func:`first_value`), give for any text the
framer can produce (10,000 examples); caps are enforced on messages framed whole; and a
message read long after the parser moved on is intact.
"""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from core.protocols.ami import (
    AMILineTooLong,
    AMIMessage,
    AMIMessageTooLarge,
    AMIParser,
    AMITooManyHeaders,
)
from tests.unit.ami_transcripts import CODES, CUTS, GREETING, PROPERTY, parse_chunks, split_at

#: Pieces of framed text: separators and near-separators, whitespace of every kind, key case
#: variants, Devanagari and the one non-ASCII character that lower-cases to "i" + a mark.
PIECES = [
    ": ",
    ":",
    " ",
    "\t",
    "\r",
    "\r\n",
    "\n",
    "\x00",
    "\x85",
    "\u2028",
    "\xa0",
    "Event",
    "Response",
    "ActionID",
    "actionid",
    "ACTİONID",
    "Uniqueid",
    "a",
    "रमेश",
    "्",
    "😀",
    "=",
    "",
    # Case traps for get(): final sigma (context-dependent lower-casing), the Kelvin sign
    # (lower-cases to ASCII "k"), an information separator (whitespace to str.split/strip).
    "Σ",
    "ς",
    "\u212a",
    "k",
    "\x1c",
]


def reference(text: str) -> tuple[tuple[str, str], ...]:
    """The line rules on a framed message's text (up to its last line's LF): lines are
    separated by LF, one CR at a line's end is the line end's; key before the first colon
    (as sent), one space."""
    headers = []
    for line in text.split("\n"):
        raw = line.removesuffix("\r")
        key, sep, value = raw.partition(":")
        if not sep:
            headers.append(("", raw))
        else:
            headers.append((key, value[1:] if value[:1] == " " else value))
    return tuple(headers)


def one_message(text: str) -> bool:
    """Is ``text`` one message's lines (no empty line, which ends a message)?"""
    return all(line not in ("", "\r") for line in text.split("\n"))


def framed(block: bytes) -> AMIMessage:
    """The message the framer makes of ``block`` (its bytes up to the last line's LF)."""
    parser = AMIParser(expect_greeting=False)
    parser.feed(block + b"\n\r\n")
    msg = parser.next_event()
    assert isinstance(msg, AMIMessage) and parser.next_event() is None
    return msg


def text_from(codes: list[int]) -> str:
    return "".join(PIECES[c % len(PIECES)] for c in codes)


#: Key pieces without whitespace or colon (most keys of lines_from), traps included.
KEY_PIECES = ["Event", "ActionID", "actionid", "ACTİONID", "Uniqueid", "a", "रमेश", "Σ", "ς"]
KEY_PIECES += ["\u212a", "k", "K", "=", "😀", "्", "-"]


def lines_from(codes: list[int]) -> str:
    """Mostly well-formed ``Key: Value`` lines (the fast path's input, about half the time):
    each code picks a key of one or two pieces, a separator and a value; one line in eight
    takes its key or value from all the pieces (whitespace, colons, CR, NUL...)."""
    seps = [": ", ": ", ": ", ": ", ": ", ": ", ":", ": : ", " : ", ":  "]
    lines = []
    for c in codes[:12]:
        pool = PIECES if (c >> 17) % 8 == 7 else KEY_PIECES
        key = pool[c % len(pool)] + pool[(c >> 5) % len(pool)] * ((c >> 21) & 1)
        sep = seps[(c >> 10) % len(seps)] if (c >> 14) % 4 == 3 else ": "
        value = PIECES[(c >> 18) % len(PIECES)] if (c >> 16) % 8 == 7 else f"v{c % 97}"
        lines.append(key + sep + value)
    return "\r\n".join(lines)


#: Keys get() is asked for: the pieces' keys in other cases, traps, and CR/LF.
PROBES = [
    "Uniqueid",
    "UNIQUEID",
    "actionid",
    "ACTİONID",
    "event",
    "a",
    "A",
    "k",
    "K",
    "σ",
    "ς",
    "Σ",
    "",
    "a\r\nb",
    "\r\n",
    "a:",
    "eventa",
]


def ascii_fold(key: str) -> str:
    """Asterisk's header-name comparison (strncasecmp): ASCII letters only."""
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in key)


def first_value(headers: tuple[tuple[str, str], ...], key: str) -> str | None:
    wanted = ascii_fold(key)
    return next((v for k, v in headers if ascii_fold(k) == wanted), None)


@PROPERTY
@given(CODES, st.booleans())
def test_get_is_the_first_value_in_any_case(codes: list[int], structured: bool) -> None:
    """get/[]/in/getall by byte search agree with a scan of the rules' headers."""
    text = lines_from(codes) if structured else text_from(codes)
    assume(one_message(text))
    ref = reference(text)
    lazy = framed(text.encode())
    probes = [*PROBES, *(k for k, _ in ref[:4]), *(k.upper() for k, _ in ref[:4])]
    for probe in probes:
        expected = first_value(ref, probe)
        assert lazy.get(probe) == expected, probe
        assert (probe in lazy) == (expected is not None), probe
        if expected is None:
            with pytest.raises(KeyError):
                lazy[probe]
        else:
            assert lazy[probe] == expected
        fresh = framed(text.encode())  # getall before any split, then after
        expected_all = [v for k, v in ref if ascii_fold(k) == ascii_fold(probe)]
        assert fresh.getall(probe) == expected_all, probe
        assert fresh.headers == ref and fresh.getall(probe) == expected_all, probe
    assert lazy.headers == ref


@PROPERTY
@given(CODES)
def test_first_header_and_action_id_follow_the_rules(codes: list[int]) -> None:
    text = text_from(codes)
    assume(one_message(text))
    ref = reference(text)
    msg = framed(text.encode())
    first_key = ascii_fold(ref[0][0]) if ref and ":" in text.split("\n")[0] else None
    assert msg.name == (ref[0][1] if first_key == "event" else "")
    assert msg.is_event == (first_key == "event")
    assert msg.is_response == (first_key == "response")
    assert msg.action_id == first_value(ref, "ActionID")
    assert msg.headers == ref and len(msg) == len(ref)


@pytest.mark.parametrize("key", ["ActionID", "actionid", "ACTIONID", "ActionId", "aCtIoNiD"])
def test_action_id_in_any_case_is_found_through_the_framer(key: str) -> None:
    parser = AMIParser(expect_greeting=False)
    parser.feed(f"Response: Success\r\n{key}: 7\r\n\r\n".encode())
    msg = parser.next_event()
    assert isinstance(msg, AMIMessage)
    assert msg.action_id == "7"


HINDI_EVENT = (
    "Event: Newchannel\r\nPrivilege: call,all\r\nChannel: PJSIP/trunk-0001\r\n"
    "CallerIDName: श्याम सुंदर त्रिपाठी\r\nUniqueid: 1718000001.1\r\n"
    "ChanVariable: CALLER_NAME=सुनीता देवी\r\nChanVariable: IVR_LANG=hi\r\n\r\n"
).encode()


def test_headers_read_after_the_parser_moved_on() -> None:
    """A lazy message owns its text: more feeds (and buffer reuse) cannot change it."""
    parser = AMIParser()
    parser.feed(GREETING + HINDI_EVENT)
    parser.next_event()
    first = parser.next_event()
    assert isinstance(first, AMIMessage) and first.name == "Newchannel"
    for _ in range(50):  # the parser reuses and trims its buffer meanwhile
        parser.feed(HINDI_EVENT.replace("सुनीता".encode(), b"Rita"))
        while parser.next_event() is not None:
            pass
    assert first.get("CallerIDName") == "श्याम सुंदर त्रिपाठी"
    assert first.getall("ChanVariable") == ["CALLER_NAME=सुनीता देवी", "IVR_LANG=hi"]
    assert first.headers[0] == ("Event", "Newchannel") and len(first) == 7


@PROPERTY
@given(CUTS)
def test_hindi_names_split_across_chunks_stay_whole(cuts: list[int]) -> None:
    wire = GREETING + HINDI_EVENT * 3
    items, errors = parse_chunks(split_at(wire, cuts))
    assert errors == []
    messages = [m for m in items if isinstance(m, AMIMessage)]
    assert len(messages) == 3
    for msg in messages:
        assert msg.name == "Newchannel" and msg.action_id is None
        assert msg["callеridname".replace("е", "e")] == "श्याम सुंदर त्रिपाठी"
        assert "\ufffd" not in "".join(v for _, v in msg)


def test_header_cap_still_enforced_on_whole_messages() -> None:
    parser = AMIParser(expect_greeting=False, max_headers=5)
    ok = b"Event: A\r\nB: 1\r\nC: 2\r\nD: 3\r\nE: 4\r\n\r\n"
    too_many = b"Event: A\r\nB: 1\r\nC: 2\r\nD: 3\r\nE: 4\r\nF: 5\r\n\r\n"
    items, errors = parse_chunks([ok + too_many + ok], parser)
    assert [type(e) for e in errors] == [AMITooManyHeaders]
    assert len(items) == 2 and all(isinstance(m, AMIMessage) and m.name == "A" for m in items)


def test_line_cap_still_enforced_on_whole_messages() -> None:
    parser = AMIParser(expect_greeting=False, max_line=64)
    long_line = b"Event: A\r\nX: " + b"y" * 80 + b"\r\nZ: 1\r\n\r\n"
    ok = b"Event: B\r\n" + b"Q: " + b"w" * 60 + b"\r\n\r\n"
    items, errors = parse_chunks([ok + long_line + ok], parser)
    assert [type(e) for e in errors] == [AMILineTooLong]
    assert [m.name for m in items if isinstance(m, AMIMessage)] == ["B", "B"]


def test_size_cap_still_enforced_on_whole_messages() -> None:
    parser = AMIParser(expect_greeting=False, max_message=200, max_line=100)
    big = b"Event: A\r\n" + b"X: " + b"y" * 95 + b"\r\n" + b"Y: " + b"z" * 95 + b"\r\n\r\n"
    ok = b"Event: B\r\nUniqueid: 1\r\n\r\n"
    items, errors = parse_chunks([ok + big + ok], parser)
    assert [type(e) for e in errors] == [AMIMessageTooLarge]
    assert [m.get("Uniqueid") for m in items if isinstance(m, AMIMessage)] == ["1", "1"]


@given(st.sampled_from(["Event", "event", "EVENT", "eVeNt"]))
def test_event_name_is_the_first_header_in_any_case(key: str) -> None:
    msg = framed(f"{key}: QueueMemberStatus\r\nQueue: q1".encode())
    assert msg.is_event and msg.name == "QueueMemberStatus" and not msg.is_response


@pytest.mark.parametrize("key", [" Event", "Event ", "Εvent", "\u212avent"])
def test_a_key_is_what_precedes_the_colon_as_asterisk_reads_it(key: str) -> None:
    """Asterisk's astman_get_header compares the bytes before the colon with strncasecmp:
    no whitespace stripped and no case folding beyond ASCII (Greek Epsilon, Kelvin sign)."""
    msg = framed(f"{key}: QueueMemberStatus\r\nQueue: q1".encode())
    assert not msg.is_event and msg.name == "" and msg.get("Event") is None
    assert msg.get(key) == "QueueMemberStatus" and msg.headers[0][0] == key


#: Byte pieces of framed messages: invalid and truncated UTF-8 next to the separators.
BYTE_PIECES = [
    b": ",
    b":",
    b"\r\n",
    b"\n",
    b"\r",
    b" ",
    b"\x00",
    b"\xff",
    b"\xe0\xa4",
    b"\xe0",
    b"\xa4",
    b"\xf0\x9f\x98",
    "रमेश".encode(),
    b"Uniqueid",
    b"Event",
    b"a",
    b"=",
]


@PROPERTY
@given(CODES, st.booleans())
def test_framed_bytes_split_as_the_whole_decoded_message(codes: list[int], tidy: bool) -> None:
    """The framer counts CRLFs and NULs on the bytes; the headers must still be those of the
    whole message decoded once (invalid UTF-8 next to the separators included)."""
    if tidy:  # mostly "Key: Value" lines, so the fast path is taken often
        block = "\r\n".join(lines_from(codes).split("\r\n")).encode()
        block = block.replace(b"v1", b"\xe0\xa4: \xff").replace(b"v2", b"\xf0\x9f\x98")
    else:
        block = b"".join(BYTE_PIECES[c % len(BYTE_PIECES)] for c in codes)
    if (
        not block
        or block.startswith((b"\r\n", b"\n"))
        or b"\n\r\n" in block  # an empty line: more than one message
        or b"\n\n" in block
        or block.endswith((b"\r", b"\n"))
    ):
        return
    items, errors = parse_chunks([block + b"\r\n\r\n"], AMIParser(expect_greeting=False))
    assert errors == []
    [msg] = items
    assert isinstance(msg, AMIMessage)
    ref = reference(block.decode("utf-8", "replace") + "\r")
    assert msg.get("uniqueid") == first_value(ref, "uniqueid")
    assert msg.headers == ref
