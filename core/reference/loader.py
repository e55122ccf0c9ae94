"""Load the reference data from its directory and refuse anything inconsistent.

The files are UTF-8 CSV (a spreadsheet's BOM is accepted) with one record per line; lines that
start with ``#`` are comments and blank lines are skipped; the first other line is the header.
An empty cell means "not given" (the field's default, or an error if the field is required).
Every problem is collected and reported together, each naming its file and line, so that an
official fixing a government list sees all of them at once.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError

from core.reference.models import (
    Category,
    Department,
    District,
    Division,
    Level,
    Officer,
    PostKey,
    PostTemplate,
    Reference,
    State,
    Tehsil,
    Thana,
)

DEFAULT_DATA_DIR = Path(__file__).with_name("data")
#: The file listing the places of each level below the state.
_PLACE_FILE = {
    Level.THANA: "thanas.csv",
    Level.TEHSIL: "tehsils.csv",
    Level.DISTRICT: "districts.csv",
    Level.DIVISION: "divisions.csv",
}
MANIFEST = "manifest.json"
#: The files of a reference directory, in the order they are read.
FILES = (
    MANIFEST,
    "divisions.csv",
    "districts.csv",
    "tehsils.csv",
    "thanas.csv",
    "departments.csv",
    "categories.csv",
    "posts.csv",
    "officers.csv",
)
#: Problems shown in the exception's message; all of them are in ``ReferenceDataError.problems``.
SHOWN_PROBLEMS = 40

R = TypeVar("R", bound=BaseModel)
T = TypeVar("T")


class ReferenceDataError(ValueError):
    """The reference data was refused; ``problems`` lists every reason, each with file and line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = "\n  ".join(problems[:SHOWN_PROBLEMS])
        more = len(problems) - SHOWN_PROBLEMS
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(f"reference data refused, {len(problems)} problem(s):\n  {shown}{tail}")


class _Manifest(BaseModel):
    version: str
    state: State


@dataclass(frozen=True, slots=True)
class _Row(Generic[T]):
    where: str
    record: T


