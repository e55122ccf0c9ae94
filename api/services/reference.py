"""Reference data: the tables complaints point at, seeded from ``core.reference``, and the
read-only lists the desk picks codes from.

The API answers from the :class:`Reference` it loaded once at start (it is the same data the
tables hold, and routing needs it in memory anyway); the tables exist so complaints can refer
to places, categories and officers' posts with foreign keys. Seeding is an upsert by code, in
the order the foreign keys need; a data set whose digest is already recorded costs one query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from api.schemas import (
    CategoryOut,
    DepartmentOut,
    DistrictOut,
    PlaceOut,
    ThanaOut,
)
from core.db.models import (
    Base,
    RefCategory,
    RefDepartment,
    RefDistrict,
    RefDivision,
    ReferenceManifest,
    RefOfficer,
    RefTehsil,
    RefThana,
)
from core.reference import Reference

#: The one row of ``reference_manifest`` this data set is recorded under.
MANIFEST_NAME = "reference"


@dataclass(frozen=True, slots=True)
class Seeded:
    """What seeding did: ``changed`` is False when the recorded digest was already this one."""

    version: str
    changed: bool
    #: Rows written per table (0 everywhere when unchanged).
    rows: dict[str, int]


def _rows(reference: Reference) -> list[tuple[type[Base], list[dict[str, Any]]]]:
    """Every table's rows, in foreign-key order."""
    return [
        (
            RefDivision,
            [
                {
                    "code": d.code,
                    "name_en": d.name_en,
                    "name_hi": d.name_hi,
                    "headquarters": d.headquarters,
                    "lgd_code": d.lgd_code,
                }
                for d in reference.divisions.values()
            ],
        ),
        (
            RefDistrict,
            [
                {
                    "code": d.code,
                    "division": d.division,
                    "name_en": d.name_en,
                    "name_hi": d.name_hi,
                    "lgd_code": d.lgd_code,
                }
                for d in reference.districts.values()
            ],
        ),
        (
            RefTehsil,
            [
                {
                    "code": t.code,
                    "district": t.district,
                    "name_en": t.name_en,
                    "name_hi": t.name_hi,
                    "lgd_code": t.lgd_code,
                }
                for t in reference.tehsils.values()
            ],
        ),
        (
            RefThana,
            [
                {
                    "code": t.code,
                    "district": t.district,
                    "tehsil": t.tehsil,
                    "name_en": t.name_en,
                    "name_hi": t.name_hi,
                }
                for t in reference.thanas.values()
            ],
        ),
        (
            RefDepartment,
            [
                {"code": d.code, "name_en": d.name_en, "name_hi": d.name_hi}
                for d in reference.departments.values()
            ],
        ),
        (
            RefCategory,
            [
                {
                    "code": c.code,
                    "department": c.department,
                    "name_en": c.name_en,
                    "name_hi": c.name_hi,
                    "sla_days": c.sla_days,
                    "first_level": c.first_level,
                    "ladder": [level.value for level in c.ladder],
                }
                for c in reference.categories.values()
            ],
        ),
        (
            RefOfficer,
            [
                {
                    "code": o.code,
                    "department": o.department,
                    "level": o.level,
                    "place": o.place,
                    "designation_en": o.designation_en,
                    "designation_hi": o.designation_hi,
                }
                for o in reference.officers.values()
            ],
        ),
    ]


async def _upsert(session: AsyncSession, table: type[Base], rows: Sequence[dict[str, Any]]) -> int:
    if not rows:
        return 0
    statement = insert(table)
    columns = [name for name in rows[0] if name != "code"]
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["code"],
            set_={name: statement.excluded[name] for name in columns},
        ),
        list(rows),
    )
    return len(rows)


async def seed(session: AsyncSession, reference: Reference) -> Seeded:
    """Upsert the reference tables from ``reference`` unless its digest is the one recorded
    (not committed: the caller decides). Rows are never deleted: codes are stable, and
    complaints keep pointing at a post the data no longer lists."""
    recorded = (
        await session.execute(
            select(ReferenceManifest.digest).where(ReferenceManifest.name == MANIFEST_NAME)
        )
    ).scalar_one_or_none()
    if recorded == reference.digest:
        return Seeded(reference.version, changed=False, rows={})
    written = {
        table.__tablename__: await _upsert(session, table, rows) for table, rows in _rows(reference)
    }
    manifest = insert(ReferenceManifest).values(
        name=MANIFEST_NAME, version=reference.version, digest=reference.digest
    )
    await session.execute(
        manifest.on_conflict_do_update(
            index_elements=["name"],
            set_={
                "version": manifest.excluded.version,
                "digest": manifest.excluded.digest,
                "seeded_at": manifest.excluded.seeded_at,
            },
        )
    )
    return Seeded(reference.version, changed=True, rows=written)


async def link_officer(session: AsyncSession, officer: str, user_id: int) -> None:
    """Make ``user_id`` the login of the officer's post ``officer`` (a post has one login)."""
    await session.execute(
        update(RefOfficer).where(RefOfficer.code == officer).values(user_id=user_id)
    )


#: The lists below, built once per data set (they are the same for every request).
_departments: dict[str, list[DepartmentOut]] = {}
_districts: dict[str, list[DistrictOut]] = {}


def departments(reference: Reference) -> list[DepartmentOut]:
    """Every department with its categories (code, names, SLA days, first level)."""
    if reference.digest not in _departments:
        _departments[reference.digest] = _build_departments(reference)
    return _departments[reference.digest]


def districts(reference: Reference) -> list[DistrictOut]:
    """Every district with its division, tehsils and thanas."""
    if reference.digest not in _districts:
        _districts[reference.digest] = _build_districts(reference)
    return _districts[reference.digest]


def _build_departments(reference: Reference) -> list[DepartmentOut]:
    return [
        DepartmentOut(
            code=department.code,
            name_en=department.name_en,
            name_hi=department.name_hi,
            categories=[
                CategoryOut(
                    code=category.code,
                    name_en=category.name_en,
                    name_hi=category.name_hi,
                    sla_days=category.sla_days,
                    first_level=category.first_level,
                )
                for category in reference.categories_of(department.code)
            ],
        )
        for department in reference.departments.values()
    ]


def _build_districts(reference: Reference) -> list[DistrictOut]:
    return [
        DistrictOut(
            code=district.code,
            name_en=district.name_en,
            name_hi=district.name_hi,
            division=PlaceOut.model_validate(reference.divisions[district.division]),
            tehsils=[PlaceOut.model_validate(t) for t in reference.tehsils_of(district.code)],
            thanas=[ThanaOut.model_validate(t) for t in reference.thanas_of(district.code)],
        )
        for district in reference.districts.values()
    ]
