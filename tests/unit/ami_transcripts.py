"""AMI transcripts as Asterisk 22 writes them (layout from main/manager.c and apps/app_queue.c).

Shared by the AMI protocol, property and client tests. Hindi caller names on purpose: every
Devanagari letter is three UTF-8 bytes, so a TCP split inside one is likely.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from core.protocols.ami import AMIGreeting, AMIMessage, AMIParser, AMIProtocolError

GREETING = b"Asterisk Call Manager/11.0.0\r\n"

LOGIN = (
    b"Response: Success\r\n"
    b"ActionID: 5f1c-1\r\n"
    b"Message: Authentication accepted\r\n"
    b"\r\n"
    b"Event: FullyBooted\r\n"
    b"Privilege: system,all\r\n"
    b"Uptime: 5021\r\n"
    b"LastReload: 5021\r\n"
    b"Status: Fully Booted\r\n"
    b"\r\n"
)

HINDI_NEWCHANNEL = (
    "Event: Newchannel\r\n"
    "Privilege: call,all\r\n"
    "Channel: PJSIP/trunk-00000007\r\n"
    "ChannelState: 4\r\n"
    "ChannelStateDesc: Ring\r\n"
    "CallerIDNum: 9876543210\r\n"
    "CallerIDName: रमेश कुमार\r\n"
    "ConnectedLineNum: <unknown>\r\n"
    "ConnectedLineName: <unknown>\r\n"
    "Language: hi\r\n"
    "AccountCode: \r\n"
    "Context: from-trunk\r\n"
    "Exten: 1076\r\n"
    "Priority: 1\r\n"
    "Uniqueid: 1718000000.7\r\n"
    "Linkedid: 1718000000.7\r\n"
    "ChanVariable: IVR_DONE=\r\n"
    "ChanVariable: DISTRICT=लखनऊ\r\n"
    "\r\n"
).encode()

QUEUE_STATUS = (
    "Response: Success\r\n"
    "ActionID: 5f1c-9\r\n"
    "EventList: start\r\n"
    "Message: Queue status will follow\r\n"
    "\r\n"
    "Event: QueueParams\r\n"
    "Queue: helpline\r\n"
    "Max: 0\r\n"
    "Strategy: rrmemory\r\n"
    "Calls: 1\r\n"
    "Holdtime: 12\r\n"
    "TalkTime: 95\r\n"
    "Completed: 40\r\n"
    "Abandoned: 2\r\n"
    "ServiceLevel: 60\r\n"
    "ServicelevelPerf: 95.0\r\n"
    "ServicelevelPerf2: 90.5\r\n"
    "Weight: 0\r\n"
    "ActionID: 5f1c-9\r\n"
    "\r\n"
    "Event: QueueMember\r\n"
    "Queue: helpline\r\n"
    "Name: एजेंट एक\r\n"
    "Location: PJSIP/agent0001\r\n"
    "StateInterface: PJSIP/agent0001\r\n"
    "Membership: dynamic\r\n"
    "Penalty: 0\r\n"
    "CallsTaken: 7\r\n"
    "LastCall: 1718000100\r\n"
    "LastPause: 0\r\n"
    "LoginTime: 1717990000\r\n"
    "InCall: 1\r\n"
    "Status: 2\r\n"
    "Paused: 0\r\n"
    "PausedReason: \r\n"
    "Wrapuptime: 0\r\n"
    "ActionID: 5f1c-9\r\n"
    "\r\n"
    "Event: QueueMember\r\n"
    "Queue: helpline\r\n"
    "Name: PJSIP/agent0002\r\n"
    "Location: PJSIP/agent0002\r\n"
    "StateInterface: PJSIP/agent0002\r\n"
    "Membership: dynamic\r\n"
    "Penalty: 0\r\n"
    "CallsTaken: 3\r\n"
    "LastCall: 0\r\n"
    "LastPause: 1718000050\r\n"
    "LoginTime: 1717990500\r\n"
    "InCall: 0\r\n"
    "Status: 1\r\n"
    "Paused: 1\r\n"
    "PausedReason: चाय\r\n"
    "Wrapuptime: 0\r\n"
    "ActionID: 5f1c-9\r\n"
    "\r\n"
    "Event: QueueEntry\r\n"
    "Queue: helpline\r\n"
    "Position: 1\r\n"
    "Channel: PJSIP/trunk-00000007\r\n"
    "Uniqueid: 1718000000.7\r\n"
    "CallerIDNum: 9876543210\r\n"
    "CallerIDName: रमेश कुमार\r\n"
    "ConnectedLineNum: unknown\r\n"
    "ConnectedLineName: unknown\r\n"
    "Wait: 12\r\n"
    "Priority: 0\r\n"
    "ActionID: 5f1c-9\r\n"
    "\r\n"
    "Event: QueueStatusComplete\r\n"
    "ActionID: 5f1c-9\r\n"
    "EventList: Complete\r\n"
    "ListItems: 4\r\n"
    "\r\n"
).encode()

#: Asterisk 14+ (22 included): ``Output:`` lines, blank output lines kept as ``Output: ``.
COMMAND_22 = (
    b"Response: Success\r\n"
    b"ActionID: 5f1c-12\r\n"
    b"Message: Command output follows\r\n"
    b"Output: helpline has 1 calls (max unlimited) in 'rrmemory' strategy (12s holdtime)\r\n"
    b"Output:    Members: \r\n"
    b"Output:       PJSIP/agent0001 (ringinuse disabled) (dynamic) (In use)\r\n"
    b"Output: \r\n"
    b"Output:    Callers: \r\n"
    b"\r\n"
)

#: Asterisk <= 13: ``Response: Follows``, raw CLI text (empty lines included), END COMMAND.
COMMAND_LEGACY = (
    b"Response: Follows\r\n"
    b"Privilege: Command\r\n"
    b"ActionID: 5f1c-13\r\n"
    b"Name/username             Host            Dyn Forcerport ACL Port     Status\n"
    b"\n"
    b"Uptime: 3 days\n"
    b"1 sip peers [Monitored: 0 online, 1 offline]\n"
    b"--END COMMAND--\r\n"
    b"\r\n"
)

ORIGINATE_ERROR = b"Response: Error\r\nActionID: 5f1c-14\r\nMessage: Originate failed\r\n\r\n"

FULL = GREETING + LOGIN + HINDI_NEWCHANNEL + QUEUE_STATUS + COMMAND_22 + COMMAND_LEGACY
FULL_BARE_LF = FULL.replace(b"\r\n", b"\n")


def parse_chunks(
    chunks: list[bytes], parser: AMIParser | None = None
) -> tuple[list[AMIGreeting | AMIMessage], list[AMIProtocolError]]:
    """Feed ``chunks`` one by one, draining after each; return items and errors."""
    parser = parser or AMIParser()
    items: list[AMIGreeting | AMIMessage] = []
    errors: list[AMIProtocolError] = []
    for chunk in chunks:
        parser.feed(chunk)
        while True:
            try:
                item = parser.next_event()
            except AMIProtocolError as exc:
                errors.append(exc)
                continue
            if item is None:
                break
            items.append(item)
    return items, errors


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for p in points:
        out.append(data[last:p])
        last = p
    out.append(data[last:])
    return out


# ------------------------------------------------------------------ property-test helpers

PROPERTY = settings(
    max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# Examples are built from one byte string cut into 3-byte codes: Hypothesis draws (and shrinks)
# a single bytes value far faster than nested text/list strategies, which keeps 10,000 examples
# of each property under 30 s on a loaded 2-CPU runner.
CODES = st.binary(max_size=120).map(
    lambda b: [int.from_bytes(b[i : i + 3], "big") for i in range(0, len(b), 3)]
)
CUTS = st.binary(max_size=20).map(
    lambda b: [int.from_bytes(b[i : i + 2], "big") for i in range(0, len(b), 2)]
)

#: Value pieces: anything but CR, LF, NUL (what the encoder accepts), Devanagari well represented.
TOKENS = [
    "रमेश",
    "कुमार",
    "लखनऊ",
    "ा",
    "्",
    " ",
    "  ",
    ":",
    ": ",
    "=",
    "a",
    "Z9",
    "\t",
    "\x85",
    "\u2028",
    "😀",
    "é",
    "--END COMMAND--",
    "Response: Follows",
    "",
]


def text_of(code: int, pieces: list[str]) -> str:
    count = code % 5
    code //= 5
    out = []
    for _ in range(count):
        out.append(pieces[code % len(pieces)])
        code //= len(pieces)
    return "".join(out)
