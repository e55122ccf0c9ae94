"""Accountability numbers: an officer's monthly scorecard (for the ACR), the CM's monthly review
by department and district, and an officer's worklist. Definitions: docs/lifecycle.md,
"Reports".

Everything is counted in SQL (GROUP BY, and LATERAL look-ups of a complaint's history), never
a query per row, department or officer. Months are IST calendar months
(:mod:`core.domain.clock`). A month's figures are as at its end, or at ``now`` for the current
month, rebuilt from ``complaint_history`` so a past month reads the same later.

Every query takes ``scope``: a where-clause on ``complaints`` restricting what the asker may
see (None: everything). It is the one place the access policy is applied to these reports.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, case, exists, func, literal, select, true, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from core.db.models import Complaint, ComplaintHistory, DialerJob, RefCategory
from core.domain.clock import IST, helpline_day
from core.domain.complaints import SETTLED_STATES, ComplaintStatus, HistoryAction
from core.domain.dialing import SurveyResult
from core.domain.lifecycle import RULES, Action, Who
from core.reference import Reference

Metric = Literal["overdue", "pending"]

#: History actions that give a complaint an officer and a new due date (the lifecycle's
#: ASSIGN_OFFICER / NEW_DUE_DATE effects): the due date runs from the row's time.
DUE_SETTING = (
    HistoryAction.ASSIGN,
    HistoryAction.REASSIGN,
    HistoryAction.ESCALATE,
    HistoryAction.REOPEN,
)
#: What an officer may do from the worklist: the actions the lifecycle gives the assigned
#: officer, less reject_duplicate (it needs the other complaint's number).
WORKLIST_ACTIONS = tuple(
    rule.action
    for rule in RULES
    if Who.ASSIGNED_OFFICER in rule.who and rule.action is not Action.REJECT_DUPLICATE
)
NEEDS_NOTE = frozenset(rule.action for rule in RULES if rule.needs_note)


class MonthError(ValueError):
    """A month that is not ``YYYY-MM`` or is still to come."""


@dataclass(frozen=True, slots=True)
class Month:
    """An IST calendar month: ``[start, end)``, and ``as_of`` = end, or now while it runs."""

    label: str
    start: datetime
    end: datetime
    as_of: datetime


#: No month before this has complaints (the 1076 helpline began in 2018).
FIRST_YEAR = 2000


def month_of(text: str | None, now: datetime | None = None) -> Month:
    """``YYYY-MM`` (default: the current IST month) as a :class:`Month` at ``now``."""
    now = now or datetime.now(UTC)
    if text is None:
        today = helpline_day(now)
        year, month = today.year, today.month
    else:
        try:
            year_text, month_text = text.split("-")
            if len(year_text) != 4 or len(month_text) != 2:
                raise ValueError
            year, month = int(year_text), int(month_text)
            date(year, month, 1)
        except ValueError:
            raise MonthError(f"month {text!r} is not YYYY-MM") from None
        # Year 1 in IST is before the first UTC instant PostgreSQL's driver can hold (a 500).
        if year < FIRST_YEAR:
            raise MonthError(f"month {text!r} is before the helpline's records") from None
    start = datetime(year, month, 1, tzinfo=IST)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=IST)
    if start > now:
        raise MonthError(f"month {start:%Y-%m} has not begun")
    return Month(f"{year:04d}-{month:02d}", start, end, min(end, now))


# ----------------------------------------------------------------------------- SQL pieces

_H = aliased(ComplaintHistory, name="h")


def _holder_before(complaint_id: Any, moment: Any, name: str, *, before_row: Any = None) -> Any:
    """LATERAL: the complaint's last officer-setting history row before ``moment`` (or before
    the history row ``before_row``): ``officer`` and ``since``."""
    row = aliased(ComplaintHistory)
    if before_row is None:
        when = row.at < moment
    else:
        when = tuple_(row.at, row.id) < tuple_(before_row.at, before_row.id)
    return (
        select(row.to_officer.label("officer"), row.at.label("since"))
        .where(row.complaint_id == complaint_id, row.action.in_(DUE_SETTING), when)
        .order_by(row.at.desc(), row.id.desc())
        .limit(1)
        .lateral(name)
    )


def _due_at(holder: Any, moment: Any) -> ColumnElement[datetime]:
    """The complaint's due date at ``moment``: its stored ``due_at`` if nothing has set a new
    one since; otherwise rebuilt as the lifecycle sets it (the last assignment + SLA days)."""
    later = aliased(ComplaintHistory)
    changed_since = exists().where(
        later.complaint_id == Complaint.id, later.action.in_(DUE_SETTING), later.at >= moment
    )
    rebuilt = func.coalesce(holder.c.since, Complaint.created_at) + func.make_interval(
        0, 0, 0, RefCategory.sla_days
    )
    return case(
        (changed_since & RefCategory.sla_days.is_not(None), rebuilt), else_=Complaint.due_at
    )


def _status_at(moment: datetime) -> Any:
    """LATERAL: the complaint's status at ``moment`` (its last history row before it)."""
    row = aliased(ComplaintHistory)
    return (
        select(row.to_status.label("status"))
        .where(row.complaint_id == Complaint.id, row.at < moment)
        .order_by(row.at.desc(), row.id.desc())
        .limit(1)
        .lateral("state")
    )


