"""Sans-I/O AMI: framing of captured transcripts (whole, byte by byte, random chunks), the
message type, caps and resync, the action encoder and the ActionTracker."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.protocols.ami import (
    ActionTracker,
    AMIBadGreeting,
    AMIGreeting,
    AMILineTooLong,
    AMIMessage,
    AMIMessageTooLarge,
    AMIParser,
    AMITooManyHeaders,
    FieldValue,
    encode_action,
)
from tests.unit.ami_transcripts import (
    COMMAND_22,
    COMMAND_LEGACY,
    FULL,
    FULL_BARE_LF,
    GREETING,
    HINDI_NEWCHANNEL,
    LOGIN,
    QUEUE_STATUS,
    parse_chunks,
    split_at,
)


def msgs(items: list[AMIGreeting | AMIMessage]) -> list[AMIMessage]:
    return [i for i in items if isinstance(i, AMIMessage)]


def check_full(items: list[AMIGreeting | AMIMessage]) -> None:
    """What FULL must parse to, however it was chunked."""
    assert items[0] == AMIGreeting("Asterisk Call Manager/11.0.0", "11.0.0")
    m = msgs(items)
    assert [x.response or x.name for x in m] == [
        "Success",
        "FullyBooted",
        "Newchannel",
        "Success",
        "QueueParams",
        "QueueMember",
        "QueueMember",
        "QueueEntry",
        "QueueStatusComplete",
        "Success",
        "Follows",
    ]
    login, booted, newchan = m[0], m[1], m[2]
    assert login.message == "Authentication accepted"
    assert booted["status"] == "Fully Booted"
    assert newchan["CallerIDName"] == "रमेश कुमार"
    assert newchan.getall("chanvariable") == ["IVR_DONE=", "DISTRICT=लखनऊ"]
    assert newchan["AccountCode"] == ""
    assert m[5]["Name"] == "एजेंट एक"
    assert m[6]["PausedReason"] == "चाय"
    assert m[7]["CallerIDName"] == "रमेश कुमार"
    assert m[8].event_list == "complete"
    assert m[9].output == [
        "helpline has 1 calls (max unlimited) in 'rrmemory' strategy (12s holdtime)",
        "   Members: ",
        "      PJSIP/agent0001 (ringinuse disabled) (dynamic) (In use)",
        "",
        "   Callers: ",
    ]
    legacy = m[10]
    assert legacy.action_id == "5f1c-13"
    assert legacy["Privilege"] == "Command"
    assert legacy.output == [
        "Name/username             Host            Dyn Forcerport ACL Port     Status",
        "",
        "Uptime: 3 days",
        "1 sip peers [Monitored: 0 online, 1 offline]",
    ]
    assert "Uptime" not in legacy  # body text is output, never headers


def test_full_transcript_in_one_chunk() -> None:
    items, errors = parse_chunks([FULL])
    assert errors == []
    check_full(items)


def test_full_transcript_one_byte_at_a_time() -> None:
    items, errors = parse_chunks([FULL[i : i + 1] for i in range(len(FULL))])
    assert errors == []
    check_full(items)


def test_bare_lf_line_ends() -> None:
    items, errors = parse_chunks([FULL_BARE_LF])
    assert errors == []
    check_full(items)
    items, errors = parse_chunks([FULL_BARE_LF[i : i + 1] for i in range(len(FULL_BARE_LF))])
    assert errors == []
    check_full(items)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0), max_size=40), st.booleans())
def test_full_transcript_random_chunks(cuts: list[int], bare_lf: bool) -> None:
    data = FULL_BARE_LF if bare_lf else FULL
    items, errors = parse_chunks(split_at(data, cuts))
    assert errors == []
    check_full(items)


@pytest.mark.parametrize("cut", range(1, len("रमेश".encode()) * 3))
def test_devanagari_split_inside_a_character(cut: int) -> None:
    """Every split point inside the name: decoded per message, never per chunk."""
    start = HINDI_NEWCHANNEL.index("रमेश".encode())
    data = GREETING + HINDI_NEWCHANNEL
    p = len(GREETING) + start + cut
    items, errors = parse_chunks([data[:p], data[p:]])
    assert errors == []
    assert msgs(items)[0]["CallerIDName"] == "रमेश कुमार"


def test_invalid_utf8_is_replaced_not_dropped() -> None:
    """A Latin-1 caller name from a bad trunk must not cost us the Hangup event."""
    items, errors = parse_chunks(
        [GREETING + b"Event: Hangup\r\nCallerIDName: Jos\xe9\r\nUniqueid: 1.2\r\n\r\n"]
    )
    assert errors == []
    (m,) = msgs(items)
    assert m["CallerIDName"] == "Jos\ufffd"
    assert m["Uniqueid"] == "1.2"


def test_message_api() -> None:
    (m,) = msgs(parse_chunks([GREETING + HINDI_NEWCHANNEL])[0])
    assert m.is_event and not m.is_response
    assert m.name == "Newchannel"
    assert m["uniqueid"] == m["UNIQUEID"] == m.get("UniqueId") == "1718000000.7"
    assert m.get("nope") is None and m.get("nope", "x") == "x"
    assert m.getall("nope") == []
    assert "callerIDname" in m and "nope" not in m and 3 not in m
    assert m.action_id is None and m.response is None
    with pytest.raises(KeyError):
        m["nope"]
    assert m.to_dict()["ChanVariable"] == "IVR_DONE="
    assert len(m) == len(list(m)) == 18
    assert AMIMessage(m.headers) == m and hash(AMIMessage(m.headers)) == hash(m)
    assert "Newchannel" in repr(m)
    (login, booted) = msgs(parse_chunks([GREETING + LOGIN])[0])
    assert login.is_response and login.response == "Success" and not login.is_error
    assert login.action_id == "5f1c-1" and login.name == ""
    assert booted.name == "FullyBooted"
    err = AMIMessage([("Response", "Error"), ("Message", "Permission denied")])
    assert err.is_error and err.message == "Permission denied"
    assert not AMIMessage([]).is_event and not AMIMessage([]).is_response


def test_value_keeps_all_but_one_leading_space_and_colons() -> None:
    (m,) = msgs(
        parse_chunks([GREETING + b"Event: X\r\nA:  two\r\nB:x\r\nC: a: b\r\nnocolon\r\n\r\n"])[0]
    )
    assert m["A"] == " two" and m["B"] == "x" and m["C"] == "a: b"
    assert m.getall("") == ["nocolon"]


def test_blank_lines_between_messages_are_ignored() -> None:
    items, _ = parse_chunks([GREETING + b"\r\n\r\n\nEvent: A\r\n\r\n\r\n\r\nEvent: B\r\n\r\n"])
    assert [m.name for m in msgs(items)] == ["A", "B"]


def test_bad_greeting_is_reported_and_parsing_goes_on() -> None:
    items, errors = parse_chunks([b"HTTP/1.1 400 Bad Request\r\n\r\nEvent: A\r\n\r\n"])
    assert len(errors) == 1 and isinstance(errors[0], AMIBadGreeting)
    # The odd line is kept as message text (key ""), the next message is intact.
    assert [m.name for m in msgs(items)] == ["", "A"]


def test_no_greeting_mode() -> None:
    items, errors = parse_chunks(
        [b"Action: Ping\r\nActionID: 1\r\n\r\n"], AMIParser(expect_greeting=False)
    )
    assert errors == [] and msgs(items)[0]["Action"] == "Ping"


def test_legacy_follows_without_body_ends_at_blank_line() -> None:
    items, errors = parse_chunks(
        [GREETING + b"Response: Follows\r\nPrivilege: Command\r\n\r\nEvent: A\r\n\r\n"]
    )
    assert errors == []
    assert [m.response or m.name for m in msgs(items)] == ["Follows", "A"]


def test_legacy_end_command_glued_to_last_line() -> None:
    data = GREETING + b"Response: Follows\r\nPrivilege: Command\r\nabc--END COMMAND--\r\n\r\n"
    items, _ = parse_chunks([data + COMMAND_22])
    m = msgs(items)
    assert m[0].output == ["abc"] and m[1].output[0].startswith("helpline has")


# ------------------------------------------------------------------ caps and resync


def _after(errors: Sequence[object], items: list[AMIGreeting | AMIMessage], kind: type) -> None:
    assert len(errors) == 1 and isinstance(errors[0], kind)
    assert [m.name for m in msgs(items)] == ["Before", "After"]


@pytest.mark.parametrize("chunked", [False, True])
def test_line_too_long_discards_message_and_resyncs(chunked: bool) -> None:
    p = AMIParser(max_line=64)
    data = (
        GREETING
        + b"Event: Before\r\n\r\n"
        + b"Event: Bad\r\nX: "
        + b"y" * 1000
        + b"\r\nZ: 1\r\n\r\n"
        + b"Event: After\r\n\r\n"
    )
    chunks = [data[i : i + 7] for i in range(0, len(data), 7)] if chunked else [data]
    items, errors = parse_chunks(chunks, p)
    _after(errors, items, AMILineTooLong)
    assert p.discarded == 1
    assert p.pending_bytes == 0


def test_unterminated_line_memory_is_bounded() -> None:
    p = AMIParser(max_line=100)
    p.feed(GREETING + b"Event: X\r\nA: ")
    for _ in range(1000):
        p.feed(b"z" * 1000)
        assert p.pending_bytes <= 100 + 1 + 100
    assert isinstance(p.next_event(), AMIGreeting)
    with pytest.raises(AMILineTooLong):
        p.next_event()
    assert p.next_event() is None
    p.feed(b"\r\n\r\nEvent: Ok\r\n\r\n")
    m = p.next_event()
    assert isinstance(m, AMIMessage) and m.name == "Ok"


def test_message_too_large() -> None:
    p = AMIParser(max_message=200)
    data = (
        GREETING
        + b"Event: Before\r\n\r\n"
        + b"Event: Bad\r\n"
        + b"Variable: x=0123456789\r\n" * 50
        + b"\r\nEvent: After\r\n\r\n"
    )
    items, errors = parse_chunks([data], p)
    _after(errors, items, AMIMessageTooLarge)


def test_too_many_headers() -> None:
    p = AMIParser(max_headers=5)
    data = (
        GREETING
        + b"Event: Before\r\n\r\n"
        + b"Event: Bad\r\n"
        + b"V: 1\r\n" * 10
        + b"\r\nEvent: After\r\n\r\n"
    )
    items, errors = parse_chunks([data], p)
    _after(errors, items, AMITooManyHeaders)


def test_legacy_follows_without_end_is_capped() -> None:
    p = AMIParser(max_message=300)
    data = GREETING + b"Response: Follows\r\nPrivilege: Command\r\n" + b"text\n\n" * 200
    items, errors = parse_chunks([data + b"\r\n\r\nEvent: After\r\n\r\n"], p)
    assert isinstance(errors[0], AMIMessageTooLarge)
    assert msgs(items)[-1].name == "After"


def test_parser_rejects_bad_caps() -> None:
    with pytest.raises(ValueError):
        AMIParser(max_line=0)


# ------------------------------------------------------------------ encoder


def test_encode_action_layout() -> None:
    data = encode_action(
        "QueueAdd", {"Queue": "helpline", "Interface": "PJSIP/agent0001"}, action_id="p-1"
    )
    assert data == (
        b"Action: QueueAdd\r\nActionID: p-1\r\nQueue: helpline\r\n"
        b"Interface: PJSIP/agent0001\r\n\r\n"
    )


def test_encode_repeated_keys_and_unicode() -> None:
    pairs = [("Channel", "PJSIP/9876543210@trunk"), ("Variable", "A=1"), ("Variable", "B=2")]
    data = encode_action("Originate", [*pairs, ("CallerID", "रमेश <1076>")], action_id="x")
    assert data.count(b"Variable: ") == 2
    fields: dict[str, FieldValue] = {"Variable": ["A=1", "B=2"], "Priority": 1}
    same = encode_action("Originate", fields)
    assert b"Variable: A=1\r\nVariable: B=2\r\nPriority: 1\r\n" in same
    (m,) = msgs(parse_chunks([data], AMIParser(expect_greeting=False))[0])
    assert m.getall("variable") == ["A=1", "B=2"]
    assert m["CallerID"] == "रमेश <1076>"


@pytest.mark.parametrize("bad", ["\r", "\n", "\0", "x\r\n\r\nAction: Hangup"])
@pytest.mark.parametrize("where", ["value", "key", "name", "action_id"])
def test_encode_refuses_injection(bad: str, where: str) -> None:
    with pytest.raises(ValueError):
        if where == "value":
            encode_action("Originate", {"CallerID": f"a{bad}b"})
        elif where == "key":
            encode_action("Originate", [(f"Caller{bad}ID", "a")])
        elif where == "name":
            encode_action(f"Ping{bad}", None)
        else:
            encode_action("Ping", None, action_id=f"1{bad}")


@pytest.mark.parametrize("key", ["", "A:B", " A", "A ", "Action", "actionid"])
def test_encode_refuses_bad_keys(key: str) -> None:
    with pytest.raises(ValueError):
        encode_action("Ping", [(key, "v")])


# ------------------------------------------------------------------ tracker


def _msg(*pairs: tuple[str, str]) -> AMIMessage:
    return AMIMessage(pairs)


def test_tracker_ids_are_unique_and_prefixed() -> None:
    a, b = ActionTracker(), ActionTracker()
    assert a.prefix != b.prefix
    ids = {a.next_action_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(i.startswith(a.prefix + "-") for i in ids)
    with pytest.raises(ValueError):
        ActionTracker("bad\r\n")


def test_tracker_simple_response() -> None:
    t = ActionTracker("c")
    pending, data = t.start("Ping")
    assert data.startswith(b"Action: Ping\r\nActionID: c-1\r\n") and "c-1" in t
    assert t.receive(_msg(("Event", "Other"))).consumed is False
    res = t.receive(_msg(("Response", "Success"), ("ActionID", "c-1"), ("Ping", "Pong")))
    assert res.consumed and res.completed is pending and pending.done
    assert pending.response is not None and pending.response["Ping"] == "Pong"
    assert len(t) == 0
    # A second answer with the same id is not ours any more.
    assert not t.receive(_msg(("Response", "Success"), ("ActionID", "c-1"))).consumed


def test_tracker_error_response_completes_list_action() -> None:
    t = ActionTracker("c")
    pending, _ = t.start("QueueStatus")
    res = t.receive(_msg(("Response", "Error"), ("ActionID", "c-1"), ("Message", "denied")))
    assert res.completed is pending and pending.events == []


def test_tracker_list_collects_until_eventlist_complete() -> None:
    t = ActionTracker("5f1c")
    t._counter = 8  # the transcript's ActionID is 5f1c-9
    pending, _ = t.start("QueueStatus", {"Queue": "helpline"})
    items, _ = parse_chunks([GREETING + QUEUE_STATUS + HINDI_NEWCHANNEL])
    results = [t.receive(m) for m in msgs(items)]
    assert [r.consumed for r in results] == [True] * 6 + [False]
    assert results[5].completed is pending
    assert [e.name for e in pending.events] == [
        "QueueParams",
        "QueueMember",
        "QueueMember",
        "QueueEntry",
    ]
    assert pending.complete_event is not None
    assert pending.complete_event["ListItems"] == "4"


def test_tracker_decides_by_header_not_by_text() -> None:
    """An event named *Complete without EventList is an item; the EventList header ends it."""
    t = ActionTracker("c")
    pending, _ = t.start("Custom")
    t.receive(_msg(("Response", "Success"), ("ActionID", "c-1"), ("EventList", "start")))
    assert t.receive(_msg(("Event", "FooComplete"), ("ActionID", "c-1"))).completed is None
    assert t.receive(
        _msg(("Event", "Item"), ("ActionID", "c-1"), ("Message", "list complete"))
    ).consumed
    res = t.receive(_msg(("Event", "Whatever"), ("ActionID", "c-1"), ("EventList", "Complete")))
    assert res.completed is pending
    assert [e.name for e in pending.events] == ["FooComplete", "Item"]


def test_tracker_message_text_does_not_make_a_list() -> None:
    """panoramisk guessed lists from "will follow"/"Added ... to queue"; we only read EventList."""
    t = ActionTracker("c")
    pending, _ = t.start("QueueAdd")
    res = t.receive(
        _msg(("Response", "Success"), ("ActionID", "c-1"), ("Message", "Added interface to queue"))
    )
    assert res.completed is pending


def test_tracker_event_before_response_is_not_consumed() -> None:
    t = ActionTracker("c")
    t.start("Originate")
    assert not t.receive(_msg(("Event", "OriginateResponse"), ("ActionID", "c-1"))).consumed


def test_tracker_abandon_swallows_late_answer_but_not_originate_response() -> None:
    t = ActionTracker("c")
    t.start("Originate")
    t.start("QueueStatus")
    assert t.abandon("c-1") is not None and t.abandon("nope") is None
    assert t.receive(_msg(("Response", "Success"), ("ActionID", "c-1"))).consumed
    assert not t.receive(_msg(("Event", "OriginateResponse"), ("ActionID", "c-1"))).consumed
    # A list abandoned after its start: the rest of the list is swallowed, then nothing.
    t.receive(_msg(("Response", "Success"), ("ActionID", "c-2"), ("EventList", "start")))
    t.abandon("c-2")
    assert t.receive(_msg(("Event", "QueueMember"), ("ActionID", "c-2"))).consumed
    assert t.receive(
        _msg(("Event", "QueueStatusComplete"), ("ActionID", "c-2"), ("EventList", "Complete"))
    ).consumed
    assert not t.receive(_msg(("Event", "QueueMember"), ("ActionID", "c-2"))).consumed


def test_tracker_abandon_before_list_response() -> None:
    t = ActionTracker("c")
    t.start("CoreShowChannels")
    t.abandon("c-1")
    start = _msg(("Response", "Success"), ("ActionID", "c-1"), ("EventList", "start"))
    assert t.receive(start).consumed
    assert t.receive(_msg(("Event", "CoreShowChannel"), ("ActionID", "c-1"))).consumed
    assert t.receive(
        _msg(("Event", "Done"), ("ActionID", "c-1"), ("EventList", "Complete"))
    ).consumed


def test_tracker_fail_all_returns_pending_and_never_resends() -> None:
    t = ActionTracker("c")
    a, _ = t.start("Originate", {"Channel": "PJSIP/9876543210@trunk"})
    b, _ = t.start("QueueStatus")
    t.receive(_msg(("Response", "Success"), ("ActionID", "c-2"), ("EventList", "start")))
    failed = t.fail_all()
    assert failed == [a, b] and len(t) == 0
    assert not any(hasattr(t, n) for n in ("resend", "replay", "retry"))
    assert not t.receive(_msg(("Response", "Success"), ("ActionID", "c-1"))).consumed


def test_tracker_list_event_cap() -> None:
    t = ActionTracker("c", max_list_events=2)
    pending, _ = t.start("CoreShowChannels")
    t.receive(_msg(("Response", "Success"), ("ActionID", "c-1"), ("EventList", "start")))
    for _ in range(5):
        assert t.receive(_msg(("Event", "CoreShowChannel"), ("ActionID", "c-1"))).consumed
    assert len(pending.events) == 2


def test_command_22_and_legacy_alone() -> None:
    for data in (COMMAND_22, COMMAND_LEGACY):
        items, errors = parse_chunks([GREETING + data])
        assert errors == [] and len(msgs(items)) == 1
