"""Numbers as prompt fragments: Hindi and Indian English on the lakh/crore scale.

Asterisk's ``say.c`` has no Hindi, and Hindi 0-99 are 100 irregular words, so a number is
spoken by concatenating recorded fragments (``num_0``..``num_99``, ``num_hundred``,
``num_thousand``, ``num_lakh``, ``num_crore``; ``digit_0``..``digit_9`` for digit-by-digit
reading). Fragment ids are language-neutral; the words differ per language in the catalogue.
Pure functions, no I/O: the call flow maps ids to ``helpline/<id>`` sound files.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from ivr.catalogue import LANGS

#: Sound directory (under Asterisk's ``sounds/<lang>/``) holding the helpline's prompts.
SOUND_DIR: Final = "helpline"

HUNDRED: Final = "num_hundred"
THOUSAND: Final = "num_thousand"
LAKH: Final = "num_lakh"
CRORE: Final = "num_crore"

_CRORE_VALUE: Final = 10_000_000
#: Separators a caller-facing number may contain; they are skipped, not spoken.
_DIGIT_SEPARATORS: Final = frozenset(" -/.,")
_DEVANAGARI_ZERO: Final = ord("०")

#: Every id :func:`number_fragments` and :func:`digit_fragments` can return.
NUMBER_FRAGMENT_IDS: Final[frozenset[str]] = frozenset(
    [f"num_{i}" for i in range(100)]
    + [f"digit_{d}" for d in range(10)]
    + [HUNDRED, THOUSAND, LAKH, CRORE]
)


def _check_lang(lang: str) -> None:
    if lang not in LANGS:
        raise ValueError(f"unsupported language {lang!r}; expected one of {LANGS}")


def _below_crore(n: int, lang: str) -> list[str]:
    """Fragments for 1 <= n < 1,00,00,000: [lakhs] [thousands] [hundreds] [rest]."""
    lakhs, rem = divmod(n, 100_000)
    thousands, rem = divmod(rem, 1_000)
    hundreds, rest = divmod(rem, 100)
    out: list[str] = []
    if lakhs:
        out += [f"num_{lakhs}", LAKH]
    if thousands:
        out += [f"num_{thousands}", THOUSAND]
    if hundreds:
        # Hindi says a bare hundred as "सौ" ("सौ करोड़"), but "एक सौ पाँच", "एक हज़ार एक सौ".
        if lang == "hi" and n == 100:
            out.append(HUNDRED)
        else:
            out += [f"num_{hundreds}", HUNDRED]
    if rest:
        out.append(f"num_{rest}")  # 1..99: one irregular Hindi word each
    return out


def _positive(n: int, lang: str) -> list[str]:
    if n < _CRORE_VALUE:
        return _below_crore(n, lang)
    # Beyond 99 crore Indian usage keeps stacking crore ("सौ करोड़", "एक लाख करोड़"),
    # which every caller understands, rather than the rare अरब/खरब.
    crores, rest = divmod(n, _CRORE_VALUE)
    out = [*_positive(crores, lang), CRORE]
    if rest:
        out += _below_crore(rest, lang)
    return out


def number_fragments(n: int, lang: str = "hi") -> list[str]:
    """Prompt ids that speak ``n`` as an amount, e.g. 1076 -> num_1 num_thousand num_76.

    Indian scale in both languages: 12,34,56,789 is "बारह करोड़ चौंतीस लाख छप्पन हज़ार
    सात सौ नवासी" / "twelve crore thirty-four lakh fifty-six thousand seven hundred
    eighty-nine".
    """
    _check_lang(lang)
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"number_fragments needs an int, got {type(n).__name__}")
    if n < 0:
        raise ValueError(f"cannot speak a negative number: {n}")
    if n == 0:
        return ["num_0"]
    return _positive(n, lang)


def digit_fragments(s: str, lang: str = "hi") -> list[str]:
    """Prompt ids reading ``s`` digit by digit (complaint and phone numbers).

    ASCII and Devanagari digits are accepted; spaces, ``-``, ``/``, ``.`` and ``,`` are
    skipped so that a formatted number can be passed as shown to agents. Anything else is a
    ValueError: silently dropping a letter would read a wrong complaint number to a caller.
    """
    _check_lang(lang)
    out: list[str] = []
    for ch in s:
        if "0" <= ch <= "9":
            out.append(f"digit_{ch}")
        elif "०" <= ch <= "९":
            out.append(f"digit_{ord(ch) - _DEVANAGARI_ZERO}")
        elif ch not in _DIGIT_SEPARATORS:
            raise ValueError(f"cannot read {ch!r} in {s!r} digit by digit")
    return out


def sound_files(prompt_ids: Iterable[str]) -> list[str]:
    """Asterisk sound names (no extension, no language) for prompt ids."""
    return [f"{SOUND_DIR}/{pid}" for pid in prompt_ids]


def playback_arg(prompt_ids: Iterable[str]) -> str:
    """Argument for the ``Playback`` application (``EXEC Playback`` over AGI): names joined
    by ``&`` so a whole number plays as one command. ``STREAM FILE`` takes one name only."""
    return "&".join(sound_files(prompt_ids))