def _scoped(query: Any, scope: ColumnElement[bool] | None) -> Any:
    return query if scope is None else query.where(scope)


def _pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(100.0 * part / whole, 1)


# ----------------------------------------------------------------------------- monthly review


@dataclass(slots=True)
class Figures:
    """One row of the review: a department, a district, or the whole state."""

    received: int = 0
    resolved: int = 0
    resolved_within_sla: int = 0
    pending: int = 0
    overdue: int = 0
    #: Of the month's resolutions: feedback answers (the dialer's survey), and satisfied ones.
    feedback: int = 0
    satisfied: int = 0

    @property
    def sla_pct(self) -> float | None:
        return _pct(self.resolved_within_sla, self.resolved)

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "resolved": self.resolved,
            "resolved_within_sla": self.resolved_within_sla,
            "pending": self.pending,
            "overdue": self.overdue,
            "sla_pct": self.sla_pct,
            # Null while no citizen answered the feedback survey: never an invented figure.
            "satisfaction_pct": _pct(self.satisfied, self.feedback),
        }


@dataclass(slots=True)
class Review:
    month: Month
    metric: Metric
    threshold: int
    total: Figures = field(default_factory=Figures)
    departments: dict[str, Figures] = field(default_factory=dict)
    districts: dict[str, Figures] = field(default_factory=dict)

    def flagged(self) -> list[str]:
        """Departments over the action threshold, worst first."""
        over = [
            (getattr(figures, self.metric), code)
            for code, figures in self.departments.items()
            if getattr(figures, self.metric) > self.threshold
        ]
        return [code for _, code in sorted(over, key=lambda pair: (-pair[0], pair[1]))]


async def monthly_review(
    session: AsyncSession,
    month: Month,
    *,
    metric: Metric,
    threshold: int,
    scope: ColumnElement[bool] | None = None,
) -> Review:
    """The month's figures by department and district (and in all): two GROUP BY queries."""
    review = Review(month, metric, threshold)
    as_of = month.as_of
    state = _status_at(as_of)
    holder = _holder_before(Complaint.id, as_of, "holder")
    pending = state.c.status.not_in(SETTLED_STATES)
    due = _due_at(holder, as_of)
    received = and_(Complaint.created_at >= month.start, Complaint.created_at < as_of)
    backlog = _scoped(
        select(
            Complaint.department,
            Complaint.district,
            func.count().filter(received).label("received"),
            func.count().filter(pending).label("pending"),
            func.count().filter(pending, due < as_of).label("overdue"),
        )
        .select_from(Complaint)
        .join(state, true())
        .outerjoin(holder, true())
        .outerjoin(RefCategory, RefCategory.code == Complaint.category)
        .where(Complaint.created_at < as_of)
        .group_by(Complaint.department, Complaint.district),
        scope,
    )
    for row in (await session.execute(backlog)).all():
        for figures in _rows_of(review, row.department, row.district):
            figures.received += row.received
            figures.pending += row.pending
            figures.overdue += row.overdue

    resolve = aliased(ComplaintHistory, name="resolve")
    at_resolve = _holder_before(resolve.complaint_id, None, "at_resolve", before_row=resolve)
    due_then = _due_at(at_resolve, resolve.at)
    resolutions = _scoped(
        select(
            Complaint.department,
            Complaint.district,
            func.count().label("resolved"),
            func.count().filter(resolve.at <= due_then).label("within_sla"),
            func.count(DialerJob.result).label("feedback"),
            func.count().filter(DialerJob.result == SurveyResult.SATISFIED).label("satisfied"),
        )
        .select_from(resolve)
        .join(Complaint, Complaint.id == resolve.complaint_id)
        .outerjoin(DialerJob, DialerJob.resolution_id == resolve.id)
        .outerjoin(at_resolve, true())
        .outerjoin(RefCategory, RefCategory.code == Complaint.category)
        .where(
            resolve.action == HistoryAction.RESOLVE,
            resolve.at >= month.start,
            resolve.at < as_of,
        )
        .group_by(Complaint.department, Complaint.district),
        scope,
    )
    for row in (await session.execute(resolutions)).all():
        for figures in _rows_of(review, row.department, row.district):
            figures.resolved += row.resolved
            figures.resolved_within_sla += row.within_sla
            figures.feedback += row.feedback
            figures.satisfied += row.satisfied
    return review


