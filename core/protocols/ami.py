"""Sans-I/O Asterisk Manager Interface (AMI): bytes in, messages out; actions in, bytes out.

No sockets, no asyncio, nothing of ours is imported: the asyncio client
(:mod:`core.transport.ami_client`), the in-memory fake of Asterisk
(:mod:`core.transport.fake_ami`), the fuzz target and the tests all drive the same code.

Wire format, as ``main/manager.c`` of Asterisk 22 writes it:

* On connect the server sends one greeting line, ``Asterisk Call Manager/11.0.0\\r\\n``.
* Then messages: ``Key: Value\\r\\n`` lines ending with an empty line. A response starts with
  ``Response:`` (``Success``/``Error``/``Goodbye``, legacy ``Follows``), an event with
  ``Event:``. Keys repeat (``Variable:``, ``ChanVariable:``, ``Output:``) and order matters.
* ``Action: Command`` answers with ``Output:`` lines in Asterisk 14+; Asterisk ≤ 13 sent
  ``Response: Follows`` and the raw CLI text up to a ``--END COMMAND--`` line (which may contain
  empty lines). Both become ``Output`` values of one message here.
* List actions (``QueueStatus``, ``CoreShowChannels``...) answer ``EventList: start``, then
  events carrying the action's ``ActionID``, then an event with ``EventList: Complete``.

Why it is written this way (each point is a panoramisk defect we must not inherit):

* UTF-8 is decoded per complete message, never per TCP chunk, so a Devanagari caller name split
  across reads survives. Undecodable bytes are replaced (U+FFFD), never dropped with the whole
  message: losing a ``Hangup`` event over one bad byte in a caller name would lose a call record.
* Line length, message size and header count are capped. A message that breaks a cap is
  discarded, :class:`AMIProtocolError` is raised once from :meth:`AMIParser.next_event`, and
  parsing resumes after the next empty line: one hostile or broken message never wedges the link.
* :func:`encode_action` refuses CR, LF and NUL anywhere (header injection: a caller name with
  ``\\r\\n\\r\\nAction: Hangup`` must not become a second action).
* :class:`ActionTracker` decides list completion by the ``EventList`` header, never by the
  message text, and :meth:`ActionTracker.fail_all` hands back what was pending on disconnect; it
  cannot re-send (a re-sent ``Originate`` dials a citizen twice).
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "DEFAULT_MAX_HEADERS",
    "DEFAULT_MAX_LINE",
    "DEFAULT_MAX_MESSAGE",
    "GREETING_PREFIX",
    "AMIBadGreeting",
    "AMIGreeting",
    "AMILineTooLong",
    "AMIMessage",
    "AMIMessageTooLarge",
    "AMIParser",
    "AMIProtocolError",
    "AMITooManyHeaders",
    "ActionTracker",
    "FieldValue",
    "FieldsArg",
    "PendingAction",
    "TrackResult",
    "encode_action",
    "encode_message",
    "iter_fields",
]

#: First bytes of the line Asterisk sends on connect (``manager.c``: ``Asterisk Call Manager/%s``).
GREETING_PREFIX: Final = b"Asterisk Call Manager/"
#: Longest accepted line in bytes, without its line end. Asterisk's own lines are far shorter;
#: the cap only bounds memory against a broken or hostile peer.
DEFAULT_MAX_LINE: Final = 32 * 1024
#: Largest accepted message in bytes (a ``Command`` answer listing 500 seats fits easily).
DEFAULT_MAX_MESSAGE: Final = 2 * 1024 * 1024
#: Most header lines (``Output:`` lines included) in one message.
DEFAULT_MAX_HEADERS: Final = 10_000

_END_COMMAND: Final = b"--END COMMAND--"
#: Header keys that may precede the raw body of a legacy ``Response: Follows`` message.
_FOLLOWS_HEADERS: Final = frozenset({b"privilege", b"actionid", b"message", b"commandid"})
_FORBIDDEN: Final = ("\r", "\n", "\0")


# --------------------------------------------------------------------------- errors


class AMIProtocolError(Exception):
    """The peer broke the AMI framing; the offending message was discarded, the parser goes on."""


class AMILineTooLong(AMIProtocolError):
    """A line exceeded ``max_line`` bytes."""


class AMIMessageTooLarge(AMIProtocolError):
    """A message exceeded ``max_message`` bytes."""


class AMITooManyHeaders(AMIProtocolError):
    """A message exceeded ``max_headers`` lines."""


class AMIBadGreeting(AMIProtocolError):
    """The first line was not ``Asterisk Call Manager/...``: the peer is probably not AMI."""


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class AMIGreeting:
    """The server's first line; ``version`` is the AMI version (``11.0.0`` on Asterisk 22)."""

    line: str
    version: str


