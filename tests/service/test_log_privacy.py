"""No full phone number and no complaint text in the application's logs (India's DPDP Act).

A slice of the system runs with every logger at DEBUG and one handler keeping every record:
complaints filed, replayed, refused and looked up through the API (by the caller's number in
its other spellings too), unmasked, worked to resolution; the SMS that resolution queues
delivered by the logging provider; a citizen's IVR call over the fake AGI asking for the
complaint's status; a callback dialled over the fake AMI. Then each record, as a handler would
write it (message, exception, stack), is scanned for the seeded numbers in every spelling, for
any valid Indian number at all, and for the seeded description, resolution note and name.

The records are scanned raw, before :class:`core.logs.PrivacyFilter`: the net must not be
what keeps this test green. Two exceptions, by design: SQLAlchemy's statement/row echo stays
at WARNING (``core.logs.pin_libraries``; at DEBUG it prints every row it reads), and the
test's own HTTP client (``httpx``/``httpcore``) is not the application.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agi_scripts.store import PostgresStore
from core import logs
from core.config import Settings
from core.db.models import Seat, SeatStatus
from core.reference import Reference
from core.transport.ami_client import AMIClient
from core.transport.fake_ami import FakeAMIServer
from lifecycle.notifications import RetryPolicy, deliver_due
from lifecycle.sms_providers import LoggingProvider
from outbound_dialer.service import Dialer
from tests.service.test_access import (  # noqa: F401 - fixtures
    Users,
    app,
    bearer,
    client,
    seeded,
    user_named,
)
from tests.service.test_dialer_service import CALLBACKS, attempts, fake  # noqa: F401 - fixture
from tests.service.test_dialer_store import NOW, callbacks
from tests.service.test_ivr_store import run_call
from tests.unit.test_ivr_flow import Key, Type
from tests.waiting import wait_for

CALLER = "9415012345"
CALLED_BACK = "7007123456"
DESCRIPTION = "Thanedar ne FIR likhne se mana kiya, zameen ka vivad gaon Rampur Khas"
RESOLUTION = "FIR darj ki gayi, vivechana upnirikshak Sharma ko di gayi"
NAME = "Ramkali Devi Kushwaha"
#: Loggers that are the test's own tooling, not the application.
NOT_THE_APPLICATION = ("httpx", "httpcore")


def spellings(number: str) -> list[str]:
    """How a number may be written: as stored, as dialled, as carriers and people send it."""
    return [
        number,
        f"+91{number}",
        f"91{number}",
        f"0{number}",
        f"091{number}",
        f"+91 {number[:5]} {number[5:]}",
        f"{number[:5]} {number[5:]}",
        f"{number[:5]}-{number[5:]}",
    ]


class Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def written(record: logging.LogRecord) -> str:
    """What a handler would write of ``record``: its message, exception and stack."""
    parts = [record.name, record.getMessage()]
    if record.exc_info:
        parts.append("".join(traceback.format_exception(*record.exc_info)))
    if record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(record.stack_info)
    return "\n".join(parts)


@pytest.fixture
def kept() -> Iterator[Keep]:
    """Every logger at DEBUG (SQLAlchemy's echo pinned as in production), one handler keeping
    every record."""
    manager = logging.Logger.manager
    loggers = [logging.getLogger()] + [
        item for item in manager.loggerDict.values() if isinstance(item, logging.Logger)
    ]
    before = {logger: (logger.level, logger.disabled) for logger in loggers}
    for logger in loggers:
        pinned = logger.name.startswith(logs.PINNED)
        logger.setLevel(logging.NOTSET if pinned else logging.DEBUG)
        logger.disabled = False
    logs.pin_libraries()
    handler = Keep()
    logging.getLogger().addHandler(handler)
    try:
        yield handler
    finally:
        logging.getLogger().removeHandler(handler)
        for logger, (level, disabled) in before.items():
            logger.setLevel(level)
            logger.disabled = disabled
        for name in logs.PINNED:
            logging.getLogger(name).setLevel(logging.NOTSET)


async def api_slice(http: httpx.AsyncClient, users: Users) -> str:
    """File, replay, refuse, find, unmask and resolve one complaint through the API."""
    desk = {"Authorization": f"Bearer {await bearer(http, user_named(users, 'supervisor'))}"}
    post = "police.thana.lucknow_hazratganj"
    officer = {"Authorization": f"Bearer {await bearer(http, user_named(users, 'officer', post))}"}
    body = {
        "description": DESCRIPTION,
        "caller_name": NAME,
        "department": "police",
        "category": "police.fir_not_registered",
        "district": "lucknow",
        "thana": "lucknow_hazratganj",
        "caller_number": f"+91 {CALLER[:5]} {CALLER[5:]}",
    }
    key = {"Idempotency-Key": "log-privacy-1"}
    filed = await http.post("/complaints", json=body, headers=desk | key)
    assert filed.status_code == 201, filed.text
    number: str = filed.json()["number"]
    replay = await http.post("/complaints", json=body, headers=desk | key)
    assert replay.status_code in (200, 201), replay.text
    # Refusals that carry the number and the text: a reused key, unknown codes, a NUL byte,
    # a number that is no number, and no token at all.
    for changed, headers in (
        (body | {"description": DESCRIPTION + "!"}, desk | key),
        (body | {"category": "police.no_such_category"}, desk),
        (body | {"description": DESCRIPTION + "\x00"}, desk),
        (body | {"caller_number": CALLER[:9]}, desk),
        (body | {"description": DESCRIPTION * 200}, desk),
        (body | {"caller_name": NAME * 20}, desk),
        (body | {"description": DESCRIPTION, "department": ["police"], "extra": CALLER}, desk),
        (body, {}),
    ):
        refused = await http.post("/complaints", json=changed, headers=headers)
        assert 400 <= refused.status_code < 500, refused.text
    for caller in spellings(CALLER)[:4]:
        found = await http.get("/complaints", params={"caller": caller}, headers=desk)
        assert found.status_code == 200 and len(found.json()) == 1, found.text
    assert (await http.get(f"/complaints/{number}", headers=officer)).status_code == 200
    unmasked = await http.post(
        f"/complaints/{number}/unmask",
        json={"reason": "calling the citizen about the FIR"},
        headers=officer,
    )
    assert unmasked.json()["caller_number"] == CALLER
    for action in ({"action": "start"}, {"action": "resolve", "note": RESOLUTION}):
        moved = await http.post(f"/complaints/{number}/transitions", json=action, headers=officer)
        assert moved.status_code == 200, moved.text
    return number


async def test_no_number_and_no_complaint_text_in_any_log_record(
    kept: Keep,
    client: httpx.AsyncClient,  # noqa: F811 - fixture
    seeded: Users,  # noqa: F811 - fixture
    db_settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    fake: FakeAMIServer,  # noqa: F811 - fixture
    reference_data: Reference,
) -> None:
    number = await api_slice(client, seeded)
    # The resolution's SMS, delivered by the default provider (which logs each SMS).
    later = NOW + timedelta(days=1)
    report = await deliver_due(sessions, LoggingProvider(), later, 10, RetryPolicy())
    assert report.sent >= 1
    # The citizen calls the IVR from their number and asks for the complaint's status.
    store = PostgresStore(db_settings, sessions)
    await run_call(
        store,
        [Key("1"), Key("2"), Type(number), Key("0")],
        caller_id=f"+91{CALLER}".encode(),
    )
    # A callback dialled over the fake AMI (the seeded seats free), answered and hung up.
    await callbacks(sessions, [CALLED_BACK])
    async with sessions() as session:
        session.add_all(
            SeatStatus(seat=seat, in_queue=True, device_status=1)
            for seat in await session.scalars(select(Seat.name))
        )
        await session.commit()
    dial_settings = db_settings.model_copy(
        update={"dialer_poll_seconds": 0.05, "outbound_caller_id": "1600123456"}
    )
    ami = AMIClient("127.0.0.1", fake.port, "helpline_outbound_dialer", "s", ping_interval=1.0)
    dialer = Dialer(
        dial_settings, ami, sessions, reference_data, clock=lambda: NOW, campaigns=CALLBACKS
    )
    async with ami:
        task = asyncio.create_task(dialer.run())
        originates = fake.actions_named
        await wait_for(lambda: len(originates("Originate")) == 1, 10, what="the Originate")
        channel = originates("Originate")[0].get("ChannelId")
        await fake.push_event(
            "Newchannel", Uniqueid=channel, CallerIDNum=CALLED_BACK, Exten=CALLED_BACK
        )
        await fake.push_event("OriginateResponse", Response="Success", Reason="4", Uniqueid=channel)
        await fake.push_event("Hangup", Uniqueid=channel, Cause="16", CallerIDNum=CALLED_BACK)

        async def ended() -> bool:
            return all(a.ended_at is not None for a in await attempts(sessions))

        await wait_for(ended, 10, what="the attempt ended")
        dialer.stop()
        await asyncio.wait_for(task, 10)

    application = [r for r in kept.records if not r.name.startswith(NOT_THE_APPLICATION)]
    # The capture sees the application: the SMS provider's line and the IVR's call summary.
    names = {r.name for r in application}
    assert {"lifecycle.sms_providers", "agi_scripts.ivr"} <= names, names
    secrets = [*spellings(CALLER), *spellings(CALLED_BACK), DESCRIPTION, RESOLUTION, NAME]
    leaks = []
    for record in application:
        text = written(record)
        found = [s for s in secrets if s in text]
        if found or logs.mask_numbers(text) != text:
            leaks.append(f"{record.name}:{record.lineno} {record.levelname}: {text[:300]!r}")
    loggers = sorted({r.name for r in application})
    print(f"\nlog privacy: {len(application)} records from {len(loggers)} loggers scanned")
    assert not leaks, "\n".join(leaks)
