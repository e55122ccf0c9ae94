"""The reference data: the shipped files pass and are complete; the loader refuses bad files,
naming the file and line of each problem."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from core.reference import (
    DEFAULT_DATA_DIR,
    Level,
    Reference,
    ReferenceDataError,
    load_reference,
)
from core.reference.loader import FILES


@pytest.fixture(scope="module")
def shipped() -> Reference:
    return load_reference()


# --- the shipped data -------------------------------------------------------------------------


def test_shipped_data_has_the_18_divisions_and_75_districts_of_up(shipped: Reference) -> None:
    assert len(shipped.divisions) == 18
    assert len(shipped.districts) == 75
    assert shipped.state.code == "up"
    assert sum(len(shipped.districts_of(d)) for d in shipped.divisions) == 75


def test_district_to_division_mapping(shipped: Reference) -> None:
    def names(division: str) -> set[str]:
        return {d.name_en for d in shipped.districts_of(division)}

    assert names("lucknow") == {
        "Lucknow",
        "Unnao",
        "Rae Bareli",
        "Sitapur",
        "Hardoi",
        "Lakhimpur Kheri",
    }
    assert names("kanpur") == {
        "Kanpur Nagar",
        "Kanpur Dehat",
        "Auraiya",
        "Etawah",
        "Farrukhabad",
        "Kannauj",
    }
    assert names("ayodhya") == {"Ayodhya", "Ambedkar Nagar", "Amethi", "Barabanki", "Sultanpur"}
    assert names("meerut") == {
        "Meerut",
        "Baghpat",
        "Bulandshahr",
        "Gautam Buddh Nagar",
        "Ghaziabad",
        "Hapur",
    }
    assert names("saharanpur") == {"Saharanpur", "Muzaffarnagar", "Shamli"}
    assert names("moradabad") == {"Moradabad", "Amroha", "Bijnor", "Rampur", "Sambhal"}
    assert names("aligarh") == {"Aligarh", "Etah", "Hathras", "Kasganj"}
    assert names("prayagraj") == {"Prayagraj", "Fatehpur", "Kaushambi", "Pratapgarh"}
    assert names("devipatan") == {"Gonda", "Bahraich", "Balrampur", "Shravasti"}
    assert names("chitrakoot_dham") == {"Banda", "Chitrakoot", "Hamirpur", "Mahoba"}
    for division in shipped.divisions.values():
        assert shipped.districts[division.headquarters].division == division.code


def test_every_district_has_its_sadar_tehsil_and_a_thana(shipped: Reference) -> None:
    for code in shipped.districts:
        assert f"{code}_sadar" in shipped.tehsils, code
        assert shipped.tehsils[f"{code}_sadar"].district == code
        assert shipped.thanas_of(code), code
    lucknow = {t.name_en for t in shipped.thanas_of("lucknow")}
    assert {"Hazratganj", "Gomti Nagar"} <= lucknow


def test_departments_and_categories(shipped: Reference) -> None:
    assert len(shipped.departments) >= 12
    assert {
        "police",
        "health",
        "revenue",
        "power",
        "rural_dev",
        "urban_dev",
        "panchayati_raj",
        "food",
        "basic_edu",
        "irrigation",
        "social_welfare",
        "women_child",
        "transport",
    } <= set(shipped.departments)
    for department in shipped.departments:
        assert 3 <= len(shipped.categories_of(department)) <= 6, department
    firsts = {
        dept: {c.first_level for c in shipped.categories_of(dept)}
        for dept in ("police", "revenue", "health")
    }
    assert Level.THANA in firsts["police"]
    assert firsts["revenue"] == {Level.TEHSIL}
    assert firsts["health"] == {Level.DISTRICT}
    assert all(c.sla_days > 0 for c in shipped.categories.values())
    assert any(c.sla_days == 7 for c in shipped.categories.values())


def test_every_post_a_ladder_needs_is_held_for_every_place(shipped: Reference) -> None:
    places = {
        Level.THANA: list(shipped.thanas),
        Level.TEHSIL: list(shipped.tehsils),
        Level.DISTRICT: list(shipped.districts),
        Level.DIVISION: list(shipped.divisions),
        Level.STATE: [shipped.state.code],
    }
    for category in shipped.categories.values():
        for level in category.ladder:
            if level is Level.CM_OFFICE or level.rank < category.first_level.rank:
                continue
            for place in places[level]:
                officer = shipped.officer_at(category.department, level, place)
                assert officer is not None, (category.code, level, place)
    assert shipped.officer_at(None, Level.CM_OFFICE, "up") is not None
    assert shipped.officer_at("police", Level.DISTRICT, "lucknow") is not None
    commissioner = shipped.officer_at("police", Level.DISTRICT, "lucknow")
    assert commissioner is not None and "Commissioner of Police" in commissioner.designation_en
    sdm = shipped.officer_at("revenue", Level.TEHSIL, "lucknow_sadar")
    assert sdm is not None and sdm.designation_en.startswith("Sub-Divisional Magistrate")


def test_officer_codes_fit_a_username(shipped: Reference) -> None:
    # users.username is String(64); codes are the officers' usernames.
    assert all(len(code) <= 64 and code.isascii() for code in shipped.officers)
    assert all(code == officer.code for code, officer in shipped.officers.items())


def test_hindi_names_are_devanagari(shipped: Reference) -> None:
    def devanagari(text: str) -> bool:
        return any("\u0900" <= ch <= "\u097f" for ch in text)

    named = [
        *shipped.divisions.values(),
        *shipped.districts.values(),
        *shipped.tehsils.values(),
        *shipped.thanas.values(),
        *shipped.departments.values(),
        *shipped.categories.values(),
    ]
    assert all(devanagari(record.name_hi) for record in named)
    assert all(devanagari(o.designation_hi) for o in shipped.officers.values())


def test_digest_changes_with_the_files(tmp_path: Path, shipped: Reference) -> None:
    data = _copy(tmp_path)
    assert load_reference(data).digest == shipped.digest
    _append(data, "tehsils.csv", "lucknow_kakori,lucknow,Kakori,काकोरी")
    assert load_reference(data).digest != shipped.digest


# --- bad files --------------------------------------------------------------------------------


def _copy(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(DEFAULT_DATA_DIR, data)
    return data


def _line_of(path: Path, text: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} not in {path}")


def _replace(data: Path, name: str, old: str, new: str) -> int:
    """Replace the line holding ``old`` (once); returns its line number."""
    path = data / name
    number = _line_of(path, old)
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")
    return number


def _sub_in_row(data: Path, name: str, row: str, old: str, new: str) -> int:
    """In the line starting with ``row``, replace ``old`` by ``new``; returns its line number."""
    path = data / name
    lines = path.read_text(encoding="utf-8").split("\n")
    (index,) = [i for i, line in enumerate(lines) if line.startswith(row)]
    assert old in lines[index], (old, lines[index])
    lines[index] = lines[index].replace(old, new)
    path.write_text("\n".join(lines), encoding="utf-8")
    return index + 1


def _append(data: Path, name: str, line: str) -> int:
    path = data / name
    text = path.read_text(encoding="utf-8")
    path.write_text(text + line + "\n", encoding="utf-8")
    return len(text.splitlines()) + 1


def _refused(data: Path) -> list[str]:
    with pytest.raises(ReferenceDataError) as caught:
        load_reference(data)
    assert str(caught.value).startswith("reference data refused")
    return caught.value.problems


def _has(problems: list[str], where: str, *words: str) -> bool:
    return any(p.startswith(where + ":") and all(w in p for w in words) for p in problems)


Edit = Callable[[Path], tuple[str, int, tuple[str, ...]]]


def _dup_district(d: Path) -> tuple[str, int, tuple[str, ...]]:
    n = _append(d, "districts.csv", "agra,agra,Agra Again,आगरा")
    return "districts.csv", n, ("code 'agra' repeated", "districts.csv line")


def _unknown_division(d: Path) -> tuple[str, int, tuple[str, ...]]:
    n = _replace(d, "districts.csv", "unnao,lucknow,", "unnao,lucknw,")
    return "districts.csv", n, ("division 'lucknw' not in divisions.csv",)


def _tehsil_unknown_district(d: Path) -> tuple[str, int, tuple[str, ...]]:
    n = _append(d, "tehsils.csv", "nowhere_sadar,nowhere,Nowhere Sadar,कहीं सदर")
    return "tehsils.csv", n, ("district 'nowhere' not in districts.csv",)


def _thana_unknown_district(d: Path) -> tuple[str, int, tuple[str, ...]]:
    n = _append(d, "thanas.csv", "nowhere_kotwali,nowhere,,Kotwali Nowhere,कोतवाली कहीं")
    return "thanas.csv", n, ("district 'nowhere' not in districts.csv",)


def _thana_tehsil_elsewhere(d: Path) -> tuple[str, int, tuple[str, ...]]:
    n = _sub_in_row(d, "thanas.csv", "lucknow_hazratganj,", ",lucknow_sadar,", ",agra_sadar,")
    return "thanas.csv", n, ("tehsil 'agra_sadar' is in district 'agra', not 'lucknow'",)


def _thana_unknown_tehsil(d: Path) -> tuple[str, int, tuple[str, ...]]:
    n = _replace(
        d,
        "thanas.csv",
        "lucknow_hazratganj,lucknow,lucknow_sadar",
        "lucknow_hazratganj,lucknow,lucknow_nagar",
    )
    return "thanas.csv", n, ("tehsil 'lucknow_nagar' not in tehsils.csv",)


def _ladder_downward(d: Path) -> tuple[str, int, tuple[str, ...]]:
    n = _sub_in_row(
        d,
        "categories.csv",
        "police.harassment,",
        "thana>district>division",
        "thana>division>district",
    )
    return "categories.csv", n, ("not strictly upward",)


def _ladder_unknown_level(d: Path) -> tuple[str, int, tuple[str, ...]]:
    n = _sub_in_row(d, "categories.csv", "health.hygiene,", ",district>", ",block>district>")
    return "categories.csv", n, ("ladder.0", "thana")


def _ladder_short(d: Path) -> tuple[str, int, tuple[str, ...]]:
    n = _sub_in_row(d, "categories.csv", "revenue.mutation,", ">state>cm_office", ">state")
    return "categories.csv", n, ("does not end state>cm_office",)


def _ladder_repeats(d: Path) -> tuple[str, int, tuple[str, ...]]:
    n = _sub_in_row(d, "categories.csv", "power.meter,", ",tehsil>", ",tehsil>tehsil>")
    return "categories.csv", n, ("not strictly upward",)


def _first_level_outside_ladder(d: Path) -> tuple[str, int, tuple[str, ...]]:
    n = _sub_in_row(d, "categories.csv", "health.hygiene,", ",,district,", ",,thana,")
    return "categories.csv", n, ("first_level thana is not in the ladder",)


def _sla_zero(d: Path) -> tuple[str, int, tuple[str, ...]]:
    n = _replace(d, "categories.csv", "मीटर ख़राब,,tehsil", "मीटर ख़राब,0,tehsil")
    return "categories.csv", n, ("sla_days", "greater than 0")


def _sla_words(d: Path) -> tuple[str, int, tuple[str, ...]]:
    n = _replace(d, "categories.csv", "मीटर ख़राब,,tehsil", "मीटर ख़राब,seven,tehsil")
    return "categories.csv", n, ("sla_days", "integer")


def _hindi_in_latin(d: Path) -> tuple[str, int, tuple[str, ...]]:
    n = _replace(d, "districts.csv", "unnao,lucknow,Unnao,उन्नाव", "unnao,lucknow,Unnao,Unnao")
    return "districts.csv", n, ("name_hi", "no Devanagari")


def _names_swapped(d: Path) -> tuple[str, int, tuple[str, ...]]:
    n = _replace(d, "divisions.csv", "basti,Basti,बस्ती,basti", "basti,बस्ती,Basti,basti")
    return "divisions.csv", n, ("name_en", "Devanagari in it")


def _bad_code(d: Path) -> tuple[str, int, tuple[str, ...]]:
    n = _append(d, "tehsils.csv", "Lucknow City,lucknow,Lucknow City,लखनऊ नगर")
    return "tehsils.csv", n, ("code", "is not a code")


def _category_unknown_department(d: Path) -> tuple[str, int, tuple[str, ...]]:
    n = _append(
        d,
        "categories.csv",
        "forest.tree_felling,forest,Illegal tree felling,अवैध पेड़ कटान,,district,"
        "district>division>state>cm_office",
    )
    return "categories.csv", n, ("department 'forest' not in departments.csv",)


def _category_prefix(d: Path) -> tuple[str, int, tuple[str, ...]]:
    n = _append(
        d,
        "categories.csv",
        "health.street_dogs,urban_dev,Stray dogs,आवारा कुत्ते,,district,"
        "district>division>state>cm_office",
    )
    return "categories.csv", n, ("must start with its department urban_dev.",)


def _category_duplicate(d: Path) -> tuple[str, int, tuple[str, ...]]:
    n = _append(
        d,
        "categories.csv",
        "power.meter,power,Meter again,मीटर फिर,,tehsil,tehsil>district>division>state>cm_office",
    )
    return "categories.csv", n, ("code 'power.meter' repeated",)


def _post_unknown_field(d: Path) -> tuple[str, int, tuple[str, ...]]:
    n = _replace(
        d,
        "posts.csv",
        'health,district,"Chief Medical Officer, {place}"',
        'health,district,"Chief Medical Officer, {tehsil}"',
    )
    return "posts.csv", n, ("does not format", "{district}, {place}")


def _post_district_at_division(d: Path) -> tuple[str, int, tuple[str, ...]]:
    n = _replace(
        d,
        "posts.csv",
        '"Divisional Commissioner, {place}"',
        '"Divisional Commissioner, {district}"',
    )
    return "posts.csv", n, ("does not format", "only {place}")


def _post_at_cm_office(d: Path) -> tuple[str, int, tuple[str, ...]]:
    n = _append(d, "posts.csv", 'health,cm_office,"Health desk, CM Office","स्वास्थ्य डेस्क"')
    return "posts.csv", n, ("cm_office is not a department's post",)


def _officer_unknown_place(d: Path) -> tuple[str, int, tuple[str, ...]]:
    n = _append(
        d, "officers.csv", 'sho.nowhere,police,thana,lucknow_nowhere,"SHO, Nowhere","थानाध्यक्ष"'
    )
    return "officers.csv", n, ("place 'lucknow_nowhere' is not a thana",)


def _officer_same_post(d: Path) -> tuple[str, int, tuple[str, ...]]:
    n = _append(
        d,
        "officers.csv",
        'cp.lucknow,police,district,lucknow,"Police Commissioner, Lucknow","पुलिस आयुक्त, लखनऊ"',
    )
    return "officers.csv", n, ("the same post as officers.csv line",)


def _officer_code_taken(d: Path) -> tuple[str, int, tuple[str, ...]]:
    n = _append(
        d,
        "officers.csv",
        'police.district.agra,police,district,meerut,"Police, Meerut","पुलिस, मेरठ"',
    )
    return "officers.csv", n, ("officer code 'police.district.agra' is also the code",)


def _officer_without_department(d: Path) -> tuple[str, int, tuple[str, ...]]:
    n = _append(d, "officers.csv", 'dm.agra,,district,agra,"DM, Agra","जिलाधिकारी, आगरा"')
    return "officers.csv", n, ("has a department unless",)


def _department_without_state_post(d: Path) -> tuple[str, int, tuple[str, ...]]:
    _replace(
        d,
        "posts.csv",
        'transport,state,"Transport Commissioner, {place}","परिवहन आयुक्त, {place}"',
        "",
    )
    n = _line_of(d / "departments.csv", "transport,Transport")
    return "departments.csv", n, ("no officer at state level",)


def _ladder_level_unstaffed(d: Path) -> tuple[str, int, tuple[str, ...]]:
    _replace(
        d,
        "posts.csv",
        'pwd,division,"Superintending Engineer (Public Works), {place} Division",'
        '"अधीक्षण अभियंता (लोक निर्माण), {place} मण्डल"',
        "",
    )
    n = _line_of(d / "categories.csv", "pwd.road_damaged")
    return "categories.csv", n, ("ladder level division has no pwd officer",)


def _department_without_category(d: Path) -> tuple[str, int, tuple[str, ...]]:
    n = _append(d, "departments.csv", "forest,Forest,वन विभाग")
    return "departments.csv", n, ("has no category",)


def _division_without_district(d: Path) -> tuple[str, int, tuple[str, ...]]:
    n = _append(d, "divisions.csv", "bundelkhand,Bundelkhand,बुंदेलखंड,jhansi")
    return "divisions.csv", n, ("has no district",)


def _headquarters_elsewhere(d: Path) -> tuple[str, int, tuple[str, ...]]:
    n = _replace(
        d, "divisions.csv", "devipatan,Devipatan,देवीपाटन,gonda", "devipatan,Devipatan,देवीपाटन,basti"
    )
    return "divisions.csv", n, ("headquarters 'basti' is not a district of division 'devipatan'",)


def _short_row(d: Path) -> tuple[str, int, tuple[str, ...]]:
    n = _append(d, "tehsils.csv", "lucknow_kakori,lucknow,Kakori")
    return "tehsils.csv", n, ("3 fields, the header has 4",)


def _lgd_repeated(d: Path) -> tuple[str, int, tuple[str, ...]]:
    """A government list's LGD codes are unique too; rows without one leave the cell empty."""
    path = d / "districts.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines = [ln if ln.startswith("#") else ln + "," for ln in lines]
    lines = [
        ln.replace("code,division,name_en,name_hi,", "code,division,name_en,name_hi,lgd_code")
        for ln in lines
    ]
    lines = [ln + "118" if ln.startswith(("agra,agra,", "mathura,agra,")) else ln for ln in lines]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return "districts.csv", _line_of(path, "mathura,"), ("lgd_code 118 repeated",)


