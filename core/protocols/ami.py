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
from itertools import repeat
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
# The framer's two searches over every byte of the stream, as compiled literal patterns: in
# CPython 3.11 ``re`` finds and splits on these short needles 2-3x faster than ``bytes.find``
# and ``bytes.split`` do (their two- and three-byte needles are the slow case of its string
# search; measured on the AMI bench's stream). Same matches: leftmost, non-overlapping.
#: An empty line after a bare LF (the line rules' business).
_BARE_LF_EMPTY_LINE: Final = re.compile(b"\n\n").search
#: Splits a region of whole messages at each message end (last line's LF, empty line).
_SPLIT_MESSAGES: Final = re.compile(b"\n\r\n").split


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


#: ASCII letters to lower case and nothing else (``str.lower`` also folds ``K`` to ``k``).
_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
#: Per probed key: the key ASCII-folded, and ``\\nkey:`` in ASCII-lower-cased bytes (see _needles).
_NEEDLES: dict[str, tuple[str, bytes]] = {}


def _fold(key: str) -> str:
    """``key`` with its ASCII letters lower-cased: how Asterisk compares header names."""
    return key.lower() if key.isascii() else key.translate(_ASCII_LOWER)


def _needles(key: str) -> tuple[str, bytes] | None:
    """``key`` ASCII-folded, and the needle that finds it at the start of a line (any line
    but the first) of a lazy message's lower-cased bytes.

    None when a search cannot answer exactly and the headers must be scanned: a non-ASCII key
    (a raw key may hold bytes that decode to U+FFFD), an empty key (a line without a colon has
    key ``""`` too), a key with a colon or LF (no key can hold one).
    """
    found = _NEEDLES.get(key)
    if found is None:
        if not key or not key.isascii() or ":" in key or "\n" in key:
            return None
        folded = key.lower()
        found = (folded, b"\n" + folded.encode("ascii") + b":")
        if len(_NEEDLES) >= 4096:  # a caller probing invented keys cannot grow this
            _NEEDLES.clear()
        _NEEDLES[key] = found
    return found


def _value_at(raw: bytes, pos: int) -> tuple[str, int]:
    """The value starting right after a key's colon at ``pos``, and where its line ends.

    A line ends at LF (or the end of the bytes); a CR right before that end is the line
    end's, not the value's (the line rules). A UTF-8 sequence never holds CR or LF, so the
    value decodes alone exactly as in the whole message decoded at once.
    """
    if raw[pos : pos + 1] == b" ":
        pos += 1
    end = raw.find(b"\n", pos)
    if end < 0:
        end = len(raw)
    if end > pos and raw[end - 1] == 13:
        end -= 1
    return raw[pos:end].decode("utf-8", "replace"), end