def _rows_of(review: Review, department: str | None, district: str | None) -> list[Figures]:
    """The total, the department's and the district's figures a group adds to."""
    rows = [review.total]
    rows.append(review.departments.setdefault(department or "", Figures()))
    rows.append(review.districts.setdefault(district or "", Figures()))
    return rows


def review_json(review: Review, reference: Reference) -> dict[str, Any]:
    """The review as the API answers it: names from the reference, busiest rows first."""
    flagged = review.flagged()

    def named(codes: dict[str, Figures], names: Any, flag: bool) -> list[dict[str, Any]]:
        rows = []
        for code, figures in sorted(codes.items(), key=lambda kv: (-kv[1].pending, kv[0])):
            record = names.get(code)
            row = {
                "code": code or None,
                "name_en": record.name_en if record else "(none)",
                "name_hi": record.name_hi if record else "(कोई नहीं)",
                **figures.as_dict(),
            }
            if flag:
                row["flagged"] = code in flagged
            rows.append(row)
        return rows

    return {
        "month": review.month.label,
        "as_of": review.month.as_of.isoformat(),
        "action_metric": review.metric,
        "action_threshold": review.threshold,
        "total": review.total.as_dict(),
        "departments": named(review.departments, reference.departments, True),
        "districts": named(review.districts, reference.districts, False),
        "flagged_departments": flagged,
    }


CSV_COLUMNS = (
    "group",
    "code",
    "name_en",
    "name_hi",
    "received",
    "resolved",
    "resolved_within_sla",
    "pending",
    "overdue",
    "sla_pct",
    "satisfaction_pct",
    "flagged",
)


def review_csv(review: Review, reference: Reference) -> str:
    """The review as CSV: one header row, then the total, the departments and the districts."""
    data = review_json(review, reference)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    total = {"code": "up", "name_en": "Uttar Pradesh", "name_hi": "उत्तर प्रदेश", **data["total"]}
    rows = [("total", total)] + [("department", row) for row in data["departments"]]
    rows += [("district", row) for row in data["districts"]]
    for group, row in rows:
        cells = {"group": group, **row}
        writer.writerow(
            ["" if cells.get(column) is None else _cell(cells[column]) for column in CSV_COLUMNS]
        )
    return out.getvalue()


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


# ----------------------------------------------------------------------------- scorecard


@dataclass(frozen=True, slots=True)
class Scorecard:
    officer: str
    month: Month
    assigned: int
    resolved: int
    resolved_within_sla: int
    breached: int
    reopened: int
    pending: int
    overdue: int
    #: Feedback answers about this officer's resolutions in the month, and satisfied ones.
    feedback: int = 0
    satisfied: int = 0

    def as_dict(self, reference: Reference) -> dict[str, Any]:
        post = reference.officers.get(self.officer)
        return {
            "officer": self.officer,
            "designation_en": post.designation_en if post else None,
            "designation_hi": post.designation_hi if post else None,
            "month": self.month.label,
            "as_of": self.month.as_of.isoformat(),
            "assigned": self.assigned,
            "resolved": self.resolved,
            "resolved_within_sla": self.resolved_within_sla,
            "sla_pct": _pct(self.resolved_within_sla, self.resolved),
            "breached": self.breached,
            "reopened": self.reopened,
            "pending": self.pending,
            "overdue": self.overdue,
            "feedback": self.feedback,
            "satisfaction_pct": _pct(self.satisfied, self.feedback),
        }