class AMIMessage:
    """One response or event: ordered ``(key, value)`` pairs with case-insensitive lookup.

    ``msg["uniqueid"]`` and ``msg.get("UniqueID")`` return the first value of a key;
    :meth:`getall` returns every value in wire order (``Variable``, ``ChanVariable``,
    ``Output``). Values are kept exactly as sent, minus the one space after the colon.

    Messages framed by :class:`AMIParser` are lazy: they keep the message's decoded text and
    split it into headers only when something asks for them (:attr:`headers`, :meth:`get`,
    iteration...). What every message is asked on the read path (:attr:`name`,
    :attr:`is_event`, :attr:`is_response`, :attr:`response`, and whether there is an
    ``ActionID`` at all) comes from C-level string searches on the text, so dispatch costs no
    split and an event no subscriber reads is never split (measured by ``python -m bench ami``).
    The text was decoded as one whole message, so laziness never sees a partial character.
    """

    __slots__ = ("_breaks", "_first", "_head", "_headers", "_keys", "_maybe_action_id", "_text")

    _headers: tuple[tuple[str, str], ...] | None
    _first: dict[str, str] | None
    #: ``"\r\n" + "\r\n".join(lower-cased keys) + "\r\n"`` when the fast split made the
    #: headers (no key holds whitespace or is empty), else None: :meth:`get` finds a key's
    #: first position in it with one C-level search instead of building a dict per message.
    _keys: str | None
    _text: str | None
    #: (first key lower-cased, first value), or None until asked.
    _head: tuple[str, str] | None
    #: False only when the raw message cannot hold an ActionID header (known at framing).
    _maybe_action_id: bool
    #: CRLFs in the text when the framer counted them and saw no NUL, else -1 (see _split_text).
    _breaks: int

    def __init__(self, headers: Iterable[tuple[str, str]]) -> None:
        self._headers = tuple(headers)
        self._text = None
        self._first = None
        self._keys = None
        self._head = None
        self._maybe_action_id = True
        self._breaks = -1

    @classmethod
    def _from_text(cls, text: str, maybe_action_id: bool = True, breaks: int = -1) -> AMIMessage:
        """A lazy message over ``text``: CRLF-separated lines without bare LF (the framer's).

        ``maybe_action_id=False`` says no key of the message can be ``ActionID`` in any case.
        ``breaks``: the number of CRLFs in ``text``, given only when it holds no NUL (the framer
        counts both on the bytes, where it is cheaper; decoding keeps every ASCII byte).
        """
        msg = cls.__new__(cls)
        msg._text = text
        msg._headers = None
        msg._first = None
        msg._keys = None
        msg._head = None
        msg._maybe_action_id = maybe_action_id
        msg._breaks = breaks
        return msg

    @classmethod
    def from_fields(cls, fields: FieldsArg) -> AMIMessage:
        """Build a message from a mapping or pairs (lists in a mapping become repeated keys)."""
        return cls(iter_fields(fields))

    # -- lazy parts

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        """Every ``(key, value)`` pair in wire order."""
        headers = self._headers
        if headers is None:
            self._parse()
            headers = self._headers
            assert headers is not None
        return headers

    def _parse(self) -> None:
        """Split the text into headers; keep the lower-cased keys joined for :meth:`get`."""
        keys, values, self._keys = _split_text(self._text or "", self._breaks)
        self._headers = tuple(zip(keys, values, strict=True))
        self._text = None

    def _index(self) -> dict[str, str]:
        """First value per lower-cased key (built on the first look-up that needs it)."""
        first = self._first
        if first is None:
            first = {key.lower(): value for key, value in reversed(self.headers)}
            self._first = first
        return first

    def _first_header(self) -> tuple[str, str]:
        """(first key lower-cased, its value), from the text's first line when unparsed."""
        head = self._head
        if head is None:
            text = self._text
            if text is None:
                headers = self.headers
                head = (headers[0][0].lower(), headers[0][1]) if headers else ("", "")
            elif text.startswith("Event: "):
                # As Asterisk writes every event; the value runs to the end of the line.
                nl = text.find("\r\n")
                head = ("event", text[7:nl] if nl >= 0 else text[7:])
            else:
                nl = text.find("\r\n")
                line = text if nl < 0 else text[:nl]
                key, sep, value = line.partition(":")
                if not sep:
                    head = ("", line)
                else:
                    head = (key.strip().lower(), value[1:] if value[:1] == " " else value)
            self._head = head
        return head

    # -- mapping

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __len__(self) -> int:
        return len(self.headers)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.headers)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AMIMessage):
            return NotImplemented
        return self.headers == other.headers

    def __hash__(self) -> int:
        return hash(self.headers)

    def __repr__(self) -> str:
        headers = self.headers
        shown = ", ".join(f"{k}={v!r}" for k, v in headers[:8])
        more = f", ... +{len(headers) - 8}" if len(headers) > 8 else ""
        return f"<AMIMessage {shown}{more}>"

    def get(self, key: str, default: str | None = None) -> str | None:
        """First value of ``key`` (any case), or ``default``."""
        headers = self._headers
        if headers is None:
            self._parse()
            headers = self._headers
            assert headers is not None
        keys = self._keys
        if keys is None:
            return self._index().get(key.lower(), default)
        wanted = key.lower()
        # Keys here hold no whitespace, so a CR or LF in ``wanted`` can match none of them
        # (and must not match across the separators).
        if "\r" in wanted or "\n" in wanted:
            return default
        pos = keys.find(f"\r\n{wanted}\r\n")
        if pos < 0:
            return default
        # The separators before the match count the headers before it.
        return headers[keys.count("\r\n", 0, pos)][1]

    def getall(self, key: str) -> list[str]:
        """Every value of ``key`` (any case) in wire order; empty if absent."""
        wanted = key.lower()
        return [value for k, value in self.headers if k.lower() == wanted]

    def to_dict(self) -> dict[str, str]:
        """First value per key, keys as first sent (convenient for logging and tests)."""
        out: dict[str, str] = {}
        for key, value in self.headers:
            out.setdefault(key, value)
        return out

    @property
    def is_event(self) -> bool:
        """True for ``Event:`` messages (decided by the first header, as Asterisk writes it)."""
        return self._first_header()[0] == "event"

    @property
    def is_response(self) -> bool:
        """True for ``Response:`` messages (decided by the first header)."""
        return self._first_header()[0] == "response"

    @property
    def name(self) -> str:
        """Event name (``QueueMember``), or ``""`` for a response."""
        key, value = self._first_header()
        # The first header is the first "Event" value, so no look-up is needed.
        return value if key == "event" else ""

    @property
    def response(self) -> str | None:
        """``Success``, ``Error``, ``Follows``, ``Goodbye``...; ``None`` for an event."""
        key, value = self._first_header()
        return value if key == "response" else None

    @property
    def is_error(self) -> bool:
        """True for ``Response: Error`` (and the legacy ``Fail``/``Failure`` spellings)."""
        resp = (self.response or "").lower()
        return resp in ("error", "fail", "failure")

    @property
    def action_id(self) -> str | None:
        # The framer knows when no key can be "ActionID" (see AMIParser._whole_messages): then
        # the events that make up nearly all of the stream are answered without a split.
        if not self._maybe_action_id and self._text is not None:
            return None
        return self.get("ActionID")

    @property
    def message(self) -> str | None:
        """The ``Message:`` header (Asterisk's human-readable result)."""
        return self.get("Message")

    @property
    def event_list(self) -> str | None:
        """``EventList`` header lower-cased: ``start``, ``complete``, ``cancelled`` or ``None``."""
        value = self.get("EventList")
        return value.strip().lower() if value is not None else None

    @property
    def output(self) -> list[str]:
        """Lines of a ``Command`` answer, whichever format Asterisk used."""
        return self.getall("Output")


