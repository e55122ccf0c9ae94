"""SLA escalation with a controllable clock: late passes, double passes, two workers at once, the
clock stepping back; and random lifecycles that must never break the invariants."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from hypothesis import event, given, settings
from hypothesis import strategies as st

from core.domain.clock import IST
from core.domain.complaints import ComplaintStatus, complaint_number
from core.domain.lifecycle import (
    SYSTEM,
    TABLE,
    WITH_OFFICER,
    Action,
    Actor,
    BreachKey,
    ComplaintView,
    Effect,
    Refusal,
    Transition,
    Who,
    allowed_actions,
    apply,
    decide_escalation,
    decide_escalations,
    is_overdue,
)
from core.domain.staff import Role
from core.reference import Level, Routed, load_reference, route

REF = load_reference()
S = ComplaintStatus
CATEGORY = "police.fir_not_registered"
SLA = timedelta(days=REF.categories[CATEGORY].sla_days)
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=IST)
NUMBER = complaint_number(100000001)


def assigned(
    at: datetime = T0, status: ComplaintStatus = S.ASSIGNED, category: str = CATEGORY
) -> ComplaintView:
    """A complaint routed at ``at`` to the SHO of Hazratganj (or its category's first post)."""
    registered = ComplaintView(
        NUMBER, S.REGISTERED, category=category, district="lucknow", thana="lucknow_hazratganj"
    )
    done = apply(registered, Action.ASSIGN, SYSTEM, at, reference=REF)
    assert isinstance(done, Transition), done
    if status is S.ASSIGNED:
        return done.after
    officer = Actor(Role.OFFICER, "officer", officer=done.after.officer)
    started = apply(done.after, Action.START, officer, at, reference=REF)
    assert isinstance(started, Transition)
    if status is S.IN_PROGRESS:
        return started.after
    action = {
        S.RESOLVED: Action.RESOLVE,
        S.CLOSURE_REQUESTED: Action.REQUEST_CLOSURE,
        S.REJECTED_DUPLICATE: Action.REJECT_DUPLICATE,
    }[status]
    ended = apply(
        started.after,
        action,
        officer,
        at,
        reference=REF,
        note="done",
        duplicate_of=complaint_number(100000002),
    )
    assert isinstance(ended, Transition), ended
    return ended.after


def escalation(view: ComplaintView, now: datetime) -> Transition:
    decided = decide_escalation(view, now, REF)
    assert isinstance(decided, Transition), decided
    return decided


# --------------------------------------------------------------------------- examples


def test_not_overdue_until_after_the_due_date() -> None:
    complaint = assigned()
    assert complaint.due_at == T0 + SLA
    assert decide_escalation(complaint, T0 + SLA, REF) is None
    assert decide_escalation(complaint, T0 - timedelta(days=30), REF) is None
    refused = apply(complaint, Action.ESCALATE, SYSTEM, T0 + SLA, reference=REF)
    assert isinstance(refused, Refusal) and "not overdue" in refused.reason
    assert escalation(complaint, T0 + SLA + timedelta(seconds=1)).after.level is Level.DISTRICT


def test_an_overdue_complaint_climbs_one_level_with_its_breach() -> None:
    complaint = assigned(status=S.IN_PROGRESS)
    now = T0 + SLA + timedelta(hours=5)
    done = escalation(complaint, now)
    assert done.before == complaint and done.actor == SYSTEM
    assert done.after.status is S.ESCALATED and done.after.level is Level.DISTRICT
    assert done.after.officer == "police.district.lucknow"
    assert done.after.assigned_at == now and done.after.due_at == now + SLA
    assert done.after.escalations == 1
    assert done.breach is not None
    assert done.breach.key == BreachKey(NUMBER, Level.THANA, T0 + SLA)
    assert done.breach.officer == "police.thana.lucknow_hazratganj"
    assert done.breach.overdue_by == timedelta(hours=5)
    assert done.effects == {
        Effect.RECORD_BREACH,
        Effect.LEVEL_UP,
        Effect.ASSIGN_OFFICER,
        Effect.NEW_DUE_DATE,
    }


def test_a_pass_20_days_late_escalates_exactly_one_level() -> None:
    """Policy: one level per pass, and the next officer gets a full SLA period from now; the
    officers above were never given the complaint, so no breach is charged to them."""
    complaint = assigned()
    assert complaint.due_at is not None
    late = complaint.due_at + timedelta(days=20)
    done = escalation(complaint, late)
    assert done.after.level is Level.DISTRICT and done.after.due_at == late + SLA
    assert done.breach is not None and done.breach.overdue_by == timedelta(days=20)
    assert decide_escalation(done.after, late, REF) is None
    assert decide_escalation(done.after, late + SLA, REF) is None
    assert escalation(done.after, late + SLA + timedelta(minutes=1)).after.level is Level.DIVISION


def test_a_second_pass_decides_nothing_new() -> None:
    complaint = assigned()
    now = T0 + timedelta(days=10)
    first = escalation(complaint, now)
    for again in (now, now + timedelta(minutes=1), now + SLA):
        assert decide_escalation(first.after, again, REF) is None


def test_two_workers_with_the_same_snapshot_decide_the_same_breach() -> None:
    """Whatever their clocks say: the key is the snapshot's, so the UNIQUE lets one through."""
    complaint = assigned()
    one = escalation(complaint, T0 + timedelta(days=4))
    two = escalation(complaint, T0 + timedelta(days=4, seconds=3))
    assert one.breach is not None and two.breach is not None
    assert one.breach.key == two.breach.key
    assert one.before == two.before == complaint  # the store's compare-and-set guard


def test_a_clock_stepping_back_decides_nothing_new() -> None:
    complaint = assigned()
    now = T0 + timedelta(days=5)
    done = escalation(complaint, now)
    for earlier in (now - timedelta(seconds=1), now - timedelta(days=1), T0):
        assert decide_escalation(done.after, earlier, REF) is None


def test_reassigning_an_overdue_complaint_records_the_breach_the_worker_would() -> None:
    """A reassign must not wipe a breach: it decides the same key as the SLA worker, so
    whichever is stored first, the other is refused."""
    complaint = assigned(status=S.IN_PROGRESS)
    now = T0 + SLA + timedelta(days=2)
    supervisor = Actor(Role.SUPERVISOR, "sup1")
    moved = apply(
        complaint,
        Action.REASSIGN,
        supervisor,
        now,
        reference=REF,
        note="wrong thana",
        officer="police.thana.lucknow_gomti_nagar",
    )
    assert isinstance(moved, Transition) and moved.breach is not None
    assert Effect.RECORD_BREACH in moved.effects
    by_worker = escalation(complaint, now + timedelta(hours=1)).breach
    assert by_worker is not None and moved.breach.key == by_worker.key
    assert moved.after.escalations == 0 and moved.after.due_at == now + SLA
    on_time = apply(
        complaint,
        Action.REASSIGN,
        supervisor,
        T0 + timedelta(days=1),
        reference=REF,
        note="wrong thana",
        officer="police.thana.lucknow_gomti_nagar",
    )
    assert isinstance(on_time, Transition) and on_time.breach is None
    assert Effect.RECORD_BREACH not in on_time.effects


def test_only_complaints_with_an_officer_escalate() -> None:
    much_later = T0 + timedelta(days=400)
    for status in (S.RESOLVED, S.CLOSURE_REQUESTED, S.REJECTED_DUPLICATE):
        complaint = assigned(status=status)
        assert decide_escalation(complaint, much_later, REF) is None
        assert not is_overdue(complaint, much_later)
    registered = ComplaintView(NUMBER, S.REGISTERED, category=CATEGORY, district="lucknow")
    assert decide_escalation(registered, much_later, REF) is None


def test_the_climb_follows_the_ladder_and_stops_at_the_cm_office() -> None:
    complaint, now = assigned(), T0
    levels = [complaint.level]
    keys: set[BreachKey] = set()
    for _ in range(8):
        assert complaint.due_at is not None
        now = complaint.due_at + timedelta(hours=1)
        done = escalation(complaint, now)
        assert done.breach is not None and done.breach.key not in keys
        keys.add(done.breach.key)
        complaint = done.after
        levels.append(complaint.level)
    ladder = list(REF.categories[CATEGORY].ladder)
    assert levels == [*ladder, *[Level.CM_OFFICE] * (9 - len(ladder))]
    assert complaint.officer == "cm_office.up" and complaint.escalations == 8
    # at the top: a breach every SLA period, and a new due date, but no level up
    assert done.effects == {Effect.RECORD_BREACH, Effect.NEW_DUE_DATE}
    assert "top of the ladder" in done.remarks[0]


def test_escalation_passes_over_levels_with_no_officer() -> None:
    """transport.roadways_bus starts at the division: the next staffed post is the state's."""
    complaint = assigned(category="transport.roadways_bus")
    assert complaint.level is Level.DIVISION
    assert complaint.due_at is not None
    done = escalation(complaint, complaint.due_at + timedelta(days=1))
    assert done.after.level is Level.STATE


def test_a_category_gone_from_the_data_is_reported_not_skipped() -> None:
    gone = replace(assigned(), category="police.gone")
    decided = decide_escalation(gone, T0 + timedelta(days=30), REF)
    assert isinstance(decided, Refusal) and "no known category" in decided.reason


def test_a_pass_over_many_complaints() -> None:
    due = assigned()
    not_due = assigned(at=T0 + timedelta(days=2))
    resolved = assigned(status=S.RESOLVED)
    now = T0 + SLA + timedelta(days=1)
    decided = decide_escalations([due, not_due, resolved], now, REF)
    assert len(decided) == 1 and isinstance(decided[0], Transition)
    assert decided[0].before == due


# --------------------------------------------------------------------------- random lifecycles

ACTIONS = list(Action)
CATEGORIES = sorted(REF.categories)
DISTRICTS = sorted(REF.districts)


@dataclass
class Store:
    """The database as the lifecycle sees it: one complaint row, a UNIQUE on breach keys, and
    an UPDATE that only applies to the row it was decided from (compare-and-set)."""

    row: ComplaintView
    breaches: set[BreachKey] = field(default_factory=set)
    levels: list[Level] = field(default_factory=list)
    escalations: int = 0

    def store(self, done: Transition) -> bool:
        if done.before != self.row:
            return False  # another writer got there first
        if done.breach is not None:
            if done.breach.key in self.breaches:
                return False
            self.breaches.add(done.breach.key)
        self.row = done.after
        self.escalations += done.action is Action.ESCALATE
        if done.after.level is not None:
            self.levels.append(done.after.level)
        return True


@st.composite
def complaints(draw: st.DrawFn) -> ComplaintView:
    category = draw(st.sampled_from(CATEGORIES))
    district = draw(st.sampled_from(DISTRICTS))
    thanas = sorted(t.code for t in REF.thanas_of(district))
    thana = draw(st.none() | st.sampled_from(thanas)) if thanas else None
    return ComplaintView(NUMBER, S.REGISTERED, category=category, district=district, thana=thana)


WHO_NAMES = ["officer", "other", "agent", "supervisor", "cm", "admin", "system"]
#: A step: ("act", action pick, actor pick, hours from T0, wild) or ("pass", stale, 0, hours,
#: relative): a relative pass runs that many hours after the row's due date (a late run).
#: A tame act takes one of the actions its status allows, by someone allowed to; a wild one
#: is any action by anyone (mostly refused).
steps = st.one_of(
    st.tuples(
        st.just("act"),
        st.integers(min_value=0, max_value=len(ACTIONS) - 1),
        st.integers(min_value=0, max_value=len(WHO_NAMES) - 1),
        st.integers(min_value=-72, max_value=24 * 200),
        st.booleans(),
    ),
    st.tuples(
        st.just("pass"),
        st.booleans(),
        st.just(0),
        st.integers(min_value=-72, max_value=24 * 200),
        st.booleans(),
    ),
)

_WHO_NAME = {
    Who.ASSIGNED_OFFICER: "officer",
    Who.AGENT: "agent",
    Who.SUPERVISOR: "supervisor",
    Who.CM_OFFICE: "cm",
    Who.ADMIN: "admin",
    Who.SYSTEM: "system",
}


#: Tame acts leave these out: a duplicate ends the story, and the SLA passes escalate.
_LEFT_TO_WILD = (Action.REJECT_DUPLICATE, Action.ESCALATE)


def _pick(row: ComplaintView, action_pick: int, who_pick: int, wild: bool) -> tuple[Action, str]:
    allowed = [a for a in allowed_actions(row.status) if a not in _LEFT_TO_WILD]
    if wild or not allowed:
        return ACTIONS[action_pick], WHO_NAMES[who_pick]
    action = allowed[action_pick % len(allowed)]
    who = sorted(TABLE[row.status, action].who)
    return action, _WHO_NAME[who[who_pick % len(who)]]


def _actor(who: str, row: ComplaintView) -> Actor:
    return {
        "officer": Actor(Role.OFFICER, "o", officer=row.officer),
        "other": Actor(Role.OFFICER, "p", officer="police.district.unnao"),
        "agent": Actor(Role.AGENT, "a"),
        "supervisor": Actor(Role.SUPERVISOR, "s"),
        "cm": Actor(Role.CM_OFFICE, "c", officer="cm_office.up"),
        "admin": Actor(Role.ADMIN, "d"),
        "system": SYSTEM,
    }[who]


def _officer_above(row: ComplaintView) -> str | None:
    """A different officer at the complaint's level or above, for a reassign."""
    if row.category is None or row.level is None:
        return None
    category = REF.categories[row.category]
    for level in category.ladder:
        if level.rank < row.level.rank or level is Level.CM_OFFICE:
            continue
        routed = route(REF, row.category, row.district, thana=row.thana, start_level=level)
        if isinstance(routed, Routed) and routed.officer.code != row.officer:
            return routed.officer.code
    return None


@settings(max_examples=1000, deadline=None)
@given(complaints(), st.lists(steps, min_size=1, max_size=60))
def test_random_lifecycles_keep_the_invariants(
    start: ComplaintView, plan: list[tuple[str, int | bool, int, int, bool]]
) -> None:
    db = Store(start)
    stale = start  # what a second worker read at the same time as the first
    stale_escalated = False  # the first worker escalated from that row
    category = REF.categories[start.category or ""]
    for kind, what, who_pick, hours, wild in plan:
        now = T0 + timedelta(hours=hours)  # the clock may step back
        if kind == "act":
            action, who = _pick(db.row, int(what), who_pick, wild)
            result = apply(
                db.row,
                action,
                _actor(who, db.row),
                now,
                reference=REF,
                note="note",
                officer=_officer_above(db.row) if action is Action.REASSIGN else None,
                duplicate_of=complaint_number(100000002),
            )
            if isinstance(result, Transition):
                if action is Action.REASSIGN:
                    assert (result.breach is not None) == is_overdue(result.before, now)
                else:
                    assert (result.breach is not None) == (action is Action.ESCALATE)
                assert db.store(result)
                event(f"took {action}")
        else:
            if wild and db.row.due_at is not None:
                now = db.row.due_at + timedelta(hours=hours // 8)
            snapshot = stale if what else db.row
            decided = decide_escalation(snapshot, now, REF)
            if not what:
                stale, stale_escalated = snapshot, decided is not None
            if not is_overdue(snapshot, now):
                assert decided is None
            assert not isinstance(decided, Refusal)
            if decided is not None and snapshot == db.row:
                # from the current row: never a breach decided before
                assert decided.breach is not None and decided.breach.key not in db.breaches
                assert db.store(decided)
                event("escalated" if Effect.LEVEL_UP in decided.effects else "breach at the top")
                # the same pass again, or with the clock stepped back: nothing
                for again in (now, now - timedelta(hours=1), now - timedelta(days=30)):
                    assert decide_escalation(db.row, again, REF) is None
            elif decided is not None:
                # from a stale row: the store refuses it, whatever that worker's clock says;
                # if the other worker escalated from that same row, it was the same breach
                assert decided.breach is not None
                if stale_escalated:
                    assert decided.breach.key in db.breaches
                assert not db.store(decided)
                event("stale escalation refused")
        row = db.row
        assert all(b.rank >= a.rank for a, b in zip(db.levels, db.levels[1:], strict=False))
        if row.level is not None:
            assert row.level in category.ladder
        if row.assigned_at is not None and row.due_at is not None:
            assert row.due_at > row.assigned_at
        assert row.escalations == db.escalations
        assert len(db.breaches) >= db.escalations
        if row.status not in WITH_OFFICER:
            assert decide_escalation(row, now + timedelta(days=1000), REF) is None