class _Loader:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.problems: list[str] = []
        self.unreadable = False
        #: (file, code) of rows refused on their own: references to them are not reported again.
        self.refused: set[tuple[str, str]] = set()
        #: (department, level) of refused posts.csv rows: their missing officers are not reported.
        self.refused_posts: set[tuple[str, str]] = set()

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def missing(self, where: str, what: str, code: str, file: str) -> None:
        """``code`` of a ``what`` is not in ``file`` (unless its row there was refused)."""
        if (file, code) not in self.refused:
            self.problem(where, f"{what} {code!r} not in {file}")

    def _validation(self, where: str, error: ValidationError) -> None:
        for detail in error.errors():
            field = ".".join(str(part) for part in detail["loc"])
            message = detail["msg"].removeprefix("Value error, ")
            self.problem(where, f"{field}: {message}" if field else message)

    def manifest(self) -> _Manifest | None:
        path = self.root / MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except FileNotFoundError:
            self.problem(MANIFEST, f"missing (looked in {self.root})")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self.problem(MANIFEST, f"not valid UTF-8 JSON: {exc}")
        else:
            try:
                return _Manifest.model_validate(data)
            except ValidationError as exc:
                self._validation(MANIFEST, exc)
        self.unreadable = True
        return None

    def csv(self, name: str, model: type[R]) -> list[_Row[R]]:
        """The file's records, each with where it came from; bad rows are reported and left out."""
        path = self.root / name
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            self.problem(name, f"missing (looked in {self.root})")
            self.unreadable = True
            return []
        except UnicodeDecodeError as exc:
            self.problem(name, f"not UTF-8: {exc}")
            self.unreadable = True
            return []
        known = list(model.model_fields)
        required = {f for f, info in model.model_fields.items() if info.is_required()}
        header: list[str] | None = None
        rows: list[_Row[R]] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            where = f"{name} line {number}"
            cells = [cell.strip() for cell in next(csv.reader([line]))]
            if header is None:
                header = cells
                unknown = [c for c in cells if c not in known]
                missing = sorted(required - set(cells))
                repeated = sorted({c for c in cells if cells.count(c) > 1})
                if unknown:
                    self.problem(where, f"unknown column(s) {unknown}; the columns are {known}")
                if missing:
                    self.problem(where, f"missing column(s) {missing}")
                if repeated:
                    self.problem(where, f"repeated column(s) {repeated}")
                if unknown or missing or repeated:
                    self.unreadable = True
                    return []
                continue
            if len(cells) != len(header):
                self.problem(where, f"{len(cells)} fields, the header has {len(header)}")
                continue
            given = {column: cell for column, cell in zip(header, cells, strict=True) if cell}
            try:
                rows.append(_Row(where, model.model_validate(given)))
            except ValidationError as exc:
                self._validation(where, exc)
                if "code" in given:
                    self.refused.add((name, given["code"]))
                if name == "posts.csv" and {"department", "level"} <= given.keys():
                    self.refused_posts.add((given["department"], given["level"]))
        if header is None:
            self.problem(name, "no header line")
            self.unreadable = True
        return rows

    def unique(self, rows: Iterable[_Row[R]], key: str, what: str = "code") -> dict[str, _Row[R]]:
        """Records by ``key``; a repeated key is a problem naming both lines."""
        seen: dict[str, _Row[R]] = {}
        for row in rows:
            value = getattr(row.record, key)
            if value in seen:
                self.problem(row.where, f"{what} {value!r} repeated (first at {seen[value].where})")
            else:
                seen[value] = row
        return seen

    def unique_lgd(self, rows: Iterable[_Row[R]]) -> None:
        with_lgd = [r for r in rows if getattr(r.record, "lgd_code", None) is not None]
        self.unique(with_lgd, "lgd_code", "lgd_code")


def _records(rows: Mapping[str, _Row[T]]) -> dict[str, T]:
    return {code: row.record for code, row in rows.items()}


def _digest(root: Path) -> str:
    sha = hashlib.sha256()
    for name in FILES:
        sha.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    return sha.hexdigest()


def load_reference(path: Path | str = DEFAULT_DATA_DIR) -> Reference:
    """Read and validate the reference directory at ``path`` (the shipped data by default).

    Raises ``ReferenceDataError`` listing every problem, each with its file and line.
    """
    root = Path(path)
    load = _Loader(root)
    manifest = load.manifest()
    division_rows = load.csv("divisions.csv", Division)
    district_rows = load.csv("districts.csv", District)
    tehsil_rows = load.csv("tehsils.csv", Tehsil)
    thana_rows = load.csv("thanas.csv", Thana)
    department_rows = load.csv("departments.csv", Department)
    category_rows = load.csv("categories.csv", Category)
    post_rows = load.csv("posts.csv", PostTemplate)
    officer_rows = load.csv("officers.csv", Officer)
    if load.unreadable or manifest is None:
        raise ReferenceDataError(load.problems)
    state = manifest.state

    divisions = load.unique(division_rows, "code")
    districts = load.unique(district_rows, "code")
    tehsils = load.unique(tehsil_rows, "code")
    thanas = load.unique(thana_rows, "code")
    departments = load.unique(department_rows, "code")
    categories = load.unique(category_rows, "code")
    load.unique_lgd(division_rows)
    load.unique_lgd(district_rows)
    load.unique_lgd(tehsil_rows)

    _check_places(load, divisions, districts, tehsils, thanas)
    for category_row in categories.values():
        department = category_row.record.department
        if department not in departments:
            load.missing(category_row.where, "department", department, "departments.csv")
    for code, department_row in departments.items():
        if not any(c.record.department == code for c in categories.values()):
            load.problem(
                department_row.where, f"department {code!r} has no category in categories.csv"
            )

    places: dict[Level, dict[str, tuple[str, str, str, str]]] = _places(
        state, divisions, districts, tehsils, thanas
    )
    officers = _officers(load, state, departments, places, post_rows, officer_rows)
    _check_coverage(load, state, departments, categories, officers)
    if load.problems:
        raise ReferenceDataError(load.problems)
    return Reference(
        version=manifest.version,
        digest=_digest(root),
        state=state,
        divisions=_records(divisions),
        districts=_records(districts),
        tehsils=_records(tehsils),
        thanas=_records(thanas),
        departments=_records(departments),
        categories=_records(categories),
        officers={o.record.code: o.record for o in officers.values()},
    )