class AMIMessage:
    """One response or event: ordered ``(key, value)`` pairs with case-insensitive lookup.

    ``msg["uniqueid"]`` and ``msg.get("UniqueID")`` return the first value of a key;
    :meth:`getall` returns every value in wire order (``Variable``, ``ChanVariable``,
    ``Output``). A key is a line's text before its first colon, exactly as sent, and look-ups
    fold ASCII case only: what Asterisk's own ``astman_get_header`` does (``strncasecmp`` on
    the bytes before the colon). Values are kept exactly as sent, minus the one space after
    the colon; a line without a colon is kept whole as the value of key ``""``.

    Messages framed by :class:`AMIParser` are lazy: they keep the message's bytes. What the
    read path asks (:attr:`name`, :attr:`response`, ``ActionID``) and what consumers ask
    (:meth:`get`, :meth:`getall`) are C-level searches on those bytes plus the decoding of the
    one value asked for; the message is decoded and split into all its headers only when
    something iterates it (:attr:`headers`, ``for``, ``len``, ``==``). Measured by
    ``python -m bench ami``: framing, dispatch and a look-up cost less than splitting a
    message. Every value is cut at CRLFs, which no UTF-8 sequence contains, so a value decoded
    alone is exactly that value in the whole message decoded at once.
    """

    __slots__ = (
        "_first",
        "_head",
        "_headers",
        "_kv",
        "_low",
        "_maybe_action_id",
        "_raw",
        "route_name",
    )

    _headers: tuple[tuple[str, str], ...] | None
    #: Keys and values of a split lazy message (iteration zips them: no pair tuples kept).
    _kv: tuple[list[str], list[str]] | None
    #: The framed bytes (CRLF lines, no bare LF, no empty line), or None for a built message.
    _raw: bytes | None
    #: ``_raw`` with ASCII letters lower-cased (same length and offsets), made on first look-up.
    _low: bytes | None
    #: First value per ASCII-folded key, for messages without bytes and non-ASCII probes.
    _first: dict[str, str] | None
    #: (first key ASCII-lower-cased, first value), or None until asked.
    _head: tuple[str, str] | None
    #: False only when the raw message cannot hold an ActionID header (known at framing).
    _maybe_action_id: bool
    #: The event name, set by the framer for an event that holds no ActionID header: what a
    #: reader may route at once, without the action tracker. None otherwise.
    route_name: str | None

    def __init__(self, headers: Iterable[tuple[str, str]]) -> None:
        self._headers = tuple(headers)
        self._kv = None
        self._raw = None
        self._low = None
        self._first = None
        self._head = None
        self._maybe_action_id = True
        self.route_name = None

    @classmethod
    def _from_block(
        cls, raw: bytes, low: bytes | None = None, maybe_action_id: bool = True
    ) -> AMIMessage:
        """A lazy message over ``raw``: a framed message up to the LF of its last line. Lines
        are separated by LF, and one CR at the end of a line is the line end's (CRLF from
        Asterisk; so ``raw`` ends with the last line's CR). There is no empty line in it.

        ``low`` is ``raw.lower()`` if the caller has it. ``maybe_action_id=False`` says no
        key of the message is ``ActionID`` in any case.
        """
        msg = cls.__new__(cls)
        msg._raw = raw
        msg._headers = None
        msg._kv = None
        msg._low = low
        msg._first = None
        # Every framed message is dispatched by its first header, so an event's name is
        # read here, in the same call (as Asterisk writes every event: "Event: " first).
        if raw[:7] == b"Event: ":
            end = raw.find(b"\n")  # (no start argument: cheaper to parse)
            if end < 0:
                end = len(raw)
            if raw[end - 1] == 13:
                end -= 1
            name = raw[7:end].decode("utf-8", "replace")
            msg._head = ("event", name)
            msg.route_name = None if maybe_action_id else name
        else:
            msg._head = msg.route_name = None
        msg._maybe_action_id = maybe_action_id
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
            headers = self._headers = tuple(zip(*self._split(), strict=True))
        return headers

    def _split(self) -> tuple[list[str], list[str]]:
        """Keys and values of a lazy message (decoded whole, split once)."""
        kv = self._kv
        if kv is None:
            raw = self._raw
            assert raw is not None
            kv = self._kv = _split_text(raw.decode("utf-8", "replace"))
        return kv

    def _index(self) -> dict[str, str]:
        """First value per ASCII-folded key (built on the first look-up that needs it)."""
        first = self._first
        if first is None:
            first = {_fold(key): value for key, value in reversed(self.headers)}
            self._first = first
        return first

    def _lower(self) -> bytes:
        low = self._low
        if low is None:
            assert self._raw is not None
            low = self._low = self._raw.lower()  # bytes.lower folds ASCII only, like Asterisk
        return low

    def _first_header(self) -> tuple[str, str]:
        """(first key ASCII-lower-cased, its value), from the first line when unparsed."""
        head = self._head
        if head is None:
            raw = self._raw
            if raw is None:
                headers = self.headers
                head = (_fold(headers[0][0]), headers[0][1]) if headers else ("", "")
            else:
                nl = raw.find(b"\n")
                if nl < 0:
                    nl = len(raw)
                if nl > 0 and raw[nl - 1] == 13:
                    nl -= 1
                line = raw[:nl].decode("utf-8", "replace")
                key, sep, value = line.partition(":")
                value = value[1:] if value[:1] == " " else value
                head = (_fold(key), value) if sep else ("", line)
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
        headers = self._headers
        return len(headers) if headers is not None else len(self._split()[0])

    def __iter__(self) -> Iterator[tuple[str, str]]:
        headers = self._headers
        return iter(headers) if headers is not None else zip(*self._split(), strict=True)

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
        raw = self._raw
        if raw is not None and (needles := _NEEDLES.get(key) or _needles(key)) is not None:
            # (_value_at written out: this is the hot path of every consumer.)
            folded, needle = needles
            first_key, first_value = self._head or self._first_header()
            if first_key == folded:
                return first_value
            low = self._low
            if low is None:
                low = self._low = raw.lower()
            # Every LF of the bytes ends a line and the key holds no LF or colon, so a match
            # is a whole key at a line start (the first line, with no LF before it, was
            # checked above).
            pos = low.find(needle)
            if pos < 0:
                return default
            pos += len(needle)
            if raw[pos : pos + 1] == b" ":
                pos += 1
            end = raw.find(b"\n", pos)
            if end < 0:
                end = len(raw)
            if end > pos and raw[end - 1] == 13:
                end -= 1  # the line end's CR
            return raw[pos:end].decode("utf-8", "replace")
        return self._index().get(_fold(key), default)

    def getall(self, key: str) -> list[str]:
        """Every value of ``key`` (ASCII case folded) in wire order; empty if absent."""
        raw = self._raw
        if raw is not None and (needles := _needles(key)) is not None:
            low = self._lower()
            folded, needle = needles
            out: list[str] = []
            end = 0
            first_key, first_value = self._head or self._first_header()
            if first_key == folded:
                out.append(first_value)
            pos = low.find(needle)
            while pos >= 0:
                value, end = _value_at(raw, pos + len(needle))
                out.append(value)
                pos = low.find(needle, end)
            return out
        wanted = _fold(key)
        return [value for k, value in self if _fold(k) == wanted]

    def to_dict(self) -> dict[str, str]:
        """First value per key, keys as first sent (convenient for logging and tests)."""
        out: dict[str, str] = {}
        for key, value in self:
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
        key, value = self._head or self._first_header()
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
        # The framer knows when no key can be "ActionID" (see AMIParser._frame_region): then
        # the events that make up nearly all of the stream are answered without a search.
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


