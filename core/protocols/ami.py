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

import re
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


def _value_at(raw: bytes, pos: int, end: int = -1) -> tuple[str, int]:
    """The value starting right after a key's colon at ``pos``, and where its line ends (at
    ``end`` if the caller knows).

    One space after the colon is dropped. A line ends at LF (or the end of the bytes); a CR
    right before that end is the line end's, not the value's (the line rules). A UTF-8
    sequence never holds CR or LF, so the value decodes alone exactly as in the whole message
    decoded at once.
    """
    if end < 0:
        end = raw.find(b"\n", pos)
        if end < 0:
            end = len(raw)
    if end > pos and raw[end - 1] == 13:
        end -= 1
    if pos < end and raw[pos] == 32:
        pos += 1
    return raw[pos:end].decode("utf-8", "replace"), end


def _first_line(raw: bytes) -> tuple[bytes | None, str, int]:
    """The first line's key (ASCII lower-cased bytes; None without a colon), its value, and
    where it ends."""
    colon = raw.find(b":", 0, raw.find(b"\n") % (len(raw) + 1))  # (-1: no LF, the whole)
    if colon >= 0:
        return raw[:colon].lower(), *_value_at(raw, colon + 1)
    end = raw.find(b"\n")
    if end < 0:
        end = len(raw)
    return (
        None,
        raw[: end - 1 if end > 0 and raw[end - 1] == 13 else end].decode("utf-8", "replace"),
        end,
    )


#: The line rules on a message's lines (their line-end CRs dropped): the key before the first
#: colon (a line without one is all value, key ""), one space after the colon dropped.
_HEADER_RE: Final = re.compile(r"^(?:([^:\n]*):(?: )?)?(.*)$", re.MULTILINE)


