"""The queue manager's in-memory seat picture (pure): duplicated and reordered AMI events
change nothing they should not; skill memberships; constants the config must agree with."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from core.domain.queues import (
    UNSKILLED_PENALTY,
    all_queues,
    memberships,
    seats_digest,
)
from core.protocols.ami import AMIMessage
from queue_manager.live import LiveSeats

T0 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def member(name: str, queue: str, paused: bool, reason: str = "") -> AMIMessage:
    return AMIMessage(
        [
            ("Event", name),
            ("Queue", queue),
            ("Interface", "Local/agent0001@seat-phones"),
            ("Penalty", "0"),
            ("Status", "1"),
            ("Paused", "1" if paused else "0"),
            ("PausedReason", reason),
        ]
    )


def agent(name: str, uniqueid: str, seat: str = "agent0001") -> AMIMessage:
    return AMIMessage(
        [
            ("Event", name),
            ("Queue", "helpline"),
            ("Interface", f"Local/{seat}@seat-phones"),
            ("Uniqueid", uniqueid),
            ("DestUniqueid", f"{uniqueid}-seat"),  # the seat's Local channel
        ]
    )


def hangup(uniqueid: str) -> AMIMessage:
    return AMIMessage([("Event", "Hangup"), ("Uniqueid", uniqueid)])


def test_skill_memberships_and_config_constants() -> None:
    assert all_queues("helpline") == ["helpline", "helpline-police", "helpline-health"]
    assert memberships("helpline", ["general", "police"], 2) == {
        "helpline": 2,
        "helpline-police": 2,
        "helpline-health": 2 + UNSKILLED_PENALTY,
    }
    assert seats_digest([("a", "1"), ("b", "2")]) == seats_digest([("b", "2"), ("a", "1")])
    assert seats_digest([("a", "1")]) != seats_digest([("a", "2")])


# Events of one seat, each with its own time: added, paused (break), unpaused, paused (meeting).
HISTORY = [
    (member("QueueMemberAdded", "helpline", False), T0),
    (member("QueueMemberPause", "helpline", True, "break"), T0 + timedelta(seconds=1)),
    (member("QueueMemberPause", "helpline", False), T0 + timedelta(seconds=2)),
    (member("QueueMemberPause", "helpline", True, "meeting"), T0 + timedelta(seconds=3)),
]


@given(st.permutations(HISTORY + HISTORY))
def test_member_state_is_the_newest_whatever_the_order(
    events: list[tuple[AMIMessage, datetime]],
) -> None:
    live = LiveSeats(all_queues("helpline"))
    for event, at in events:
        live.apply(event, at)
    seat = live.seat("agent0001")
    assert seat.queues == ["helpline"]
    assert seat.paused and seat.pause_reason == "meeting"


def test_a_late_agent_connect_does_not_leave_a_seat_on_a_call() -> None:
    for order in itertools.permutations(
        [(agent("AgentConnect", "1.1"), T0), (agent("AgentComplete", "1.1"), T0 + timedelta(60))]
    ):
        live = LiveSeats(all_queues("helpline"))
        for event, at in [*order, *order]:  # and every event twice
            live.apply(event, at)
        seat = live.seat("agent0001")
        assert seat.current_call is None
        assert seat.last_call_ended_at == T0 + timedelta(60)


@given(st.booleans())
def test_the_callers_hangup_ends_a_call_app_queue_never_completed(twice: bool) -> None:
    """app_queue sends AgentConnect before it subscribes to the legs' hang-up requests: a
    caller gone in between gets no AgentComplete. The caller's Hangup frees the seat."""
    live = LiveSeats(all_queues("helpline"))
    assert live.apply(agent("AgentConnect", "1.1"), T0) == ["agent0001"]
    assert live.seat("agent0001").current_call == "1.1"
    # The seat's Local channel is optimized away (hung up) while the agent talks on.
    assert live.apply(hangup("1.1-seat"), T0 + timedelta(seconds=1)) == []
    assert live.seat("agent0001").current_call == "1.1"
    assert live.apply(hangup("1.1"), T0 + timedelta(seconds=9)) == ["agent0001"]
    if twice:
        assert live.apply(hangup("1.1"), T0 + timedelta(seconds=10)) == []
    seat = live.seat("agent0001")
    assert seat.current_call is None
    assert seat.last_call_ended_at == T0 + timedelta(seconds=9)
    assert live.ended_by_caller_hangup == 1
    # A late AgentConnect of the same call changes nothing; a late AgentComplete only the end.
    assert live.apply(agent("AgentConnect", "1.1"), T0 + timedelta(seconds=11)) == []
    live.apply(agent("AgentComplete", "1.1"), T0 + timedelta(seconds=12))
    assert seat.current_call is None and seat.last_call_ended_at == T0 + timedelta(seconds=12)


@given(
    st.permutations(
        [
            (agent("AgentConnect", "1.1"), T0),
            (hangup("1.1"), T0 + timedelta(seconds=30)),
            (hangup("1.1-seat"), T0 + timedelta(seconds=30)),
            (agent("AgentComplete", "1.1"), T0 + timedelta(seconds=30)),
        ]
    )
)
def test_a_call_with_every_end_event_ends_whatever_the_order(
    events: list[tuple[AMIMessage, datetime]],
) -> None:
    live = LiveSeats(all_queues("helpline"))
    for event, at in events:
        live.apply(event, at)
    assert live.seat("agent0001").current_call is None
    assert live._on_call == {}  # nothing kept for a call that is over


def test_a_late_hangup_of_the_last_call_leaves_the_next_call_alone() -> None:
    live = LiveSeats(all_queues("helpline"))
    live.apply(agent("AgentConnect", "1.1"), T0)
    live.apply(agent("AgentComplete", "1.1"), T0 + timedelta(seconds=30))
    live.apply(agent("AgentConnect", "2.1"), T0 + timedelta(seconds=40))
    assert live.apply(hangup("1.1"), T0 + timedelta(seconds=41)) == []
    assert live.seat("agent0001").current_call == "2.1"
    # An AgentConnect replacing a call never completed: the old call's Hangup is no business
    # of the seat's any more.
    live.apply(agent("AgentConnect", "3.1"), T0 + timedelta(seconds=90))
    assert live.apply(hangup("2.1"), T0 + timedelta(seconds=91)) == []
    assert live.seat("agent0001").current_call == "3.1"
    assert live._on_call == {"3.1": {"agent0001"}}


def test_a_caller_on_two_seats_hangs_up_from_both() -> None:
    """Seat 1's call never completed, the caller was queued again and seat 2 answered."""
    live = LiveSeats(all_queues("helpline"))
    live.apply(agent("AgentConnect", "1.1"), T0)
    live.apply(agent("AgentConnect", "1.1", seat="agent0002"), T0 + timedelta(seconds=20))
    assert live.apply(hangup("1.1"), T0 + timedelta(seconds=60)) == ["agent0001", "agent0002"]
    assert live.seat("agent0001").current_call is None
    assert live.seat("agent0002").current_call is None
    assert live._on_call == {}


def test_queue_status_replaces_membership_after_a_reconnect() -> None:
    live = LiveSeats(all_queues("helpline"))
    live.apply(member("QueueMemberAdded", "helpline-police", False), T0)
    touched = live.replace_members({}, T0 + timedelta(seconds=5))
    assert touched == {"agent0001"} and live.seat("agent0001").queues == []
    # An event from before the QueueStatus cannot bring the member back.
    live.apply(member("QueueMemberStatus", "helpline-police", False), T0 + timedelta(seconds=4))
    assert live.seat("agent0001").queues == []