def _split_text(text: str) -> tuple[list[str], list[str]]:
    """Keys and values of a framed message's text by the line rules: lines are separated by
    LF, one CR at the end of a line is the line end's (so the text's last CR too).

    Fast path, C-level only: replace each line break by ``": \\0: "`` and split on ``": "``.
    When every line is ``Key: Value`` with exactly one ``": "``, the parts come in threes:
    key, value, and the NUL marker of the break. That is checked without rebuilding the text:
    the text holds no NUL, so every NUL part is a break; ``3 * lines - 1`` parts and a NUL in
    every third slot put each break between exactly two parts, so each line was split once.
    The keys must hold no ``:`` (the rules cut at the first colon); the one space after
    ``": "`` is what the rules drop. Anything else takes the per-line loop, which owns the
    rules; a property test compares both on 10,000 examples.
    """
    if "\0" not in text:
        # The last line's CR is its line end's (see AMIMessage._from_block).
        crlf_text = text[:-1] if text[-1:] == "\r" else text
        breaks = crlf_text.count("\r\n")
        marked = crlf_text.replace("\r\n", ": \0: ")
        if "\n" not in marked:  # no bare LF
            parts = marked.split(": ")
            if len(parts) == 3 * breaks + 2 and parts[2::3].count("\0") == breaks:
                keys = parts[0::3]
                if ":" not in "".join(keys):
                    return keys, parts[1::3]
    keys, values = [], []
    for line in text.split("\n"):
        raw = line[:-1] if line[-1:] == "\r" else line  # (the line end's CR)
        key, sep, value = raw.partition(":")
        if not sep:
            keys.append("")
            values.append(raw)
        else:
            keys.append(key)
            values.append(value[1:] if value[:1] == " " else value)
    return keys, values


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
        #: Messages up to this size keep every cap without a look at their lines.
        self._whole_limit = min(max_line, 2 * max_message // 3, 2 * max_headers - 1)
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
        self._lines_only = False  # this feed's bytes go to the line path (see _whole_messages)
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
        # Set once the bytes of this feed need the line path (see _whole_messages).
        self._lines_only = False
        while True:
            if not (
                self._want_greeting
                or self._skip_blank
                or self._discarding
                or self._follows
                or self._skipping_line
                or self._lines
                or self._lines_only
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
        """Fast path at a message boundary: frame whole messages with C-level searches.

        Measured with ``python -m bench ami``: the line-at-a-time path costs ~4 us per header.
        Here every complete message of the buffer is framed at once (:meth:`_frame_region`);
        when that region breaks a rule, its messages go one at a time (:meth:`_frame_one`),
        and a message only the line path can frame goes there, with the rest of the feed.
        A message ends at ``"\\n\\r\\n"``: the LF of its last line and the empty line; its bytes
        keep the last line's CR (see ``AMIMessage._from_block``). Returns where it stopped and
        whether the rest (an incomplete message within ``max_line``) is to be kept for the
        next feed. Each call searches the buffer a fixed number of times, so a peer sending
        many irregular messages in one read costs linear time, not a search of the whole
        buffer per message.
        """
        buf = self._buf
        while buf[start : start + 2] == b"\r\n":
            start += 2  # empty lines between messages
        scan = start + self._scan
        # An empty line after a bare LF is the line rules' business, wherever it is; bytes
        # before ``scan`` were searched by earlier feeds.
        found = _BARE_LF_EMPTY_LINE(buf, scan)
        bare_lf_end = -1 if found is None else found.start()
        last = buf.rfind(b"\n\r\n", scan)
        if last >= 0:
            self._scan = 0
            if not 0 <= bare_lf_end < last and self._frame_region(bytes(buf[start:last])):
                start = last + 3
            else:
                while start <= last:
                    end = buf.find(b"\n\r\n", start)
                    if not self._frame_one(bytes(buf[start:end])):
                        self._lines_only = True
                        return start, False
                    start = end + 3
                    while buf[start : start + 2] == b"\r\n":
                        start += 2
            while buf[start : start + 2] == b"\r\n":
                start += 2
        # An incomplete message is kept unless the line rules may end it already: an empty
        # line after a bare LF ("\n\n"; there is no "\n\r\n"), or one before it. A legacy
        # "Response: Follows" ends at "--END COMMAND--", not at an empty line: a partial
        # response goes to the line path (responses are few and short).
        rest = len(buf) - start
        if not rest:
            self._scan = 0
            return start, True
        first = buf[start : start + 9]
        if (
            rest <= self.max_line
            and first[:1] > b"\r"  # (not an empty line the rules would skip)
            and first.lower() != b"response:"
            and bare_lf_end < 0
        ):
            # Offset from the message's start (the consumed prefix is deleted).
            self._scan = max(0, rest - 2)
            return start, True
        self._scan = 0
        self._lines_only = True
        return start, False

    def _frame_region(self, region: bytes) -> bool:
        """Frame every message of ``region`` (whole messages, each but the last followed by
        ``"\\n\\r\\n"``) at once.

        The rules are checked on the region as a whole, with C-level searches; False, having
        framed nothing, when any message may need more than a split: a run of empty lines, a
        legacy ``Response: Follows``, or a message that comes near a cap. The caller has ruled
        out an empty line after a bare LF (``"\n\n"``). Lines may end with a bare LF: the
        messages read them as the line rules do. (``find``, not ``in``: ``bytes.__contains__``
        first tries the needle as an int and formats a TypeError each time, a third of a
        search's cost.)
        """
        # (The caller ruled out "\n\n", also "\n" + "\n\r\n" at the end; "\n\r" at the end
        # is a run of empty lines.)
        if region[-2:] == b"\n\r":
            return False
        low = region.lower()
        lows = _SPLIT_MESSAGES(low)
        # Every empty line of the rules is now a split ("\n\r\n") or was refused ("\n\n"),
        # but a run of them leaves a message starting with CR or LF, or an empty one: those
        # sort before every message that starts with a byte above CR. A legacy Follows
        # response sorts at or after "response:", which every event ("event:...") sorts
        # before: the search for it is needed only when a response is in the region.
        if min(lows)[:1] <= b"\r" or (max(lows) >= b"response:" and low.find(b"follows") >= 0):
            return False
        blocks = _SPLIT_MESSAGES(region)
        # A line is no longer than its message, and every line of a message holds at least
        # one byte and its LF: a message within the smallest bound keeps every cap (the size
        # cap counts two bytes of line end per line: at most half as much again).
        if len(region) + 2 > self._whole_limit and max(map(len, blocks)) + 2 > self._whole_limit:
            return False
        make = AMIMessage._from_block
        if low.find(b"actionid") >= 0:
            # A key that lower-cases to "actionid" is ASCII "actionid" in any case, so
            # bytes.lower() rules the header out for the rest.
            self._ready.extend(map(make, blocks, lows, [lb.find(b"actionid") >= 0 for lb in lows]))
        else:
            self._ready.extend(map(make, blocks, lows, repeat(False)))
        return True

    def _frame_one(self, block: bytes) -> bool:
        """Frame one whole message (its bytes up to ``"\\n\\r\\n"``) if a split will do."""
        if len(block) + 2 > self.max_message or block[:1] <= b"\r" or block[-1:] == b"\n":
            return False  # (an empty line at either end: the line rules skip or end there)
        low = block.lower()
        if low[:9] == b"response:" and low.split(b"\n", 1)[0][9:].strip() == b"follows":
            return False
        lines = block.count(b"\r\n") + 1
        if (
            block.count(b"\n") != lines - 1
            or lines > self.max_headers
            or (len(block) > self.max_line and max(map(len, block.split(b"\r\n"))) > self.max_line)
        ):
            return False
        self._ready.append(AMIMessage._from_block(block, low, low.find(b"actionid") >= 0))
        return True

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
            headers.append((key, value))
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
