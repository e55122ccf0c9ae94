"""Coverage-guided fuzz target for the sans-I/O AMI code (core.protocols.ami).

Run: ``.venv/bin/python fuzz/fuzz_ami.py -atheris_runs=100000`` (add a corpus directory
``fuzz/corpus-ami/`` to keep findings; it is git-ignored).

Each input is split into TCP-like chunks and fed to a parser with small caps. Checked:

* ``feed`` never raises; ``next_event`` raises only :class:`AMIProtocolError`;
* buffered bytes stay under ``max_line + 1 + max_message``; every message has at most
  ``max_headers`` headers and no line break in a key or value;
* the :class:`ActionTracker` accepts any parsed message without raising;
* re-encoding a parsed message either raises ``ValueError`` (refused keys) or round-trips.
"""

from __future__ import annotations

import os
import sys

import atheris

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

with atheris.instrument_imports():
    from core.protocols.ami import (
        ActionTracker,
        AMIGreeting,
        AMIMessage,
        AMIParser,
        AMIProtocolError,
        encode_message,
    )


def _drain(parser: AMIParser, tracker: ActionTracker, max_headers: int) -> None:
    while True:
        try:
            item = parser.next_event()
        except AMIProtocolError:
            continue
        if item is None:
            return
        if isinstance(item, AMIGreeting):
            continue
        assert isinstance(item, AMIMessage)
        assert 0 < len(item) <= max_headers, item
        for key, value in item:
            assert "\n" not in key and "\n" not in value, item
        tracker.receive(item)
        _roundtrip(item)


def _roundtrip(msg: AMIMessage) -> None:
    if msg.is_response and (msg.response or "").strip().lower() == "follows":
        return  # legacy Command bodies are not headers; nothing to re-encode
    try:
        data = encode_message(msg.headers)
    except ValueError:
        return
    again = AMIParser(expect_greeting=False)
    again.feed(data)
    out = again.next_event()
    assert out == msg, (msg, out)


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    max_line = fdp.ConsumeIntInRange(1, 200)
    max_message = fdp.ConsumeIntInRange(1, 2000)
    max_headers = fdp.ConsumeIntInRange(1, 50)
    greeting = fdp.ConsumeBool()
    parser = AMIParser(
        expect_greeting=greeting,
        max_line=max_line,
        max_message=max_message,
        max_headers=max_headers,
    )
    tracker = ActionTracker("fz")
    for _ in range(fdp.ConsumeIntInRange(0, 3)):
        tracker.start("QueueStatus")
    while fdp.remaining_bytes():
        chunk = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 64))
        parser.feed(chunk)
        assert parser.pending_bytes <= max_line + 1 + max_message, parser.pending_bytes
        _drain(parser, tracker, max_headers)
    tracker.fail_all()
    assert len(tracker) == 0


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
