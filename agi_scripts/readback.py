"""``agi://…/readback``: read a just-filed complaint number to the caller, digit by digit,
twice, with its due date, then hand the call back to the dialplan.

The agent presses "read back" at the desk; the API (``api.services.desk.read_back``) sets
``READBACK_COMPLAINT``, ``READBACK_THEN`` (``return`` | ``hangup``) and ``READBACK_PEER`` (the
agent's leg) on the caller's channel and redirects both legs with one AMI ``Redirect``: the
caller to the ``readback`` context, which runs this script with the number and the choice as
arguments, the agent to ``readback-agent``, where the agent's leg waits. Afterwards the
dialplan bridges the caller back to that waiting leg or says goodbye and hangs up both
(asterisk_config/templates/extensions.conf.j2). This script only speaks and records; it sets
``READBACK_DONE=1`` as its last act.

Every read-back is stored in ``readback_sessions`` (written when it starts, completed when it
ends, also on hang-up) with each digit as it was spoken: a number is only said after its
COMMIT returned (the complaint is read from the database, never taken from the arguments'
word alone), and what the caller actually heard is on record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Protocol

from agi_scripts.store import ComplaintInfo
from core.config import Settings
from core.domain.calls import ReadbackOutcome, ReadbackThen
from core.domain.clock import IST
from core.domain.complaints import is_valid_complaint_number
from core.transport.fastagi import AGICall, AGIHangup
from ivr.catalogue import DEFAULT_LANG, LANGS
from ivr.menus import PromptRef
from ivr.numbers import digit_fragments, number_fragments

log = logging.getLogger(__name__)

#: How many times the number is read.
READINGS: Final = 2

#: Every prompt id the read-back can play besides number fragments (checked against the
#: built audio, like the IVR's).
READBACK_PROMPTS: Final = frozenset(
    {
        "readback_intro",
        "complaint_number_is",
        "repeat_number",
        "due_date_is",
        *(f"month_{m}" for m in range(1, 13)),
        "complaint_not_found",
        "technical_problem",
        "readback_return",
        "goodbye",
    }
)


@dataclass(slots=True)
class ReadbackRecord:
    """One read-back as stored in ``readback_sessions``."""

    uniqueid: str
    complaint_number: str
    lang: str
    then_action: ReadbackThen
    started_at: datetime
    ended_at: datetime | None = None
    digits_spoken: str = ""
    prompts: list[str] = field(default_factory=list)
    outcome: ReadbackOutcome | None = None


class ReadbackStore(Protocol):
    async def find_complaint(self, number: str) -> ComplaintInfo | None: ...

    async def save_readback(self, record: ReadbackRecord) -> None: ...


def due_date_words(due_at: datetime, lang: str) -> list[str]:
    """``due_date_is``, the day, the month and the year of ``due_at`` in IST, as prompt ids."""
    day = due_at.astimezone(IST).date()
    return [
        "due_date_is",
        *number_fragments(day.day, lang),
        f"month_{day.month}",
        *number_fragments(day.year, lang),
    ]


class ReadbackFlow:
    """One read-back on one channel."""

    def __init__(self, call: AGICall, store: ReadbackStore, settings: Settings) -> None:
        self.call = call
        self.store = store
        self.settings = settings
        args = call.args
        number = args[0].strip() if args else ""
        then = args[1].strip() if len(args) > 1 else ""
        self.record = ReadbackRecord(
            uniqueid=call.uniqueid,
            complaint_number=number[:16],
            lang=DEFAULT_LANG,
            then_action=ReadbackThen(then) if then in set(ReadbackThen) else ReadbackThen.RETURN,
            started_at=datetime.now(UTC),
        )

    async def run(self) -> None:
        try:
            lang = await self.call.get_variable("IVR_LANG")
            self.record.lang = lang if lang in LANGS else DEFAULT_LANG
            await self._save()
            await self.call.set_variable("CHANNEL(language)", self.record.lang)
            try:
                complaint = await self._find()
            except Exception:
                # The caller is still handed back as the agent chose; the agent reads it out.
                log.exception("read-back: no complaint %s", self.record.complaint_number)
                self.record.outcome = ReadbackOutcome.FAILED
                await self.play(["technical_problem"])
                complaint = None
            if self.record.outcome is ReadbackOutcome.FAILED:
                pass
            elif complaint is None:
                self.record.outcome = ReadbackOutcome.NOT_FOUND
                await self.play(["complaint_not_found"])
            else:
                await self.read(complaint)
                self.record.outcome = ReadbackOutcome.COMPLETED
            await self.play(
                ["readback_return" if self.record.then_action is ReadbackThen.RETURN else "goodbye"]
            )
            await self.call.set_variable("READBACK_OUTCOME", str(self.record.outcome))
            await self.call.set_variable("READBACK_DONE", "1")
        except AGIHangup:
            self.record.outcome = ReadbackOutcome.HUNG_UP
            raise
        except BaseException:
            if self.record.outcome is None:
                self.record.outcome = ReadbackOutcome.FAILED
            raise
        finally:
            self.record.ended_at = datetime.now(UTC)
            await self._save()

    async def _find(self) -> ComplaintInfo | None:
        number = self.record.complaint_number
        if not is_valid_complaint_number(number):
            return None
        async with asyncio.timeout(self.settings.ivr_db_timeout):
            return await self.store.find_complaint(number)

    async def read(self, complaint: ComplaintInfo) -> None:
        lang = self.record.lang
        for reading in range(READINGS):
            await self.play(["readback_intro", "complaint_number_is"] if reading == 0 else
                            ["repeat_number"])  # fmt: skip
            for digit, fragments in zip(
                complaint.number, _per_digit(complaint.number, lang), strict=True
            ):
                await self.play(fragments)
                self.record.digits_spoken += digit
        if complaint.due_at is not None:
            await self.play(due_date_words(complaint.due_at, lang))

    async def play(self, refs: Iterable[str]) -> None:
        """Play prompts in order; no key interrupts them (the caller is writing)."""
        for ref in refs:
            self.record.prompts.append(ref)
            await self.call.stream_file(PromptRef(ref).sound(), "")

    async def _save(self) -> None:
        try:
            async with asyncio.timeout(self.settings.ivr_db_timeout):
                await self.store.save_readback(self.record)
        except Exception:
            log.exception("could not store the read-back of %s", self.call.uniqueid)


def _per_digit(number: str, lang: str) -> list[list[str]]:
    return [digit_fragments(digit, lang) for digit in number]


class ReadbackScript:
    """The ``readback`` FastAGI script."""

    def __init__(self, store: ReadbackStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    async def __call__(self, call: AGICall) -> None:
        flow = ReadbackFlow(call, self.store, self.settings)
        with contextlib.suppress(AGIHangup):
            await flow.run()
        log.info(
            "read-back of %s on %s: %s (%s digits)",
            flow.record.complaint_number,
            call.uniqueid,
            flow.record.outcome,
            len(flow.record.digits_spoken),
        )