BAD_FILES: dict[str, Edit] = {
    "duplicate district code": _dup_district,
    "district in an unknown division": _unknown_division,
    "tehsil in an unknown district": _tehsil_unknown_district,
    "thana in an unknown district": _thana_unknown_district,
    "thana's tehsil in another district": _thana_tehsil_elsewhere,
    "thana in an unknown tehsil": _thana_unknown_tehsil,
    "ladder going down": _ladder_downward,
    "ladder with an unknown level": _ladder_unknown_level,
    "ladder not ending at cm_office": _ladder_short,
    "ladder repeating a level": _ladder_repeats,
    "first level outside the ladder": _first_level_outside_ladder,
    "SLA of 0 days": _sla_zero,
    "SLA not a number": _sla_words,
    "Hindi name in Latin letters": _hindi_in_latin,
    "English and Hindi swapped": _names_swapped,
    "code with capitals and a space": _bad_code,
    "category of an unknown department": _category_unknown_department,
    "category code of another department": _category_prefix,
    "duplicate category": _category_duplicate,
    "post designation with an unknown field": _post_unknown_field,
    "division post naming a district": _post_district_at_division,
    "department post at cm_office": _post_at_cm_office,
    "officer at an unknown place": _officer_unknown_place,
    "two officers for one post": _officer_same_post,
    "officer code already taken": _officer_code_taken,
    "district officer without department": _officer_without_department,
    "department without a state head": _department_without_state_post,
    "ladder level nobody holds": _ladder_level_unstaffed,
    "department without categories": _department_without_category,
    "division without districts": _division_without_district,
    "headquarters outside the division": _headquarters_elsewhere,
    "row with too few fields": _short_row,
    "repeated LGD code": _lgd_repeated,
}


