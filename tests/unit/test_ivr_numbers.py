"""Hindi / Indian-English numbers as prompt fragments: exact cases and properties."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ivr.catalogue import LANGS, load_catalogue
from ivr.numbers import (
    NUMBER_FRAGMENT_IDS,
    digit_fragments,
    number_fragments,
    playback_arg,
    sound_files,
)

CATALOGUE = load_catalogue()

# Typed independently of prompts.json so that an accidental edit there fails here. Forms:
# Central Hindi Directorate's 1980 standard list and Wikipedia "Hindustani numerals"
# (छह, तिरपन, उन्यासी, -नवे for 91-99).
HINDI_0_99 = """
शून्य एक दो तीन चार पाँच छह सात आठ नौ
दस ग्यारह बारह तेरह चौदह पंद्रह सोलह सत्रह अठारह उन्नीस
बीस इक्कीस बाईस तेईस चौबीस पच्चीस छब्बीस सत्ताईस अट्ठाईस उनतीस
तीस इकतीस बत्तीस तैंतीस चौंतीस पैंतीस छत्तीस सैंतीस अड़तीस उनतालीस
चालीस इकतालीस बयालीस तैंतालीस चवालीस पैंतालीस छियालीस सैंतालीस अड़तालीस उनचास
पचास इक्यावन बावन तिरपन चौवन पचपन छप्पन सत्तावन अट्ठावन उनसठ
साठ इकसठ बासठ तिरसठ चौंसठ पैंसठ छियासठ सड़सठ अड़सठ उनहत्तर
सत्तर इकहत्तर बहत्तर तिहत्तर चौहत्तर पचहत्तर छिहत्तर सतहत्तर अठहत्तर उन्यासी
अस्सी इक्यासी बयासी तिरासी चौरासी पचासी छियासी सत्तासी अट्ठासी नवासी
नब्बे इक्यानवे बानवे तिरानवे चौरानवे पचानवे छियानवे सत्तानवे अट्ठानवे निन्यानवे
""".split()  # noqa: SIM905 - ten per line, as a reviewer checks them

UNITS = {"num_thousand": 1_000, "num_lakh": 100_000}


def words(n: int, lang: str) -> str:
    return " ".join(CATALOGUE[f].text(lang) for f in number_fragments(n, lang))


def value_of(fragments: list[str]) -> int:
    """Independent reader of a fragment list (what a listener computes)."""
    total = current = 0
    for frag in fragments:
        if frag == "num_hundred":
            current = (current or 1) * 100
        elif frag in UNITS:
            total += current * UNITS[frag]
            current = 0
        elif frag == "num_crore":  # crore scales everything said so far (सौ करोड़, लाख करोड़)
            total = (total + current) * 10_000_000
            current = 0
        else:
            current += int(frag.removeprefix("num_"))
    return total + current


def test_hindi_words_0_to_99_are_the_standard_forms() -> None:
    assert len(HINDI_0_99) == 100
    for n, word in enumerate(HINDI_0_99):
        assert number_fragments(n, "hi") == [f"num_{n}"]
        assert CATALOGUE[f"num_{n}"].text("hi") == word, n


@pytest.mark.parametrize(
    ("n", "hi", "en"),
    [
        (0, "शून्य", "zero"),
        (7, "सात", "seven"),
        (89, "नवासी", "eighty-nine"),
        (100, "सौ", "one hundred"),
        (101, "एक सौ एक", "one hundred one"),
        (250, "दो सौ पचास", "two hundred fifty"),
        (1000, "एक हज़ार", "one thousand"),
        (1076, "एक हज़ार छिहत्तर", "one thousand seventy-six"),
        (1100, "एक हज़ार एक सौ", "one thousand one hundred"),
        (99_999, "निन्यानवे हज़ार नौ सौ निन्यानवे", "ninety-nine thousand nine hundred ninety-nine"),
        (1_00_000, "एक लाख", "one lakh"),
        (1_20_000, "एक लाख बीस हज़ार", "one lakh twenty thousand"),
        (10_00_500, "दस लाख पाँच सौ", "ten lakh five hundred"),
        (1_00_00_000, "एक करोड़", "one crore"),
        (
            12_34_56_789,
            "बारह करोड़ चौंतीस लाख छप्पन हज़ार सात सौ नवासी",
            "twelve crore thirty-four lakh fifty-six thousand seven hundred eighty-nine",
        ),
        (1_00_00_00_000, "सौ करोड़", "one hundred crore"),
        (1_05_00_00_000, "एक सौ पाँच करोड़", "one hundred five crore"),
        (10**12, "एक लाख करोड़", "one lakh crore"),
        (10**14, "एक करोड़ करोड़", "one crore crore"),
    ],
)
def test_known_numbers(n: int, hi: str, en: str) -> None:
    assert words(n, "hi") == hi
    assert words(n, "en") == en


def test_fragment_ids_are_language_neutral() -> None:
    assert number_fragments(1076, "hi") == ["num_1", "num_thousand", "num_76"]
    assert number_fragments(1076, "en") == number_fragments(1076, "hi")


@given(st.integers(min_value=0, max_value=10**12))
@example(0)
@example(10**7 - 1)
@example(10**7)
@example(10**9)
@example(10**12)
def test_every_number_uses_catalogued_fragments_and_reads_back(n: int) -> None:
    for lang in LANGS:
        frags = number_fragments(n, lang)
        assert frags
        assert set(frags) <= NUMBER_FRAGMENT_IDS
        for frag in frags:
            assert CATALOGUE[frag].text(lang)
        assert value_of(frags) == n
        assert ("num_0" in frags) == (n == 0)


@given(st.integers(min_value=1, max_value=10**7 - 1))
def test_below_a_crore_no_scale_word_repeats(n: int) -> None:
    frags = number_fragments(n, "hi")
    for unit in ("num_hundred", "num_thousand", "num_lakh"):
        assert frags.count(unit) <= 1


def test_bad_numbers_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        number_fragments(-1)
    with pytest.raises(TypeError):
        number_fragments(True)
    with pytest.raises(TypeError):
        number_fragments(1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="language"):
        number_fragments(1, "ur")


@given(st.text(alphabet="0123456789", max_size=20))
def test_digits_read_one_by_one(s: str) -> None:
    for lang in LANGS:
        assert digit_fragments(s, lang) == [f"digit_{c}" for c in s]


def test_digit_reading_of_formatted_and_devanagari_numbers() -> None:
    assert digit_fragments("98765 43210") == digit_fragments("9876543210")
    assert digit_fragments("2024/00-12") == [f"digit_{c}" for c in "20240012"]
    assert digit_fragments("१०७६") == ["digit_1", "digit_0", "digit_7", "digit_6"]
    spoken = " ".join(CATALOGUE[f].text("hi") for f in digit_fragments("1076"))
    assert spoken == "एक शून्य सात छह"


@pytest.mark.parametrize("bad", ["UP123", "12a", "+91", "½"])
def test_digit_reading_refuses_what_it_cannot_say(bad: str) -> None:
    with pytest.raises(ValueError, match="digit by digit"):
        digit_fragments(bad)


def test_sound_names_for_the_dialplan() -> None:
    frags = number_fragments(1076)
    assert sound_files(frags) == ["helpline/num_1", "helpline/num_thousand", "helpline/num_76"]
    assert playback_arg(frags) == "helpline/num_1&helpline/num_thousand&helpline/num_76"