def _split_text(text: str, breaks: int = -1) -> tuple[list[str], list[str], str | None]:
    """Headers of a framed message's text (CRLF lines, no bare LF), as the line path makes them.

    Returns keys, values and, when the fast path made them, the lower-cased keys joined for
    :meth:`AMIMessage.get` (see ``AMIMessage._keys``); None after the per-line loop.

    Fast path, C-level only: replace each line break by ``": \\0: "`` and split on ``": "``.
    When every line is ``Key: Value`` with exactly one ``": "``, the parts come in threes:
    key, value, and the NUL marker of the break. That is checked without rebuilding the text:
    the text holds no NUL, so every NUL part is a break; ``3 * lines - 1`` parts and a NUL in
    every third slot put each break between exactly two parts, so each line was split once.
    The keys must hold no ``:`` (the rules cut at the first colon) and no whitespace (the rules
    strip keys); the one space after ``": "`` is what the rules drop. Anything else takes the
    per-line loop, which owns the rules; a property test compares both on 10,000 examples.

    ``breaks`` is ``text.count("\\r\\n")`` when the caller knows it and the text holds no NUL;
    -1 has both found here.
    """
    if breaks < 0 and "\0" not in text:
        breaks = text.count("\r\n")
    if breaks >= 0:
        parts = text.replace("\r\n", ": \0: ").split(": ")
        if len(parts) == 3 * breaks + 2 and parts[2::3].count("\0") == breaks:
            keys = parts[0::3]
            plain = "".join(keys)
            joined = "\r\n" + "\r\n".join(keys) + "\r\n"
            # No whitespace in any key (split(None, 1) returns [plain] itself only then), no
            # colon, and no empty key (it would leave two separators side by side).
            if plain.split(None, 1) == [plain] and ":" not in plain and "\r\n\r\n" not in joined:
                return keys, parts[1::3], joined.lower()
    keys, values = [], []
    for raw in text.split("\r\n"):
        key, sep, value = raw.partition(":")
        if not sep:
            keys.append("")
            values.append(raw)
        else:
            keys.append(key.strip())
            values.append(value[1:] if value[:1] == " " else value)
    return keys, values, None


