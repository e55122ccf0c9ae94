"""Coverage-guided fuzzing of the SMS templates: the templates file's validation and the
rendering of untrusted values into a template (atheris).

Run standalone: ``.venv/bin/python fuzz/fuzz_sms_templates.py -atheris_runs=100000``.
Invariants: a templates file (the shipped one with a fuzzed slice, or fuzzed bytes) is refused
only with pydantic's ValidationError; rendering any values for any kind and language raises
only ValueError, and a rendered SMS is one line, fits its segments' limit and holds no
placeholder's braces left over.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import atheris
from pydantic import ValidationError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with atheris.instrument_imports(include=["lifecycle.sms_templates"]):
    from core.domain.notifications import SmsKind
    from lifecycle.sms_templates import (
        DEFAULT_TEMPLATES,
        LANGUAGES,
        MAX_SEGMENTS,
        PLACEHOLDERS,
        TemplateFile,
        default_templates,
    )

SHIPPED = DEFAULT_TEMPLATES.read_bytes()
TEMPLATES = default_templates()
KINDS = list(SmsKind)
NAMES = sorted(PLACEHOLDERS)


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    if fdp.ConsumeIntInRange(0, 3) == 0:
        start = fdp.ConsumeIntInRange(0, len(SHIPPED))
        end = min(len(SHIPPED), start + fdp.ConsumeIntInRange(0, 32))
        edited = SHIPPED[:start] + fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 24)) + SHIPPED[end:]
        with contextlib.suppress(ValidationError):
            TemplateFile.model_validate_json(edited)
        return
    kind = KINDS[fdp.ConsumeIntInRange(0, len(KINDS) - 1)]
    language = LANGUAGES[fdp.ConsumeIntInRange(0, len(LANGUAGES) - 1)]
    params = {name: fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 300)) for name in NAMES}
    if fdp.ConsumeBool():
        params.pop(NAMES[fdp.ConsumeIntInRange(0, len(NAMES) - 1)])
    if fdp.ConsumeIntInRange(0, 7) == 0:
        params[fdp.ConsumeUnicode(8)] = "x"
    try:
        sms = TEMPLATES.render(kind, language, params)
    except ValueError:
        return
    assert "\n" not in sms.text and "\r" not in sms.text, sms.text
    assert sms.segments <= MAX_SEGMENTS, (sms.segments, sms.text)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
