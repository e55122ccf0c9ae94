"""Reference data the desk picks codes from (:mod:`api.services.reference`): read-only, the
same for every request until the data set changes, so clients may cache it (its digest is the
ETag)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import CurrentUser, ReferenceDep
from api.schemas import DepartmentOut, DistrictOut
from api.services import reference as reference_data

router = APIRouter(prefix="/reference", tags=["reference"])

#: Private: only signed-in staff may read it; an hour, since it changes only with a release.
CACHE_CONTROL = "private, max-age=3600"


def _cacheable(response: Response, digest: str) -> None:
    response.headers["Cache-Control"] = CACHE_CONTROL
    response.headers["ETag"] = f'"{digest}"'


@router.get("/departments")
async def list_departments(
    user: CurrentUser, reference: ReferenceDep, response: Response
) -> list[DepartmentOut]:
    _cacheable(response, reference.digest)
    return reference_data.departments(reference)


@router.get("/districts")
async def list_districts(
    user: CurrentUser, reference: ReferenceDep, response: Response
) -> list[DistrictOut]:
    _cacheable(response, reference.digest)
    return reference_data.districts(reference)
