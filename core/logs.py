"""Logging for every helpline process, with a privacy safety net (India's DPDP Act).

No full phone number and no complaint text belongs in a log line. Call sites log what they
need (a complaint number, a uniqueid, :func:`masked_number`), and never a description, a name
or a caller's number; ``tests/service/test_log_privacy.py`` runs a slice of the system with
every logger at DEBUG and fails on any such record. :class:`PrivacyFilter`, on every handler
:func:`configure` and :func:`uvicorn_log_config` set up, is the net under that: whatever
still reaches a handler with an Indian phone number in it (an exception's text, a third-party
library's line, the access log's ``?caller=``) is written with the number masked. It can only
recognise numbers; complaint text must be kept out at the call sites.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any, Final

from core.domain.phone import parse_caller_id
from core.logsafe import SafeFormatter

FORMAT: Final = "%(asctime)s %(name)s %(levelname)s %(message)s"

#: A phone number as it may appear in text: 10 digits, optionally after +91, 0091, 091, 91 or 0
#: (a space or hyphen may follow the prefix), written together or as 5 + 5 digits; not inside
#: a longer run of digits nor part of a decimal (an Asterisk uniqueid is ``1733462400.123``),
#: nor glued to letters (a dialer attempt's id, ``dialer-<uuid hex>``, may hold ten digits in a
#: row: masking them made the id unsearchable), and no other separators (a date such as
#: ``2026-12-06 05`` is not a number).
_CANDIDATE: Final = re.compile(
    r"(?<![0-9A-Za-z])(?<![0-9]\.)(?:\+?0{0,2}91[ -]?|0)?[1-9][0-9]{4}[ -]?[0-9]{5}"
    r"(?![0-9A-Za-z]|\.[0-9])"
)


def masked_number(number: str | None) -> str:
    """A caller's number as a log line may show it: ``98XXXXX210`` (enough to tell two callers
    apart, not enough to ring one); ``-`` when there is none."""
    if not number:
        return "-"
    if len(number) < 6:
        return "X" * len(number)
    return number[:2] + "X" * (len(number) - 5) + number[-3:]


def mask_numbers(text: str) -> str:
    """``text`` with every Indian phone number in it masked (see :func:`masked_number`).

    A 10-digit run that is not a valid Indian number (a complaint number such as
    ``1000000016``, a uniqueid's digits) is left as it is, so logs stay useful."""

    def one(match: re.Match[str]) -> str:
        number = parse_caller_id(match.group())
        return match.group() if number is None else masked_number(number)

    return _CANDIDATE.sub(one, text)


class PrivacyFilter(logging.Filter):
    """Rewrites a record's message (and its exception text) with phone numbers masked; never
    drops a record. Put on handlers, so it sees every logger's records, ours and libraries'."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_numbers(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_numbers(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_numbers(record.stack_info)
        return True


#: Libraries' loggers kept at WARNING whatever the root's level: SQLAlchemy's engine logs every
#: statement at INFO and every row it reads at DEBUG (callers' numbers, complaint texts).
PINNED: Final = ("sqlalchemy.engine", "sqlalchemy.pool", "sqlalchemy.orm")


def pin_libraries() -> None:
    """Keep the :data:`PINNED` loggers at WARNING (see there)."""
    for name in PINNED:
        logging.getLogger(name).setLevel(logging.WARNING)


def configure(level: int = logging.INFO) -> None:
    """The processes' logging: one stderr handler on the root logger, through the safe
    formatter and with the privacy net."""
    logging.basicConfig(level=level, format=FORMAT)
    pin_libraries()
    for handler in logging.getLogger().handlers:
        # One line per record whatever a caller ID holds (core.logsafe), numbers masked.
        handler.setFormatter(SafeFormatter(FORMAT))
        if not any(isinstance(f, PrivacyFilter) for f in handler.filters):
            handler.addFilter(PrivacyFilter())


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's own logging configuration with :class:`PrivacyFilter` on each of its handlers
    (its access log carries query strings such as ``/complaints?caller=...``)."""
    from uvicorn.config import LOGGING_CONFIG  # noqa: PLC0415 - only the API needs uvicorn

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["privacy"] = {"()": PrivacyFilter}
    for handler in config["handlers"].values():
        handler["filters"] = [*handler.get("filters", []), "privacy"]
    return config
