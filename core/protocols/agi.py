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
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, NamedTuple, TypeVar, overload
from urllib.parse import parse_qsl, unquote

__all__ = [
    "AGI_BUF_LEN",
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
        """Build from ``agi_*`` pairs: a handshake's (the parser) or any mapping (copied)."""
        if type(variables) is not _HandshakeVariables:
            variables = MappingProxyType(dict(variables))
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
    """A handshake's variables, found in its text when asked for (not split into a dict).

    Why: a script reads a few of the ~22 variables, and a dict of them (44 strings) cost more
    CPU per call than the rest of the handshake and ~2.4 KB per parked call (docs/capacity.md,
    "Plain path (issue 10)"). ``text`` is the handshake's lines as :class:`EnvironmentParser`
    took them: decoded, each ending in LF (a CR before it dropped), each checked to be
    ``agi_<name>: value`` with a key sent once. The key of a line is its text before the first
    ``:``; one space after the colon is dropped.
    """

    __slots__ = ("_text",)

    def __init__(self, text: str) -> None:
        self._text = text

    @overload
    def get(self, key: str, /) -> str | None: ...
    @overload
    def get(self, key: str, /, default: str | _T) -> str | _T: ...
    def get(self, key: str, /, default: object = None) -> object:
        """The value of the last line whose key is ``key``, else ``default``."""
        text = self._text
        if type(key) is not str or not key or key != key.strip() or ":" in key or "\n" in key:
            return default  # no line has such a key (keys are stripped, without ":")
        at = text.rfind(key)
        while at >= 0:  # the occurrences of key, from the last one
            start = text.rfind("\n", 0, at) + 1
            after = at + len(key)
            end = text.index("\n", after)
            colon = text.find(":", after, end)
            if (
                colon >= 0
                and (start == at or text[start:at].isspace())
                and (colon == after or text[after:colon].isspace())
            ):
                value = text[colon + 1 : end]
                return value[1:] if value[:1] == " " else value
            at = text.rfind(key, 0, after - 1)
        return default

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return type(key) is str and self.get(key) is not None

    def __iter__(self) -> Iterator[str]:
        """The keys in the order a dict of the lines would keep them (first occurrence)."""
        return iter(dict.fromkeys(_HANDSHAKE_KEYS(self._text)))

    def __len__(self) -> int:
        return len(dict.fromkeys(_HANDSHAKE_KEYS(self._text)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self)!r})"


#: Handshake lines as taken (CR dropped, LF kept), each ``agi_<name>: value`` exactly as
#: Asterisk's ``setup_env()`` writes them: a key of lower-case letters, digits and ``_``, a colon,
#: one optional space, and a value without control characters (C0, DEL, C1). Anything else is a
#: peer that is not Asterisk, or a value that tried to smuggle a line (a caller name with a CR or
#: an escape sequence) into the handshake. Possessive: nothing is ever given back.
_HANDSHAKE_LINES: Final = re.compile(r"(?:agi_[a-z0-9_]{1,60}+: ?+[^\n]*+\n)*+")
#: Every line's key (lines already checked).
_HANDSHAKE_KEYS: Final = re.compile(r"^([^:\n]*):", re.MULTILINE).findall


