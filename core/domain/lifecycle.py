"""The complaint lifecycle: which action moves a complaint from which status to which, who may
take it, what else it sets in motion, and when an overdue complaint escalates.

Pure: no I/O, no clock of its own (every decision takes ``now``), no database. The API maps a
:class:`Refusal` to an HTTP status (``illegal`` 409, ``forbidden`` 403, ``invalid`` 422); the
SLA worker calls :func:`decide_escalation` for each open complaint and stores what it returns.

Escalation is idempotent by construction: a breach is named by (complaint, level, due date) of
the assignment that ran out, all read from the complaint's snapshot, never from the clock. A
second pass over the stored result finds a due date in the future; a second worker holding the
same stale snapshot decides the same breach key, which the database's UNIQUE refuses; a clock
stepping back sees a due date further away still. A late pass escalates exactly one level (see
docs/lifecycle.md, "Escalation policy").
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Final

from core.domain.complaints import ComplaintStatus, is_valid_complaint_number, resolution_due
from core.domain.staff import Role
from core.generated_docs import splice
from core.reference.models import Category, Level, Officer, Reference
from core.reference.routing import Routed, escalate, route

S = ComplaintStatus


class Action(enum.StrEnum):
    """What someone (or the system) does to a complaint: the API's ``action`` field."""

    ASSIGN = "assign"
    START = "start"
    RESOLVE = "resolve"
    CLOSE = "close"
    REOPEN = "reopen"
    REJECT_DUPLICATE = "reject_duplicate"
    REQUEST_CLOSURE = "request_closure"
    APPROVE_CLOSURE = "approve_closure"
    REFUSE_CLOSURE = "refuse_closure"
    REASSIGN = "reassign"
    ESCALATE = "escalate"


class Who(enum.StrEnum):
    """In which capacity an actor takes an action (a role, or holding the complaint's post)."""

    #: The officer holding the post the complaint is assigned to (role officer or cm_office).
    ASSIGNED_OFFICER = "assigned officer"
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    CM_OFFICE = "cm_office"
    ADMIN = "admin"
    #: The helpline itself: routing at registration, the SLA worker, the IVR's feedback menu.
    SYSTEM = "system"


class Effect(enum.StrEnum):
    """What the service must do besides changing the status (the DB layer's to-do list)."""

    #: Set the complaint's officer and level to the transition's (and notify that officer).
    ASSIGN_OFFICER = "assign officer"
    #: The complaint moves to the next level of its category's ladder.
    LEVEL_UP = "level up"
    #: A new due date: now + the category's SLA days.
    NEW_DUE_DATE = "new due date"
    #: Store the officer's note as the resolution, and ask the citizen for feedback.
    RECORD_RESOLUTION = "record resolution"
    #: Link the complaint to the one it duplicates.
    RECORD_DUPLICATE = "record duplicate"
    #: Write the breach to the late officer's ACR ledger (once per breach key); a reassign
    #: does so only when the complaint is overdue.
    RECORD_BREACH = "record breach"
    #: A supervisor has a closure to approve or refuse.
    NOTIFY_SUPERVISOR = "notify supervisor"


