"""Which officer a complaint goes to, and where it goes when it is overdue.

The rule: start at the category's first level, at the most specific place the complaint gives
for that level (its thana, its tehsil - given, or known from its thana -, its district, the
district's division, the state); if no officer of the category's department holds that post,
go one step up the category's ladder. A complaint whose category or place is unknown or
inconsistent, or that names no district, is ``Unroutable`` with the reason, so the review page
can list it: never silently unassigned. These functions never raise on bad input.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.reference.models import Category, Level, Officer, Reference


@dataclass(frozen=True, slots=True)
class Routed:
    """The responsible officer, and why each lower level of the ladder was passed over."""

    officer: Officer
    level: Level
    passed_over: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Unroutable:
    """No officer can be chosen; ``reason`` says why, in words for the review page."""

    reason: str


def next_level(category: Category, current: Level) -> Level | None:
    """The level an overdue complaint at ``current`` escalates to; None above cm_office."""
    for level in category.ladder:
        if level.rank > current.rank:
            return level
    return None


def route(
    reference: Reference,
    category: str,
    district: str | None,
    *,
    tehsil: str | None = None,
    thana: str | None = None,
    start_level: Level | None = None,
) -> Routed | Unroutable:
    """The officer responsible for a complaint of ``category`` at the given place.

    ``start_level`` (for escalation) starts the climb higher than the category's first level;
    it never starts lower. The CM office is reached only when asked for by ``start_level``:
    a complaint is first assigned to a department, the CM office only receives escalations.
    """
    found = reference.categories.get(category)
    if found is None:
        return Unroutable(f"unknown category {category!r}")
    if district is None:
        return Unroutable("no district given: the place of the complaint is unknown")
    place = reference.districts.get(district)
    if place is None:
        return Unroutable(f"unknown district {district!r}")

    tehsil_code: str | None = None
    if tehsil is not None:
        known_tehsil = reference.tehsils.get(tehsil)
        if known_tehsil is None:
            return Unroutable(f"unknown tehsil {tehsil!r}")
        if known_tehsil.district != district:
            return Unroutable(
                f"tehsil {tehsil!r} is in district {known_tehsil.district!r}, not {district!r}"
            )
        tehsil_code = tehsil
    if thana is not None:
        known_thana = reference.thanas.get(thana)
        if known_thana is None:
            return Unroutable(f"unknown thana {thana!r}")
        if known_thana.district != district:
            return Unroutable(
                f"thana {thana!r} is in district {known_thana.district!r}, not {district!r}"
            )
        if known_thana.tehsil is not None:
            if tehsil_code is not None and tehsil_code != known_thana.tehsil:
                return Unroutable(
                    f"thana {thana!r} is in tehsil {known_thana.tehsil!r}, not {tehsil_code!r}"
                )
            tehsil_code = known_thana.tehsil

    place_at: dict[Level, str | None] = {
        Level.THANA: thana,
        Level.TEHSIL: tehsil_code,
        Level.DISTRICT: district,
        Level.DIVISION: place.division,
        Level.STATE: reference.state.code,
        Level.CM_OFFICE: reference.state.code,
    }
    start = found.first_level
    if start_level is not None and start_level.rank > start.rank:
        start = start_level
    passed_over: list[str] = []
    for level in found.ladder:
        if level.rank < start.rank or (level is Level.CM_OFFICE and start is not Level.CM_OFFICE):
            continue
        code = place_at[level]
        if code is None:
            if level is Level.TEHSIL and thana is not None:
                passed_over.append(f"tehsil of thana {thana!r} not known")
            else:
                passed_over.append(f"no {level} given")
            continue
        department = None if level is Level.CM_OFFICE else found.department
        officer = reference.officer_at(department, level, code)
        if officer is not None:
            return Routed(officer, level, tuple(passed_over))
        passed_over.append(f"no {found.department} officer at {level} {code!r}")
    if not passed_over:
        return Unroutable(f"category {category!r} has no level at or above {start} to climb to")
    return Unroutable(f"no officer for {category!r}: " + "; ".join(passed_over))


def escalate(
    reference: Reference,
    category: str,
    district: str | None,
    current: Level,
    *,
    tehsil: str | None = None,
    thana: str | None = None,
) -> Routed | Unroutable:
    """The officer an overdue complaint now at ``current`` goes to: the next staffed level up."""
    found = reference.categories.get(category)
    if found is None:
        return Unroutable(f"unknown category {category!r}")
    above = next_level(found, current)
    if above is None:
        return Unroutable(f"already at {current}, the top of the ladder")
    return route(reference, category, district, tehsil=tehsil, thana=thana, start_level=above)
