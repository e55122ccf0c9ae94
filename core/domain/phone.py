"""Caller numbers as Indian networks deliver them, reduced to one canonical form, as a type.

The same citizen arrives as ``+919876543210``, ``919876543210``, ``09876543210``,
``0919876543210`` or ``9876543210`` depending on the trunk; complaints and call history are keyed
on the 10-digit national number so that all of them find each other. A landline keeps its STD
code (``0522 223 4567`` is ``5222234567``): Indian numbering gives mobiles and fixed lines the
same 10 national digits.

:class:`CallerNumber` is that key as a type. It is built once at each boundary -- the AGI
environment (``agi_callerid``), AMI events (``CallerIDNum``), the API's body and query -- and
carried as the type from there:

* :func:`parse_caller_id` is for what a *carrier* sends: it never raises; a withheld, foreign or
  garbled caller ID is ``None`` (the call is still recorded, with :func:`raw_caller_id`).
* ``CallerNumber(text)`` is for what a *person* types (an agent, a supervisor's query): a wrong
  number is a ``ValueError`` (a 422 through pydantic, see ``__get_pydantic_core_schema__``).

Why ``phonenumbers`` (Google's libphonenumber metadata, region ``IN``): it knows which national
numbers exist (mobile series, STD codes and their subscriber lengths, toll-free), strips
``+91``/``0``/``0091``, separators and ``tel:`` forms, and refuses a short code (``1076``,
``112``) or a 9-digit typo that merely looks like a number. Two rules stay ours because
libphonenumber does not model them: carriers' ``091`` prefix (not a dialling prefix, but trunks
send it) and ASCII-only input (libphonenumber also reads Devanagari and full-width digits,
which no trunk sends; accepting them would make the same caller two different raw IDs).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

import phonenumbers

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
    from pydantic.json_schema import JsonSchemaValue
    from pydantic_core import CoreSchema

#: Digits of the national number every caller number is reduced to.
NATIONAL_DIGITS: Final = 10
#: Longest text we try to read as a phone number (longer is garbage, not a number).
MAX_INPUT_LENGTH: Final = 32
#: What carriers send when the caller withheld the number (CLIR) or the network lost it.
WITHHELD: Final = frozenset(
    {"", "anonymous", "unknown", "restricted", "private", "unavailable", "withheld"}
)
#: The longest raw caller ID stored (``calls``/``ivr_sessions.caller_number_raw``).
RAW_CALLER_ID_LENGTH: Final = 64
#: Appended to a raw caller ID cut to :data:`RAW_CALLER_ID_LENGTH`.
TRUNCATED_MARK: Final = "…"

_INDIA: Final = 91
_SEPARATORS: Final = re.compile(r"[\s\-().]")
#: Control characters (C0, DEL, C1) and lone surrogates: PostgreSQL refuses NUL and surrogates,
#: and a CR/LF in a stored caller ID would forge lines in every log that prints it.
_UNSAFE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _national(raw: str) -> str | None:
    """The 10-digit national number in ``raw``, or ``None`` if it is not an Indian number."""
    text = raw.strip()
    if (
        not text
        or len(text) > MAX_INPUT_LENGTH
        or not text.isascii()
        or text.lower() in WITHHELD
        or not any(ch.isdigit() for ch in text)
        or any(ch.isalpha() for ch in text.removeprefix("tel:"))
    ):
        return None
    digits = _SEPARATORS.sub("", text)
    if len(digits) == NATIONAL_DIGITS + 3 and digits.startswith("091"):
        text = "+91" + digits[3:]  # a carrier's 091 (09123456789 is a mobile number: 11 digits)
    try:
        number = phonenumbers.parse(text, "IN")
    except phonenumbers.NumberParseException:
        return None
    if (
        number.country_code != _INDIA
        or number.extension
        or not phonenumbers.is_valid_number(number)
    ):
        return None
    national = str(number.national_number)
    return national if len(national) == NATIONAL_DIGITS else None


class CallerNumber(str):
    """A caller's validated 10-digit Indian national number (``9876543210``, ``5222234567``).

    A ``str``, so it is stored, compared and serialised as the digits; constructing one from
    any accepted spelling gives the canonical digits, and from anything else raises
    ``ValueError``.
    """

    __slots__ = ()

    def __new__(cls, text: str) -> CallerNumber:
        if isinstance(text, CallerNumber):
            return text
        national = _national(text) if isinstance(text, str) else None
        if national is None:
            raise ValueError(
                f"{str(text)[:MAX_INPUT_LENGTH]!r} is not an Indian phone number "
                "(10 digits; +91, 0 or 091 prefix allowed)"
            )
        return super().__new__(cls, national)

    @classmethod
    def from_stored(cls, digits: str) -> CallerNumber:
        """A number read back from our own tables: validated when it was written, and not
        again (a number valid under older numbering metadata must still read back)."""
        return str.__new__(cls, digits)

    @property
    def last4(self) -> str:
        """What a caller types on the keypad to prove a complaint is theirs."""
        return self[-4:]

    @property
    def e164(self) -> str:
        """``+919876543210``: how the outbound dialer dials it."""
        return f"+{_INDIA}{self}"

    # pydantic: a str in (any accepted spelling, 422 otherwise), the 10 digits out.
    @classmethod
    def __get_pydantic_core_schema__(
        cls, _source: Any, _handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        from pydantic_core import core_schema  # noqa: PLC0415 - only where pydantic is used

        return core_schema.no_info_after_validator_function(
            cls,
            core_schema.str_schema(max_length=MAX_INPUT_LENGTH),
            serialization=core_schema.to_string_ser_schema(),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        out = handler(schema)
        out.update(
            description="An Indian phone number: 10 digits, +91, 0 or 091 prefix allowed; "
            "stored and returned as the 10-digit national number.",
            examples=["9876543210", "+91 98765 43210", "0522 223 4567"],
        )
        return out


def parse_caller_id(raw: str | None) -> CallerNumber | None:
    """The caller's number from a carrier's caller ID, or ``None`` when withheld or not an
    Indian number. Never raises, whatever the length or the bytes."""
    if raw is None:
        return None
    national = _national(raw)
    return None if national is None else CallerNumber(national)


def safe_text(raw: str | None, limit: int) -> str | None:
    """``raw`` in a form any text column takes and any log prints safely, at most ``limit``
    characters: control characters and lone surrogates become ``\\xNN``/``\\uNNNN`` escapes,
    and a longer text is cut and ends with :data:`TRUNCATED_MARK`. ``""`` and ``None`` are
    ``None``."""
    if not raw:
        return None
    if len(raw) > limit * 8:  # at most 6 characters per escape: nothing past this survives
        raw = raw[: limit * 8]
    text = _UNSAFE.sub(lambda m: repr(m.group())[1:-1], raw)
    if len(text) > limit:
        text = text[: limit - len(TRUNCATED_MARK)] + TRUNCATED_MARK
    return text


def raw_caller_id(raw: str | None) -> str | None:
    """What the carrier sent as caller ID, bounded and safe to store (see :func:`safe_text`)."""
    return safe_text(raw, RAW_CALLER_ID_LENGTH)
