"""Log lines nobody outside can forge.

Caller IDs and names, AGI and AMI fields, user names and API text reach log calls as ``%s``
arguments; a CR or LF in one would start a new line that looks like ours (a fake "login failed
from <address>" is a ban of someone else by fail2ban, a fake error line misleads an operator).
:class:`SafeFormatter` is the one encoder between a log record and the file: control
characters in the message become ``\\xNN`` escapes, and every line of a traceback after the
first is prefixed with ``| `` so that no text inside an exception starts a line either.
Every process of ours logs through it (:func:`core.logs.configure`).
"""

from __future__ import annotations

import logging
import re
from typing import Final

#: C0 and C1 controls, DEL, and Unicode's line and paragraph separators.
_UNSAFE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape(text: str) -> str:
    """``text`` with every control character as a Python escape (``\\r``, ``\\x1b``)."""
    return _UNSAFE.sub(lambda m: repr(m.group())[1:-1], text)


class SafeFormatter(logging.Formatter):
    """A :class:`logging.Formatter` whose record is always exactly one line of its own (the
    message escaped) plus, for a traceback, continuation lines that start with ``| ``."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape(super().formatMessage(record))

    def formatException(self, ei: logging._SysExcInfoType) -> str:
        return _continuation(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _continuation(super().formatStack(stack_info))


def _continuation(text: str) -> str:
    return "\n".join(f"| {escape(line)}" for line in text.split("\n"))