class EnvironmentParser:
    """Incremental parser of the handshake: ``feed()`` bytes until it returns the environment.

    Each feed takes every line completed so far (one decode for all of them: a UTF-8 sequence
    never holds an LF, so that is each line decoded alone) and keeps the incomplete last line.
    A line is ``agi_<name>: value`` (:data:`_HANDSHAKE_LINES`): one space after the colon
    dropped, a CR before the LF dropped. A key of other characters or a key sent twice is an
    error at once: the session ends (the dialplan then sends the caller to the queue), so no
    injected or overriding key reaches a script. A value is kept as sent, control characters
    included: it is the carrier's caller ID or name (a TAB is legal in a SIP display name),
    the caller keeps the IVR, and every use encodes it (``core.domain.phone.raw_caller_id``,
    ``safe_text``, the AGI and AMI encoders, ``core.logsafe``). The
    lines are checked with one regular expression and kept as text; the variables are found
    in it when read (:class:`_HandshakeVariables`). Bytes that follow the
    terminating empty line (none from a real Asterisk, which waits for our first command) are
    kept in :attr:`leftover` for the reply parser.
    """

    def __init__(self, max_bytes: int = MAX_HANDSHAKE_BYTES) -> None:
        self._max = max_bytes
        self._buf = bytearray()  # the incomplete last line (never holds an LF)
        self._text = ""  # the lines taken
        self._keys: set[str] = set()  # their keys
        self._env: AGIEnvironment | None = None
        self._total = 0  # bytes of the lines taken
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
        buf = self._buf
        if buf:
            scan = len(buf)  # the kept bytes hold no LF
            buf += data
            data = bytes(buf)
            buf.clear()
        else:
            scan = 0
        # The handshake ends at its first empty line: at the start of the kept bytes (a line
        # start), or right after an LF.
        if data[:1] == b"\n" or data[:2] == b"\r\n":
            empty = 0
        else:
            found = _LF_EMPTY_LINE(data, max(0, scan - 1))
            empty = -1 if found is None else found.start() + 1
        if empty >= 0:
            lines_end = empty  # whole lines up to the empty line
            end = data.index(b"\n", empty) + 1
        else:
            lines_end = end = data.rfind(b"\n", scan) + 1  # whole lines, or none (0)
        if self._total + (end if empty >= 0 else len(data)) > self._max:
            raise AGIProtocolError(f"AGI handshake larger than {self._max} bytes")
        self._total += end
        if lines_end:
            self._take(data[:lines_end].decode("utf-8", errors="replace"))
        if empty < 0:
            buf += data[end:]
            return None
        self.leftover = data[end:]
        self._env = AGIEnvironment.from_variables(_HandshakeVariables(self._text))
        return self._env

    def _take(self, text: str) -> None:
        """Whole non-empty lines, each ending in LF: checked, then kept."""
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        checked = _HANDSHAKE_LINES.match(text)
        assert checked is not None  # it matches zero lines at least
        if checked.end() != len(text):
            line = text[checked.end() :].partition("\n")[0]
            raise AGIProtocolError(f"malformed AGI handshake line: {line[:80]!r}")
        keys = self._keys
        for key in _HANDSHAKE_KEYS(text):
            if key in keys:
                raise AGIProtocolError(f"AGI handshake key sent twice: {key}")
            keys.add(key)
        self._text += text

    def feed_eof(self) -> None:
        """The peer closed: fine after the handshake, an error before it."""
        if self._env is None:
            raise AGIProtocolError(
                "connection closed during the AGI handshake "
                f"({self._text.count(chr(10))} lines received)"
            )


#: An empty line right after a line's LF (its CR optional).
_LF_EMPTY_LINE: Final = re.compile(b"\n\r?\n").search


# --------------------------------------------------------------------------- replies


_NO_FIELDS: Final[Mapping[str, str]] = MappingProxyType({})


class AGIReply(NamedTuple):
    """A final reply to one command.

    ``result`` is the text after ``result=`` (may be ``""``: ``GET DATA`` answers
    ``200 result= (timeout)``); ``data`` the text in parentheses; ``endpos`` the ``endpos=``
    value; ``fields`` every other ``key=value`` after the data. For 5xx replies ``result`` is
    ``""`` and ``usage`` holds the usage text of a ``520-`` block. A named tuple: immutable, and
    made once per command (a frozen dataclass cost three times as much to build).
    """

    code: int
    result: str
    data: str | None
    endpos: int | None
    raw: str
    fields: Mapping[str, str] = _NO_FIELDS
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

_DIGITS_RE: Final = re.compile(r"[0-9]{1,18}\Z")
_KV_RE: Final = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(\S*)\Z")


