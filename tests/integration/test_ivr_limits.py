"""The IVR's edges through the real Asterisk: emergency transfers through the PSTN trunk to a
sipp "112/108" on the trunk address, and a spent daily budget that offers (and stores) a
callback. The FastAGI service is restarted for this module with a budget of 0 and a transfer
dial string pointing at that sipp, then restored."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db.models import CallbackRequest
from helpline import services
from helpline.sipp import DtmfStep, citizen_call
from tests.integration.test_ivr_support import (
    EmergencyLine,
    emergency_line,
    ivr_session,
    language_key_at,
    seconds,
    wait_agi,
)

pytestmark = pytest.mark.integration


@dataclass
class Limited:
    settings: Settings
    line: EmergencyLine


@pytest.fixture(scope="module")
def monkeymodule() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def limited(stack_settings: Settings, monkeymodule: pytest.MonkeyPatch) -> Iterator[Limited]:
    with emergency_line(stack_settings) as line:
        dial = f"PJSIP/trunk/sip:{{number}}@{line.ip}:{line.port}"
        monkeymodule.setenv("HELPLINE_DAILY_INBOUND_BUDGET", "0")
        monkeymodule.setenv("HELPLINE_IVR_TRANSFER_DIAL", dial)
        services.stop(stack_settings, "agi")
        services.start(stack_settings, "agi")
        wait_agi(stack_settings)
        try:
            yield Limited(stack_settings, line)
        finally:
            monkeymodule.delenv("HELPLINE_DAILY_INBOUND_BUDGET")
            monkeymodule.delenv("HELPLINE_IVR_TRANSFER_DIAL")
            services.stop(stack_settings, "agi")
            services.start(stack_settings, "agi")
            wait_agi(stack_settings)


async def test_emergencies_are_transferred_through_the_trunk_within_15_s(
    limited: Limited, db: async_sessionmaker[AsyncSession]
) -> None:
    """Police: key 4 once "police ... four" was said; health: key 5 at the end of the sentence
    (the slowest emergency path for a caller who listens first). Both calls at once."""
    settings = limited.settings
    welcome = seconds(settings, "welcome")
    emergency = seconds(settings, "emergency_choice")
    since = datetime.now(UTC) - timedelta(seconds=1)
    police, health = await asyncio.gather(
        citizen_call(
            settings, [DtmfStep("4", welcome + emergency * 0.6)], hold=6, caller_id="9800000004"
        ),
        citizen_call(
            settings, [DtmfStep("5", welcome + emergency - 0.2)], hold=6, caller_id="9800000005"
        ),
    )
    assert police.answered and health.answered, (police.errors, health.errors)
    invites = dict(limited.line.invites())
    assert set(invites) == {"112", "108"}, invites
    for caller, number, service in (
        ("9800000004", "112", "police"),
        ("9800000005", "108", "health"),
    ):
        session = await ivr_session(db, caller, since)
        assert session.outcome == "transferred", session.path
        assert session.detail["emergency"]["service"] == service
        assert session.detail["emergency"]["number"] == number
        assert "queue_check" not in session.detail  # no budget check on an emergency
        to_transfer = invites[number] - session.started_at.timestamp()
        print(f"\n{service}: answer -> INVITE to {number} at the trunk {to_transfer:.1f} s")
        assert 0 < to_transfer <= 15.0
    answered = list((limited.line.workdir / "events").glob("ANSWERED.*"))
    assert len(answered) == 2  # the emergency line answered both: caller and service talked


async def test_spent_budget_offers_a_callback_and_stores_it(
    limited: Limited, db: async_sessionmaker[AsyncSession]
) -> None:
    settings = limited.settings
    steps = [
        DtmfStep("1", language_key_at(settings)),
        DtmfStep("1", seconds(settings, "press1_new_complaint") - 0.3),
        DtmfStep("1", 2.0),  # 2 s into the callback offer: "... for a callback press 1"
    ]
    since = datetime.now(UTC) - timedelta(seconds=1)
    outcome = await citizen_call(settings, steps, hold=20.0, caller_id="09800000006")
    assert outcome.answered, outcome.errors
    assert outcome.hangup_by == "remote"  # the IVR said goodbye and hung up
    session = await ivr_session(db, "09800000006", since)
    assert session.outcome == "callback", session.path
    assert session.detail["queue_check"]["budget"] == 0
    assert session.prompts[-3:] == ["callback_offer", "callback_registered", "goodbye"]
    async with db() as s:
        job = await s.scalar(
            select(CallbackRequest).where(CallbackRequest.uniqueid == session.uniqueid)
        )
    assert job is not None
    assert (job.caller_number, job.reason, job.status, job.lang) == (
        "9800000006",
        "budget",
        "pending",
        "hi",
    )
    assert session.detail["callback_id"] == job.id
    # The same shape as the waiting room's: never queued, so their place is when they asked.
    assert job.queue == settings.queue_name
    assert abs((job.place_at - job.requested_at).total_seconds()) < 1
