"""Routing a complaint to its officer and escalating it up its category's ladder."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.reference import (
    DEFAULT_DATA_DIR,
    Level,
    Reference,
    Routed,
    Unroutable,
    escalate,
    load_reference,
    next_level,
    route,
)

SHIPPED = load_reference()


@pytest.fixture(scope="module")
def ref() -> Reference:
    return SHIPPED


# --- examples ---------------------------------------------------------------------------------


def _routed(result: Routed | Unroutable) -> Routed:
    assert isinstance(result, Routed), result
    return result


def test_police_complaint_goes_to_the_sho_of_its_thana(ref: Reference) -> None:
    result = _routed(route(ref, "police.fir_not_registered", "lucknow", thana="lucknow_hazratganj"))
    assert result.officer.code == "police.thana.lucknow_hazratganj"
    assert result.level is Level.THANA and result.passed_over == ()
    assert result.officer.designation_en == "Station House Officer, Thana Hazratganj, Lucknow"
    assert result.officer.designation_hi == "थाना प्रभारी, थाना हज़रतगंज, लखनऊ"


def test_police_complaint_without_thana_goes_up_to_the_district(ref: Reference) -> None:
    result = _routed(route(ref, "police.harassment", "lucknow"))
    assert result.officer.code == "police.district.lucknow"
    assert result.officer.designation_en == "Commissioner of Police, Lucknow"
    assert result.passed_over == ("no thana given",)


def test_cyber_fraud_starts_at_the_district_even_with_a_thana(ref: Reference) -> None:
    result = _routed(route(ref, "police.cyber_fraud", "lucknow", thana="lucknow_hazratganj"))
    assert result.level is Level.DISTRICT and result.passed_over == ()


def test_revenue_complaint_finds_its_tehsil_through_the_thana(ref: Reference) -> None:
    result = _routed(route(ref, "revenue.mutation", "lucknow", thana="lucknow_hazratganj"))
    assert result.officer.code == "revenue.tehsil.lucknow_sadar"
    assert result.officer.designation_en.startswith("Sub-Divisional Magistrate, Lucknow Sadar")


def test_revenue_complaint_goes_to_the_dm_when_the_tehsil_is_unknown(ref: Reference) -> None:
    result = _routed(route(ref, "revenue.mutation", "lucknow", thana="lucknow_gomti_nagar"))
    assert result.officer.code == "revenue.district.lucknow"
    assert result.officer.designation_en == "District Magistrate, Lucknow"
    assert result.passed_over == ("tehsil of thana 'lucknow_gomti_nagar' not known",)


def test_revenue_complaint_with_a_tehsil(ref: Reference) -> None:
    result = _routed(route(ref, "revenue.measurement", "lucknow", tehsil="lucknow_malihabad"))
    assert result.officer.code == "revenue.tehsil.lucknow_malihabad"


def test_health_complaint_goes_to_the_cmo(ref: Reference) -> None:
    result = _routed(route(ref, "health.medicines", "lucknow", tehsil="lucknow_sadar"))
    assert result.officer.code == "health.district.lucknow"
    assert result.officer.designation_en == "Chief Medical Officer, Lucknow"


def test_roadways_complaint_starts_at_the_division(ref: Reference) -> None:
    result = _routed(route(ref, "transport.roadways_bus", "unnao"))
    assert result.officer.code == "transport.division.lucknow"


@pytest.mark.parametrize(
    ("category", "district", "tehsil", "thana", "reason"),
    [
        ("police.no_such", "lucknow", None, None, "unknown category 'police.no_such'"),
        ("health.medicines", None, None, None, "no district given"),
        ("health.medicines", "lucknw", None, None, "unknown district 'lucknw'"),
        ("revenue.mutation", "agra", "lucknow_sadar", None, "is in district 'lucknow'"),
        ("police.harassment", "agra", None, "lucknow_hazratganj", "is in district 'lucknow'"),
        ("revenue.mutation", "lucknow", "lucknow_nowhere", None, "unknown tehsil"),
        ("police.harassment", "lucknow", None, "lucknow_nowhere", "unknown thana"),
        (
            "police.harassment",
            "lucknow",
            "lucknow_malihabad",
            "lucknow_hazratganj",
            "is in tehsil 'lucknow_sadar', not 'lucknow_malihabad'",
        ),
    ],
)
def test_unroutable_complaints_say_why(
    ref: Reference,
    category: str,
    district: str | None,
    tehsil: str | None,
    thana: str | None,
    reason: str,
) -> None:
    result = route(ref, category, district, tehsil=tehsil, thana=thana)
    assert isinstance(result, Unroutable)
    assert reason in result.reason


def test_routing_climbs_past_places_that_have_no_officer(tmp_path: Path) -> None:
    """Electricity SDOs listed for one tehsil only: elsewhere the complaint goes up."""
    data = tmp_path / "data"
    shutil.copytree(DEFAULT_DATA_DIR, data)
    posts = data / "posts.csv"
    posts.write_text(
        "\n".join(
            line
            for line in posts.read_text(encoding="utf-8").splitlines()
            if not line.startswith("power,tehsil,")
        ),
        encoding="utf-8",
    )
    with (data / "officers.csv").open("a", encoding="utf-8") as officers:
        officers.write(
            'sdo.malihabad,power,tehsil,lucknow_malihabad,"SDO (Electricity), Malihabad",'
            '"उपखण्ड अधिकारी (विद्युत), मलिहाबाद"\n'
        )
    partial = load_reference(data)
    here = _routed(route(partial, "power.no_supply", "lucknow", tehsil="lucknow_malihabad"))
    assert here.officer.code == "sdo.malihabad"
    there = _routed(route(partial, "power.no_supply", "lucknow", tehsil="lucknow_sadar"))
    assert there.officer.code == "power.district.lucknow"
    assert there.passed_over == ("no power officer at tehsil 'lucknow_sadar'",)


# --- property: routing always yields the right officer or a reason ---------------------------

_CATEGORIES = sorted(SHIPPED.categories)
_DISTRICTS = sorted(SHIPPED.districts)
_TEHSILS = sorted(SHIPPED.tehsils)
_THANAS = sorted(SHIPPED.thanas)
_junk = st.text(max_size=12)


@st.composite
def complaints(draw: st.DrawFn) -> tuple[str, str | None, str | None, str | None]:
    """(category, district, tehsil, thana): mostly consistent places, often not, some junk."""
    category = draw(st.one_of(st.sampled_from(_CATEGORIES), _junk))
    thana = draw(st.one_of(st.none(), st.sampled_from(_THANAS), _junk))
    tehsil = draw(st.one_of(st.none(), st.sampled_from(_TEHSILS), _junk))
    own_district = SHIPPED.thanas[thana].district if thana in SHIPPED.thanas else None
    if own_district is None and tehsil in SHIPPED.tehsils:
        own_district = SHIPPED.tehsils[tehsil].district
    district = draw(
        st.one_of(
            st.just(own_district) if own_district else st.sampled_from(_DISTRICTS),
            st.none(),
            st.sampled_from(_DISTRICTS),
            _junk,
        )
    )
    return category, district, tehsil, thana


def _place_at(
    ref: Reference, district: str, tehsil: str | None, thana: str | None
) -> dict[Level, str | None]:
    if tehsil is None and thana is not None:
        tehsil = ref.thanas[thana].tehsil
    return {
        Level.THANA: thana,
        Level.TEHSIL: tehsil,
        Level.DISTRICT: district,
        Level.DIVISION: ref.districts[district].division,
        Level.STATE: ref.state.code,
    }


def _consistent(
    ref: Reference, category: str, district: str | None, tehsil: str | None, thana: str | None
) -> bool:
    if category not in ref.categories or district not in ref.districts:
        return False
    if tehsil is not None and (
        tehsil not in ref.tehsils or ref.tehsils[tehsil].district != district
    ):
        return False
    if thana is not None:
        if thana not in ref.thanas or ref.thanas[thana].district != district:
            return False
        own = ref.thanas[thana].tehsil
        if tehsil is not None and own is not None and own != tehsil:
            return False
    return True


@given(complaints())
@settings(max_examples=2000)
def test_routing_gives_an_officer_of_the_department_or_a_reason(
    complaint: tuple[str, str | None, str | None, str | None],
) -> None:
    ref = SHIPPED
    category, district, tehsil, thana = complaint
    result = route(ref, category, district, tehsil=tehsil, thana=thana)
    if not _consistent(ref, category, district, tehsil, thana):
        assert isinstance(result, Unroutable) and result.reason
        return
    # Every valid place routes: the shipped data has a state head for every department.
    assert isinstance(result, Routed), result
    assert district is not None
    found = ref.categories[category]
    officer = result.officer
    assert officer.department == found.department
    assert officer.level is result.level and officer.level in found.ladder
    assert found.first_level.rank <= officer.level.rank <= Level.STATE.rank
    places = _place_at(ref, district, tehsil, thana)
    assert officer.place == places[officer.level]
    # Most specific first: no held post was passed over on the way up.
    for level in found.ladder:
        if found.first_level.rank <= level.rank < officer.level.rank:
            place = places[level]
            assert place is None or ref.officer_at(found.department, level, place) is None
    assert len(result.passed_over) == sum(
        1 for level in found.ladder if found.first_level.rank <= level.rank < officer.level.rank
    )


# --- escalation -------------------------------------------------------------------------------


def test_escalation_climbs_strictly_and_ends_at_the_cm_office(ref: Reference) -> None:
    for category in ref.categories.values():
        level: Level | None = category.first_level
        climbed: list[Level] = []
        while level is not None:
            climbed.append(level)
            level = next_level(category, level)
        assert all(a.rank < b.rank for a, b in itertools.pairwise(climbed))
        assert climbed[-2:] == [Level.STATE, Level.CM_OFFICE]
        assert set(climbed) <= set(category.ladder)


def test_next_level_from_a_level_outside_the_ladder(ref: Reference) -> None:
    police = ref.categories["police.harassment"]
    assert next_level(police, Level.TEHSIL) is Level.DISTRICT
    assert next_level(police, Level.THANA) is Level.DISTRICT
    assert next_level(police, Level.CM_OFFICE) is None


@given(st.sampled_from(_THANAS), st.sampled_from(_CATEGORIES))
@settings(max_examples=300)
def test_escalating_an_overdue_complaint_reaches_the_cm_office(thana: str, category: str) -> None:
    ref = SHIPPED
    district = ref.thanas[thana].district
    routed = route(ref, category, district, thana=thana)
    assert isinstance(routed, Routed)
    levels = [routed.level]
    while True:
        result = escalate(ref, category, district, levels[-1], thana=thana)
        if isinstance(result, Unroutable):
            assert "top of the ladder" in result.reason
            break
        expected_department = None if result.level is Level.CM_OFFICE else routed.officer.department
        assert result.officer.department == expected_department
        levels.append(result.level)
    assert all(a.rank < b.rank for a, b in itertools.pairwise(levels))
    assert levels[-1] is Level.CM_OFFICE
    assert levels[-2] is Level.STATE


def test_escalation_examples(ref: Reference) -> None:
    sho = escalate(
        ref, "police.fir_not_registered", "lucknow", Level.THANA, thana="lucknow_hazratganj"
    )
    assert _routed(sho).officer.code == "police.district.lucknow"
    dig = escalate(ref, "police.fir_not_registered", "unnao", Level.DISTRICT)
    assert _routed(dig).officer.code == "police.division.lucknow"
    head = escalate(ref, "health.medicines", "agra", Level.DIVISION)
    assert _routed(head).officer.code == "health.state.up"
    cm = escalate(ref, "health.medicines", "agra", Level.STATE)
    assert _routed(cm).officer.code == "cm_office.up"
    top = escalate(ref, "health.medicines", "agra", Level.CM_OFFICE)
    assert isinstance(top, Unroutable)
    unknown = escalate(ref, "health.nothing", "agra", Level.DISTRICT)
    assert isinstance(unknown, Unroutable) and "unknown category" in unknown.reason