FieldValue = str | int | Sequence[str | int]
#: Action fields: a mapping (a list value repeats the key) or ``(key, value)`` pairs.
FieldsArg = Mapping[str, FieldValue] | Iterable[tuple[str, str | int]]


def iter_fields(fields: FieldsArg | None) -> Iterator[tuple[str, str]]:
    """Flatten ``fields`` to ``(key, value)`` pairs in order (list values repeat the key)."""
    if fields is None:
        return
    if isinstance(fields, Mapping):
        for key, value in fields.items():
            if isinstance(value, str | int):
                yield key, str(value)
            else:
                for item in value:
                    yield key, str(item)
    else:
        for key, value in fields:
            yield key, str(value)


# --------------------------------------------------------------------------- encoder


def _check(text: str, what: str) -> None:
    for bad in _FORBIDDEN:
        if bad in text:
            raise ValueError(f"AMI {what} contains {bad!r} (header injection refused): {text!r}")


def encode_message(pairs: Iterable[tuple[str, str]]) -> bytes:
    """Encode ``Key: Value`` pairs plus the closing empty line; refuses CR/LF/NUL and bad keys.

    Used for actions here and for responses/events by the fake server.
    """
    parts: list[str] = []
    for key, value in pairs:
        if not key or ":" in key or key != key.strip():
            raise ValueError(f"invalid AMI header key: {key!r}")
        _check(key, "key")
        _check(value, f"value of {key!r}")
        parts.append(f"{key}: {value}\r\n")
    parts.append("\r\n")
    return "".join(parts).encode("utf-8")


