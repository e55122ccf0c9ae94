"""SMS templates as data: the shipped file loads, every rule of the validator refuses what it
should (naming the problem), segment counts follow the GSM-7 / UCS-2 limits, rendering bounds
every value."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.domain.notifications import SmsKind
from lifecycle.sms_templates import (
    DEFAULT_TEMPLATES,
    LANGUAGES,
    MAX_SEGMENTS,
    PLACEHOLDERS,
    TemplateError,
    default_templates,
    load_templates,
    sms_segments,
)


def shipped() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DEFAULT_TEMPLATES.read_text(encoding="utf-8"))
    return data


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "templates.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def test_the_shipped_templates_cover_every_kind_in_both_languages() -> None:
    templates = default_templates()
    for kind in SmsKind:
        for language in LANGUAGES:
            assert 1 <= templates.worst_case_segments(kind, language) <= MAX_SEGMENTS
            assert len(templates.text(kind, language).dlt_template_id) == 19


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("{" * 80, 1),  # an extension character is two septets
        ("{" * 81, 2),
        ("क" * 70, 1),
        ("क" * 71, 2),
        ("क" * 134, 2),
        ("क" * 135, 3),
        ("a" * 100 + "क", 2),  # one Devanagari letter makes the whole SMS UCS-2
    ],
)
def test_segments_follow_gsm7_and_ucs2_limits(text: str, segments: int) -> None:
    assert sms_segments(text) == segments


@pytest.mark.parametrize(
    ("kind", "language", "text", "problem"),
    [
        ("assigned", "hi", "शिकायत {complaint_numbr} भेजी गई", "unknown placeholder"),
        ("assigned", "hi", "शिकायत {complaint_number} {officer_en}", "other language"),
        ("assigned", "hi", "Complaint {complaint_number} sent", "no Devanagari"),
        ("assigned", "en", "शिकायत {complaint_number}", "Devanagari in the English"),
        ("assigned", "en", "Complaint {complaint_number!r}", "plain name"),
        ("resolved", "hi", "शिकायत {complaint_number} " + "क" * 200, "segments at its longest"),
    ],
)
def test_a_wrong_template_is_refused_at_load(
    tmp_path: Path, kind: str, language: str, text: str, problem: str
) -> None:
    data = shipped()
    data["templates"][kind][language]["text"] = text
    with pytest.raises(TemplateError, match=problem):
        load_templates(write(tmp_path, data))


def test_a_missing_kind_or_a_malformed_dlt_id_is_refused(tmp_path: Path) -> None:
    data = shipped()
    del data["templates"]["escalated"]
    with pytest.raises(TemplateError, match="escalated"):
        load_templates(write(tmp_path, data))
    data = shipped()
    data["templates"]["registered"]["hi"]["dlt_template_id"] = "12345"
    with pytest.raises(TemplateError, match="dlt_template_id"):
        load_templates(write(tmp_path, data))


def test_render_fills_in_and_bounds_each_value() -> None:
    templates = default_templates()
    long_officer = "थानाध्यक्ष\nहज़रतगंज " + "क" * 60
    sms = templates.render(
        SmsKind.ASSIGNED, "hi", {"complaint_number": "1000000014", "officer_hi": long_officer}
    )
    assert "1000000014" in sms.text
    assert "\n" not in sms.text
    officer = sms.text.split(" निस्तारण हेतु ")[1].split(" को ")[0]
    assert len(officer) == PLACEHOLDERS["officer_hi"]
    assert officer.endswith("…")
    assert officer.startswith("थानाध्यक्ष हज़रतगंज")
    assert sms.segments == sms_segments(sms.text)
    assert sms.dlt_template_id == templates.text(SmsKind.ASSIGNED, "hi").dlt_template_id


def test_render_refuses_unknown_or_missing_parameters_and_languages() -> None:
    templates = default_templates()
    with pytest.raises(ValueError, match="needs parameter"):
        templates.render(SmsKind.ASSIGNED, "hi", {"complaint_number": "1000000014"})
    with pytest.raises(ValueError, match="unknown SMS parameter"):
        templates.render(SmsKind.RESOLVED, "hi", {"complaint_number": "1", "officr": "x"})
    with pytest.raises(ValueError, match="language"):
        templates.render(SmsKind.RESOLVED, "ta", {"complaint_number": "1000000014"})
