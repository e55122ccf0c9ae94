"""The Hindi IVR through the real Asterisk 22, with sipp citizens pressing RFC 4733 DTMF.

DTMF timings follow the built prompts' real durations (``seconds``): the caller listens to each
prompt as a citizen who makes no mistake would, and presses the key near its end.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agi_scripts.ivr import playable_prompts
from asterisk_config.instance import AsteriskInstance
from core.config import Settings
from core.db.models import Complaint, User
from core.domain.complaints import complaint_number
from helpline.cli import sounds_root
from helpline.sipp import DtmfStep, citizen_call
from ivr.menus import load_menus
from ivr.prompts import missing_prompts
from tests.integration.test_ivr_support import call_row, ivr_session, language_key_at, seconds

pytestmark = pytest.mark.integration


def test_every_prompt_the_flow_can_play_was_built_for_asterisk(stack_settings: Settings) -> None:
    """STREAM FILE of a missing file returns -1, which ends the IVR: none may be missing."""
    root = sounds_root(AsteriskInstance(stack_settings))
    assert missing_prompts(root, sorted(playable_prompts(load_menus()))) == []


async def test_new_complaint_reaches_the_queue_within_25_s(
    stack_settings: Settings, db: async_sessionmaker[AsyncSession]
) -> None:
    settings = stack_settings
    since = datetime.now(UTC) - timedelta(seconds=1)
    steps = [
        DtmfStep("1", language_key_at(settings)),  # Hindi
        DtmfStep("1", seconds(settings, "press1_new_complaint") - 0.3),  # new complaint
    ]
    outcome = await citizen_call(settings, steps, hold=6.0, caller_id="9800000001")
    assert outcome.answered, outcome.errors
    session = await ivr_session(db, "9800000001", since)
    assert session.outcome == "queued", session.path
    assert [s["node"] for s in session.path] == [
        "welcome",
        "language",
        "hindi",
        "caller",
        "main_menu",
        "new_complaint",
    ]
    assert session.digits == "11" and session.lang == "hi"
    call = await call_row(db, session.uniqueid)
    assert call.queue_joined_at is not None and call.answered_at is not None
    assert call.ivr_done and not call.ivr_fallback
    assert call.ivr_path is not None and call.ivr_path.endswith("main_menu>key:1>new_complaint")
    to_queue = (call.queue_joined_at - call.answered_at).total_seconds()
    print(f"\nnew complaint: answer -> queue {to_queue:.1f} s; IVR {session.duration_ms} ms")
    assert to_queue <= 25.0


async def test_status_of_a_seeded_complaint_is_read_after_verification(
    stack_settings: Settings, db: async_sessionmaker[AsyncSession]
) -> None:
    settings = stack_settings
    filed_by = "9812345678"
    now = datetime.now(UTC)
    async with db() as session:
        author = await session.scalar(select(User).where(User.role == "agent").limit(1))
        assert author is not None
        number = complaint_number(
            900_000_000 + int(time.time()) % 99_999_999
        )  # unique per run in a shared database
        session.add(
            Complaint(
                number=number,
                caller_number=filed_by,
                description="हैंडपंप खराब है",
                created_by=author.id,
                status="in_progress",
                created_at=now - timedelta(days=3),
                due_at=now + timedelta(days=4),
            )
        )
        await session.commit()
    main_to_2 = seconds(settings, "press1_new_complaint") + 1.0
    digits = [DtmfStep(d, 0.4) for d in number]
    digits[0] = DtmfStep(number[0], main_to_2 + 1.0)  # 1 s into "enter the complaint number"
    last4 = [DtmfStep(d, 0.4) for d in filed_by[-4:]]
    last4[0] = DtmfStep(filed_by[-4], 1.5)  # 1.5 s into "enter the last four digits"
    steps = [
        DtmfStep("1", language_key_at(settings)),
        DtmfStep("2", main_to_2),
        *digits,
        DtmfStep("#", 0.4),
        *last4,
    ]
    since = datetime.now(UTC) - timedelta(seconds=1)
    outcome = await citizen_call(settings, steps, hold=30.0, caller_id="9800000002")
    assert outcome.answered, outcome.errors
    ivr = await ivr_session(db, "9800000002", since, within=40)
    heard = ivr.prompts
    # The AGI transcript: nothing personal before the verification, then the read-back in order.
    verify = heard.index("verify_last4")
    assert heard[verify - 1] == "enter_complaint_number"
    read_back = [
        "complaint_number_is",
        *(f"digit_{d}" for d in number),
        "status_is",
        "status_in_progress",
        "registered_days_ago_pre",
        "num_3",
        "registered_days_ago_post",
        "due_in_pre",
        "num_4",
        "due_in_post",
    ]
    assert heard[verify + 1 : verify + 1 + len(read_back)] == read_back
    assert ivr.detail["complaint"] == number
    assert ivr.detail["verified_by"] == "last4"
    assert ivr.outcome == "self_served", ivr.path  # heard it, then hung up
    assert ivr.digits.startswith("12" + number)


async def test_three_invalid_keys_take_the_caller_to_an_agent(
    stack_settings: Settings, db: async_sessionmaker[AsyncSession]
) -> None:
    settings = stack_settings
    hint = seconds(settings, "invalid_choice")
    steps = [
        DtmfStep("1", language_key_at(settings)),
        DtmfStep("7", 1.0),  # during "press 1 for a new complaint"
        DtmfStep("8", hint + 1.0),  # the hint, then 1 s into the menu again
        DtmfStep("6", hint + 1.0),
    ]
    since = datetime.now(UTC) - timedelta(seconds=1)
    outcome = await citizen_call(settings, steps, hold=8.0, caller_id="9800000003")
    assert outcome.answered, outcome.errors
    session = await ivr_session(db, "9800000003", since)
    assert session.outcome == "queued", session.path
    assert session.detail["escalated"] == "failures_at:main_menu"
    assert session.prompts.count("invalid_choice") == 2
    assert session.prompts[-1] == "too_many_attempts"
    main_menu = next(s for s in session.path if s["node"] == "main_menu")
    assert main_menu["event"] == "invalid:7,invalid:8,invalid:6,too_many_failures"
    call = await call_row(db, session.uniqueid)
    assert call.queue_joined_at is not None and call.ivr_done