def encode_action(
    name: str,
    fields: FieldsArg | None = None,
    *,
    action_id: str | None = None,
) -> bytes:
    """Encode ``Action: name`` with ``ActionID`` and ``fields``.

    ``fields`` is a mapping (a list value repeats the key: ``{"Variable": ["A=1", "B=2"]}``) or a
    list of ``(key, value)`` pairs. ``Action``/``ActionID`` must not be in ``fields``: they are
    this function's to write. Any CR, LF or NUL raises :class:`ValueError`.
    """
    pairs: list[tuple[str, str]] = [("Action", name)]
    if action_id is not None:
        pairs.append(("ActionID", action_id))
    for key, value in iter_fields(fields):
        if key.lower() in ("action", "actionid"):
            raise ValueError(f"{key!r} is set by encode_action, not by fields")
        pairs.append((key, value))
    return encode_message(pairs)


# --------------------------------------------------------------------------- parser


class AMIParser:
    """Incremental AMI framer: :meth:`feed` bytes, then call :meth:`next_event` until ``None``.

    ``next_event`` returns an :class:`AMIGreeting` (once, first) or an :class:`AMIMessage`, and
    raises :class:`AMIProtocolError` once for each discarded message; call it again afterwards,
    the parser has already resynchronised. Buffered memory is bounded by ``max_line`` plus
    ``max_message`` whatever the peer sends; results wait in a queue that the caller drains
    after each :meth:`feed`.

    ``expect_greeting=False`` parses a stream without the greeting line (the fake server reads
    actions with it).
    """

    def __init__(
        self,
        *,
        expect_greeting: bool = True,
        max_line: int = DEFAULT_MAX_LINE,
        max_message: int = DEFAULT_MAX_MESSAGE,
        max_headers: int = DEFAULT_MAX_HEADERS,
    ) -> None:
        if max_line < 1 or max_message < 1 or max_headers < 1:
            raise ValueError("caps must be positive")
        self.max_line = max_line
        self.max_message = max_message
        self.max_headers = max_headers
        self.greeting: AMIGreeting | None = None
        self._want_greeting = expect_greeting
        self._buf = bytearray()
        self._ready: deque[AMIGreeting | AMIMessage | AMIProtocolError] = deque()
        # Current message: raw lines (decoded together at the end) and its size in bytes.
        self._lines: list[bytes] = []
        self._size = 0
        self._follows = False  # inside a legacy "Response: Follows" message
        self._body_start = -1  # index in _lines of its first raw output line
        self._skip_blank = False  # swallow the empty line after "--END COMMAND--"
        self._discarding = False  # dropping lines until the next empty line
        self._skipping_line = False  # dropping bytes until the next LF (over-long line)
        self._scan = 0  # offset into a kept partial message already searched for its end
        #: Messages discarded because they broke a cap (for metrics).
        self.discarded = 0

    # -- public API

    def feed(self, data: bytes) -> None:
        """Add bytes from the wire; complete messages become available to :meth:`next_event`."""
        if not data:
            return
        buf = self._buf
        buf += data
        start = 0
        max_line = self.max_line
        while True:
            if not (
                self._want_greeting
                or self._skip_blank
                or self._discarding
                or self._follows
                or self._skipping_line
                or self._lines
            ):
                start, keep = self._whole_messages(start)
                if keep:
                    break
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            end = nl
            if end > start and buf[end - 1] == 0x0D:
                end -= 1
            if self._skipping_line:
                # The tail of an over-long line, already reported: drop it.
                self._skipping_line = False
            elif end - start > max_line:
                self._line_too_long()
            else:
                self._line(bytes(buf[start:end]))
            start = nl + 1
        del buf[:start]
        # +1: the line's CR may be here while its LF is still on the wire.
        if len(buf) > max_line + 1:
            if not self._skipping_line:
                self._line_too_long()
                self._skipping_line = True
            buf.clear()

    def _whole_messages(self, start: int) -> tuple[int, bool]:
        """Fast path at a message boundary: frame whole CRLF messages with C-level searches.

        Measured with ``python -m bench ami``: the line-at-a-time path costs ~4 us per header;
        finding ``\r\n\r\n`` and splitting the block at once is several times cheaper. Only
        plain messages take it (CRLF only, within every cap, not ``Response: Follows``);
        anything else returns to the line path, which owns the rules. Returns where it stopped
        and whether the rest (an incomplete message within ``max_line``) is to be kept for the
        next feed.
        """
        buf = self._buf
        while True:
            while buf.startswith(b"\r\n", start):
                start += 2  # empty lines between messages
            scan = start + self._scan
            end = buf.find(b"\r\n\r\n", scan)
            if end < 0:
                rest = len(buf) - start
                # A bare LF (a peer ending lines with "\n" only) may end this message: only the
                # line path can tell. Bytes before ``scan`` were checked by earlier feeds.
                bare_lf = buf.count(b"\n", scan) != buf.count(b"\r\n", max(start, scan - 1))
                if rest <= self.max_line and not bare_lf:
                    # Offset from the message's start (the consumed prefix is deleted).
                    self._scan = max(0, rest - 3)
                    return start, True
                self._scan = 0
                return start, False
            self._scan = 0
            block = bytes(buf[start:end])
            if len(block) + 2 > self.max_message:
                return start, False
            if block[:9].lower() == b"response:":
                first = block.split(b"\r\n", 1)[0]
                if first[9:].strip().lower() == b"follows":
                    return start, False
            breaks = block.count(b"\r\n")
            lines = breaks + 1
            if (
                block.count(b"\n") != lines - 1
                or lines > self.max_headers
                or (
                    len(block) > self.max_line
                    and max(map(len, block.split(b"\r\n"))) > self.max_line
                )
            ):
                return start, False
            # Decoded whole (a character split across reads is complete here); split into
            # headers only if a consumer asks (AMIMessage is lazy).
            # A key that lower-cases to "actionid" is ASCII "actionid" in any case (no other
            # character lower-cases to one of its letters), so bytes.lower() can rule it out.
            self._ready.append(
                AMIMessage._from_text(
                    block.decode("utf-8", "replace"),
                    b"actionid" in block.lower(),
                    -1 if b"\0" in block else breaks,
                )
            )
            start = end + 4

    def next_event(self) -> AMIGreeting | AMIMessage | None:
        """Next greeting or message, ``None`` when more bytes are needed.

        Raises :class:`AMIProtocolError` for a discarded message; later calls go on normally.
        """
        if not self._ready:
            return None
        item = self._ready.popleft()
        if isinstance(item, AMIProtocolError):
            raise item
        return item

    def __iter__(self) -> Iterator[AMIGreeting | AMIMessage]:
        """Iterate over ready items (raising on a discarded message, like :meth:`next_event`)."""
        while (item := self.next_event()) is not None:
            yield item

    @property
    def pending_bytes(self) -> int:
        """Bytes held for an incomplete line or message (bounded by the caps)."""
        return len(self._buf) + self._size

    # -- internals

    def _reset_message(self) -> None:
        self._lines = []
        self._size = 0
        self._follows = False
        self._body_start = -1

    def _discard(self, exc: AMIProtocolError) -> None:
        """Report ``exc`` once, drop the current message and skip to the next empty line."""
        self.discarded += 1
        self._ready.append(exc)
        self._reset_message()
        self._discarding = True

    def _line_too_long(self) -> None:
        if self._want_greeting:
            self._want_greeting = False
            self.discarded += 1
            self._ready.append(AMIBadGreeting(f"greeting line longer than {self.max_line} bytes"))
        elif not self._discarding:
            self._discard(AMILineTooLong(f"AMI line longer than {self.max_line} bytes"))

    def _line(self, line: bytes) -> None:
        if self._want_greeting:
            self._want_greeting = False
            if line.startswith(GREETING_PREFIX):
                text = line.decode("utf-8", "replace")
                self.greeting = AMIGreeting(text, text[len(GREETING_PREFIX) :].strip())
                self._ready.append(self.greeting)
                return
            self.discarded += 1
            self._ready.append(
                AMIBadGreeting(f"expected 'Asterisk Call Manager/<version>', got {line[:80]!r}")
            )
            # Tolerant: go on with the line as message text (parses a capture without greeting).
        if self._skip_blank:
            self._skip_blank = False
            if not line:
                return
        if self._discarding:
            if not line:
                self._discarding = False
            return
        if self._follows:
            self._follows_line(line)
            return
        if not line:
            if self._lines:
                self._finish()
            return
        if not self._lines and line[:9].lower() == b"response:":
            self._follows = line[9:].strip().lower() == b"follows"
        self._add(line)

    def _follows_line(self, line: bytes) -> None:
        """A line of a legacy ``Response: Follows`` message (raw CLI text up to END COMMAND)."""
        if self._body_start < 0:
            key, sep, _ = line.partition(b":")
            if sep and key.strip().lower() in _FOLLOWS_HEADERS:
                self._add(line)
                return
            if not line:
                # An empty line before any output: a Follows message without a body.
                self._finish()
                return
            self._body_start = len(self._lines)
        if line.endswith(_END_COMMAND):
            rest = line[: -len(_END_COMMAND)]
            if rest:
                self._add(rest)
                if self._discarding:
                    return
            self._finish()
            self._skip_blank = True
            return
        self._add(line)

    def _add(self, line: bytes) -> None:
        self._size += len(line) + 2
        if self._size > self.max_message:
            self._discard(AMIMessageTooLarge(f"AMI message larger than {self.max_message} bytes"))
        elif len(self._lines) >= self.max_headers:
            self._discard(AMITooManyHeaders(f"AMI message with more than {self.max_headers} lines"))
        else:
            self._lines.append(line)

    def _finish(self) -> None:
        lines, body_start = self._lines, self._body_start
        self._reset_message()
        # One decode per message, so a character split across TCP reads is whole here. An LF
        # byte never belongs to a UTF-8 sequence, so splitting afterwards gives the same lines.
        texts = b"\n".join(lines).decode("utf-8", "replace").split("\n")
        headers: list[tuple[str, str]] = []
        for i, raw in enumerate(texts):
            if 0 <= body_start <= i:
                # Legacy Command body: every line is output, verbatim.
                headers.append(("Output", raw))
                continue
            key, sep, value = raw.partition(":")
            if not sep:
                # A line without a colon: keep it (key "") rather than lose data.
                headers.append(("", raw))
                continue
            if value.startswith(" "):
                value = value[1:]
            headers.append((key.strip(), value))
        self._ready.append(AMIMessage(headers))