def _reply_200(line: str) -> AGIReply:
    """``200 result=R [(data)] [k=v ...]`` (Asterisk never escapes the parentheses).

    The data ends at the right-most ``)`` after which only ``key=value`` words follow, found
    with one right-to-left pass (linear time, whatever the input). ``endpos`` is an int when it
    is ASCII digits (else it stays in ``fields``).
    """
    body = line[4:]
    if body[:7] != "result=":
        return AGIReply(200, "", None, None, line)
    result, _, rest = body[7:].partition(" ")
    rest = rest.lstrip(" ")
    if not rest:
        return AGIReply(200, result, None, None, line)
    data: str | None = None
    if not rest.startswith("("):
        fields = _trailing_fields(rest.split())
    else:
        # Walk word boundaries from the right while the words to the right are key=value.
        end = len(rest.rstrip())
        while True:
            if end > 0 and rest[end - 1] == ")":
                data, fields = rest[1 : end - 1], _trailing_fields(rest[end:].split())
                break
            start = rest.rfind(" ", 0, end)
            word = rest[start + 1 : end]
            if start < 0 or not _KV_RE.match(word):
                # Unterminated data: keep everything after "(" as data rather than guess.
                return AGIReply(200, result, rest[1:], None, line)
            end = start
            while end > 0 and rest[end - 1] == " ":
                end -= 1
    endpos: int | None = None
    endpos_text = fields.pop("endpos", None)
    if endpos_text is not None:
        if _DIGITS_RE.match(endpos_text):
            endpos = int(endpos_text)
        else:
            fields["endpos"] = endpos_text
    return AGIReply(200, result, data, endpos, line, fields or _NO_FIELDS)


