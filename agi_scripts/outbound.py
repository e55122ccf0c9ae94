"""``agi://…/feedback`` and ``agi://…/followup``: what a citizen hears when the dialer calls.

The dialer (``outbound_dialer``) originates the call into the ``outbound`` context with the
attempt's id as the channel's uniqueid and the complaint's number in ``DIALER_COMPLAINT``;
these scripts run once the citizen answered. Each session is stored in ``ivr_sessions`` like
the IVR's (uniqueid = the attempt's id), and ``detail`` carries what the dialer acts on at the
hang-up (``outbound_dialer.store.finish_attempt``):

* ``result``: ``completed`` (the survey was answered, or the follow-up's status was heard),
  ``silence`` (no valid key however often the question was asked); absent if the citizen hung
  up first;
* ``survey``: ``satisfied`` (1) or ``unsatisfied`` (2): the dialer closes or reopens the
  complaint through the lifecycle;
* ``dnc``: the citizen pressed 9 on a follow-up: the number goes on the do-not-call list;
* ``agent``: the citizen pressed 0 on a follow-up: ``OUT_ROUTE=queue`` sends them to the
  agents' queue.

A ``callback`` call (the citizen asked the IVR to be called back) hears one sentence and goes
to the agents' queue at ``IVR_PRIORITY`` 8, ahead of new callers.

``OUT_DONE=1`` is the last act, as ``IVR_DONE`` is the IVR's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Iterable
from datetime import UTC, datetime
from typing import Any, Final, Protocol, TypeVar

from agi_scripts.store import ComplaintInfo, SessionRecord
from core.config import Settings
from core.domain.calls import IvrOutcome
from core.domain.complaints import ComplaintStatus
from core.domain.phone import CallerNumber
from core.transport.fastagi import AGICall, AGIHangup
from ivr.menus import PromptRef
from ivr.numbers import digit_fragments, number_fragments

log = logging.getLogger(__name__)

T = TypeVar("T")

LANG: Final = "hi"
#: How long the scripts wait for a key after a question.
KEY_WAIT_MS: Final = 5000
#: Times the feedback question is asked before the call counts as silence.
FEEDBACK_TRIES: Final = 3
#: Times the follow-up's options are offered.
FOLLOWUP_TRIES: Final = 2
#: Queue priority of a called-back citizen: ahead of new callers, behind emergencies (9).
CALLBACK_PRIORITY: Final = 8
#: Prompts these scripts play (besides number fragments); checked against the catalogue.
OUTBOUND_PROMPTS: Final = frozenset(
    {
        "outbound_intro",
        "complaint_number_is",
        "feedback_resolved",
        "feedback_question",
        "feedback_thanks",
        "feedback_thanks_reopened",
        "status_is",
        *(f"status_{s.value}" for s in ComplaintStatus),
        "due_today",
        "due_tomorrow",
        "due_in_pre",
        "due_in_post",
        "overdue_pre",
        "overdue_post",
        "followup_level_pre",
        *(
            f"level_{level}"
            for level in ("thana", "tehsil", "district", "division", "state", "cm_office")
        ),
        "followup_options",
        "followup_stopped",
        "callback_connecting",
        "transfer_agent",
        "no_input",
        "invalid_choice",
        "goodbye",
    }
)


class OutboundStore(Protocol):
    async def find_complaint(self, number: str) -> ComplaintInfo | None: ...

    async def save_session(self, record: SessionRecord) -> None: ...


class OutboundFlow:
    """One answered outbound call."""

    def __init__(
        self, call: AGICall, store: OutboundStore, settings: Settings, campaign: str
    ) -> None:
        self.call = call
        self.store = store
        self.settings = settings
        self.campaign = campaign
        self.record = SessionRecord(
            uniqueid=call.uniqueid,
            caller_number=None,
            caller_number_raw=None,
            lang=LANG,
            started_at=datetime.now(UTC),
            detail={"campaign": campaign},
        )

    @property
    def detail(self) -> dict[str, Any]:
        return self.record.detail

    async def run(self) -> None:
        await self._save()
        hung_up = False
        try:
            await self.call.set_variable("CHANNEL(language)", LANG)
            if self.campaign == "callback":
                await self.callback()
                self.record.outcome = IvrOutcome.QUEUED
                await self.call.set_variable("OUT_DONE", "1")
                return
            number = await self.call.get_variable("DIALER_COMPLAINT")
            self.detail["complaint"] = number
            complaint = await self._db(self.store.find_complaint(number)) if number else None
            if complaint is None:
                # Nothing to say: the job is done (retrying would not find it either).
                self.detail["error"] = "complaint not found"
                self.detail["result"] = "completed"
                await self.play("goodbye")
            else:
                self.record.caller_number = complaint.caller_number
                if self.campaign == "feedback":
                    await self.feedback(complaint)
                else:
                    await self.followup(complaint)
            self.record.outcome = IvrOutcome.SELF_SERVED
            await self.call.set_variable("OUT_DONE", "1")
        except AGIHangup:
            hung_up = True
            self.record.outcome = (
                IvrOutcome.SELF_SERVED if "result" in self.detail else IvrOutcome.ABANDONED
            )
        except BaseException:
            self.record.outcome = IvrOutcome.FAILED
            raise
        finally:
            self.record.ended_at = datetime.now(UTC)
            self.record.duration_ms = int(
                (self.record.ended_at - self.record.started_at).total_seconds() * 1000
            )
            await self._save()
        log.info(
            "%s call %s: %s%s",
            self.campaign,
            self.call.uniqueid,
            self.detail,
            " (hung up)" * hung_up,
        )

    # ------------------------------------------------------------------ the two scripts

    async def feedback(self, complaint: ComplaintInfo) -> None:
        """1 satisfied, 2 not satisfied; no input or a wrong key: asked again, three times."""
        key = await self.play_all(
            ["outbound_intro", "complaint_number_is", *self.digits(complaint.number)], "12"
        )
        key = key or await self.play("feedback_resolved", "12")
        for attempt in range(1, FEEDBACK_TRIES + 1):
            key = key or await self.play("feedback_question", "12")
            key = key or await self.call.wait_for_digit(KEY_WAIT_MS)
            self.record.digits += key
            if key in ("1", "2"):
                satisfied = key == "1"
                self.detail["survey"] = "satisfied" if satisfied else "unsatisfied"
                self.detail["result"] = "completed"
                await self._save()  # the answer is kept even if they hang up now
                thanks = "feedback_thanks" if satisfied else "feedback_thanks_reopened"
                await self.play_all([thanks, "goodbye"], "")
                return
            self.detail.setdefault("misses", []).append(key or "none")
            if attempt < FEEDBACK_TRIES:
                await self.play("no_input" if not key else "invalid_choice", "")
            key = ""
        self.detail["result"] = "silence"
        await self.play("goodbye", "")

    async def followup(self, complaint: ComplaintInfo) -> None:
        """Status, due date and officer level; 0 for an agent, 9 to stop these calls."""
        words = [
            "outbound_intro",
            "complaint_number_is",
            *self.digits(complaint.number),
            "status_is",
            f"status_{complaint.status}",
            *self.due_words(complaint),
        ]
        if complaint.level:
            words += ["followup_level_pre", f"level_{complaint.level}"]
        key = await self.play_all(words, "09")
        self.detail["result"] = "completed"  # the status was given
        for _ in range(FOLLOWUP_TRIES):
            key = key or await self.play("followup_options", "09")
            key = key or await self.call.wait_for_digit(KEY_WAIT_MS)
            self.record.digits += key
            if key == "0":
                self.detail["agent"] = True
                await self.play("transfer_agent", "")
                await self.call.set_variable("OUT_ROUTE", "queue")
                return
            if key == "9":
                self.detail["dnc"] = True
                await self._save()
                await self.play("followup_stopped", "")
                return
            key = ""
        await self.play("goodbye", "")

    async def callback(self) -> None:
        """The citizen asked the IVR for a callback: say so, then the agents' queue ahead of
        new callers (``IVR_PRIORITY``), keeping the place they had."""
        raw = await self.call.get_variable("DIALER_NUMBER")
        with contextlib.suppress(ValueError, TypeError):
            self.record.caller_number = CallerNumber(raw or "")
        self.detail["result"] = "completed"
        await self.call.set_variable("IVR_PRIORITY", str(CALLBACK_PRIORITY))
        await self.call.set_variable("OUT_ROUTE", "queue")
        await self._save()
        await self.play("callback_connecting", "")

    def due_words(self, complaint: ComplaintInfo) -> list[str]:
        due = complaint.days_to_due()
        if due is None:
            return []
        if due < 0:
            return ["overdue_pre", *number_fragments(-due, LANG), "overdue_post"]
        if due == 0:
            return ["due_today"]
        if due == 1:
            return ["due_tomorrow"]
        return ["due_in_pre", *number_fragments(due, LANG), "due_in_post"]

    # ------------------------------------------------------------------ helpers

    def digits(self, text: str) -> list[str]:
        return digit_fragments(text, LANG)

    async def play(self, prompt: str, escape: str = "") -> str:
        self.record.prompts.append(prompt)
        return await self.call.stream_file(PromptRef(prompt).sound(), escape)

    async def play_all(self, prompts: Iterable[str], escape: str) -> str:
        for prompt in prompts:
            key = await self.play(prompt, escape)
            if key:
                return key
        return ""

    async def _db(self, what: Awaitable[T]) -> T:
        async with asyncio.timeout(self.settings.ivr_db_timeout):
            return await what

    async def _save(self) -> None:
        try:
            async with asyncio.timeout(self.settings.ivr_db_timeout):
                await self.store.save_session(self.record)
        except Exception:
            log.exception("could not store the outbound session of %s", self.call.uniqueid)


class OutboundScript:
    """The ``feedback`` or ``followup`` FastAGI script."""

    def __init__(self, campaign: str, store: OutboundStore, settings: Settings) -> None:
        self.campaign = campaign
        self.store = store
        self.settings = settings

    async def __call__(self, call: AGICall) -> None:
        with contextlib.suppress(AGIHangup):
            await OutboundFlow(call, self.store, self.settings, self.campaign).run()
