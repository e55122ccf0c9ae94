"""``python -m bench sipp`` at a small scale on the test stack: 20 seats registered and answered
by one sipp, 20 agents logged in with their ``/ws/agent`` sockets open, citizens at 2 calls/s
for 15 s through the IVR and the queue. Afterwards the database has every call once, answered
by an agent, every answered call's screen-pop reached its seat's socket exactly once, and no
seat still shows a call."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.sipp import LoadPlan, run_load
from core.config import Settings

pytestmark = pytest.mark.integration


async def test_twenty_seats_two_calls_a_second_every_call_once_and_popped_once(
    stack_settings: Settings, tmp_path: Path
) -> None:
    plan = LoadPlan(
        seats=20,
        rates=[2.0],
        step_seconds=15.0,
        talk=(1.0, 2.0),
        ring=0.3,
        # Seats and users of their own (other tests sit at agent0001.. and agent0101..).
        first_seat=471,
        user_prefix="sippload",
        number_prefix="96",
        api_logins=2,
    )
    report = await run_load(stack_settings, plan, tmp_path)

    [step] = report["steps"]
    assert step["calls"] == 30
    assert step["sipp_failed"] == 0 and step["sipp_exit"] == 0, step
    assert step["recorded"] == 30 and step["not_recorded"] == 0 and step["recorded_twice"] == 0
    assert step["dispositions"] == {"answered": 30}, step
    assert step["answered_by_agent"] == 30 and step["failed"] == 0, step
    assert report["max_sustained_cps"] == 2.0
    assert step["answer_delay_ms"]["max"] is not None
    assert step["time_to_agent_s"]["max"] is not None
    assert report["agents_logged_in"] == 20 and report["agent_sockets"] == 20
    assert report["seats_left_on_a_call"] == {}
    assert report["screen_pops"] == {
        "answered_calls": 30,
        "delivered_once_to_its_seat": 30,
        "missing": 0,
        "wrong_seat": 0,
        "duplicated": 0,
    }
    # The backend's CPU was read from /proc for every service and Asterisk.
    assert {"agi", "queue-manager", "api", "dialer", "asterisk"} <= set(report["cpu_seconds"])
    assert report["db_per_call"]["xact_commit"] > 0