def _check_places(
    load: _Loader,
    divisions: dict[str, _Row[Division]],
    districts: dict[str, _Row[District]],
    tehsils: dict[str, _Row[Tehsil]],
    thanas: dict[str, _Row[Thana]],
) -> None:
    for district_row in districts.values():
        if district_row.record.division not in divisions:
            load.missing(
                district_row.where, "division", district_row.record.division, "divisions.csv"
            )
    for code, division_row in divisions.items():
        if not any(d.record.division == code for d in districts.values()):
            load.problem(division_row.where, f"division {code!r} has no district in districts.csv")
        hq_code = division_row.record.headquarters
        hq = districts.get(hq_code)
        if hq is None or hq.record.division != code:
            load.problem(
                division_row.where,
                f"headquarters {hq_code!r} is not a district of division {code!r}",
            )
    for tehsil_row in tehsils.values():
        if tehsil_row.record.district not in districts:
            load.missing(tehsil_row.where, "district", tehsil_row.record.district, "districts.csv")
    for thana_row in thanas.values():
        thana = thana_row.record
        if thana.district not in districts:
            load.missing(thana_row.where, "district", thana.district, "districts.csv")
        if thana.tehsil is not None:
            tehsil = tehsils.get(thana.tehsil)
            if tehsil is None:
                load.missing(thana_row.where, "tehsil", thana.tehsil, "tehsils.csv")
            elif tehsil.record.district != thana.district:
                load.problem(
                    thana_row.where,
                    f"tehsil {thana.tehsil!r} is in district {tehsil.record.district!r}, "
                    f"not {thana.district!r}",
                )


def _places(
    state: State,
    divisions: dict[str, _Row[Division]],
    districts: dict[str, _Row[District]],
    tehsils: dict[str, _Row[Tehsil]],
    thanas: dict[str, _Row[Thana]],
) -> dict[Level, dict[str, tuple[str, str, str, str]]]:
    """Every place by level: code -> (name_en, name_hi, district name_en, district name_hi)."""

    def district_names(code: str) -> tuple[str, str]:
        row = districts.get(code)
        return (row.record.name_en, row.record.name_hi) if row else ("", "")

    state_names = (state.name_en, state.name_hi, "", "")
    return {
        Level.THANA: {
            c: (r.record.name_en, r.record.name_hi, *district_names(r.record.district))
            for c, r in thanas.items()
        },
        Level.TEHSIL: {
            c: (r.record.name_en, r.record.name_hi, *district_names(r.record.district))
            for c, r in tehsils.items()
        },
        Level.DISTRICT: {
            c: (r.record.name_en, r.record.name_hi, r.record.name_en, r.record.name_hi)
            for c, r in districts.items()
        },
        Level.DIVISION: {
            c: (r.record.name_en, r.record.name_hi, "", "") for c, r in divisions.items()
        },
        Level.STATE: {state.code: state_names},
        Level.CM_OFFICE: {state.code: state_names},
    }


