"""The helpline's day: "today" for budgets, supervisors' numbers and a complaint's days open.

The helpline is in Uttar Pradesh, so its day is India Standard Time's, whatever the server's
time zone. IST has had no daylight saving since 1945, so a fixed offset is exact and needs no
tz database.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Final

#: India Standard Time.
IST: Final = timezone(timedelta(hours=5, minutes=30), "IST")


def helpline_day(now: datetime | None = None) -> date:
    """The helpline's calendar date at ``now`` (an aware datetime; default: now)."""
    return (now or datetime.now(UTC)).astimezone(IST).date()


def day_start(now: datetime | None = None) -> datetime:
    """Midnight (IST) that began the helpline's day containing ``now``, as an aware datetime."""
    day = helpline_day(now)
    return datetime(day.year, day.month, day.day, tzinfo=IST)


def days_between(earlier: datetime, later: datetime | None = None) -> int:
    """Helpline days from ``earlier`` to ``later`` (0 = the same day, negative if earlier is
    after later)."""
    return (helpline_day(later) - helpline_day(earlier)).days


def month_start(now: datetime | None = None) -> datetime:
    """Midnight (IST) of the first day of the helpline's month containing ``now``: the start
    of a caller's monthly complaint count."""
    day = helpline_day(now)
    return datetime(day.year, day.month, 1, tzinfo=IST)