class RefusalKind(enum.StrEnum):
    #: The complaint's status (or state) does not allow the action: HTTP 409.
    ILLEGAL = "illegal"
    #: The action is legal, but not for this actor: HTTP 403.
    FORBIDDEN = "forbidden"
    #: The request lacks what the action needs (a note, an officer, a complaint number): 422.
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the transition table: from ``sources`` by ``action`` to ``target``."""

    action: Action
    sources: frozenset[ComplaintStatus]
    target: ComplaintStatus
    who: frozenset[Who]
    effects: tuple[Effect, ...] = ()
    #: The action needs a note (what was done, why, what the citizen said).
    needs_note: bool = False
    #: One line for the generated docs.
    purpose: str = ""


#: Statuses in which an officer holds the complaint and its SLA runs.
WITH_OFFICER: Final = frozenset({S.ASSIGNED, S.REOPENED, S.ESCALATED, S.IN_PROGRESS})
#: Statuses in which the officer has not started yet (why they got it differs).
AWAITING_START: Final = frozenset({S.ASSIGNED, S.REOPENED, S.ESCALATED})
#: Statuses no action leads out of except a reopen (closed) or none at all.
FINAL: Final = frozenset({S.CLOSED, S.REJECTED_DUPLICATE})
_CLOSERS: Final = frozenset({Who.SUPERVISOR, Who.CM_OFFICE, Who.ADMIN})

RULES: Final[tuple[Rule, ...]] = (
    Rule(
        Action.ASSIGN,
        frozenset({S.REGISTERED}),
        S.ASSIGNED,
        frozenset({Who.SYSTEM, Who.SUPERVISOR, Who.ADMIN}),
        (Effect.ASSIGN_OFFICER, Effect.NEW_DUE_DATE),
        purpose="routing found the officer (or a supervisor chose one on the review page)",
    ),
    Rule(
        Action.START,
        AWAITING_START,
        S.IN_PROGRESS,
        frozenset({Who.ASSIGNED_OFFICER}),
        purpose="the officer takes the complaint up",
    ),
    Rule(
        Action.RESOLVE,
        WITH_OFFICER,
        S.RESOLVED,
        frozenset({Who.ASSIGNED_OFFICER}),
        (Effect.RECORD_RESOLUTION,),
        needs_note=True,
        purpose="the officer says what was done; the citizen is asked for feedback",
    ),
    Rule(
        Action.CLOSE,
        frozenset({S.RESOLVED}),
        S.CLOSED,
        frozenset({Who.SYSTEM, Who.AGENT, Who.SUPERVISOR, Who.ADMIN}),
        purpose="the citizen is satisfied (IVR feedback, or on a call to an agent)",
    ),
    Rule(
        Action.REOPEN,
        frozenset({S.RESOLVED, S.CLOSED}),
        S.REOPENED,
        frozenset({Who.AGENT, Who.SYSTEM, Who.SUPERVISOR, Who.CM_OFFICE, Who.ADMIN}),
        (Effect.LEVEL_UP, Effect.ASSIGN_OFFICER, Effect.NEW_DUE_DATE),
        needs_note=True,
        purpose="the citizen is not satisfied, or asks again: one level up the ladder",
    ),
    Rule(
        Action.REJECT_DUPLICATE,
        frozenset({S.REGISTERED}) | WITH_OFFICER,
        S.REJECTED_DUPLICATE,
        frozenset({Who.ASSIGNED_OFFICER, Who.SUPERVISOR, Who.ADMIN}),
        (Effect.RECORD_DUPLICATE,),
        needs_note=True,
        purpose="the same grievance is already a complaint (its number is required)",
    ),
    Rule(
        Action.REQUEST_CLOSURE,
        WITH_OFFICER,
        S.CLOSURE_REQUESTED,
        frozenset({Who.ASSIGNED_OFFICER}),
        (Effect.NOTIFY_SUPERVISOR,),
        needs_note=True,
        purpose="special closure (sub judice, policy matter, not actionable): needs approval",
    ),
    Rule(
        Action.APPROVE_CLOSURE,
        frozenset({S.CLOSURE_REQUESTED}),
        S.CLOSED,
        _CLOSERS,
        purpose="a supervisor approves the special closure",
    ),
    Rule(
        Action.REFUSE_CLOSURE,
        frozenset({S.CLOSURE_REQUESTED}),
        S.IN_PROGRESS,
        _CLOSERS,
        needs_note=True,
        purpose="back to the officer, with the due date it had (the SLA kept counting)",
    ),
    Rule(
        Action.REASSIGN,
        WITH_OFFICER,
        S.ASSIGNED,
        _CLOSERS,
        (Effect.ASSIGN_OFFICER, Effect.NEW_DUE_DATE, Effect.RECORD_BREACH),
        needs_note=True,
        purpose="to another officer at the same level or higher (wrongly routed); if overdue, "
        "the breach is recorded as the SLA worker would",
    ),
    Rule(
        Action.ESCALATE,
        WITH_OFFICER,
        S.ESCALATED,
        frozenset({Who.SYSTEM}),
        (Effect.RECORD_BREACH, Effect.LEVEL_UP, Effect.ASSIGN_OFFICER, Effect.NEW_DUE_DATE),
        purpose="overdue: the SLA worker moves it up the ladder, once per breach",
    ),
)

#: The transition table: (from status, action) -> rule.
TABLE: Final[Mapping[tuple[ComplaintStatus, Action], Rule]] = {
    (source, rule.action): rule for rule in RULES for source in sorted(rule.sources)
}
RULE_OF: Final[Mapping[Action, Rule]] = {rule.action: rule for rule in RULES}


def allowed_actions(status: ComplaintStatus) -> list[Action]:
    """The actions the table allows from ``status``, in the table's order."""
    return [rule.action for rule in RULES if status in rule.sources]