@pytest.mark.parametrize("edit", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_loader_refuses_a_bad_file_naming_its_row(tmp_path: Path, edit: Edit) -> None:
    data = _copy(tmp_path)
    name, line, words = edit(data)
    problems = _refused(data)
    assert _has(problems, f"{name} line {line}", *words), problems


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    data = _copy(tmp_path)
    edits = (_dup_district, _thana_unknown_tehsil, _sla_zero, _officer_unknown_place)
    expected = [edit(data) for edit in edits]
    problems = _refused(data)
    for name, line, words in expected:
        assert _has(problems, f"{name} line {line}", *words), problems


@pytest.mark.parametrize("edit", [_hindi_in_latin, _post_unknown_field, _bad_code])
def test_a_refused_row_is_reported_once(tmp_path: Path, edit: Edit) -> None:
    """Rows naming a refused row (tehsils of a refused district, officers of a refused post)
    are not reported again: the official sees the one mistake to fix."""
    data = _copy(tmp_path)
    name, line, _ = edit(data)
    problems = _refused(data)
    assert len(problems) == 1 and problems[0].startswith(f"{name} line {line}:"), problems


@pytest.mark.parametrize("name", FILES)
def test_loader_refuses_a_missing_file(tmp_path: Path, name: str) -> None:
    data = _copy(tmp_path)
    (data / name).unlink()
    problems = _refused(data)
    assert any(p.startswith(f"{name}: missing") for p in problems), problems


def test_loader_refuses_unknown_and_missing_columns(tmp_path: Path) -> None:
    data = _copy(tmp_path)
    header = _replace(
        data, "tehsils.csv", "code,district,name_en,name_hi", "code,distrct,name_en,name_hi"
    )
    officers = _replace(
        data,
        "officers.csv",
        "code,department,level,place,designation_en,designation_hi",
        "code,department,level,place,designation_en",
    )
    problems = _refused(data)
    assert _has(problems, f"tehsils.csv line {header}", "unknown column(s) ['distrct']")
    assert _has(problems, f"tehsils.csv line {header}", "missing column(s) ['district']")
    assert _has(problems, f"officers.csv line {officers}", "missing column(s) ['designation_hi']")


def test_loader_refuses_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    data = _copy(tmp_path)
    (data / "thanas.csv").write_bytes(b"code,district,tehsil,name_en,name_hi\n" + b"\xff\n")
    problems = _refused(data)
    assert any(p.startswith("thanas.csv: not UTF-8") for p in problems), problems


def test_loader_refuses_a_bad_manifest(tmp_path: Path) -> None:
    data = _copy(tmp_path)
    (data / "manifest.json").write_text(
        '{"version": "1", "state": {"code": "up", "name_en": "Uttar Pradesh", "name_hi": "UP"}}',
        encoding="utf-8",
    )
    problems = _refused(data)
    assert _has(problems, "manifest.json", "state.name_hi", "no Devanagari"), problems


# --- what a government list may look like ----------------------------------------------------


def test_spreadsheet_export_with_bom_crlf_and_lgd_codes_loads(tmp_path: Path) -> None:
    """Full lists come from spreadsheets: a BOM, CRLF line ends and an LGD code column."""
    data = _copy(tmp_path)
    path = data / "tehsils.csv"
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if not ln.startswith("#")]
    rows = [lines[0] + ",lgd_code"] + [f"{ln},{700 + i}" for i, ln in enumerate(lines[1:])]
    path.write_bytes("\ufeff".encode() + "\r\n".join(rows).encode() + b"\r\n")
    reference = load_reference(data)
    assert reference.tehsils["lucknow_sadar"].lgd_code is not None
    assert len(reference.tehsils) == len(lines) - 1


