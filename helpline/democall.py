"""``helpline call``: a citizen from the "PSTN trunk" dials 1076, and we report what happened.

The report is read back from what the helpline itself stored (the call record written by the
queue manager from AMI events), so it shows the same truth an agent or supervisor would see.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from sqlalchemy import select

from core.config import Settings
from core.db.models import Call, IvrSession
from core.db.session import create_engine, session_factory
from helpline.sipp import citizen_call
from ivr.catalogue import load_catalogue

DEMO_CALLER = "9876543210"


async def _latest_call(settings: Settings, since: float) -> tuple[Call | None, IvrSession | None]:
    engine = create_engine(settings, pool_size=1)
    try:
        async with session_factory(engine)() as session:
            call = (
                await session.execute(
                    select(Call)
                    .where(Call.caller_number == DEMO_CALLER)
                    .where(Call.started_at >= datetime.fromtimestamp(since - 5, UTC))
                    .order_by(Call.id.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
            ivr = None
            if call is not None:
                ivr = (
                    await session.execute(
                        select(IvrSession).where(IvrSession.uniqueid == call.uniqueid)
                    )
                ).scalar_one_or_none()
            return call, ivr
    finally:
        await engine.dispose()


def heard(ivr: IvrSession) -> list[str]:
    """The prompts the IVR played, as the text the caller heard (``hi:`` marks a prompt
    played in that language whatever the caller chose)."""
    catalogue = load_catalogue()
    lines = []
    for played in ivr.prompts:
        lang, _, prompt_id = played.rpartition(":")
        prompt = catalogue.get(prompt_id)
        text = prompt.text(lang or ivr.lang) if prompt is not None else ""
        lines.append(f"    {played:28} {text}")
    return lines


async def place_demo_call(settings: Settings, *, digits: str, seconds: float) -> int:
    print(
        f"Calling {settings.helpline_number} from {settings.trunk_address} as {DEMO_CALLER}; "
        f"pressing {digits or 'nothing'} after the welcome; staying {seconds:.0f} s ..."
    )
    started = time.time()
    outcome = await citizen_call(
        settings, digits, hold=seconds, caller_id=DEMO_CALLER, first_digit_delay=10.0
    )
    if not outcome.answered:
        print(f"The call was not answered.\n{outcome.errors}")
        return 1
    print(
        f"Answered in {outcome.setup_time or 0:.2f} s; on the line {outcome.duration or 0:.1f} s; "
        f"hung up by {outcome.hangup_by or 'nobody'}."
    )
    await asyncio.sleep(1.0)  # the queue manager records the Hangup event
    call, ivr = await _latest_call(settings, started)
    if call is None:
        print("No call record found: is the queue manager running? (helpline status)")
        return 1
    if ivr is not None:
        print(f"What the caller heard ({ivr.lang}), keys pressed {ivr.digits or '-'}:")
        print("\n".join(heard(ivr)))
        print(f"IVR outcome: {ivr.outcome or '(still in the IVR)'}")
    print(f"Call record {call.uniqueid}:")
    print(
        f"  IVR path     {call.ivr_path or '(the IVR did not finish)'}"
        f"{'  [fallback: IVR unavailable, sent to queue]' if call.ivr_fallback else ''}"
    )
    print(f"  queue        {call.queue or '-'} joined {call.queue_joined_at or '-'}")
    print(f"  agent        {call.agent_seat or 'none answered'}")
    print(f"  disposition  {call.disposition or '(still up)'}")
    return 0
