"""The dialer's FastAGI scripts (agi_scripts.outbound) against the scripted fake Asterisk: the
feedback survey (1, 2, silence, wrong keys, a hang-up mid-survey) and the follow-up message
(status, due date, officer level; 0 for an agent, 9 to stop the calls), each session stored
with what the dialer acts on."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from agi_scripts.outbound import OUTBOUND_PROMPTS, OutboundScript
from agi_scripts.store import ComplaintInfo, SessionRecord
from core.config import Settings
from core.domain.complaints import ComplaintStatus, complaint_number
from core.domain.phone import CallerNumber
from core.transport.fake_agi import FakeAsterisk, run_fake_call
from ivr.catalogue import load_catalogue
from ivr.numbers import NUMBER_FRAGMENT_IDS
from tests.unit.test_ivr_flow import Caller, HangUp, Key, MemoryStore, Silence, Step

NOW = datetime.now(UTC)
CALLER = CallerNumber("9876543210")
RESOLVED = ComplaintInfo(complaint_number(100000050), ComplaintStatus.RESOLVED, CALLER, NOW, NOW)
OPEN = ComplaintInfo(
    complaint_number(100000007),
    ComplaintStatus.ESCALATED,
    CALLER,
    NOW - timedelta(days=9),
    NOW + timedelta(days=5, hours=1),
    "district",
)
ATTEMPT = "dialer-0123456789abcdef"


class Dialled(Caller):
    """A citizen the dialer called: the channel carries ``DIALER_COMPLAINT`` (and ``extra``)."""

    def __init__(self, steps: list[Step], complaint: str) -> None:
        super().__init__(steps)
        self.complaint = complaint
        self.extra: dict[str, str] = {}

    def __call__(self, argv: list[str]) -> str | Sequence[str] | None:
        if [w.upper() for w in argv[:2]] == ["GET", "VARIABLE"]:
            known = {"DIALER_COMPLAINT": self.complaint, **self.extra}
            value = known.get(argv[2])
            return f"200 result=1 ({value})" if value else "200 result=0"
        return super().__call__(argv)


async def dial(
    campaign: str, steps: list[Step], complaint: ComplaintInfo
) -> tuple[Dialled, SessionRecord]:
    caller = Dialled(steps, complaint.number)
    store = MemoryStore(complaints=[RESOLVED, OPEN])
    peer = FakeAsterisk([caller] * 200, env={"agi_uniqueid": ATTEMPT, "agi_callerid": "1600110076"})
    script = OutboundScript(campaign, store, Settings(ivr_db_timeout=1.0))
    result = await run_fake_call(script, peer, command_timeout=2.0, call_timeout=20.0)
    assert result.error is None
    assert not peer.unexpected, peer.unexpected
    assert {
        s.removeprefix("helpline/") for s in caller.played
    } <= OUTBOUND_PROMPTS | NUMBER_FRAGMENT_IDS
    return caller, store.sessions[ATTEMPT]


def test_every_outbound_prompt_is_in_the_catalogue() -> None:
    assert set(load_catalogue()) >= OUTBOUND_PROMPTS


async def test_feedback_satisfied() -> None:
    caller, session = await dial("feedback", [Key("1")], RESOLVED)
    assert session.detail["survey"] == "satisfied"
    assert session.detail["result"] == "completed"
    assert session.caller_number == CALLER
    assert caller.vars["OUT_DONE"] == "1"
    assert "helpline/feedback_thanks" in caller.played


async def test_feedback_key_during_the_question_not_satisfied() -> None:
    caller, session = await dial("feedback", [Key("2", "helpline/feedback_question")], RESOLVED)
    assert (session.detail["survey"], session.detail["result"]) == ("unsatisfied", "completed")
    assert "helpline/feedback_thanks_reopened" in caller.played


async def test_feedback_silence_and_wrong_keys_ask_three_times_then_give_up() -> None:
    caller, session = await dial("feedback", [Silence(), Key("7"), Silence()], RESOLVED)
    assert session.detail["result"] == "silence"
    assert "survey" not in session.detail
    assert session.detail["misses"] == ["none", "7", "none"]
    assert caller.played.count("helpline/feedback_question") == 3


async def test_feedback_hang_up_mid_survey_stores_no_result() -> None:
    caller, session = await dial("feedback", [HangUp("helpline/feedback_question")], RESOLVED)
    assert "result" not in session.detail and "survey" not in session.detail
    assert session.outcome == "abandoned"
    assert "OUT_DONE" not in caller.vars


async def test_followup_reads_status_due_and_level_then_agent_on_0() -> None:
    caller, session = await dial("followup", [Key("0")], OPEN)
    heard = [s.removeprefix("helpline/") for s in caller.played]
    assert heard[:2] == ["outbound_intro", "complaint_number_is"]
    assert "status_escalated" in heard
    assert heard[heard.index("due_in_pre") + 1 : heard.index("due_in_post")]  # "5"
    assert heard[heard.index("followup_level_pre") + 1] == "level_district"
    assert session.detail["agent"] is True and session.detail["result"] == "completed"
    assert caller.vars["OUT_ROUTE"] == "queue"
    assert caller.vars["OUT_DONE"] == "1"


async def test_followup_9_stops_the_calls() -> None:
    caller, session = await dial("followup", [Key("9", "helpline/followup_options")], OPEN)
    assert session.detail["dnc"] is True
    assert "helpline/followup_stopped" in caller.played
    assert "OUT_ROUTE" not in caller.vars


async def test_callback_says_why_and_queues_ahead_of_new_callers() -> None:
    caller = Dialled([], "")
    caller.extra = {"DIALER_NUMBER": "9876543210"}
    store = MemoryStore()
    peer = FakeAsterisk([caller] * 50, env={"agi_uniqueid": ATTEMPT})
    result = await run_fake_call(
        OutboundScript("callback", store, Settings(ivr_db_timeout=1.0)), peer, call_timeout=10.0
    )
    assert result.error is None and not peer.unexpected
    session = store.sessions[ATTEMPT]
    assert caller.played == ["helpline/callback_connecting"]
    assert (caller.vars["IVR_PRIORITY"], caller.vars["OUT_ROUTE"], caller.vars["OUT_DONE"]) == (
        "8",
        "queue",
        "1",
    )
    assert session.caller_number == "9876543210" and session.detail["result"] == "completed"