def _trailing_fields(words: list[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if sep:
            fields[key] = value
    return fields


#: Most lines a ``replies`` memo of ReplyParser takes.
_MAX_REPLIES: Final = 1024


class ReplyParser:
    """Incremental parser of everything Asterisk sends after the handshake.

    ``feed(bytes)`` returns the events completed by those bytes; ``feed_eof()`` ends the stream.
    Lines longer than ``max_line`` or usage blocks longer than ``max_usage`` raise
    :class:`AGIProtocolError`; so does a line that is neither a reply nor ``HANGUP``.

    ``replies``, a dict the caller owns and may share between parsers (the FastAGI server
    shares one between its calls), remembers the ``200`` replies without data or fields by
    their line (up to 1,024): real replies repeat (``200 result=1`` for every ``SET
    VARIABLE``), and a reply is immutable.
    """

    def __init__(
        self,
        max_line: int = MAX_REPLY_LINE_BYTES,
        max_usage: int = MAX_USAGE_BYTES,
        *,
        replies: dict[str, AGIReply] | None = None,
    ) -> None:
        self._max_line = max_line
        self._replies = replies
        self._max_usage = max_usage
        self._buf = bytearray()  # an incomplete line (never holds an LF)
        self._usage: list[str] | None = None  # inside a "520-" block
        self._usage_first = ""
        self._usage_size = 0
        self._closed = False

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete line (never more than ``max_line``)."""
        return len(self._buf)

    @property
    def usage_buffered(self) -> int:
        """Bytes held for an incomplete ``520-`` block (never more than ``max_usage``)."""
        return self._usage_size

    def feed(self, data: bytes) -> list[ReplyEvent]:
        """The events of every line these bytes complete (an incomplete last line is kept).

        The whole lines of a read are decoded at once and split at LF (a UTF-8 sequence never
        holds an LF, so that is each line decoded alone), a CR before an LF dropped.
        """
        if self._closed:
            raise AGIProtocolError("data fed after EOF")
        buf = self._buf
        end = data.rfind(b"\n") + 1  # the whole lines end here (0: none)
        if buf:  # the rest of a line split across reads
            buf += data
            if not end:
                if len(buf) > self._max_line:
                    buf.clear()
                    raise AGIProtocolError(f"AGI reply line longer than {self._max_line} bytes")
                return []
            end += len(buf) - len(data)
            data = bytes(buf)
            buf.clear()
        if end < len(data):
            if len(data) - end > self._max_line:
                raise AGIProtocolError(f"AGI reply line longer than {self._max_line} bytes")
            buf += data[end:]
            data = data[:end]
        if not end:
            return []
        if len(data) > self._max_line and max(map(len, data.split(b"\n"))) > self._max_line:
            raise AGIProtocolError(f"AGI reply line longer than {self._max_line} bytes")
        text = data.decode("utf-8", errors="replace")
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        events: list[ReplyEvent] = []
        event: ReplyEvent | None
        replies = self._replies
        for line in text[:-1].split("\n"):
            if self._usage is not None:
                event = self._usage_line(line)
            elif line[:4] == "200 ":  # the usual line first
                if replies is None or (event := replies.get(line)) is None:
                    event = self._reply_200(line)
            else:
                event = self._other(line)
            if event is not None:
                events.append(event)
        return events

    def feed_eof(self) -> list[ReplyEvent]:
        """End of stream: a final :class:`Closed` (a partial line or usage block is dropped)."""
        if self._closed:
            return []
        self._closed = True
        truncated = bool(self._buf) or self._usage is not None
        self._buf.clear()
        self._usage = None
        self._usage_size = 0
        return [_TRUNCATED if truncated else _CLOSED]

    def _reply_200(self, line: str) -> AGIReply:
        """A ``200 `` line not in the memo: parse it, and remember it if it has no data."""
        reply = _reply_200(line)
        replies = self._replies
        if (
            replies is not None
            and reply.data is None
            and not reply.fields
            and len(replies) < _MAX_REPLIES
        ):
            replies[line] = reply  # immutable: shared by every parser of the memo
        return reply

    def _other(self, line: str) -> ReplyEvent | None:
        """Any line but a ``200 `` reply, outside a ``520-`` block."""
        # "<3 ASCII digits>", "<3 digits> <body>" or "<3 digits>-<body>" (a continuation).
        sep = line[3:4]
        code_text = line[:3]
        if sep in ("", " ", "-") and code_text.isdigit() and code_text.isascii():
            return self._code(line, int(code_text), sep)
        if line.strip() == "HANGUP":
            return HangupNotice()
        raise AGIProtocolError(f"unexpected line from Asterisk: {line[:80]!r}")

    def _code(self, line: str, code: int, sep: str) -> ReplyEvent | None:
        if sep == "-":
            if code != 520:
                raise AGIProtocolError(f"unexpected continuation line: {line[:80]!r}")
            self._usage = []
            self._usage_first = line
            self._usage_size = len(line) + 1
            return None
        if code == 200:
            return _reply_200(line)  # "200" alone
        if code == 100:
            return Progress(line)
        return AGIReply(code, "", None, None, line, {}, line[4:] if code == 520 else None)

    def _usage_line(self, line: str) -> AGIReply | None:
        """A line inside a ``520-`` block: usage text up to the ``520 `` line."""
        assert self._usage is not None
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

#: What makes an argument need quotes (an empty one needs them too).
_NEEDS_QUOTES_RE: Final = re.compile(r'[ \t"\\]')
_FORBIDDEN_RE: Final = re.compile("[\r\n\x00]")
#: A tab, quote or backslash (a verb may not hold one, an argument is quoted), CR, LF or NUL.
_SPECIAL_RE: Final = re.compile(r'[\t"\\\r\n\x00]')


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
    """
    if not parts:
        raise ValueError("encode_command needs at least the command verb")
    try:
        line = " ".join(parts)
    except TypeError:
        line = "\0"  # a part that is not a str: named below
    verb, args = parts[0], parts[1:]
    verb_words = verb.split()
    # One search screens the line for every character that needs a closer look: CR, LF, NUL
    # (refused), a tab, quote or backslash (refused in the verb, quoted in an argument).
    if _SPECIAL_RE.search(line) is not None or not verb_words:
        for part in parts:
            if not isinstance(part, str):
                raise TypeError(f"AGI command parts must be str, not {type(part).__name__}")
            if _FORBIDDEN_RE.search(part) is not None:
                raise ValueError(f"AGI command part contains CR, LF or NUL: {part[:40]!r}")
        if not verb_words or _SPECIAL_RE.search(verb) is not None:
            raise ValueError(f"invalid AGI command verb: {verb!r}")
        quote = True
    else:
        # An argument needs quotes when it is empty or holds a space (it shows as a space too
        # many between the arguments), a tab, a quote or a backslash.
        quote = "" in args or line.count(" ") - verb.count(" ") != len(args)
    if len(verb_words) + len(args) > MAX_ARGS - 1:
        raise ValueError(f"too many AGI arguments (Asterisk keeps {MAX_ARGS - 1} words)")
    verb = " ".join(verb_words)
    if not args:
        encoded = f"{verb}\n".encode()
    elif quote:
        encoded = f"{verb} {' '.join(map(_quote, args))}\n".encode()
    else:
        encoded = f"{verb} {line[len(parts[0]) + 1 :]}\n".encode()
    if len(encoded) > AGI_BUF_LEN - 1:
        raise ValueError(f"AGI command line longer than Asterisk's {AGI_BUF_LEN - 1} bytes")
    return encoded


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
