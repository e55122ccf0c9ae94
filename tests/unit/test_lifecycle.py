"""The transition table, exhaustively: every (status, action) pair, every capacity per action,
what each action needs, and docs/lifecycle.md generated from the table."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.domain.clock import IST
from core.domain.complaints import ComplaintStatus, complaint_number
from core.domain.lifecycle import (
    DOC_BEGIN,
    DOC_END,
    RULE_OF,
    RULES,
    SYSTEM,
    TABLE,
    WITH_OFFICER,
    Action,
    Actor,
    ComplaintView,
    Effect,
    Refusal,
    RefusalKind,
    Rule,
    Transition,
    Who,
    allowed_actions,
    apply,
    capacities,
    render_doc_section,
    render_state_diagram,
    splice_doc,
)
from core.domain.lifecycle_doc import DOC_PATH, main
from core.domain.staff import Role
from core.reference import Level, load_reference

REF = load_reference()
S = ComplaintStatus
CATEGORY = "police.fir_not_registered"  # SLA 3 days, thana > district > division > state > cm
SLA = timedelta(days=REF.categories[CATEGORY].sla_days)
SHO = "police.thana.lucknow_hazratganj"
CP = "police.district.lucknow"
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=IST)
#: Late enough that every complaint below is overdue (escalate is legal).
NOW = T0 + timedelta(days=10)
NUMBER = complaint_number(100000001)
OTHER_NUMBER = complaint_number(100000002)


def view(status: ComplaintStatus, **changes: object) -> ComplaintView:
    """A complaint of CATEGORY at Hazratganj, Lucknow, in ``status`` (assigned to the SHO at T0
    unless registered)."""
    fields: dict[str, object] = {
        "category": CATEGORY,
        "district": "lucknow",
        "thana": "lucknow_hazratganj",
    }
    if status not in (S.REGISTERED, S.REJECTED_DUPLICATE):
        fields |= {"level": Level.THANA, "officer": SHO, "assigned_at": T0, "due_at": T0 + SLA}
    return ComplaintView(NUMBER, status, **(fields | changes))  # type: ignore[arg-type]


def actor_as(who: Who, complaint: ComplaintView) -> Actor:
    """An actor that has capacity ``who`` on ``complaint`` (and no other)."""
    match who:
        case Who.ASSIGNED_OFFICER:
            return Actor(Role.OFFICER, "sho", officer=complaint.officer)
        case Who.AGENT:
            return Actor(Role.AGENT, "agent1")
        case Who.SUPERVISOR:
            return Actor(Role.SUPERVISOR, "sup1")
        case Who.CM_OFFICE:
            return Actor(Role.CM_OFFICE, "cm1", officer="cm_office.up")
        case Who.ADMIN:
            return Actor(Role.ADMIN, "admin")
        case Who.SYSTEM:
            return SYSTEM


def request(action: Action) -> dict[str, str]:
    """What a well-formed request for ``action`` carries."""
    args = {"note": "spoke to the citizen"}
    if action is Action.REASSIGN:
        args["officer"] = CP
    if action is Action.REJECT_DUPLICATE:
        args["duplicate_of"] = OTHER_NUMBER
    return args


def take(
    complaint: ComplaintView, action: Action | str, actor: Actor, **args: str
) -> Transition | Refusal:
    return apply(complaint, action, actor, NOW, reference=REF, **args)  # type: ignore[arg-type]


def transition(result: Transition | Refusal) -> Transition:
    assert isinstance(result, Transition), result
    return result


def refusal(result: Transition | Refusal, kind: RefusalKind) -> Refusal:
    assert isinstance(result, Refusal), result
    assert result.kind is kind, result
    return result


# --------------------------------------------------------------------------- the table


def test_the_table_covers_every_action_and_reaches_every_status() -> None:
    assert {rule.action for rule in RULES} == set(Action)
    assert len(RULE_OF) == len(RULES)
    reached = {S.REGISTERED} | {rule.target for rule in RULES}
    assert reached == set(S)
    # Every status but the final ones has a way out; closed only by a reopen.
    assert {s for s in S if not allowed_actions(s)} == {S.REJECTED_DUPLICATE}
    assert allowed_actions(S.CLOSED) == [Action.REOPEN]


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("status", list(S))
def test_every_status_and_action(status: ComplaintStatus, action: Action) -> None:
    complaint = view(status)
    rule = TABLE.get((status, action))
    if rule is None:
        for who in Who:
            refused = refusal(
                take(complaint, action, actor_as(who, complaint)), RefusalKind.ILLEGAL
            )
            assert f"cannot {action} a complaint that is {status}" in refused.reason
        return
    who = sorted(rule.who)[0]
    done = transition(take(complaint, action, actor_as(who, complaint), **request(action)))
    assert done.action is action and done.before == complaint
    assert done.after.status is rule.target
    assert done.after.number == complaint.number and done.at == NOW
    assert done.effects <= set(rule.effects)


@pytest.mark.parametrize("who", list(Who))
@pytest.mark.parametrize("action", list(Action))
def test_every_capacity_for_every_action(action: Action, who: Who) -> None:
    rule = RULE_OF[action]
    for status in rule.sources:
        complaint = view(status)
        actor = actor_as(who, complaint)
        if who is Who.ASSIGNED_OFFICER and who in rule.who and complaint.officer is None:
            continue  # a registered complaint has no officer to be
        result = take(complaint, action, actor, **request(action))
        if who in rule.who:
            assert transition(result).after.status is rule.target
        else:
            refused = refusal(result, RefusalKind.FORBIDDEN)
            assert str(action) in refused.reason


@pytest.mark.parametrize("action", [r.action for r in RULES if Who.ASSIGNED_OFFICER in r.who])
def test_only_the_officer_of_the_assigned_post_acts_as_it(action: Action) -> None:
    complaint = view(sorted(RULE_OF[action].sources & WITH_OFFICER)[0])
    args = request(action)
    other_post = Actor(Role.OFFICER, "cp", officer=CP)
    no_post = Actor(Role.OFFICER, "new officer")
    agent_with_code = Actor(Role.AGENT, "agent1", officer=SHO)
    for actor in (other_post, no_post, agent_with_code):
        refused = refusal(take(complaint, action, actor, **args), RefusalKind.FORBIDDEN)
        assert SHO in refused.reason
    at_top = replace(complaint, level=Level.CM_OFFICE, officer="cm_office.up")
    cm = Actor(Role.CM_OFFICE, "cm1", officer="cm_office.up")
    assert Who.ASSIGNED_OFFICER in capacities(cm, at_top)
    assert isinstance(take(at_top, action, cm, **args), Transition)


def test_capacities() -> None:
    complaint = view(S.ASSIGNED)
    assert capacities(SYSTEM, complaint) == {Who.SYSTEM}
    assert capacities(Actor(Role.OFFICER, "x", officer=SHO), complaint) == {Who.ASSIGNED_OFFICER}
    assert capacities(Actor(Role.OFFICER, "x", officer=CP), complaint) == set()
    assert capacities(Actor(Role.CM_OFFICE, "x", officer="cm_office.up"), complaint) == {
        Who.CM_OFFICE
    }


# --------------------------------------------------------------------------- bad requests


def test_an_unknown_action_is_invalid_not_an_exception() -> None:
    refused = refusal(take(view(S.ASSIGNED), "archive", SYSTEM), RefusalKind.INVALID)
    assert "'archive'" in refused.reason and "reopen" in refused.reason
    assert isinstance(
        take(view(S.ASSIGNED), "start", actor_as(Who.ASSIGNED_OFFICER, view(S.ASSIGNED))),
        Transition,
    )


@pytest.mark.parametrize("rule", RULES, ids=lambda r: str(r.action))
def test_a_note_is_required_where_the_table_says(rule: Rule) -> None:
    status = sorted(rule.sources)[0]
    complaint = view(status)
    actor = actor_as(sorted(rule.who)[0], complaint)
    args = request(rule.action)
    args["note"] = "  \n "
    result = take(complaint, rule.action, actor, **args)
    if rule.needs_note:
        assert "needs a note" in refusal(result, RefusalKind.INVALID).reason
    else:
        assert transition(result).note == ""


def test_the_note_is_kept_stripped() -> None:
    complaint = view(S.IN_PROGRESS)
    done = transition(
        take(
            complaint,
            Action.RESOLVE,
            actor_as(Who.ASSIGNED_OFFICER, complaint),
            note=" FIR lodged ",
        )
    )
    assert done.note == "FIR lodged" and done.effects == {Effect.RECORD_RESOLUTION}


@pytest.mark.parametrize("original", ["", "12345", NUMBER[:-1] + str((int(NUMBER[-1]) + 1) % 10)])
def test_reject_duplicate_needs_a_valid_complaint_number(original: str) -> None:
    refused = take(
        view(S.REGISTERED),
        Action.REJECT_DUPLICATE,
        actor_as(Who.SUPERVISOR, view(S.REGISTERED)),
        note="same",
        duplicate_of=original,
    )
    assert "number of the complaint" in refusal(refused, RefusalKind.INVALID).reason


def test_reject_duplicate_of_itself_is_refused_and_of_another_is_recorded() -> None:
    complaint = view(S.ASSIGNED)
    sup = actor_as(Who.SUPERVISOR, complaint)
    itself = take(complaint, Action.REJECT_DUPLICATE, sup, note="same", duplicate_of=NUMBER)
    assert "itself" in refusal(itself, RefusalKind.INVALID).reason
    done = transition(
        take(complaint, Action.REJECT_DUPLICATE, sup, note="same", duplicate_of=OTHER_NUMBER)
    )
    assert done.duplicate_of == OTHER_NUMBER and done.effects == {Effect.RECORD_DUPLICATE}
    assert done.after.status is S.REJECTED_DUPLICATE and done.after.officer == SHO


# --------------------------------------------------------------------------- assign, reassign


def test_assign_routes_by_category_and_place_with_a_due_date_from_now() -> None:
    done = transition(take(view(S.REGISTERED), Action.ASSIGN, SYSTEM))
    assert done.after.officer == SHO and done.after.level is Level.THANA
    assert done.after.assigned_at == NOW and done.after.due_at == NOW + SLA
    assert done.effects == {Effect.ASSIGN_OFFICER, Effect.NEW_DUE_DATE}
    no_thana = transition(take(view(S.REGISTERED, thana=None), Action.ASSIGN, SYSTEM))
    assert no_thana.after.officer == CP and no_thana.remarks == ("no thana given",)


def test_assign_of_an_unroutable_complaint_is_refused_with_routing_s_reason() -> None:
    refused = take(view(S.REGISTERED, district="atlantis"), Action.ASSIGN, SYSTEM)
    assert "unknown district 'atlantis'" in refusal(refused, RefusalKind.ILLEGAL).reason
    unknown = take(view(S.REGISTERED, category="police.aliens"), Action.ASSIGN, SYSTEM)
    assert "no known category" in refusal(unknown, RefusalKind.ILLEGAL).reason


@pytest.mark.parametrize(
    ("officer", "why"),
    [
        ("cm_office.up", "CM office"),
        ("revenue.tehsil.lucknow_sadar", "not on the ladder"),
        ("nobody.at.all", "unknown officer"),
    ],
)
def test_assign_to_a_chosen_officer_checks_them(officer: str, why: str) -> None:
    sup = actor_as(Who.SUPERVISOR, view(S.REGISTERED))
    refused = take(view(S.REGISTERED), Action.ASSIGN, sup, officer=officer)
    assert why in refusal(refused, RefusalKind.INVALID).reason


def test_assign_to_an_officer_of_another_department_at_a_ladder_level_is_refused() -> None:
    sup = actor_as(Who.SUPERVISOR, view(S.REGISTERED))
    refused = take(view(S.REGISTERED), Action.ASSIGN, sup, officer="health.district.lucknow")
    assert "not an officer of police" in refusal(refused, RefusalKind.INVALID).reason
    chosen = transition(take(view(S.REGISTERED), Action.ASSIGN, sup, officer=CP))
    assert chosen.after.officer == CP and chosen.after.level is Level.DISTRICT


def test_reassign_needs_an_officer_not_lower_and_not_the_same() -> None:
    complaint = view(S.IN_PROGRESS, level=Level.DISTRICT, officer=CP)
    sup = actor_as(Who.SUPERVISOR, complaint)
    missing = take(complaint, Action.REASSIGN, sup, note="wrong thana")
    assert "needs the officer" in refusal(missing, RefusalKind.INVALID).reason
    lower = take(complaint, Action.REASSIGN, sup, note="x", officer=SHO)
    assert "below the complaint's level" in refusal(lower, RefusalKind.INVALID).reason
    same = take(complaint, Action.REASSIGN, sup, note="x", officer=CP)
    assert "already assigned" in refusal(same, RefusalKind.INVALID).reason
    other = "police.district.unnao"
    done = transition(take(complaint, Action.REASSIGN, sup, note="it is Unnao", officer=other))
    assert done.after.officer == other and done.after.status is S.ASSIGNED
    assert done.after.assigned_at == NOW and done.after.due_at == NOW + SLA
    assert done.breach is not None and done.breach.officer == CP  # it was overdue


# --------------------------------------------------------------------------- reopen


def test_reopen_goes_one_level_up_with_a_new_due_date() -> None:
    complaint = view(S.RESOLVED)
    done = transition(
        take(complaint, Action.REOPEN, actor_as(Who.AGENT, complaint), note="no FIR yet")
    )
    assert done.after.status is S.REOPENED
    assert done.after.level is Level.DISTRICT and done.after.officer == CP
    assert done.after.due_at == NOW + SLA and done.after.reopens == 1
    assert done.after.escalations == 0 and done.breach is None
    assert done.effects == {Effect.LEVEL_UP, Effect.ASSIGN_OFFICER, Effect.NEW_DUE_DATE}


def test_reopen_at_the_cm_office_stays_there() -> None:
    complaint = view(S.CLOSED, level=Level.CM_OFFICE, officer="cm_office.up")
    done = transition(take(complaint, Action.REOPEN, SYSTEM, note="asked again"))
    assert done.after.level is Level.CM_OFFICE and done.after.officer == "cm_office.up"
    assert done.effects == {Effect.NEW_DUE_DATE}
    assert "top of the ladder" in done.remarks[0]


# --------------------------------------------------------------------------- the snapshot


@pytest.mark.parametrize(
    "changes",
    [
        {"officer": None},
        {"due_at": T0},
        {"due_at": T0 - timedelta(seconds=1)},
        {"assigned_at": T0.replace(tzinfo=None)},
    ],
)
def test_a_snapshot_that_contradicts_itself_is_a_bug(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        view(S.ASSIGNED, **changes)


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError):
        apply(view(S.ASSIGNED), Action.START, SYSTEM, datetime(2026, 12, 20), reference=REF)
    assert isinstance(
        apply(view(S.ASSIGNED), Action.ESCALATE, SYSTEM, NOW.astimezone(UTC), reference=REF),
        Transition,
    )


def test_with_officer_statuses_are_the_ones_that_escalate() -> None:
    assert {s for s in S if (s, Action.ESCALATE) in TABLE} == WITH_OFFICER


# --------------------------------------------------------------------------- generated docs

_ARROW = re.compile(r"^    (\w+) --> (\w+): (.+)$")


def test_the_state_diagram_is_the_table() -> None:
    drawn: set[tuple[str, str, str]] = set()
    for line in render_state_diagram().splitlines():
        if (match := _ARROW.match(line)) is not None:
            source, target, actions = match.groups()
            drawn |= {(source, action, target) for action in actions.split(", ")}
    assert drawn == {(s, a, rule.target) for (s, a), rule in TABLE.items()}


def test_docs_lifecycle_md_is_generated_from_the_table() -> None:
    assert main(["--check", str(DOC_PATH)]) == 0, (
        "docs/lifecycle.md is out of date: run python -m core.domain.lifecycle_doc"
    )
    text = DOC_PATH.read_text(encoding="utf-8")
    assert render_doc_section(REF) in text
    assert "## Reference data" in text  # the hand-written sections stay
    assert "stateDiagram-v2" in text and "`police.fir_not_registered`" in text


def test_splice_replaces_only_the_generated_section() -> None:
    document = f"intro\n\n{DOC_BEGIN}\nold\n{DOC_END}\n\noutro\n"
    assert splice_doc(document, f"{DOC_BEGIN}\nnew\n{DOC_END}") == (
        f"intro\n\n{DOC_BEGIN}\nnew\n{DOC_END}\n\noutro\n"
    )
    assert splice_doc("intro\n", "X") == "intro\n\nX\n"


def test_the_doc_check_fails_on_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "lifecycle.md"
    stale.write_text(f"# x\n\n{DOC_BEGIN}\nold\n{DOC_END}\n", encoding="utf-8")
    assert main(["--check", str(stale)]) == 1
    assert main([str(stale)]) == 0
    assert main(["--check", str(stale)]) == 0
