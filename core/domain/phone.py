"""Caller numbers as Indian networks deliver them, reduced to one canonical form.

The same citizen arrives as ``+919876543210``, ``919876543210``, ``09876543210`` or
``9876543210`` depending on the trunk; complaints and call history are keyed on the 10-digit
national number so that all of them find each other.
"""

from __future__ import annotations

import re

#: What carriers send when the caller withheld the number (CLIR) or the network lost it.
_WITHHELD = {"", "anonymous", "unknown", "restricted", "private", "unavailable", "withheld"}
_SEPARATORS = re.compile(r"[\s\-().]")


def normalise_caller_number(raw: str | None) -> str | None:
    """The caller's 10-digit national number, or ``None`` when withheld or not a phone number.

    Landlines keep their STD code (``0522…`` becomes ``522…`` plus subscriber digits) as long as
    the result has 10 digits, which is how Indian numbering works for both mobiles and fixed lines.
    """
    if raw is None:
        return None
    text = _SEPARATORS.sub("", raw.strip())
    if text.lower() in _WITHHELD:
        return None
    if text.startswith("+"):
        text = text[1:]
        if not text.startswith("91"):
            return None  # a foreign number: not one of ours to normalise
        text = text[2:]
    if not text.isascii() or not text.isdigit():
        return None
    if len(text) == 12 and text.startswith("91"):
        text = text[2:]
    elif len(text) == 11 and text.startswith("0"):
        text = text[1:]
    elif len(text) == 13 and text.startswith("091"):
        text = text[3:]
    if len(text) != 10 or text[0] == "0":
        return None
    return text
