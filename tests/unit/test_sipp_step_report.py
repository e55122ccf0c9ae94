"""How ``bench sipp`` judges a step (bench/sipp.py ``_step_report``): a call counts as failed
when sipp failed it, when no agent answered it, when it was recorded twice, when an agent
answered it past the queue's patience, or when Asterisk answered its INVITE late (a citizen
who heard seconds of silence, the INVITE retransmitted, was not served even if an agent
answered later)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

from bench.sipp import LoadPlan, Step, _step_report

T0 = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)


def _answered(number: str, to_agent_s: float) -> SimpleNamespace:
    return SimpleNamespace(
        uniqueid=f"u{number}",
        caller_number=number,
        disposition="answered",
        started_at=T0,
        queue_joined_at=T0 + timedelta(seconds=5),
        agent_connected_at=T0 + timedelta(seconds=5 + to_agent_s),
    )


def _step(tmp_path: Path, numbers: list[str]) -> Step:
    step = Step(0, 1.0, len(numbers), tmp_path, numbers, returncode=0)
    step.stats = {"SuccessfulCall(C)": len(numbers), "FailedCall(C)": 0}
    return step


def test_a_clean_step_fails_nothing(tmp_path: Path) -> None:
    numbers = ["9700000001", "9700000002", "9700000003"]
    rows = [_answered(n, 1.0) for n in numbers]
    report = _step_report(_step(tmp_path, numbers), rows, [12.0, 30.0, 1999.0], LoadPlan(3, [1], 3))
    assert report["failed"] == 0 and report["asterisk_answered_late"] == 0
    assert report["answer_delay_ms"]["max"] == 1999.0


def test_late_answers_by_asterisk_and_by_agents_fail(tmp_path: Path) -> None:
    numbers = ["9700000001", "9700000002", "9700000003", "9700000004"]
    rows = [_answered(numbers[0], 1.0), _answered(numbers[1], 25.0), _answered(numbers[2], 1.0)]
    rows.append(_answered(numbers[2], 1.0))  # recorded twice
    rtt = [15_524.0, 20.0, 2_000.5]  # the 4th call never answered: no rtt
    report = _step_report(_step(tmp_path, numbers), rows, rtt, LoadPlan(4, [1], 4))
    assert report["asterisk_answered_late"] == 2
    assert report["answered_after_patience"] == 1
    assert report["recorded_twice"] == 1
    # The 4th call unanswered (a call recorded twice does not hide it), one recorded twice,
    # one answered past the patience, two answered late by Asterisk.
    assert report["failed"] == 1 + 1 + 1 + 2


def test_the_limit_is_the_plans(tmp_path: Path) -> None:
    numbers = ["9700000001"]
    plan = LoadPlan(1, [1], 1, answer_within=20.0)
    report = _step_report(_step(tmp_path, numbers), [_answered(numbers[0], 1.0)], [15_524.0], plan)
    assert report["failed"] == 0