def _officers(
    load: _Loader,
    state: State,
    departments: dict[str, _Row[Department]],
    places: dict[Level, dict[str, tuple[str, str, str, str]]],
    post_rows: list[_Row[PostTemplate]],
    officer_rows: list[_Row[Officer]],
) -> dict[PostKey, _Row[Officer]]:
    """One officer per post: generated from posts.csv, then replaced or added by officers.csv."""
    posts: dict[PostKey, _Row[Officer]] = {}
    templates: dict[tuple[str, Level], _Row[PostTemplate]] = {}
    for post_row in post_rows:
        template = post_row.record
        pair = (template.department, template.level)
        if pair in templates:
            load.problem(
                post_row.where, f"post {pair[0]} at {pair[1]} repeated ({templates[pair].where})"
            )
            continue
        templates[pair] = post_row
        if template.department not in departments:
            load.missing(post_row.where, "department", template.department, "departments.csv")
            continue
        for place, (name_en, name_hi, district_en, district_hi) in places[template.level].items():
            try:
                officer = Officer(
                    code=f"{template.department}.{template.level}.{place}",
                    department=template.department,
                    level=template.level,
                    place=place,
                    designation_en=template.designation_en.format(
                        place=name_en, district=district_en
                    ),
                    designation_hi=template.designation_hi.format(
                        place=name_hi, district=district_hi
                    ),
                )
            except ValidationError as exc:
                load._validation(f"{post_row.where} (for {template.level} {place})", exc)
                continue
            posts[(officer.department, officer.level, officer.place)] = _Row(
                post_row.where, officer
            )

    named: dict[PostKey, _Row[Officer]] = {}
    for row in officer_rows:
        officer = row.record
        if officer.department is not None and officer.department not in departments:
            load.missing(row.where, "department", officer.department, "departments.csv")
            continue
        if (_PLACE_FILE.get(officer.level, ""), officer.place) in load.refused:
            continue
        if officer.place not in places[officer.level]:
            known = f"state code {state.code!r}" if officer.level.rank >= Level.STATE.rank else ""
            load.problem(
                row.where,
                f"place {officer.place!r} is not a {officer.level}"
                + (f" (use the {known})" if known else ""),
            )
            continue
        key = (officer.department, officer.level, officer.place)
        if key in named:
            load.problem(row.where, f"the same post as {named[key].where}")
            continue
        named[key] = row
        posts[key] = row

    by_code: dict[str, _Row[Officer]] = {}
    for officer_row in posts.values():
        code = officer_row.record.code
        if code in by_code:
            first = by_code[code].where
            load.problem(officer_row.where, f"officer code {code!r} is also the code at {first}")
        else:
            by_code[code] = officer_row
    return posts


def _check_coverage(
    load: _Loader,
    state: State,
    departments: dict[str, _Row[Department]],
    categories: dict[str, _Row[Category]],
    officers: dict[PostKey, _Row[Officer]],
) -> None:
    """Routing can always end somewhere: every ladder level has posts, the state level a head.

    Posts whose posts.csv row was refused (and reported) count as held, to report each mistake once.
    """
    staffed: set[tuple[str | None, str]] = {
        (department, level) for department, level, _ in officers
    } | load.refused_posts
    for code, department_row in departments.items():
        held = (code, Level.STATE, state.code) in officers
        if not held and (code, Level.STATE) not in load.refused_posts:
            load.problem(
                department_row.where,
                f"department {code!r} has no officer at state level "
                "(add its state post to posts.csv or officers.csv)",
            )
    for row in categories.values():
        category = row.record
        if category.department not in departments:
            continue
        for level in category.ladder:
            if level.rank < category.first_level.rank or level is Level.CM_OFFICE:
                continue
            if (category.department, level) not in staffed:
                load.problem(
                    row.where,
                    f"ladder level {level} has no {category.department} officer anywhere "
                    "(posts.csv or officers.csv)",
                )
    if not any(level is Level.CM_OFFICE for _, level, _ in officers):
        load.problem("officers.csv", "no officer at cm_office, the top of every ladder")
