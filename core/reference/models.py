"""The reference data's records: places, departments, categories, officers.

Each record validates itself (codes, names, SLA, ladder order); what needs other records (a
district's division, a thana's tehsil, an officer's place) is checked by the loader, which
knows the file and row to name in its error.
"""

from __future__ import annotations

import enum
import itertools
import re
import unicodedata
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, model_validator


class Level(enum.StrEnum):
    """A jurisdiction level, lowest first. ``cm_office`` is the top of every escalation ladder."""

    THANA = "thana"
    TEHSIL = "tehsil"
    DISTRICT = "district"
    DIVISION = "division"
    STATE = "state"
    CM_OFFICE = "cm_office"

    @property
    def rank(self) -> int:
        """Height of the level: thana 0 ... cm_office 5."""
        return _LEVEL_ORDER.index(self)


_LEVEL_ORDER = tuple(Level)
#: Every ladder ends with these two: the state head of department, then the CM office.
LADDER_TOP = (Level.STATE, Level.CM_OFFICE)
DEFAULT_SLA_DAYS = 7

_CODE = re.compile(r"[a-z][a-z0-9_]*")
_CATEGORY_CODE = re.compile(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*")
_OFFICER_CODE = re.compile(r"[a-z][a-z0-9_.]*")
_ASCII_LETTER = re.compile(r"[A-Za-z]")
_FIELD = re.compile(r"\{[^{}]*\}")


def _is_devanagari(ch: str) -> bool:
    return "\u0900" <= ch <= "\u097f"


def _code(value: str) -> str:
    if not _CODE.fullmatch(value):
        raise ValueError(f"{value!r} is not a code (lower-case ASCII letters, digits and _)")
    return value


def _category_code(value: str) -> str:
    if not _CATEGORY_CODE.fullmatch(value):
        raise ValueError(f"{value!r} is not a category code (<department>.<name>)")
    return value


def _officer_code(value: str) -> str:
    if not _OFFICER_CODE.fullmatch(value):
        raise ValueError(f"{value!r} is not an officer code (lower-case ASCII, digits, _ and .)")
    return value


def _english(value: str) -> str:
    value = " ".join(value.split())
    if not value:
        raise ValueError("empty English name")
    if any(_is_devanagari(ch) for ch in value):
        raise ValueError(f"English name {value!r} has Devanagari in it (columns swapped?)")
    return value


def _hindi(value: str) -> str:
    value = unicodedata.normalize("NFC", " ".join(value.split()))
    if not any(_is_devanagari(ch) for ch in value):
        raise ValueError(f"Hindi name {value!r} has no Devanagari")
    if _ASCII_LETTER.search(value):
        raise ValueError(f"Hindi name {value!r} has Latin letters in it")
    return value


def _hindi_template(value: str) -> str:
    """A Hindi designation with ``{place}``-style fields: the text around them must be Hindi."""
    _hindi(_FIELD.sub("", value))
    return unicodedata.normalize("NFC", " ".join(value.split()))


Code = Annotated[str, Field(max_length=40), AfterValidator(_code)]
CategoryCode = Annotated[str, Field(max_length=64), AfterValidator(_category_code)]
OfficerCode = Annotated[str, Field(max_length=64), AfterValidator(_officer_code)]
EnglishName = Annotated[str, Field(max_length=200), AfterValidator(_english)]
HindiName = Annotated[str, Field(max_length=200), AfterValidator(_hindi)]
HindiTemplate = Annotated[str, Field(max_length=200), AfterValidator(_hindi_template)]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class State(_Record):
    code: Code
    name_en: EnglishName
    name_hi: HindiName


class Division(_Record):
    """A revenue division (mandal), headed by a divisional commissioner."""

    code: Code
    name_en: EnglishName
    name_hi: HindiName
    #: Code of the district where the division's offices sit.
    headquarters: Code
    #: Local Government Directory code, when the row comes from the government's list.
    lgd_code: int | None = Field(default=None, gt=0)


class District(_Record):
    code: Code
    division: Code
    name_en: EnglishName
    name_hi: HindiName
    lgd_code: int | None = Field(default=None, gt=0)


class Tehsil(_Record):
    code: Code
    district: Code
    name_en: EnglishName
    name_hi: HindiName
    lgd_code: int | None = Field(default=None, gt=0)


class Thana(_Record):
    """A police station. ``tehsil`` is None where the data does not say which tehsil it is in."""

    code: Code
    district: Code
    tehsil: Code | None = None
    name_en: EnglishName
    name_hi: HindiName


class Department(_Record):
    code: Code
    name_en: EnglishName
    name_hi: HindiName


class Category(_Record):
    """What a complaint is about: its department, SLA, first level and escalation ladder."""

    code: CategoryCode
    department: Code
    name_en: EnglishName
    name_hi: HindiName
    sla_days: int = Field(default=DEFAULT_SLA_DAYS, gt=0, le=365)
    first_level: Level
    ladder: tuple[Level, ...]

    @model_validator(mode="before")
    @classmethod
    def _split_ladder(cls, data: Any) -> Any:
        """A CSV cell holds the ladder as ``thana>district>...``."""
        if isinstance(data, Mapping) and isinstance(data.get("ladder"), str):
            data = dict(data)
            data["ladder"] = [step.strip() for step in data["ladder"].split(">")]
        return data

    @model_validator(mode="after")
    def _check(self) -> Category:
        if not self.code.startswith(self.department + "."):
            raise ValueError(
                f"code {self.code!r} must start with its department {self.department}."
            )
        ranks = [level.rank for level in self.ladder]
        if any(lower >= upper for lower, upper in itertools.pairwise(ranks)):
            raise ValueError(
                "ladder " + ">".join(self.ladder) + " is not strictly upward "
                "(thana < tehsil < district < division < state < cm_office)"
            )
        if self.ladder[-2:] != LADDER_TOP:
            raise ValueError("ladder " + ">".join(self.ladder) + " does not end state>cm_office")
        if self.first_level not in self.ladder:
            raise ValueError(f"first_level {self.first_level} is not in the ladder")
        if self.first_level is Level.CM_OFFICE:
            raise ValueError("first_level cannot be cm_office: it is for escalation only")
        return self


class PostTemplate(_Record):
    """A department's post at one level; the demo has one officer of it at every such place."""

    department: Code
    level: Level
    designation_en: EnglishName
    designation_hi: HindiTemplate

    @model_validator(mode="after")
    def _check(self) -> PostTemplate:
        if self.level is Level.CM_OFFICE:
            raise ValueError("cm_office is not a department's post (list it in officers.csv)")
        allowed = {"place"} | (
            {"district"} if self.level.rank <= Level.DISTRICT.rank else set[str]()
        )
        for text in (self.designation_en, self.designation_hi):
            try:
                text.format(**dict.fromkeys(allowed, ""))
            except (KeyError, IndexError, ValueError) as exc:
                names = ", ".join("{" + name + "}" for name in sorted(allowed))
                raise ValueError(
                    f"designation {text!r} does not format ({exc!r}); at {self.level} "
                    f"only {names} may be used"
                ) from None
        return self


class Officer(_Record):
    """A post that complaints are assigned to; ``code`` is its stable username."""

    code: OfficerCode
    #: None only at cm_office, which belongs to no department.
    department: Code | None = None
    level: Level
    #: Code of the thana, tehsil, district or division; the state's code at state and cm_office.
    place: Code
    designation_en: EnglishName
    designation_hi: HindiName

    @model_validator(mode="after")
    def _check(self) -> Officer:
        if (self.level is Level.CM_OFFICE) != (self.department is None):
            raise ValueError("an officer has a department unless, and only unless, at cm_office")
        return self


#: The key of a post: (department or None for the CM office, level, place code).
PostKey = tuple[str | None, Level, str]


class Reference(BaseModel):
    """All reference data, validated, with lookups by code. Built by ``load_reference``."""

    model_config = ConfigDict(frozen=True)

    version: str
    #: SHA-256 over the files it was loaded from: tells the seeder whether anything changed.
    digest: str
    state: State
    divisions: dict[str, Division]
    districts: dict[str, District]
    tehsils: dict[str, Tehsil]
    thanas: dict[str, Thana]
    departments: dict[str, Department]
    categories: dict[str, Category]
    officers: dict[str, Officer]

    _posts: dict[PostKey, Officer] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        self._posts = {(o.department, o.level, o.place): o for o in self.officers.values()}

    def officer_at(self, department: str | None, level: Level, place: str) -> Officer | None:
        """The officer holding the department's post at ``level`` for ``place``, if any."""
        return self._posts.get((department, level, place))

    def categories_of(self, department: str) -> list[Category]:
        return [c for c in self.categories.values() if c.department == department]

    def districts_of(self, division: str) -> list[District]:
        return [d for d in self.districts.values() if d.division == division]

    def tehsils_of(self, district: str) -> list[Tehsil]:
        return [t for t in self.tehsils.values() if t.district == district]

    def thanas_of(self, district: str) -> list[Thana]:
        return [t for t in self.thanas.values() if t.district == district]