# --------------------------------------------------------------------------- complaint snapshot


@dataclass(frozen=True, slots=True)
class ComplaintView:
    """What the lifecycle needs to know of a complaint (a snapshot of its row).

    ``officer`` is the code of the post it is assigned to, at ``level``, since
    ``assigned_at``; ``due_at`` is when that assignment must be resolved.
    """

    number: str
    status: ComplaintStatus
    category: str | None = None
    district: str | None = None
    tehsil: str | None = None
    thana: str | None = None
    level: Level | None = None
    officer: str | None = None
    assigned_at: datetime | None = None
    due_at: datetime | None = None
    #: Escalate transitions so far (also those at the top of the ladder).
    escalations: int = 0
    reopens: int = 0

    def __post_init__(self) -> None:
        """A snapshot that contradicts itself is a bug in whoever built it, not a request."""
        for moment in (self.assigned_at, self.due_at):
            if moment is not None and moment.utcoffset() is None:
                raise ValueError("complaint times must be timezone-aware")
        assigned = (self.officer, self.level, self.assigned_at, self.due_at)
        if self.status not in (S.REGISTERED, S.REJECTED_DUPLICATE) and None in assigned:
            raise ValueError(f"a {self.status} complaint needs its officer, level and dates")
        if self.officer is not None and None in assigned:
            raise ValueError("officer, level, assigned_at and due_at go together")
        assigned_at, due_at = self.assigned_at, self.due_at
        if assigned_at is not None and due_at is not None and due_at <= assigned_at:
            raise ValueError("due_at must be after assigned_at")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asks. ``role`` None is the helpline itself (:data:`SYSTEM`)."""

    role: Role | None
    #: Username, or the system's component ("sla", "ivr").
    name: str
    #: Code of the post the user holds (officers and the CM office).
    officer: str | None = None


SYSTEM: Final = Actor(None, "system")

_ROLE_CAPACITY: Final[Mapping[Role, Who]] = {
    Role.AGENT: Who.AGENT,
    Role.SUPERVISOR: Who.SUPERVISOR,
    Role.CM_OFFICE: Who.CM_OFFICE,
    Role.ADMIN: Who.ADMIN,
}


def capacities(actor: Actor, view: ComplaintView) -> frozenset[Who]:
    """Every capacity in which ``actor`` may act on ``view``."""
    if actor.role is None:
        return frozenset({Who.SYSTEM})
    found = {_ROLE_CAPACITY[actor.role]} if actor.role in _ROLE_CAPACITY else set[Who]()
    holds_post = actor.role in (Role.OFFICER, Role.CM_OFFICE)
    if holds_post and actor.officer is not None and actor.officer == view.officer:
        found.add(Who.ASSIGNED_OFFICER)
    return frozenset(found)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class BreachKey:
    """Names a breach: the assignment (complaint, level, due date) that ran out. The DB layer
    puts a UNIQUE on it, so a breach is recorded once however many passes decide it."""

    complaint: str
    level: Level
    due_at: datetime


@dataclass(frozen=True, slots=True)
class Breach:
    """An SLA breach to write to ``officer``'s ACR ledger."""

    key: BreachKey
    officer: str
    overdue_by: timedelta