class AMIMessage:
    """One response or event: ordered ``(key, value)`` pairs with case-insensitive lookup.

    ``msg["uniqueid"]`` and ``msg.get("UniqueID")`` return the first value of a key;
    :meth:`getall` returns every value in wire order (``Variable``, ``ChanVariable``,
    ``Output``). A key is a line's text before its first colon, exactly as sent, and look-ups
    fold ASCII case only: what Asterisk's own ``astman_get_header`` does (``strncasecmp`` on
    the bytes before the colon). Values are kept exactly as sent, minus the one space after
    the colon; a line without a colon is kept whole as the value of key ``""``.

    A message keeps its bytes (lines separated by LF, one CR at the end of a line is the line
    end's, no empty line): a look-up searches them and decodes the one value asked for, and
    the message is decoded and split into all its headers only when something iterates it
    (:attr:`headers`, ``for``, ``len``, ``==``). Measured by ``python -m bench ami``: framing,
    dispatch and a look-up cost less than splitting a message.
    """

    __slots__ = ("_head", "_headers", "_low", "_maybe_action_id", "_raw")

    _headers: tuple[tuple[str, str], ...] | None
    #: The message's bytes (see the class docstring).
    _raw: bytes
    #: ``_raw`` with ASCII letters lower-cased (same length and offsets), made on first look-up.
    _low: bytes | None
    #: The first line: its key ASCII-lower-cased (None without a colon), value, and end.
    _head: tuple[bytes | None, str, int]
    #: False only when no key of the message can be ``ActionID`` (known at framing).
    _maybe_action_id: bool

    def __init__(self, headers: Iterable[tuple[str, str]]) -> None:
        """A message built from pairs (the fake server, tests); a key may not hold a colon or
        LF, a value no LF: the pairs must be what the line rules could give."""
        pairs = tuple(headers)
        for key, value in pairs:
            if ":" in key or "\n" in key or "\n" in value:
                raise ValueError(f"not an AMI header: {key!r}: {value!r}")
        text = "".join([f"{key}: {value}\r\n" for key, value in pairs])[:-1]
        self._raw = text.encode("utf-8", "surrogatepass")
        self._headers = pairs
        self._low = None
        self._head = _first_line(self._raw)
        self._maybe_action_id = True

    @classmethod
    def _from_block(cls, raw: bytes, low: bytes, maybe_action_id: bool) -> AMIMessage:
        """A message over ``raw``, a framed message up to the LF of its last line (so it ends
        with that line's CR from Asterisk). ``low`` is ``raw.lower()``;
        ``maybe_action_id=False`` says no key of the message is ``ActionID`` in any case."""
        msg = cls.__new__(cls)
        msg._raw = raw
        msg._headers = None
        msg._low = low
        # Every framed message is dispatched by its first header: read it now.
        msg._head = _first_line(raw)
        msg._maybe_action_id = maybe_action_id
        return msg

    @classmethod
    def from_fields(cls, fields: FieldsArg) -> AMIMessage:
        """Build a message from a mapping or pairs (lists in a mapping become repeated keys)."""
        return cls(iter_fields(fields))

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        """Every ``(key, value)`` pair in wire order."""
        headers = self._headers
        if headers is None:
            text = self._raw.decode("utf-8", "replace").replace("\r\n", "\n")
            if text[-1:] == "\r":  # the last line's CR
                text = text[:-1]
            headers = self._headers = tuple(_HEADER_RE.findall(text))
        return headers

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
        """First value of ``key`` (ASCII case folded), or ``default``."""
        if not key:
            return next((value for k, value in self.headers if not k), default)
        found = self._search(key, 0)
        return default if found is None else found[0]

    def getall(self, key: str) -> list[str]:
        """Every value of ``key`` (ASCII case folded) in wire order; empty if absent."""
        if not key:
            return [value for k, value in self.headers if not k]
        values: list[str] = []
        end = 0
        while (found := self._search(key, end)) is not None:
            value, end = found
            values.append(value)
        return values

    def _search(self, key: str, start: int) -> tuple[str, int] | None:
        """The value of the first line at or after ``start`` whose key is ``key``, and where
        that line ends; None if there is none.

        The first line was read at framing; every other line starts after an LF, so
        ``\\n<key>:`` in the lower-cased bytes finds exactly the lines with that key (no key
        holds an LF or a colon). A line without a colon has no key to search for: key ``""``
        is answered from the split headers (see get/getall).
        """
        if ":" in key or "\n" in key:
            return None
        folded = key.encode("utf-8", "surrogatepass").lower()  # bytes.lower: ASCII only
        head_key, head_value, head_end = self._head
        if start == 0 and head_key == folded:
            return head_value, head_end
        low = self._low
        if low is None:
            low = self._low = self._raw.lower()
        needle = b"\n" + folded + b":"
        pos = low.find(needle, start)
        if pos < 0:
            return None
        return _value_at(self._raw, pos + len(needle))

    def to_dict(self) -> dict[str, str]:
        """First value per key, keys as first sent (convenient for logging and tests)."""
        out: dict[str, str] = {}
        for key, value in self:
            out.setdefault(key, value)
        return out

    @property
    def is_event(self) -> bool:
        """True for ``Event:`` messages (decided by the first header, as Asterisk writes it)."""
        return self._head[0] == b"event"

    @property
    def is_response(self) -> bool:
        """True for ``Response:`` messages (decided by the first header)."""
        return self._head[0] == b"response"

    @property
    def name(self) -> str:
        """Event name (``QueueMember``), or ``""`` for a response."""
        key, value, _ = self._head
        return value if key == b"event" else ""

    @property
    def response(self) -> str | None:
        """``Success``, ``Error``, ``Follows``, ``Goodbye``...; ``None`` for an event."""
        key, value, _ = self._head
        return value if key == b"response" else None

    @property
    def is_error(self) -> bool:
        """True for ``Response: Error`` (and the legacy ``Fail``/``Failure`` spellings)."""
        resp = (self.response or "").lower()
        return resp in ("error", "fail", "failure")

    @property
    def action_id(self) -> str | None:
        # The framer knows when no key can be "ActionID": then the events that make up
        # nearly all of the stream are answered without a search.
        if not self._maybe_action_id:
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

    The line rules: a line ends at LF, one CR before it is the line end's; an empty line ends
    a message, and empty lines between messages are skipped; a legacy ``Response: Follows``
    ends at its ``--END COMMAND--`` instead (its output may hold empty lines). Each read is
    framed at once: one split of the buffered bytes at every message end, then one message
    per piece. A message that breaks a cap is discarded whole; an incomplete one that already
    breaks a cap is discarded up to the next empty line.

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
        # A message this short keeps every cap: each line is at most as long, it has at most
        # (length + 1) / 2 lines, and its size (two bytes of line end per line) is at most
        # 1.5 times its length plus 2.
        self._short = min(max_line, 2 * max_message // 3, 2 * max_headers - 1) - 2
        self.greeting: AMIGreeting | None = None
        self._want_greeting = expect_greeting
        #: An incomplete message from a line start (or, while discarding, at most the LF and
        #: CR that may begin the empty line being waited for).
        self._buf = b""
        self._ready: deque[AMIGreeting | AMIMessage | AMIProtocolError] = deque()
        self._discarding = False  # dropping bytes up to the next empty line
        self._skipping_line = False  # dropping the rest of an over-long greeting line
        #: Messages discarded because they broke a cap (for metrics).
        self.discarded = 0

    # -- public API

    def feed(self, data: bytes) -> None:
        """Add bytes from the wire; complete messages become available to :meth:`next_event`."""
        if not data:
            return
        buf = self._buf + data if self._buf else bytes(data)
        self._buf = b""
        pos = 0
        if self._skipping_line:
            pos = buf.find(b"\n") + 1
            if not pos:
                return
            self._skipping_line = False
        if self._want_greeting:
            pos = self._greeting(buf, pos)
            if pos < 0:
                return
        if self._discarding:
            found = _MESSAGE_END(buf, pos)
            if found is None:
                self._keep_line_end(buf)
                return
            self._discarding = False
            pos = found.end()
        self._frame(buf[pos:] if pos else buf)

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

    def take(self) -> deque[AMIGreeting | AMIMessage | AMIProtocolError]:
        """Every ready item in order, a discarded message as its :class:`AMIProtocolError`.

        One call per read instead of one :meth:`next_event` per message: the client's read
        path (measured by ``python -m bench ami``).
        """
        ready = self._ready
        self._ready = deque()
        return ready

    def __iter__(self) -> Iterator[AMIGreeting | AMIMessage]:
        """Iterate over ready items (raising on a discarded message, like :meth:`next_event`)."""
        while (item := self.next_event()) is not None:
            yield item

    @property
    def pending_bytes(self) -> int:
        """Bytes held for an incomplete line or message (bounded by the caps)."""
        return len(self._buf)

    # -- internals

    def _greeting(self, buf: bytes, pos: int) -> int:
        """Read the first line; where framing goes on, or -1 while the line is incomplete."""
        nl = buf.find(b"\n", pos)
        if nl < 0:
            if len(buf) - pos > self.max_line + 1:  # (+1: its CR may be here already)
                self._want_greeting = False
                self._reject(AMIBadGreeting(f"greeting line longer than {self.max_line} bytes"))
                self._skipping_line = True
            else:
                self._buf = buf[pos:]
            return -1
        self._want_greeting = False
        end = nl - 1 if nl > pos and buf[nl - 1] == 13 else nl
        if end - pos > self.max_line:
            self._reject(AMIBadGreeting(f"greeting line longer than {self.max_line} bytes"))
            return nl + 1
        line = buf[pos:end]
        if line.startswith(GREETING_PREFIX):
            text = line.decode("utf-8", "replace")
            self.greeting = AMIGreeting(text, text[len(GREETING_PREFIX) :].strip())
            self._ready.append(self.greeting)
            return nl + 1
        self._reject(
            AMIBadGreeting(f"expected 'Asterisk Call Manager/<version>', got {line[:80]!r}")
        )
        return pos  # tolerant: the line is message text (parses a capture without greeting)

    def _frame(self, data: bytes) -> None:
        """Frame ``data`` (from a line start, at a message boundary) and keep the rest."""
        ready = self._ready
        short = self._short  # (see _over_caps)
        while True:
            low = data.lower()  # bytes.lower folds ASCII only, like Asterisk
            pieces = _SPLIT_MESSAGES(data)
            lows = _SPLIT_MESSAGES(low)
            # A key that lower-cases to "actionid" is ASCII "actionid" in any case.
            action_ids = low.find(b"actionid") >= 0
            last = len(pieces) - 1
            for n, whole in enumerate(pieces):
                piece, low_piece = whole, lows[n]
                if piece[:1] <= b"\r":  # empty lines before the message (or nothing)
                    skip = _empty_lines(piece)
                    piece, low_piece = piece[skip:], low_piece[skip:]
                    if n < last and piece in (b"", b"\r"):  # (a lone CR: an empty line's)
                        continue
                if low_piece[:9] == b"response:" and _is_follows(low_piece):
                    start = _piece_start(data, n) + len(whole) - len(piece)
                    end = self._follows(data, start)
                    if end < 0:
                        self._keep(data[start:])
                        return
                    if self._discarding:  # it broke a cap: drop up to the next empty line
                        found = _MESSAGE_END(data, end - 1)
                        if found is None:
                            self._keep_line_end(data)
                            return
                        self._discarding = False
                        end = found.end()
                    data = data[end:]
                    break  # frame what follows it afresh
                if n == last:
                    self._keep(piece)
                    return
                if len(piece) > short and (error := self._over_caps(piece)) is not None:
                    self._reject(error)
                    continue
                maybe_id = action_ids and low_piece.find(b"actionid") >= 0
                ready.append(AMIMessage._from_block(piece, low_piece, maybe_id))

    def _keep(self, tail: bytes) -> None:
        """Keep an incomplete message, or start discarding if it already breaks a cap."""
        nl = tail.rfind(b"\n")
        error = self._over_caps(tail[:nl]) if nl > 0 else None
        if error is None and len(tail) - nl - 1 > self.max_line + 1:  # its last, partial line
            error = AMILineTooLong(f"AMI line longer than {self.max_line} bytes")
        if error is None:
            self._buf = tail
            return
        self._reject(error)
        self._discarding = True
        self._keep_line_end(tail)

    def _keep_line_end(self, data: bytes) -> None:
        """While discarding: keep only what may begin the empty line waited for (``"\\n"`` or
        ``"\\n\\r"`` at the end of ``data``), not the middle of a line."""
        nl = data.rfind(b"\n")
        self._buf = data[nl:] if 0 <= nl >= len(data) - 2 else b""

    def _over_caps(self, block: bytes) -> AMIProtocolError | None:
        """The cap that ``block`` (whole lines, LF-separated) breaks, if any."""
        if len(block) <= self._short:
            return None
        lines = block.count(b"\n") + 1
        line_end_crs = block.count(b"\r\n") + (block[-1:] == b"\r")
        if len(block) > self.max_line and any(
            len(line) - (line[-1:] == b"\r") > self.max_line for line in block.split(b"\n")
        ):
            return AMILineTooLong(f"AMI line longer than {self.max_line} bytes")
        # Each line counts its text and two bytes of line end.
        if len(block) - (lines - 1) - line_end_crs + 2 * lines > self.max_message:
            return AMIMessageTooLarge(f"AMI message larger than {self.max_message} bytes")
        if lines > self.max_headers:
            return AMITooManyHeaders(f"AMI message with more than {self.max_headers} lines")
        return None

    def _reject(self, error: AMIProtocolError) -> None:
        self.discarded += 1
        self._ready.append(error)

    def _follows(self, data: bytes, start: int) -> int:
        """Frame the legacy ``Response: Follows`` message at ``start``: its headers, then raw
        CLI output up to a line ending in ``--END COMMAND--`` (an empty line before any output
        ends it without one). Returns where it ends, or -1 while it is incomplete. Caps are
        checked at each line (the output may be long): one broken discards the message, and
        the rest up to the next empty line (the caller skips it)."""
        lines: list[bytes] = []
        body = -1  # index in lines of the first output line
        pos = start
        while True:
            nl = data.find(b"\n", pos)
            if nl < 0:
                return -1
            line = data[pos : nl - 1 if nl > pos and data[nl - 1] == 13 else nl]
            pos = nl + 1
            error = self._over_caps(data[start:nl])
            if error is not None:
                self._reject(error)
                self._discarding = True
                return pos
            if lines and body < 0:
                raw_key, sep, _ = line.partition(b":")
                if sep and raw_key.strip().lower() in _FOLLOWS_HEADERS:
                    lines.append(line)
                    continue
                if not line:
                    break
                body = len(lines)
            if body >= 0 and line.endswith(_END_COMMAND):
                if len(line) > len(_END_COMMAND):
                    lines.append(line[: -len(_END_COMMAND)])
                break
            lines.append(line)
        # One decode for the whole message, so a character split across reads is whole. An
        # LF byte never belongs to a UTF-8 sequence, so splitting afterwards gives the lines.
        texts = b"\n".join(lines).decode("utf-8", "replace").split("\n")
        headers: list[tuple[str, str]] = []
        for i, text in enumerate(texts):
            name, colon, rest = text.partition(":")
            if 0 <= body <= i:
                headers.append(("Output", text))  # CLI output, verbatim
            elif colon:
                headers.append((name, rest[1:] if rest[:1] == " " else rest))
            else:
                headers.append(("", text))
        self._ready.append(AMIMessage(headers))
        return pos


#: A message's end: the LF of its last line, then an empty line (its CR optional).
_MESSAGE_END: Final = re.compile(b"\n\r?\n").search
_SPLIT_MESSAGES: Final = re.compile(b"\n\r?\n").split


def _empty_lines(piece: bytes) -> int:
    """How many bytes of empty lines (``\\n`` or ``\\r\\n``) ``piece`` starts with."""
    skip = 0
    while True:
        if piece[skip : skip + 1] == b"\n":
            skip += 1
        elif piece[skip : skip + 2] == b"\r\n":
            skip += 2
        else:
            return skip


def _is_follows(low: bytes) -> bool:
    """Is the first line (lower-cased) ``response: follows``?"""
    nl = low.find(b"\n")
    return low[9 : nl if nl >= 0 else len(low)].strip() == b"follows"


def _piece_start(data: bytes, n: int) -> int:
    """Where the ``n``-th piece of ``_SPLIT_MESSAGES(data)`` starts (legacy Follows only)."""
    if n == 0:
        return 0
    for count, found in enumerate(re.finditer(b"\n\r?\n", data), 1):
        if count == n:
            return found.end()
    raise AssertionError("fewer message ends than pieces")


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
