"""Sans-I/O FastAGI protocol: bytes in, typed events out; no sockets, no asyncio.

Three pieces, each usable (and fuzzable) on its own:

* :class:`EnvironmentParser` reads the ``agi_key: value`` handshake Asterisk sends first.
* :class:`ReplyParser` turns Asterisk's answers into :class:`AGIReply`, :class:`HangupNotice`,
  :class:`Progress` and :class:`Closed` events. ``HANGUP`` is a notice that may arrive between a
  command and its reply, ``100 Trying`` precedes some replies and ``520-`` usage text spans
  several lines: a parser that treats every line as "the answer" desynchronises.
* :func:`encode_command` quotes arguments the way ``parse_args()`` in Asterisk's ``res_agi.c``
  splits them, and refuses CR/LF/NUL (a newline in a value would inject a second command).

Bytes are decoded as UTF-8 one *whole line* at a time (never per read), so a Devanagari caller
name split across TCP segments survives; invalid UTF-8 becomes U+FFFD instead of an exception.
Every buffer is capped; exceeding a cap raises :class:`AGIProtocolError`, the only exception the
parsers raise.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, TypeVar, overload
from urllib.parse import parse_qsl, unquote

__all__ = [
    "AGI_BUF_LEN",
    "ENCODED_COMMANDS",
    "MAX_ARGS",
    "MAX_HANDSHAKE_BYTES",
    "MAX_REPLY_LINE_BYTES",
    "MAX_USAGE_BYTES",
    "AGIEnvironment",
    "AGIProtocolError",
    "AGIReply",
    "Closed",
    "EnvironmentParser",
    "HangupNotice",
    "Progress",
    "ReplyEvent",
    "ReplyParser",
    "digit_from_result",
    "encode_command",
    "parse_command_line",
]

#: Whole handshake; Asterisk's is ~1 KiB, a long Hindi caller name and many args fit easily.
MAX_HANDSHAKE_BYTES: Final = 16 * 1024
#: One reply line (``GET FULL VARIABLE`` may return long values; 64 KiB is ample).
MAX_REPLY_LINE_BYTES: Final = 64 * 1024
#: A whole ``520-`` usage block.
MAX_USAGE_BYTES: Final = 64 * 1024
#: Asterisk reads one command line into ``char buf[AGI_BUF_LEN]`` (2048): longer lines are split
#: by Asterisk into two commands, so we refuse to encode them.
AGI_BUF_LEN: Final = 2048
#: ``parse_args()`` keeps at most MAX_ARGS - 1 words (it truncates the rest with a warning).
MAX_ARGS: Final = 128


_T = TypeVar("_T")


class AGIProtocolError(ValueError):
    """The peer broke the AGI protocol (or a cap); the connection cannot be trusted any more."""


# --------------------------------------------------------------------------- environment


@dataclass(frozen=True, slots=True)
class AGIEnvironment:
    """The handshake, parsed.

    ``variables`` keeps every key as sent (``agi_uniqueid`` …). ``script`` is the path part of
    ``agi_network_script`` (``agi://host:port/<script>?<query>``) without surrounding slashes and
    percent-decoded; ``query`` maps each query parameter to its *first* value (``query_items``
    keeps all of them, in order); ``args`` are ``agi_arg_1..N``.
    """

    variables: Mapping[str, str]
    script: str
    query: Mapping[str, str]
    query_items: tuple[tuple[str, str], ...]
    args: tuple[str, ...]

    def get(self, key: str, default: str = "") -> str:
        """Value of ``agi_<key>`` (the prefix is optional), or ``default``."""
        if not key.startswith("agi_"):
            key = "agi_" + key
        return self.variables.get(key, default)

    @property
    def uniqueid(self) -> str:
        return self.variables.get("agi_uniqueid", "")

    @property
    def channel(self) -> str:
        return self.variables.get("agi_channel", "")

    @property
    def caller_id(self) -> str:
        return self.variables.get("agi_callerid", "")

    @property
    def caller_name(self) -> str:
        return self.variables.get("agi_calleridname", "")

    @property
    def language(self) -> str:
        return self.variables.get("agi_language", "")

    @property
    def extension(self) -> str:
        return self.variables.get("agi_extension", "")

    @property
    def context(self) -> str:
        return self.variables.get("agi_context", "")

    @classmethod
    def from_variables(cls, variables: Mapping[str, str]) -> AGIEnvironment:
        """Build from already-split ``agi_*`` pairs (also used by the fake peer)."""
        return cls._build(MappingProxyType(dict(variables)))

    @classmethod
    def _build(cls, variables: Mapping[str, str]) -> AGIEnvironment:
        network_script = variables.get("agi_network_script")
        if network_script is None:
            # Plain (non-network) AGI or an odd peer: derive it from agi_request's URL.
            request = variables.get("agi_request", "")
            if "://" in request:
                rest = request.split("://", 1)[1]
                network_script = rest.split("/", 1)[1] if "/" in rest else ""
            else:
                network_script = request
        path, _, query_string = network_script.partition("?")
        path = path.strip("/")
        script = unquote(path) if "%" in path else path
        items: tuple[tuple[str, str], ...] = ()
        query = _NO_QUERY
        if query_string:
            items = tuple(parse_qsl(query_string, keep_blank_values=True))
            first: dict[str, str] = {}
            for key, value in items:
                first.setdefault(key, value)
            query = MappingProxyType(first)
        args: list[str] = []
        while (arg := variables.get(f"agi_arg_{len(args) + 1}")) is not None:
            args.append(arg)
        return cls(variables, script, query, items, tuple(args))


_NO_QUERY: Final[Mapping[str, str]] = MappingProxyType({})


class _HandshakeVariables(Mapping[str, str]):
    """A checked handshake's variables, looked up in its bytes when asked for.

    Why: decoding the handshake and building the dict of ~22 pairs (44 strings) was most of what
    a handshake cost in ``python -m bench agi``, and a script reads a few of them. The parser
    hands over only lines that each start with ``agi_`` and have no blank (whitespace or
    non-ASCII byte) before their first ``:`` (see :meth:`EnvironmentParser._feed_whole`), so
    the line loop's key for a line is exactly the bytes before that ``:``. An ASCII key's value
    is then found by searching for ``b"\\n<key>:"`` (the last match: a repeated key keeps its
    last value in the line loop) and only that value is decoded: the same text as decoding the
    whole, since the value is bounded by ASCII bytes. Any other key, iterating, ``len()`` or
    comparing decodes everything once and builds the same dict as the line loop.
    """

    __slots__ = ("_dict", "_lines")

    def __init__(self, lines: bytes) -> None:
        self._lines = lines  # the handshake as received: the lines, each ending in LF, and LF
        self._dict: dict[str, str] | None = None

    @overload
    def get(self, key: str, /) -> str | None: ...
    @overload
    def get(self, key: str, /, default: str | _T) -> str | _T: ...
    def get(self, key: str, /, default: object = None) -> object:
        if self._dict is not None or type(key) is not str or not key.isascii():
            return self._pairs().get(key, default)
        if not key or ":" in key or "\n" in key:
            return default  # no line has such a key
        lines = self._lines
        needle = f"\n{key}:".encode()
        at = lines.rfind(needle)
        if at < 0:
            if not lines.startswith(needle[1:]):
                return default
            at = -1  # the first line (no LF before it)
        at += len(needle)
        if lines[at] == 0x20:
            at += 1
        return lines[at : lines.index(b"\n", at)].decode("utf-8", errors="replace")

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        if type(key) is not str:
            return key in self._pairs()
        return self.get(key) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._pairs())

    def __len__(self) -> int:
        return len(self._pairs())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._pairs()!r})"

    def _pairs(self) -> dict[str, str]:
        """The dict the line loop builds (same split, same order, last value wins)."""
        pairs = self._dict
        if pairs is None:
            pairs = {}
            for line in self._lines[:-2].decode("utf-8", errors="replace").split("\n"):
                key, _, value = line.partition(":")
                pairs[key.strip()] = value[1:] if value.startswith(" ") else value
            self._dict = pairs
        return pairs


def _marks_table() -> bytes:
    """For the handshake's fast path: every byte that can end a key the line loop would strip
    (ASCII whitespace but LF and CR and, as non-ASCII whitespace is multi-byte, every byte
    >= 0x80) becomes a space; ``:`` and LF stay (the rest is deleted, see _NOT_MARKS)."""
    table = bytearray(range(256))
    for byte in [*b"\t\x0b\x0c\x1c\x1d\x1e\x1f", *range(0x80, 0x100)]:
        table[byte] = 0x20
    return bytes(table)


_MARKS: Final = _marks_table()
_NOT_MARKS: Final = bytes(b for b in range(256) if _MARKS[b] not in b": \n")


class EnvironmentParser:
    """Incremental parser of the handshake: ``feed()`` bytes until it returns the environment.

    Bytes that follow the terminating empty line (none from a real Asterisk, which waits for our
    first command) are kept in :attr:`leftover` for the reply parser.
    """

    def __init__(self, max_bytes: int = MAX_HANDSHAKE_BYTES) -> None:
        self._max = max_bytes
        self._buf = bytearray()
        self._scan = 0  # where to resume looking for "\n": one-byte feeds stay linear
        self._vars: dict[str, str] = {}
        self._env: AGIEnvironment | None = None
        self._total = 0
        self.leftover = b""

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete line (never more than the cap)."""
        return len(self._buf)

    @property
    def environment(self) -> AGIEnvironment | None:
        return self._env

    def feed(self, data: bytes) -> AGIEnvironment | None:
        """Consume ``data``; return the environment once the empty line arrived, else ``None``."""
        if self._env is not None:
            raise AGIProtocolError("AGI handshake already complete; feed the ReplyParser")
        if not self._total:
            # No line taken yet: the whole handshake may be here (Asterisk sends it in one write).
            if not self._buf:
                if (env := self._feed_whole(data)) is not None:
                    return env  # read straight from ``data``, no copy into the buffer
                self._buf += data
            else:
                self._buf += data
                if (env := self._feed_whole(self._buf)) is not None:
                    return env
        else:
            self._buf += data
        while True:
            nl = self._buf.find(b"\n", self._scan)
            if nl < 0:
                self._scan = len(self._buf)
                if self._total + len(self._buf) > self._max:
                    self._buf.clear()
                    raise AGIProtocolError(f"AGI handshake larger than {self._max} bytes")
                return None
            self._total += nl + 1
            if self._total > self._max:
                self._buf.clear()
                raise AGIProtocolError(f"AGI handshake larger than {self._max} bytes")
            raw = bytes(self._buf[:nl])
            del self._buf[: nl + 1]
            self._scan = 0
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            if not raw:
                self.leftover = bytes(self._buf)
                self._buf.clear()
                self._env = AGIEnvironment.from_variables(self._vars)
                return self._env
            line = raw.decode("utf-8", errors="replace")
            key, sep, value = line.partition(":")
            key = key.strip()
            if not sep or not key:
                raise AGIProtocolError(f"malformed AGI handshake line: {line[:80]!r}")
            self._vars[key] = value[1:] if value.startswith(" ") else value

    def _feed_whole(self, raw: bytes | bytearray) -> AGIEnvironment | None:
        """Fast path: ``raw`` is the whole LF-ended handshake, every line ``agi_<key>:...``.

        Checked with a few C-level scans, no per-line Python: ``raw`` ends with the empty line,
        holds no CR, every line starts with ``agi_``, and in ``marks`` (the line ends, ``:``s
        and blanks, in order) every line starts with ``:``, i.e. has a ``:`` with no blank in
        the key before it. So the line loop would take every line and strip nothing from a
        key, and the variables can be read from the bytes on demand
        (:class:`_HandshakeVariables`). Anything else (bytes after the empty line, a size over
        the cap, other keys, a bad line) is left to the line loop, which owns the errors.
        """
        if raw[-2:] != b"\n\n" or len(raw) > self._max:
            return None
        if b"\r" in raw or not raw.startswith(b"agi_"):
            return None
        marks = raw.translate(_MARKS, _NOT_MARKS)  # ends with the empty line's LF too
        lines = marks.count(b"\n") - 1
        if (
            not marks.startswith(b":")
            or marks.count(b"\n:") != lines - 1
            or raw.count(b"\nagi_") != lines - 1
        ):
            return None
        variables = _HandshakeVariables(raw if type(raw) is bytes else bytes(raw))
        self._total = len(raw)
        self._buf.clear()
        self._scan = 0
        self._env = AGIEnvironment._build(variables)
        return self._env

    def feed_eof(self) -> None:
        """The peer closed: fine after the handshake, an error before it."""
        if self._env is None:
            raise AGIProtocolError(
                f"connection closed during the AGI handshake ({len(self._vars)} lines received)"
            )


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True, slots=True)
class AGIReply:
    """A final reply to one command.

    ``result`` is the text after ``result=`` (may be ``""``: ``GET DATA`` answers
    ``200 result= (timeout)``); ``data`` the text in parentheses; ``endpos`` the ``endpos=``
    value; ``fields`` every other ``key=value`` after the data. For 5xx replies ``result`` is
    ``""`` and ``usage`` holds the usage text of a ``520-`` block.
    """

    code: int
    result: str
    data: str | None
    endpos: int | None
    raw: str
    fields: Mapping[str, str] = field(default_factory=dict)
    usage: str | None = None

    @property
    def ok(self) -> bool:
        return self.code == 200

    @property
    def result_int(self) -> int | None:
        """``result`` as an int, or ``None`` if it is not one."""
        try:
            return int(self.result)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class HangupNotice:
    """Asterisk's inline ``HANGUP`` line: the caller is gone. Not a reply to any command."""