async def scorecard(
    session: AsyncSession,
    officer: str,
    month: Month,
    *,
    scope: ColumnElement[bool] | None = None,
) -> Scorecard:
    """One officer's month (a post's code): one query of scalar sub-selects."""
    start, as_of = month.start, month.as_of
    in_month = and_(_H.at >= start, _H.at < as_of)

    def history(*conditions: ColumnElement[bool], distinct: bool = False) -> Any:
        counted = func.count(func.distinct(_H.complaint_id)) if distinct else func.count()
        return _scoped(
            select(counted)
            .select_from(_H)
            .join(Complaint, Complaint.id == _H.complaint_id)
            .where(in_month, *conditions),
            scope,
        ).scalar_subquery()

    assigned = history(_H.action.in_(DUE_SETTING), _H.to_officer == officer, distinct=True)
    breached = history(_H.action == HistoryAction.ESCALATE, _H.from_officer == officer)

    # Resolutions and reopens are the officer's who held the complaint just before the row.
    held = _holder_before(_H.complaint_id, None, "held", before_row=_H)
    due_then = _due_at(held, _H.at)

    def by_holder(
        action: HistoryAction, *conditions: ColumnElement[bool], feedback: bool = False
    ) -> Any:
        query = select(func.count()).select_from(_H)
        if feedback:  # the answer to the dialer's survey about this resolution
            query = query.join(DialerJob, DialerJob.resolution_id == _H.id)
        return _scoped(
            query.join(Complaint, Complaint.id == _H.complaint_id)
            .join(held, true())
            .outerjoin(RefCategory, RefCategory.code == Complaint.category)
            .where(in_month, _H.action == action, held.c.officer == officer, *conditions),
            scope,
        ).scalar_subquery()

    resolved = by_holder(HistoryAction.RESOLVE)
    within = by_holder(HistoryAction.RESOLVE, _H.at <= due_then)
    reopened = by_holder(HistoryAction.REOPEN)
    feedback = by_holder(HistoryAction.RESOLVE, DialerJob.result.is_not(None), feedback=True)
    satisfied = by_holder(
        HistoryAction.RESOLVE, DialerJob.result == SurveyResult.SATISFIED, feedback=True
    )

    state = _status_at(as_of)
    holder = _holder_before(Complaint.id, as_of, "holder")
    pending = state.c.status.not_in(SETTLED_STATES)
    backlog = _scoped(
        select(
            func.count().filter(pending).label("pending"),
            func.count().filter(pending, _due_at(holder, as_of) < as_of).label("overdue"),
            literal(1).label("one"),
        )
        .select_from(Complaint)
        .join(state, true())
        .join(holder, true())
        .outerjoin(RefCategory, RefCategory.code == Complaint.category)
        .where(Complaint.created_at < as_of, holder.c.officer == officer),
        scope,
    ).subquery()
    row = (
        await session.execute(
            select(
                assigned.label("assigned"),
                resolved.label("resolved"),
                within.label("within"),
                breached.label("breached"),
                reopened.label("reopened"),
                feedback.label("feedback"),
                satisfied.label("satisfied"),
                backlog.c.pending,
                backlog.c.overdue,
            ).select_from(backlog)
        )
    ).one()
    return Scorecard(
        officer,
        month,
        assigned=row.assigned,
        resolved=row.resolved,
        resolved_within_sla=row.within,
        breached=row.breached,
        reopened=row.reopened,
        pending=row.pending,
        overdue=row.overdue,
        feedback=row.feedback,
        satisfied=row.satisfied,
    )


# ----------------------------------------------------------------------------- worklist


async def worklist(
    session: AsyncSession,
    reference: Reference,
    officer: str,
    *,
    now: datetime | None = None,
    limit: int = 500,
    scope: ColumnElement[bool] | None = None,
) -> list[dict[str, Any]]:
    """The complaints an officer holds now (not settled), overdue first (the most overdue
    first), then by due date; with what the officer may do to each."""
    now = now or datetime.now(UTC)
    query = _scoped(
        select(Complaint)
        .where(
            Complaint.assigned_officer == officer,
            Complaint.status.not_in(SETTLED_STATES | {ComplaintStatus.CLOSURE_REQUESTED}),
        )
        .order_by(Complaint.due_at, Complaint.id)
        .limit(limit),
        scope,
    )
    rows = []
    for complaint in (await session.execute(query)).scalars():
        category = reference.categories.get(complaint.category or "")
        district = reference.districts.get(complaint.district or "")
        actions = [
            {"action": str(rule.action), "needs_note": rule.action in NEEDS_NOTE}
            for rule in RULES
            if rule.action in WORKLIST_ACTIONS and complaint.status in rule.sources
        ]
        rows.append(
            {
                "number": complaint.number,
                "status": str(complaint.status),
                "description": complaint.description,
                "category": complaint.category,
                "category_en": category.name_en if category else None,
                "category_hi": category.name_hi if category else None,
                "district": complaint.district,
                "district_en": district.name_en if district else None,
                "district_hi": district.name_hi if district else None,
                "created_at": complaint.created_at.isoformat(),
                "due_at": complaint.due_at.isoformat(),
                "overdue": complaint.due_at < now,
                "actions": actions,
            }
        )
    # Sorted by due date already, so the overdue ones (due earliest) come first.
    return rows
