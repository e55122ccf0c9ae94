"""Reference data of the complaint lifecycle: places, departments, categories, officers, routing.

Pure code and versioned data files (``data/``): the seeder, the API and the SLA worker import it.
"""

from core.reference.loader import DEFAULT_DATA_DIR, ReferenceDataError, load_reference
from core.reference.models import (
    Category,
    Department,
    District,
    Division,
    Level,
    Officer,
    Reference,
    Tehsil,
    Thana,
)
from core.reference.routing import Routed, Unroutable, escalate, next_level, route

__all__ = [
    "DEFAULT_DATA_DIR",
    "Category",
    "Department",
    "District",
    "Division",
    "Level",
    "Officer",
    "Reference",
    "ReferenceDataError",
    "Routed",
    "Tehsil",
    "Thana",
    "Unroutable",
    "escalate",
    "load_reference",
    "next_level",
    "route",
]
