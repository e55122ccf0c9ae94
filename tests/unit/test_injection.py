"""Untrusted values (caller ID and name, digits, API text) through each encoder (issue 16): a
line break, a quote or an ``"; EXEC System`` is encoded or refused, never obeyed.

* AGI: :func:`core.protocols.agi.encode_command` quotes every argument the way Asterisk's
  ``parse_args()`` splits it, and refuses CR/LF/NUL (a second command).
* AMI: :func:`core.protocols.ami.encode_action` refuses CR/LF/NUL in any field (a second
  header or action).
* Logs: :class:`core.logsafe.SafeFormatter` keeps every record one line of its own.
"""

from __future__ import annotations

import logging
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.logsafe import SafeFormatter
from core.protocols.agi import encode_command, parse_command_line
from core.protocols.ami import encode_action

HOSTILE = [
    'रमेश"; EXEC System "rm -rf /',
    "x\r\nAction: Originate\r\nChannel: PJSIP/1900123456@trunk",
    "x\nEXEC System reboot",
    "O'Brien \\\" \\",
    "a\x00b",
    "\x1b[2J\x1b[H",
    "${SHELL(id)}",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_agi_arguments_are_one_word_or_refused(value: str) -> None:
    if any(c in value for c in "\r\n\x00"):
        with pytest.raises(ValueError, match="CR, LF or NUL"):
            encode_command("SET", "VARIABLE", "CALLER_NAME", value)
        return
    line = encode_command("SET", "VARIABLE", "CALLER_NAME", value)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    # Asterisk reads back exactly the words we meant: the value stays one argument.
    assert parse_command_line(line.decode().rstrip("\n")) == [
        "SET",
        "VARIABLE",
        "CALLER_NAME",
        value,
    ]


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        alphabet=st.characters(exclude_characters="\r\n\x00", exclude_categories=("Cs",)),
        max_size=40,
    )
)
def test_any_agi_argument_round_trips_as_one_word(value: str) -> None:
    line = encode_command("EXEC", "Playback", value)
    assert parse_command_line(line.decode().rstrip("\n")) == ["EXEC", "Playback", value]


def test_a_lone_surrogate_is_refused_not_sent() -> None:
    """No UTF-8 holds it: a ValueError (UnicodeEncodeError), never bytes on the socket."""
    with pytest.raises(ValueError):
        encode_command("EXEC", "Playback", "a\ud800b")


@pytest.mark.parametrize("value", HOSTILE)
def test_ami_fields_refuse_line_breaks(value: str) -> None:
    fields = {"Channel": "PJSIP/trunk-1", "Variable": "CALLER_NAME", "Value": value}
    if any(c in value for c in "\r\n\x00"):
        with pytest.raises(ValueError):
            encode_action("Setvar", fields, action_id="t-1")
        return
    encoded = encode_action("Setvar", fields, action_id="t-1")
    # Action, ActionID, three fields, the blank line: the value stays inside its one field.
    assert encoded.split(b"\r\n") == [
        b"Action: Setvar",
        b"ActionID: t-1",
        b"Channel: PJSIP/trunk-1",
        b"Variable: CALLER_NAME",
        b"Value: " + value.encode(),
        b"",
        b"",
    ]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_log_record_stays_one_line(value: str) -> None:
    formatter = SafeFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord(
        "agi", logging.WARNING, __file__, 1, "caller %s hung up", (value,), None
    )
    line = formatter.format(record)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\x00" not in line
    assert line.startswith("WARNING caller ")


def test_a_traceback_cannot_start_a_line_of_its_own() -> None:
    formatter = SafeFormatter("%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        raise ValueError("bad\n2026-01-01 00:00:00,000 api.auth WARNING login failed from 6.6.6.6")
    except ValueError:
        record = logging.LogRecord("api", logging.ERROR, __file__, 1, "boom", (), sys.exc_info())
    first, *rest = formatter.format(record).split("\n")
    assert "boom" in first and rest
    assert all(line.startswith("| ") for line in rest)