def test_a_full_size_list_in_the_same_format_loads(tmp_path: Path) -> None:
    """About 350 tehsils and 1,500 thanas in UP: a list of that size loads and gets officers."""
    data = _copy(tmp_path)
    districts = list(load_reference(data).districts)
    with (data / "tehsils.csv").open("a", encoding="utf-8") as tehsils:
        for i, district in enumerate(districts * 2):
            tehsils.write(f"{district}_extra_{i},{district},Extra {i},अतिरिक्त {i}\n")
    with (data / "thanas.csv").open("a", encoding="utf-8") as thanas:
        for i, district in enumerate(districts * 18):
            thanas.write(
                f"{district}_station_{i},{district},{district}_sadar,Station {i},थाना {i}\n"
            )
    reference = load_reference(data)
    assert len(reference.thanas) > 1500
    officer = reference.officer_at("police", Level.THANA, f"{districts[3]}_station_3")
    assert officer is not None and officer.designation_en.startswith("Station House Officer")


def test_officers_csv_replaces_a_generated_post(tmp_path: Path) -> None:
    data = _copy(tmp_path)
    _append(
        data,
        "officers.csv",
        'cmo.lucknow,health,district,lucknow,"Chief Medical Officer (Dr. A), Lucknow",'
        '"मुख्य चिकित्सा अधिकारी, लखनऊ"',
    )
    reference = load_reference(data)
    officer = reference.officer_at("health", Level.DISTRICT, "lucknow")
    assert officer is not None and officer.code == "cmo.lucknow"
    assert "health.district.lucknow" not in reference.officers


def test_empty_sla_means_seven_days(shipped: Reference) -> None:
    meter = shipped.categories["power.meter"]
    assert meter.sla_days == 7
    text = (DEFAULT_DATA_DIR / "categories.csv").read_text(encoding="utf-8")
    assert "Faulty meter,मीटर ख़राब,,tehsil" in text