@dataclass(frozen=True, slots=True)
class Transition:
    """An action that may be stored: ``after`` is the complaint as it becomes.

    The store must apply it only to a row still as ``before`` (compare status and due date in
    the UPDATE's WHERE), so two workers, or a worker and an officer, cannot both act on it.
    """

    action: Action
    actor: Actor
    at: datetime
    before: ComplaintView
    after: ComplaintView
    #: What is really to be done: the rule's effects, less a level up at the top of a ladder
    #: and a breach where there is none.
    effects: frozenset[Effect]
    note: str = ""
    breach: Breach | None = None
    duplicate_of: str | None = None
    #: Why levels were passed over, or why the complaint could not climb.
    remarks: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an action was not taken, in words for the person who asked."""

    kind: RefusalKind
    reason: str


# --------------------------------------------------------------------------- apply


def apply(
    view: ComplaintView,
    action: Action | str,
    actor: Actor,
    now: datetime,
    *,
    reference: Reference,
    note: str = "",
    officer: str | None = None,
    duplicate_of: str | None = None,
) -> Transition | Refusal:
    """Take ``action`` on the complaint ``view`` at ``now``, or say why not. Never raises for a
    bad request: an unknown action or missing note is ``invalid``, an action the table does not
    allow from the status ``illegal``, an actor without the capacity ``forbidden``.

    ``officer`` is the officer code for ``reassign`` (required) and ``assign`` (optional:
    without it the complaint is routed by its category and place).
    """
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    try:
        action = Action(action)
    except ValueError:
        known = ", ".join(Action)
        return Refusal(RefusalKind.INVALID, f"unknown action {action!r} (one of: {known})")
    rule = TABLE.get((view.status, action))
    if rule is None:
        allowed = ", ".join(allowed_actions(view.status)) or "none"
        return Refusal(
            RefusalKind.ILLEGAL,
            f"cannot {action} a complaint that is {view.status} (allowed: {allowed})",
        )
    if not capacities(actor, view) & rule.who:
        return Refusal(RefusalKind.FORBIDDEN, _forbidden_reason(actor, view, rule))
    note = note.strip()
    if rule.needs_note and not note:
        return Refusal(RefusalKind.INVALID, f"{action} needs a note")
    category = reference.categories.get(view.category or "")
    if category is None and action in (
        Action.ASSIGN,
        Action.REASSIGN,
        Action.REOPEN,
        Action.ESCALATE,
    ):
        return Refusal(
            RefusalKind.ILLEGAL, f"complaint {view.number} has no known category to {action} by"
        )
    base = Transition(action, actor, now, view, view, frozenset(), note)
    match action:
        case Action.ASSIGN | Action.REASSIGN:
            assert category is not None
            return _assign(base, rule, category, reference, officer)
        case Action.REOPEN:
            assert category is not None
            return _climb(base, rule, category, reference, reopen=True)
        case Action.ESCALATE:
            assert category is not None
            if view.due_at is None or now <= view.due_at:
                return Refusal(
                    RefusalKind.ILLEGAL,
                    f"complaint {view.number} is not overdue (due {_when(view.due_at)})",
                )
            return _climb(base, rule, category, reference, reopen=False)
        case Action.REJECT_DUPLICATE:
            original = (duplicate_of or "").strip()
            if not is_valid_complaint_number(original):
                return Refusal(
                    RefusalKind.INVALID,
                    "reject_duplicate needs the number of the complaint this one duplicates",
                )
            if original == view.number:
                return Refusal(RefusalKind.INVALID, "a complaint cannot duplicate itself")
            after = replace(view, status=rule.target)
            return replace(
                base, after=after, effects=frozenset(rule.effects), duplicate_of=original
            )
        case _:
            after = replace(view, status=rule.target)
            return replace(base, after=after, effects=frozenset(rule.effects))


def _forbidden_reason(actor: Actor, view: ComplaintView, rule: Rule) -> str:
    who = "the system" if actor.role is None else f"{actor.role} {actor.name!r}"
    if rule.who == {Who.ASSIGNED_OFFICER}:
        return (
            f"only the officer the complaint is assigned to ({view.officer}) may {rule.action} "
            f"it, not {who}"
        )
    allowed = ", ".join(
        f"the assigned officer ({view.officer})" if w is Who.ASSIGNED_OFFICER else w
        for w in Who
        if w in rule.who
    )
    return f"{who} may not {rule.action} a complaint (allowed: {allowed})"


def _when(moment: datetime | None) -> str:
    return "never" if moment is None else moment.isoformat()


def _assign(
    base: Transition, rule: Rule, category: Category, reference: Reference, officer: str | None
) -> Transition | Refusal:
    view = base.before
    remarks: tuple[str, ...] = ()
    if officer is None:
        if rule.action is Action.REASSIGN:
            return Refusal(RefusalKind.INVALID, "reassign needs the officer to reassign to")
        routed = route(
            reference, category.code, view.district, tehsil=view.tehsil, thana=view.thana
        )
        if not isinstance(routed, Routed):
            return Refusal(RefusalKind.ILLEGAL, f"cannot assign: {routed.reason}")
        chosen, remarks = routed.officer, routed.passed_over
    else:
        found = reference.officers.get(officer)
        if found is None:
            return Refusal(RefusalKind.INVALID, f"unknown officer {officer!r}")
        problem = _unfit(found, category, view, rule.action)
        if problem:
            return Refusal(RefusalKind.INVALID, problem)
        chosen = found
    after = replace(
        view,
        status=rule.target,
        officer=chosen.code,
        level=chosen.level,
        assigned_at=base.at,
        due_at=resolution_due(base.at, category.sla_days),
    )
    effects = set(rule.effects)
    breach = _breach(view, base.at)
    if breach is None:
        effects.discard(Effect.RECORD_BREACH)
    return replace(base, after=after, effects=frozenset(effects), breach=breach, remarks=remarks)


def _breach(view: ComplaintView, now: datetime) -> Breach | None:
    """The breach of the assignment ``view`` holds, if it is overdue at ``now``: the same key
    whoever decides it (the SLA worker, or a reassign taking the complaint away)."""
    if view.officer is None or view.level is None or view.due_at is None or now <= view.due_at:
        return None
    return Breach(BreachKey(view.number, view.level, view.due_at), view.officer, now - view.due_at)


def _unfit(officer: Officer, category: Category, view: ComplaintView, action: Action) -> str:
    """Why ``officer`` cannot take the complaint (empty if they can)."""
    if officer.level not in category.ladder:
        return f"{officer.code} is at {officer.level}, not on the ladder of {category.code}"
    if officer.level is Level.CM_OFFICE and action is Action.ASSIGN:
        return "a complaint is first assigned to a department; the CM office gets escalations"
    if officer.department not in (None, category.department):
        return f"{officer.code} is not an officer of {category.department}"
    if view.level is not None and officer.level.rank < view.level.rank:
        return f"{officer.code} is at {officer.level}, below the complaint's level {view.level}"
    if officer.code == view.officer:
        return f"the complaint is already assigned to {officer.code}"
    return ""


def _climb(
    base: Transition, rule: Rule, category: Category, reference: Reference, *, reopen: bool
) -> Transition:
    """One level up the ladder (escalation or reopen); at the top, or where no officer is found
    above, the complaint stays with its officer, with a new due date."""
    view = base.before
    assert view.level is not None and view.officer is not None and view.due_at is not None
    routed = escalate(
        reference, category.code, view.district, view.level, tehsil=view.tehsil, thana=view.thana
    )
    effects = set(rule.effects)
    if isinstance(routed, Routed):
        officer, level, remarks = routed.officer.code, routed.level, routed.passed_over
    else:
        officer, level, remarks = view.officer, view.level, (routed.reason,)
        effects -= {Effect.LEVEL_UP, Effect.ASSIGN_OFFICER}
    breach = None if reopen else _breach(view, base.at)
    after = replace(
        view,
        status=rule.target,
        officer=officer,
        level=level,
        assigned_at=base.at,
        due_at=resolution_due(base.at, category.sla_days),
        escalations=view.escalations + (0 if reopen else 1),
        reopens=view.reopens + (1 if reopen else 0),
    )
    return replace(base, after=after, effects=frozenset(effects), breach=breach, remarks=remarks)


# --------------------------------------------------------------------------- escalation


def is_overdue(view: ComplaintView, now: datetime) -> bool:
    """True if an officer holds the complaint and its due date has passed at ``now``."""
    return view.status in WITH_OFFICER and view.due_at is not None and now > view.due_at


def decide_escalation(
    view: ComplaintView, now: datetime, reference: Reference
) -> Transition | Refusal | None:
    """The SLA worker's decision for one complaint at ``now``: None (not overdue, or not held
    by an officer), the escalation to store with its breach, or a Refusal to report (a
    category no longer in the reference data). Decided from the snapshot alone: exactly one
    level per pass, the next due date counted from ``now``."""
    if not is_overdue(view, now):
        return None
    return apply(view, Action.ESCALATE, SYSTEM, now, reference=reference)


def decide_escalations(
    views: Iterable[ComplaintView], now: datetime, reference: Reference
) -> list[Transition | Refusal]:
    """One SLA pass over ``views``: what to store or report, in the order given."""
    return [d for d in (decide_escalation(v, now, reference) for v in views) if d is not None]


# --------------------------------------------------------------------------- generated docs

#: docs/lifecycle.md's generated section lies between these lines.
DOC_BEGIN: Final = (
    "<!-- generated from core/domain/lifecycle.py by python -m core.domain.lifecycle_doc: "
    "do not edit by hand -->"
)
DOC_END: Final = "<!-- end of the generated section -->"

_STATUS_MEANING: Final[Mapping[ComplaintStatus, str]] = {
    S.REGISTERED: "taken by an agent, not yet with an officer (unroutable ones are reviewed)",
    S.ASSIGNED: "with an officer who has not started (routed, or reassigned)",
    S.REOPENED: "with an officer one level up, who has not started: the citizen reopened it",
    S.ESCALATED: "with an officer one level up, who has not started: it was overdue",
    S.IN_PROGRESS: "the officer is working on it",
    S.RESOLVED: "the officer says it is resolved; the citizen's feedback is awaited",
    S.CLOSED: "done (the citizen can still reopen it)",
    S.REJECTED_DUPLICATE: "done: another complaint has the same grievance",
    S.CLOSURE_REQUESTED: "the officer asked for a special closure; a supervisor decides",
}


def status_meaning(status: ComplaintStatus) -> str:
    return _STATUS_MEANING[status]


def render_state_diagram() -> str:
    """The transition table as a Mermaid ``stateDiagram-v2`` (one arrow per status pair)."""
    arrows: dict[tuple[ComplaintStatus, ComplaintStatus], list[str]] = {}
    for (source, action), rule in TABLE.items():
        arrows.setdefault((source, rule.target), []).append(action)
    lines = ["stateDiagram-v2", f"    [*] --> {S.REGISTERED}"]
    for source in S:
        for (frm, to), actions in arrows.items():
            if frm is source:
                lines.append(f"    {frm} --> {to}: {', '.join(actions)}")
    lines += [f"    {status} --> [*]" for status in S if status in FINAL]
    return "\n".join(lines)


def render_transition_table() -> str:
    """The transition table in Markdown: one row per action."""
    rows = [
        "| action | from | to | who may | also | note | what for |",
        "|---|---|---|---|---|---|---|",
    ]
    for rule in RULES:
        sources = ", ".join(f"`{s}`" for s in S if s in rule.sources)
        who = ", ".join(w for w in Who if w in rule.who)
        effects = ", ".join(rule.effects) or "-"
        note = "required" if rule.needs_note else "optional"
        rows.append(
            f"| `{rule.action}` | {sources} | `{rule.target}` | {who} | {effects} | {note} "
            f"| {rule.purpose} |"
        )
    return "\n".join(rows)


def render_policy_table() -> str:
    """Who may take which action: one row per action, one column per capacity."""
    rows = [
        "| action | " + " | ".join(Who) + " |",
        "|---|" + "---|" * len(Who),
    ]
    for rule in RULES:
        cells = ["yes" if w in rule.who else "" for w in Who]
        rows.append(f"| `{rule.action}` | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def render_status_table() -> str:
    rows = ["| status | means | escalates when overdue | actions |", "|---|---|---|---|"]
    for status in S:
        actions = ", ".join(f"`{a}`" for a in allowed_actions(status)) or "-"
        escalates = "yes" if (status, Action.ESCALATE) in TABLE else "no"
        rows.append(f"| `{status}` | {status_meaning(status)} | {escalates} | {actions} |")
    return "\n".join(rows)


def render_ladders(reference: Reference) -> str:
    """Every category's SLA and ladder, from the reference data."""
    rows = ["| category | department | SLA days | first level | ladder |", "|---|---|---|---|---|"]
    for category in sorted(reference.categories.values(), key=lambda c: c.code):
        ladder = " > ".join(
            f"**{level}**" if level is category.first_level else str(level)
            for level in category.ladder
        )
        rows.append(
            f"| `{category.code}` | {category.department} | {category.sla_days} "
            f"| {category.first_level} | {ladder} |"
        )
    return "\n".join(rows)


def render_doc_section(reference: Reference) -> str:
    """docs/lifecycle.md's generated section, markers included."""
    parts = [
        DOC_BEGIN,
        "",
        "### State diagram",
        "",
        "```mermaid",
        render_state_diagram(),
        "```",
        "",
        "### Statuses",
        "",
        render_status_table(),
        "",
        "### Transition table",
        "",
        "Any (status, action) pair not listed is refused as illegal (HTTP 409), naming both.",
        "",
        render_transition_table(),
        "",
        "### Policy: who may do what",
        "",
        "*assigned officer* is the user holding the post the complaint is assigned to (an "
        "officer, or the CM office at the top of the ladder). An action taken by anyone else "
        "is refused as forbidden (HTTP 403).",
        "",
        render_policy_table(),
        "",
        "### Ladders",
        "",
        f"From `core/reference/data/categories.csv` (data version {reference.version}); the "
        "first level is in bold.",
        "",
        render_ladders(reference),
        "",
        DOC_END,
    ]
    return "\n".join(parts)


def splice_doc(document: str, section: str) -> str:
    """``document`` with its generated section replaced by ``section`` (appended if absent)."""
    return splice(document, section, DOC_BEGIN, DOC_END)
