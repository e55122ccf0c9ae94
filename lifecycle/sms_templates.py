"""SMS templates as data (``sms_templates.json``), validated when loaded, and rendered.

Indian SMS rules (TRAI's DLT) deliver only registered templates, each variable at most 30
characters, so what a template may say is fixed here and checked before the worker runs:

* every ``{placeholder}`` is one of :data:`PLACEHOLDERS` (a typo is refused at load, not
  discovered when the first SMS of that kind goes out), and a Hindi text uses no ``_en`` one;
* the Hindi text contains Devanagari, the English text none (swapped texts are refused);
* with every placeholder at its longest, the text fits :data:`MAX_SEGMENTS` SMS segments.
  A Hindi SMS is UCS-2: 70 characters in one segment, 67 per segment of a multi-part one;
  plain English text is GSM-7: 160, or 153 per part.
"""

from __future__ import annotations

import math
import re
import string
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.config import Settings
from core.domain.notifications import SmsKind

DEFAULT_TEMPLATES: Final = Path(__file__).with_name("sms_templates.json")
LANGUAGES: Final = ("hi", "en")
#: Placeholder → the longest value it may take (DLT allows 30 characters per variable).
PLACEHOLDERS: Final[dict[str, int]] = {
    "complaint_number": 10,
    "days": 3,
    "officer_hi": 30,
    "officer_en": 30,
}
#: A template longer than this many segments (at its longest) is refused.
MAX_SEGMENTS: Final = 3
UCS2_SINGLE, UCS2_PART = 70, 67
GSM_SINGLE, GSM_PART = 160, 153

_GSM_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: GSM-7 extension characters: an escape plus the character, two septets each.
_GSM_EXTENDED: Final = frozenset("^{}\\[~]|€")
_DEVANAGARI: Final = re.compile(r"[\u0900-\u097f]")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


class TemplateError(ValueError):
    """The templates file is wrong; the message lists every problem."""


def is_gsm7(text: str) -> bool:
    """Whether ``text`` can go as GSM-7; otherwise the whole SMS is UCS-2 ("unicode")."""
    return all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in text)


def sms_segments(text: str) -> int:
    """How many SMS segments ``text`` takes: GSM-7 if every character is in its alphabet,
    UCS-2 otherwise (any Devanagari makes the whole SMS UCS-2)."""
    if is_gsm7(text):
        septets = sum(2 if c in _GSM_EXTENDED else 1 for c in text)
        return 1 if septets <= GSM_SINGLE else math.ceil(septets / GSM_PART)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= UCS2_SINGLE else math.ceil(units / UCS2_PART)


def placeholders(text: str) -> list[str]:
    """The ``{names}`` in ``text``; raises ValueError on a malformed or indexed field."""
    names = []
    for _literal, field, spec, conversion in string.Formatter().parse(text):
        if field is None:
            continue
        if not field.isidentifier() or spec or conversion:
            raise ValueError(f"placeholder {{{field}}} must be a plain name")
        names.append(field)
    return names


class SmsText(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    text: Annotated[str, Field(min_length=1)]
    #: The ID the operator's DLT portal gave this text (19 digits).
    dlt_template_id: Annotated[str, Field(pattern=r"^[0-9]{19}$")]


class KindTexts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hi: SmsText
    en: SmsText

    @model_validator(mode="after")
    def _check(self) -> KindTexts:
        problems = []
        for language in LANGUAGES:
            text = getattr(self, language).text
            try:
                names = placeholders(text)
            except ValueError as error:
                problems.append(f"{language}: {error}")
                continue
            unknown = sorted(set(names) - PLACEHOLDERS.keys())
            if unknown:
                problems.append(f"{language}: unknown placeholder(s) {unknown}")
            other = "_en" if language == "hi" else "_hi"
            foreign = sorted(n for n in names if n.endswith(other))
            if foreign:
                problems.append(f"{language}: placeholder(s) of the other language {foreign}")
            has_devanagari = bool(_DEVANAGARI.search(text))
            if language == "hi" and not has_devanagari:
                problems.append("hi: no Devanagari in the Hindi text")
            if language == "en" and has_devanagari:
                problems.append("en: Devanagari in the English text")
            if not unknown and (n := sms_segments(longest(text))) > MAX_SEGMENTS:
                problems.append(f"{language}: {n} segments at its longest (at most {MAX_SEGMENTS})")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class TemplateFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int
    note: str = ""
    templates: dict[SmsKind, KindTexts]

    @model_validator(mode="after")
    def _every_kind(self) -> TemplateFile:
        missing = sorted(set(SmsKind) - self.templates.keys())
        if missing:
            raise ValueError(f"no template for kind(s) {missing}")
        return self


def longest(text: str) -> str:
    """``text`` with every placeholder at its longest (a wide Devanagari letter per character)."""
    return text.format_map({name: "ज" * size for name, size in PLACEHOLDERS.items()})


@dataclass(frozen=True, slots=True)
class RenderedSms:
    text: str
    language: str
    dlt_template_id: str
    segments: int


@dataclass(frozen=True, slots=True)
class SmsTemplates:
    """The validated templates; :meth:`render` fills one in."""

    source: TemplateFile

    def text(self, kind: SmsKind, language: str) -> SmsText:
        if language not in LANGUAGES:
            raise ValueError(f"no SMS templates in language {language!r} (have {LANGUAGES})")
        texts: SmsText = getattr(self.source.templates[kind], language)
        return texts

    def worst_case_segments(self, kind: SmsKind, language: str) -> int:
        return sms_segments(longest(self.text(kind, language).text))

    def render(self, kind: SmsKind, language: str, params: dict[str, str]) -> RenderedSms:
        """Fill in ``params``: an unknown name or a missing one the text needs is a
        ValueError; each value is made one line and cut to its placeholder's length."""
        unknown = sorted(params.keys() - PLACEHOLDERS.keys())
        if unknown:
            raise ValueError(f"unknown SMS parameter(s) {unknown}")
        template = self.text(kind, language)
        needed = placeholders(template.text)
        missing = sorted(set(needed) - params.keys())
        if missing:
            raise ValueError(f"{kind} SMS needs parameter(s) {missing}")
        values = {name: _bounded(params[name], PLACEHOLDERS[name]) for name in needed}
        text = template.text.format_map(values)
        return RenderedSms(text, language, template.dlt_template_id, sms_segments(text))


def _bounded(value: str, limit: int) -> str:
    value = " ".join(_CONTROL.sub(" ", value).split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


def load_templates(path: Path | None = None) -> SmsTemplates:
    """Read and validate a templates file (the shipped one by default); raises
    :class:`TemplateError` naming the file and every problem."""
    path = path or DEFAULT_TEMPLATES
    try:
        return SmsTemplates(TemplateFile.model_validate_json(path.read_bytes()))
    except ValidationError as error:
        raise TemplateError(f"{path}: {error}") from error
    except OSError as error:
        raise TemplateError(f"{path}: {error}") from error


@cache
def default_templates() -> SmsTemplates:
    return load_templates(DEFAULT_TEMPLATES)


def templates_for(settings: Settings) -> SmsTemplates:
    """The instance's templates: ``HELPLINE_SMS_TEMPLATES_PATH``, or the shipped ones."""
    if settings.sms_templates_path is None:
        return default_templates()
    return _load_cached(settings.sms_templates_path.resolve())


@cache
def _load_cached(path: Path) -> SmsTemplates:
    return load_templates(path)