# --------------------------------------------------------------------------- action tracking


@dataclass(slots=True)
class PendingAction:
    """An action sent and not yet complete; filled in by :class:`ActionTracker`."""

    action_id: str
    name: str
    #: The ``Response:`` message, once it arrived.
    response: AMIMessage | None = None
    #: For list actions: the events carrying this ActionID, in order (the closing
    #: ``EventList: Complete`` event excluded; it is :attr:`complete_event`).
    events: list[AMIMessage] = field(default_factory=list)
    complete_event: AMIMessage | None = None
    done: bool = False

    @property
    def is_list(self) -> bool:
        """True once the response said ``EventList: start``."""
        return self.response is not None and self.response.event_list == "start"


@dataclass(frozen=True, slots=True)
class TrackResult:
    """What :meth:`ActionTracker.receive` made of a message.

    ``consumed``: the message belonged to a tracked action (do not fan it out).
    ``completed``: the action that this message completed, if any.
    """

    consumed: bool
    completed: PendingAction | None = None


_NOT_MINE: Final = TrackResult(False)
_CONSUMED: Final = TrackResult(True)


class ActionTracker:
    """Assigns ActionIDs and correlates responses and list events; no I/O, one per connection.

    ActionIDs are ``<prefix>-<counter>`` with a random prefix per tracker, so a late message from
    a previous connection can never be mistaken for an answer on this one.
    """

    def __init__(self, prefix: str | None = None, *, max_list_events: int = 1_000_000) -> None:
        self.prefix = prefix if prefix is not None else secrets.token_hex(6)
        _check(self.prefix, "ActionID prefix")
        self._counter = 0
        self._pending: dict[str, PendingAction] = {}
        # Actions whose caller gave up (timeout) -> "a list is in progress" (insertion-ordered).
        self._abandoned: dict[str, bool] = {}
        self.max_list_events = max_list_events

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, action_id: object) -> bool:
        return action_id in self._pending

    def next_action_id(self) -> str:
        self._counter += 1
        return f"{self.prefix}-{self._counter}"

    def start(self, name: str, fields: FieldsArg | None = None) -> tuple[PendingAction, bytes]:
        """Register a new action; returns it and the bytes to send (ValueError on injection)."""
        action_id = self.next_action_id()
        data = encode_action(name, fields, action_id=action_id)
        pending = PendingAction(action_id, name)
        self._pending[action_id] = pending
        return pending, data

    def abandon(self, action_id: str) -> PendingAction | None:
        """Forget an action whose caller gave up (timeout).

        Its late response is swallowed, and so are the rest of its list, if it is one; other
        events with its ActionID (``OriginateResponse``) still reach subscribers.
        """
        pending = self._pending.pop(action_id, None)
        if pending is not None:
            self._abandoned[action_id] = pending.is_list
            while len(self._abandoned) > 1024:
                del self._abandoned[next(iter(self._abandoned))]
        return pending

    def fail_all(self) -> list[PendingAction]:
        """Drop and return every pending action (on disconnect).

        Nothing here can re-send them: the transport fails them and the caller decides.
        """
        pending = list(self._pending.values())
        self._pending.clear()
        self._abandoned.clear()
        return pending

    def receive(self, msg: AMIMessage) -> TrackResult:
        """Feed one parsed message; see :class:`TrackResult`."""
        action_id = msg.action_id
        if action_id is None:
            return _NOT_MINE
        pending = self._pending.get(action_id)
        if pending is None:
            return self._receive_abandoned(action_id, msg)
        if pending.response is None:
            if not msg.is_response:
                # An event with our ActionID ahead of the response is not the answer.
                return _NOT_MINE
            pending.response = msg
            if msg.event_list == "start" and not msg.is_error:
                return _CONSUMED
            return self._complete(pending)
        if not pending.is_list or msg.is_response:
            return _NOT_MINE
        if msg.event_list in ("complete", "cancelled"):
            # Decided by the EventList header alone, never by the event name or message text.
            pending.complete_event = msg
            return self._complete(pending)
        if len(pending.events) < self.max_list_events:
            pending.events.append(msg)
        return _CONSUMED

    def _receive_abandoned(self, action_id: str, msg: AMIMessage) -> TrackResult:
        in_list = self._abandoned.get(action_id)
        if in_list is None:
            return _NOT_MINE
        if msg.is_response:
            if msg.event_list == "start" and not msg.is_error:
                self._abandoned[action_id] = True
            else:
                del self._abandoned[action_id]
            return _CONSUMED
        if not in_list:
            return _NOT_MINE
        if msg.event_list in ("complete", "cancelled"):
            del self._abandoned[action_id]
        return _CONSUMED

    def _complete(self, pending: PendingAction) -> TrackResult:
        pending.done = True
        del self._pending[pending.action_id]
        return TrackResult(True, pending)