@dataclass(frozen=True, slots=True)
class Progress:
    """``100 result=0 Trying...``: the final reply is still to come."""

    raw: str


@dataclass(frozen=True, slots=True)
class Closed:
    """The peer closed the connection; ``truncated`` if it stopped mid-line."""

    truncated: bool = False


ReplyEvent = AGIReply | HangupNotice | Progress | Closed
_CLOSED: Final = Closed()  # events are immutable: one of each serves every call
_TRUNCATED: Final = Closed(truncated=True)

_CODE_RE: Final = re.compile(r"([0-9]{3})(?:([ -])(.*))?\Z", re.DOTALL)
_DIGITS_RE: Final = re.compile(r"[0-9]{1,18}\Z")
_KV_RE: Final = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(\S*)\Z")


def _parse_200_body(body: str) -> tuple[str, str | None, dict[str, str]]:
    """Split ``result=R [(data)] [k=v ...]`` (Asterisk never escapes the parentheses).

    The data ends at the right-most ``)`` after which only ``key=value`` words follow, found
    with one right-to-left pass (linear time, whatever the input).
    """
    if not body.startswith("result="):
        return "", None, {}
    rest = body[len("result=") :]
    result, _, rest = rest.partition(" ")
    rest = rest.lstrip(" ")
    if not rest:
        return result, None, {}
    if not rest.startswith("("):
        return result, None, _trailing_fields(rest.split())
    # Walk word boundaries from the right while the words to the right are key=value.
    end = len(rest.rstrip())
    while True:
        if end > 0 and rest[end - 1] == ")":
            return result, rest[1 : end - 1], _trailing_fields(rest[end:].split())
        start = rest.rfind(" ", 0, end)
        word = rest[start + 1 : end]
        if start < 0 or not _KV_RE.match(word):
            # Unterminated data: keep everything after "(" as data rather than guess.
            return result, rest[1:], {}
        end = start
        while end > 0 and rest[end - 1] == " ":
            end -= 1


def _trailing_fields(words: list[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if sep:
            fields[key] = value
    return fields


#: Replies without data or extra fields (``200 result=1``, ``200 result=0 endpos=16000``) are
#: few and repeat on every call: each distinct line is parsed once. AGIReply is immutable (its
#: empty ``fields`` is shared read-only). Bounded: once full, new lines are simply parsed.
_REPLIES: dict[bytes, AGIReply] = {}
_MAX_REPLIES: Final = 1024
_MAX_CACHED_REPLY: Final = 64
_NO_FIELDS: Final[Mapping[str, str]] = MappingProxyType({})
_NO_REPLIES: Final[Mapping[bytes, AGIReply]] = MappingProxyType({})


class ReplyParser:
    """Incremental parser of everything Asterisk sends after the handshake.

    ``feed(bytes)`` returns the events completed by those bytes; ``feed_eof()`` ends the stream.
    Lines longer than ``max_line`` or usage blocks longer than ``max_usage`` raise
    :class:`AGIProtocolError`; so does a line that is neither a reply nor ``HANGUP``.
    """

    def __init__(
        self, max_line: int = MAX_REPLY_LINE_BYTES, max_usage: int = MAX_USAGE_BYTES
    ) -> None:
        self._max_line = max_line
        self._max_usage = max_usage
        self._buf = bytearray()
        self._scan = 0
        self._usage: list[str] | None = None  # inside a "520-" block
        self._usage_first = ""
        self._usage_size = 0
        self._closed = False
        #: Whole reply lines whose event is known in the parser's current state: for ``data`` in
        #: it, ``feed(data)`` would return ``[known[data]]`` and change nothing. A transport may
        #: look ``data`` up here first and skip ``feed()`` (one dict look-up per reply instead of
        #: a call and a list); empty while a partial line or a ``520-`` block is buffered, after
        #: EOF, or if ``max_line`` is below the cached lines' size.
        self.known: Mapping[bytes, AGIReply] = (
            _REPLIES if max_line >= _MAX_CACHED_REPLY else _NO_REPLIES
        )

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete line (never more than ``max_line``)."""
        return len(self._buf)

    @property
    def usage_buffered(self) -> int:
        """Bytes held for an incomplete ``520-`` block (never more than ``max_usage``)."""
        return self._usage_size

    def feed(self, data: bytes) -> list[ReplyEvent]:
        cached = self.known.get(data)
        if cached is not None:
            return [cached]  # the usual reply, parsed before (see ``known``)
        try:
            return self._feed(data)
        finally:
            self._refresh_known()

    def _refresh_known(self) -> None:
        idle = not self._buf and self._usage is None and not self._closed
        self.known = _REPLIES if idle and self._max_line >= _MAX_CACHED_REPLY else _NO_REPLIES

    def _feed(self, data: bytes) -> list[ReplyEvent]:
        if self._closed:
            raise AGIProtocolError("data fed after EOF")
        if not self._buf and data[-1:] == b"\n" and data.find(b"\n") == len(data) - 1:
            # Fast path: exactly one whole line in this read (no copy into the buffer; measured
            # by ``python -m bench agi``). Same rules as the loop below.
            if len(data) - 1 > self._max_line:
                raise AGIProtocolError(f"AGI reply line longer than {self._max_line} bytes")
            raw = data[:-2] if data[-2:] == b"\r\n" else data[:-1]
            event = self._line(raw.decode("utf-8", errors="replace"))
            if (
                type(event) is AGIReply
                and event.code == 200
                and event.data is None
                and not event.fields
                and len(data) <= _MAX_CACHED_REPLY
                and len(_REPLIES) < _MAX_REPLIES
            ):
                _REPLIES[bytes(data)] = event
            return [] if event is None else [event]
        self._buf += data
        events: list[ReplyEvent] = []
        while True:
            nl = self._buf.find(b"\n", self._scan)
            if nl < 0:
                self._scan = len(self._buf)
                if len(self._buf) > self._max_line:
                    self._buf.clear()
                    self._scan = 0
                    raise AGIProtocolError(f"AGI reply line longer than {self._max_line} bytes")
                return events
            if nl > self._max_line:
                self._buf.clear()
                self._scan = 0
                raise AGIProtocolError(f"AGI reply line longer than {self._max_line} bytes")
            raw = bytes(self._buf[:nl])
            del self._buf[: nl + 1]
            self._scan = 0
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            event = self._line(raw.decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)

    def feed_eof(self) -> list[ReplyEvent]:
        """End of stream: a final :class:`Closed` (a partial line or usage block is dropped)."""
        if self._closed:
            return []
        self._closed = True
        self.known = _NO_REPLIES
        truncated = bool(self._buf) or self._usage is not None
        self._buf.clear()
        self._usage = None
        self._usage_size = 0
        return [_TRUNCATED if truncated else _CLOSED]

    def _line(self, line: str) -> ReplyEvent | None:
        if line.startswith("200 result=") and self._usage is None:
            return self._reply_200(line, line[4:])  # the usual reply, as the regex would split it
        if self._usage is not None:
            if line.startswith("520 "):
                usage = "\n".join(self._usage)
                raw = "\n".join([self._usage_first, *self._usage, line])
                self._usage = None
                self._usage_size = 0
                return AGIReply(520, "", None, None, raw, {}, usage)
            self._usage_size += len(line) + 1
            if self._usage_size > self._max_usage:
                self._usage = None
                self._usage_size = 0
                raise AGIProtocolError(f"AGI 520 usage block longer than {self._max_usage} bytes")
            self._usage.append(line)
            return None
        if line.strip() == "HANGUP":
            return HangupNotice()
        match = _CODE_RE.match(line)
        if match is None:
            raise AGIProtocolError(f"unexpected line from Asterisk: {line[:80]!r}")
        code, sep, body = int(match[1]), match[2] or " ", match[3] or ""
        if sep == "-":
            if code != 520:
                raise AGIProtocolError(f"unexpected continuation line: {line[:80]!r}")
            self._usage = []
            self._usage_first = line
            self._usage_size = len(line) + 1
            return None
        if code == 100:
            return Progress(line)
        if code == 200:
            return self._reply_200(line, body)
        return AGIReply(code, "", None, None, line, {}, body if code == 520 else None)

    @staticmethod
    def _reply_200(line: str, body: str) -> AGIReply:
        result, data, fields = _parse_200_body(body)
        endpos: int | None = None
        if fields:
            endpos_text = fields.pop("endpos", None)
            endpos = int(endpos_text) if endpos_text and _DIGITS_RE.match(endpos_text) else None
            if endpos_text is not None and endpos is None:
                fields["endpos"] = endpos_text
        return AGIReply(200, result, data, endpos, line, fields or _NO_FIELDS)


def digit_from_result(result: str) -> str:
    """``STREAM FILE``/``WAIT FOR DIGIT``/``GET OPTION`` answer the ASCII code of the key:
    ``"49"`` → ``"1"``, ``"35"`` → ``"#"``; ``"0"`` (no key) → ``""``."""
    try:
        code = int(result)
    except ValueError:
        return ""
    if 0 < code < 0x110000:
        return chr(code)
    return ""


# --------------------------------------------------------------------------- commands

_NEEDS_QUOTES: Final = frozenset(' \t"\\')
# Regex searches run in C; building a set per argument cost more than the rest of the encoding.
_NEEDS_QUOTES_RE: Final = re.compile(r'[ \t"\\]')
_FORBIDDEN_RE: Final = re.compile("[\r\n\x00]")


def _quote(arg: str) -> str:
    if arg and _NEEDS_QUOTES_RE.search(arg) is None:
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def encode_command(*parts: str) -> bytes:
    """Encode one AGI command line, e.g. ``encode_command("STREAM FILE", "welcome", "0123#")``.

    The first part is the command verb and is sent as is (it may hold spaces: ``"STREAM FILE"``);
    every further part is one argument, double-quoted when it is empty or contains a space, tab,
    ``"`` or ``\\`` (inside quotes ``"`` and ``\\`` are backslash-escaped), which is exactly how
    ``parse_args()`` in ``res_agi.c`` splits a line. CR, LF and NUL cannot be represented and
    raise :class:`ValueError`, as does a line that Asterisk's 2048-byte buffer would split.

    Runs once per command, so the common case is kept cheap (measured by ``python -m bench
    agi``): a verb is validated once and cached, a line seen before is cached, and a new line
    whose arguments are all plain is checked with one C-level search over them all.
    """
    try:
        cached = _LINES.get(parts)
    except TypeError:  # an unhashable part; the checks below name it
        cached = None
    if cached is not None:
        return cached
    if not parts:
        raise ValueError("encode_command needs at least the command verb")
    verb = _VERBS.get(parts[0]) if type(parts[0]) is str else None
    if verb is None:
        verb = _check_verb(parts)
    prefix, verb_words = verb
    if verb_words + len(parts) - 1 > MAX_ARGS - 1:
        raise ValueError(f"too many AGI arguments (Asterisk keeps {MAX_ARGS - 1} words)")
    args = parts[1:]
    try:
        rest = " ".join(args)
    except TypeError:
        rest = None  # a part that is not a str: the loop below names it
    if (
        rest is not None
        and rest.count(" ") == len(args) - 1  # no part holds a space
        and "" not in args
        and _SPECIAL_RE.search(rest) is None
    ):
        line = f"{prefix} {rest}\n".encode()  # every argument is plain: nothing to quote
    else:
        words = [prefix]
        plain = _PLAIN_RE.fullmatch
        for part in args:
            if type(part) is str and plain(part) is not None:
                words.append(part)
                continue
            if not isinstance(part, str):
                raise TypeError(f"AGI command parts must be str, not {type(part).__name__}")
            if _FORBIDDEN_RE.search(part) is not None:
                raise ValueError(f"AGI command part contains CR, LF or NUL: {part[:40]!r}")
            words.append(_quote(part))
        line = (" ".join(words) + "\n").encode("utf-8")
    if len(line) > AGI_BUF_LEN - 1:
        raise ValueError(f"AGI command line longer than Asterisk's {AGI_BUF_LEN - 1} bytes")
    if len(_LINES) < _MAX_LINES and len(line) <= _MAX_CACHED_LINE:
        _LINES[parts] = line  # every part was a str (checked above)
    return line


#: A plain argument: non-empty, nothing to quote, nothing forbidden.
_PLAIN_RE: Final = re.compile(r'[^ \t"\\\r\n\x00]+')
#: What makes an argument not plain, but the space (encode_command counts those separately).
_SPECIAL_RE: Final = re.compile(r'[\t"\\\r\n\x00]')
#: Encoded lines by their parts: an IVR sends the same prompts and variables on every call.
#: Bounded; once full, new commands are encoded as usual.
_LINES: dict[tuple[str, ...], bytes] = {}
_MAX_LINES: Final = 4096
#: The same cache, read-only, for a transport's hot path: a line found here under ``parts`` is
#: what ``encode_command(*parts)`` returns (it was checked when it was encoded); look-up first,
#: call on a miss. Saves a call and the ``*parts`` repacking per command.
ENCODED_COMMANDS: Final[Mapping[tuple[str, ...], bytes]] = _LINES
_MAX_CACHED_LINE: Final = 256
#: Validated verbs: ``"STREAM FILE"`` -> (``"STREAM FILE"``, 2). Bounded (scripts use a few).
_VERBS: dict[str, tuple[str, int]] = {}
_MAX_VERBS: Final = 256


def _check_verb(parts: tuple[str, ...]) -> tuple[str, int]:
    """Validate every part's type and characters (errors as before), then the verb itself."""
    for part in parts:
        if not isinstance(part, str):
            raise TypeError(f"AGI command parts must be str, not {type(part).__name__}")
        if _FORBIDDEN_RE.search(part) is not None:
            raise ValueError(f"AGI command part contains CR, LF or NUL: {part[:40]!r}")
    verb = parts[0].strip()
    if not verb or (_NEEDS_QUOTES - {" "}) & set(verb):
        raise ValueError(f"invalid AGI command verb: {parts[0]!r}")
    words = verb.split()
    checked = (" ".join(words), len(words))
    if type(parts[0]) is str and len(_VERBS) < _MAX_VERBS:
        _VERBS[parts[0]] = checked
    return checked


def parse_command_line(line: str) -> list[str]:
    """Split a command line the way ``parse_args()`` in ``res_agi.c`` does.

    Used by the fake Asterisk and to prove :func:`encode_command` round-trips. Rules: space/tab
    outside quotes separate words; ``"`` toggles quoting (and is dropped) unless escaped; ``\\``
    makes the next character literal.
    """
    words: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    whitespace = True
    for ch in line.rstrip("\r\n"):
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and whitespace:
                words.append("")
                current = []
                whitespace = False
            continue
        if ch in " \t" and not quoted and not escaped:
            if not whitespace:
                words[-1] = "".join(current)
                current = []
            whitespace = True
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        if whitespace:
            words.append("")
            current = []
            whitespace = False
        current.append(ch)
        escaped = False
    if words and not whitespace:
        words[-1] = "".join(current)
    return words
