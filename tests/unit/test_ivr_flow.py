"""The whole IVR flow against the scripted AGI peer (FakeAsterisk, over a real socketpair).

A simulated caller (:class:`Caller`) answers every AGI command the flow sends: prompts finish
unless the caller presses a key during a named one, menus get the next scripted key or time out,
GET DATA gets typed digits. The database side is an in-memory :class:`MemoryStore` with the
interface of ``agi_scripts.store.PostgresStore`` (that one runs in tests/service).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agi_scripts.ivr import NODE_HANDLERS, CallState, IVRFlow, IVRScript, playable_prompts
from agi_scripts.store import CallbackJob, ComplaintInfo, QueueCheck, SessionRecord
from core.config import Settings
from core.domain.complaints import complaint_number
from core.transport.fake_agi import FakeAsterisk, run_fake_call
from ivr.catalogue import LANGS, load_catalogue
from ivr.menus import MenuTree, PromptRef, load_menus

TREE = load_menus()
PLAYABLE = playable_prompts(TREE)
CALLER = "9876543210"
OTHER = "9123456789"
NOW = datetime.now(UTC)
OWN = ComplaintInfo(complaint_number(100000007), "in_progress", CALLER, NOW - timedelta(days=3),
                    NOW + timedelta(days=4))  # fmt: skip
FOREIGN = ComplaintInfo(complaint_number(100000042), "registered", OTHER, NOW, NOW)
RESOLVED = ComplaintInfo(complaint_number(100000050), "resolved", CALLER, NOW, NOW)
ANONYMOUS = ComplaintInfo(complaint_number(100000051), "registered", None, NOW, NOW)


# --------------------------------------------------------------------------- the caller


@dataclass(frozen=True)
class Key:
    """Press ``key``: during the prompt ``during`` (a sound name), else when a menu waits."""

    key: str
    during: str | None = None


@dataclass(frozen=True)
class Type:
    """Type ``digits`` at the next GET DATA (``""``: type nothing, it times out)."""

    digits: str


@dataclass(frozen=True)
class Silence:
    """Press nothing at the next point where a key or digits are awaited."""


@dataclass(frozen=True)
class HangUp:
    """Hang up during the prompt ``during``, else at the next input point."""

    during: str | None = None


Step = Key | Type | Silence | HangUp


@dataclass
class Caller:
    """Answers the flow's AGI commands like a caller on a phone (a FakeAsterisk responder)."""

    steps: list[Step]
    played: list[str] = field(default_factory=list)
    variables: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, argv: list[str]) -> str | Sequence[str] | None:
        words = [w.upper() for w in argv[:3]]
        head = self.steps[0] if self.steps else None
        if words[:2] == ["STREAM", "FILE"]:
            sound = argv[2]
            self.played.append(sound)
            if isinstance(head, Key) and head.during == sound:
                self.steps.pop(0)
                return f"200 result={ord(head.key)} endpos=1000"
            if isinstance(head, HangUp) and head.during == sound:
                self.steps.pop(0)
                return ["200 result=-1 endpos=0", "HANGUP"]
            return "200 result=0 endpos=8000"
        if words[:3] == ["WAIT", "FOR", "DIGIT"]:
            if isinstance(head, Key) and head.during is None:
                self.steps.pop(0)
                return f"200 result={ord(head.key)}"
            return self._no_input(head, "200 result=0")
        if words[:2] == ["GET", "DATA"]:
            self.played.append(argv[2])
            if isinstance(head, Type):
                self.steps.pop(0)
                return f"200 result={head.digits}" + ("" if head.digits else " (timeout)")
            return self._no_input(head, "200 result= (timeout)")
        if words[:2] == ["SET", "VARIABLE"]:
            self.variables.append((argv[2], argv[3]))
            return "200 result=1"
        return None

    def _no_input(self, head: Step | None, reply: str) -> str | Sequence[str]:
        if isinstance(head, HangUp) and head.during is None:
            self.steps.pop(0)
            return ["200 result=-1", "HANGUP"]
        if isinstance(head, Silence):
            self.steps.pop(0)
        return reply

    @property
    def vars(self) -> dict[str, str]:
        return dict(self.variables)

    def heard(self) -> list[str]:
        """Prompt ids heard, language pins kept (``en:language_choice``)."""
        out = []
        for sound in self.played:
            lang, _, rest = sound.partition("/helpline/")
            out.append(f"{lang}:{rest}" if rest else sound.removeprefix("helpline/"))
        return out


# --------------------------------------------------------------------------- the database


@dataclass
class MemoryStore:
    """In-memory stand-in for PostgresStore, with switches for database failures."""

    complaints: list[ComplaintInfo] = field(default_factory=list)
    check: QueueCheck = field(default_factory=lambda: QueueCheck(0, 88_000, 0, 0, 600))
    broken: bool = False
    sessions: dict[str, SessionRecord] = field(default_factory=dict)
    saves: int = 0
    callbacks: list[CallbackJob] = field(default_factory=list)

    def _maybe_fail(self) -> None:
        if self.broken:
            raise ConnectionRefusedError("database down")

    async def open_complaints(self, caller_number: str) -> list[ComplaintInfo]:
        self._maybe_fail()
        return [c for c in self.complaints if c.caller_number == caller_number and not c.resolved]

    async def find_complaint(self, number: str) -> ComplaintInfo | None:
        self._maybe_fail()
        return next((c for c in self.complaints if c.number == number), None)

    async def queue_check(self, uniqueid: str) -> QueueCheck:
        self._maybe_fail()
        return self.check

    async def add_callback(self, job: CallbackJob) -> int:
        self._maybe_fail()
        for i, known in enumerate(self.callbacks, start=1):
            if known.uniqueid == job.uniqueid:
                return i
        self.callbacks.append(job)
        return len(self.callbacks)

    async def save_session(self, record: SessionRecord) -> None:
        self.saves += 1
        self.sessions[record.uniqueid] = copy.deepcopy(record)


# --------------------------------------------------------------------------- running a call


@dataclass
class Outcome:
    caller: Caller
    peer: FakeAsterisk
    store: MemoryStore
    error: BaseException | None

    @property
    def session(self) -> SessionRecord:
        return self.store.sessions["1700000000.1"]

    @property
    def vars(self) -> dict[str, str]:
        return self.caller.vars

    def nodes(self) -> list[str]:
        return [step["node"] for step in self.session.path]


async def place_call(
    steps: Sequence[Step],
    store: MemoryStore | None = None,
    *,
    caller_id: str = CALLER,
    settings: Settings | None = None,
    hangup_at: int | None = None,
    tree: MenuTree = TREE,
) -> Outcome:
    caller = Caller(list(steps))
    db = store if store is not None else MemoryStore()
    peer = FakeAsterisk([caller] * 400, env={"agi_callerid": caller_id}, hangup_at=hangup_at)
    script = IVRScript(tree, db, settings or Settings(ivr_db_timeout=1.0))
    result = await run_fake_call(script, peer, command_timeout=2.0, call_timeout=20.0)
    assert not peer.unexpected, peer.unexpected
    outcome = Outcome(caller, peer, db, result.error)
    # Whatever happened, only prompts the flow declares playable were played.
    assert {s.partition(":")[2] or s for s in caller.heard()} <= playable_prompts(tree)
    return outcome


def assert_handed_over(out: Outcome, route: str) -> None:
    """The dialplan contract: IVR_ROUTE set, IVR_DONE=1 the very last command."""
    assert out.error is None, out.error
    assert out.caller.variables[-1] == ("IVR_DONE", "1")
    assert out.vars["IVR_ROUTE"] == route
    assert out.vars["IVR_PATH"] and out.vars["IVR_LANG"] in LANGS


WELCOME = ["welcome", "hi:emergency_choice"]
LANGUAGE = ["hi:language_choice", "en:language_choice"]
MAIN = [
    "press1_new_complaint",
    "press2_complaint_status",
    "press3_feedback_reopen",
    "emergency_choice",
    "press0_or_stay_agent",
    "press9_repeat",
]


# --------------------------------------------------------------------------- prompts


def test_every_playable_prompt_has_hindi_and_english_text() -> None:
    catalogue = load_catalogue()
    for pid in PLAYABLE:
        assert pid in catalogue, pid
        for lang in LANGS:
            assert lang in catalogue[pid].texts, (pid, lang)


# --------------------------------------------------------------------------- new complaint


async def test_new_complaint_in_hindi_reaches_the_queue() -> None:
    out = await place_call([Key("1"), Key("1")])
    assert_handed_over(out, "queue")
    assert out.caller.heard() == [*WELCOME, *LANGUAGE, *MAIN, "transfer_agent"]
    assert out.vars["IVR_LANG"] == "hi"
    assert out.vars["IVR_PATH"] == (
        "welcome>language>key:1>hindi>caller>main_menu>key:1>new_complaint"
    )
    assert ("CHANNEL(language)", "hi") in out.caller.variables
    session = out.session
    assert session.outcome == "queued"
    assert session.digits == "11"
    assert session.caller_number == CALLER and session.lang == "hi"
    assert out.nodes() == ["welcome", "language", "hindi", "caller", "main_menu", "new_complaint"]
    assert all(step["ms"] >= 0 for step in session.path)
    assert session.detail["queue_reason"] == "new_complaint"
    assert session.detail["queue_check"]["budget"] == 88_000
    assert session.ended_at is not None and session.duration_ms is not None
    assert out.store.saves == 2  # on arrival and at the end


async def test_keys_typed_during_prompts_interrupt_them_and_carry_over() -> None:
    out = await place_call(
        [Key("1", "helpline/welcome"), Key("1", "helpline/press1_new_complaint")]
    )
    assert_handed_over(out, "queue")
    assert out.caller.heard() == ["welcome", "press1_new_complaint", "transfer_agent"]
    assert "typed_ahead:1" in out.session.path[0]["event"]
    assert out.session.digits == "11"  # a key typed ahead is counted once, where it was pressed


async def test_language_timeout_is_hindi_and_2_is_english() -> None:
    out = await place_call([Silence(), Key("1")])
    assert out.vars["IVR_LANG"] == "hi"
    assert out.session.path[1]["event"] == "timeout"
    out = await place_call([Key("2"), Key("1")])
    assert_handed_over(out, "queue")
    assert out.vars["IVR_LANG"] == "en" and out.session.lang == "en"
    assert ("CHANNEL(language)", "en") in out.caller.variables


async def test_position_and_wait_are_announced_before_the_queue() -> None:
    store = MemoryStore(check=QueueCheck(10, 88_000, 4, 300, 600))
    out = await place_call([Key("1"), Key("1")], store)
    assert_handed_over(out, "queue")
    assert out.caller.heard()[-7:] == [
        "transfer_agent",
        "queue_position_pre",
        "num_5",
        "queue_position_post",
        "wait_minutes_pre",
        "num_5",
        "wait_minutes_post",
    ]


# --------------------------------------------------------------------------- failures


async def test_invalid_key_re_prompts_with_a_hint_then_works() -> None:
    out = await place_call([Key("1"), Key("7"), Key("1")])
    assert_handed_over(out, "queue")
    heard = out.caller.heard()
    assert heard[heard.index("invalid_choice") + 1 :] == [*MAIN, "transfer_agent"]
    assert out.session.path[4]["event"] == "invalid:7,key:1"


async def test_a_menu_s_own_hint_replaces_the_generic_one() -> None:
    main_menu = TREE["main_menu"]
    nodes = {
        **TREE.nodes,
        "main_menu": main_menu.model_copy(update={"hint": PromptRef("press9_repeat")}),
    }
    tree = TREE.model_copy(update={"nodes": nodes})
    out = await place_call([Key("1"), Key("7"), Key("1")], tree=tree)
    assert_handed_over(out, "queue")
    heard = out.caller.heard()
    assert "invalid_choice" not in heard
    after_main_menu = heard.index(MAIN[-1]) + 1  # then 7 is pressed: the hint, the menu again
    assert heard[after_main_menu:] == ["press9_repeat", *MAIN, "transfer_agent"]


async def test_three_invalid_keys_go_to_an_agent_never_a_hangup() -> None:
    out = await place_call([Key("1"), Key("7"), Key("8"), Key("#")])
    assert_handed_over(out, "queue")
    assert out.caller.heard().count("invalid_choice") == 2
    assert out.caller.heard()[-1] == "too_many_attempts"
    assert out.session.outcome == "queued"
    assert out.session.detail["escalated"] == "failures_at:main_menu"
    assert out.vars["IVR_PATH"].endswith("agent:failures_at:main_menu")


async def test_a_caller_silent_at_the_main_menu_is_put_through_after_one_timeout() -> None:
    """Stay on the line for an agent: a caller who cannot or did not press (a key lost while
    FastAGI was paused between commands, too) hears the menu once, not three times."""
    out = await place_call([Key("1")])  # then silence
    assert_handed_over(out, "queue")
    heard = out.caller.heard()
    assert heard.count("press1_new_complaint") == 1 and "no_input" not in heard
    assert out.nodes()[-2:] == ["main_menu", "agent"]
    assert out.session.path[-2]["event"] == "timeout"
    assert "escalated" not in out.session.detail


async def test_three_timeouts_go_to_an_agent() -> None:
    """Where silence has no edge of its own (here the callback offer) it re-prompts, up to
    max_failures."""
    store = MemoryStore(check=QueueCheck(90_000, 88_000, 0, 0, 600))
    out = await place_call([Key("1"), Key("1")], store)  # then silence at the offer
    assert_handed_over(out, "queue")
    assert out.caller.heard().count("no_input") == 2
    assert out.caller.heard().count("callback_offer") == 3
    assert out.session.detail["escalated"] == "failures_at:callback_offer"


async def test_9_repeats_the_main_menu_without_counting_a_failure() -> None:
    out = await place_call([Key("1"), Key("9"), Key("9"), Key("9"), Key("0")])
    assert_handed_over(out, "queue")
    assert out.caller.heard().count("press9_repeat") == 4
    assert "invalid_choice" not in out.caller.heard()
    assert out.session.detail["queue_reason"] == "agent"


# --------------------------------------------------------------------------- emergencies


async def test_police_key_during_the_welcome_transfers_to_112() -> None:
    out = await place_call([Key("4", "helpline/welcome")])
    assert_handed_over(out, "transfer")
    assert out.caller.heard() == ["welcome", "transfer_police"]
    assert out.vars["IVR_TRANSFER"] == "PJSIP/112@trunk"
    assert out.vars["IVR_SKILL"] == "police" and out.vars["IVR_PRIORITY"] == "9"
    assert out.session.outcome == "transferred"
    assert out.session.detail["emergency"] == {
        "service": "police",
        "route": "transfer",
        "number": "112",
        "dial": "PJSIP/112@trunk",
    }


async def test_health_from_the_main_menu_transfers_to_108_without_a_budget_check() -> None:
    store = MemoryStore(check=QueueCheck(99_999, 88_000, 0, 0, 600))
    out = await place_call([Key("1"), Key("5")], store)
    assert_handed_over(out, "transfer")
    assert out.vars["IVR_TRANSFER"] == "PJSIP/108@trunk"
    assert "queue_check" not in out.session.detail


async def test_emergency_to_a_priority_queue_position_when_configured() -> None:
    settings = Settings(ivr_emergency_route="priority_queue", ivr_health_number="102")
    out = await place_call([Key("5", "hi/helpline/emergency_choice")], settings=settings)
    assert_handed_over(out, "queue")
    assert out.vars["IVR_PRIORITY"] == "9" and out.vars["IVR_SKILL"] == "health"
    assert "IVR_TRANSFER" not in out.vars
    assert out.session.detail["emergency"]["route"] == "priority_queue"


async def test_configured_transfer_dial_string() -> None:
    settings = Settings(ivr_transfer_dial="PJSIP/trunk/sip:{number}@127.0.0.2:5999")
    out = await place_call([Key("4", "helpline/welcome")], settings=settings)
    assert out.vars["IVR_TRANSFER"] == "PJSIP/trunk/sip:112@127.0.0.2:5999"


# --------------------------------------------------------------------------- status


def own_as_of_now() -> ComplaintInfo:
    """OWN registered 3 days ago and due in 4 counted from this moment. The read-back counts
    calendar days in IST when the call is placed: OWN's import-time dates read one day more in
    a run that passes midnight IST between the import and the call (a CI run did)."""
    now = datetime.now(UTC)
    return replace(OWN, created_at=now - timedelta(days=3), due_at=now + timedelta(days=4))


STATUS_OF_OWN = [
    "complaint_number_is",
    *(f"digit_{d}" for d in OWN.number),
    "status_is",
    "status_in_progress",
    "registered_days_ago_pre",
    "num_3",
    "registered_days_ago_post",
    "due_in_pre",
    "num_4",
    "due_in_post",
]


async def test_status_of_a_complaint_filed_from_this_number() -> None:
    store = MemoryStore(complaints=[own_as_of_now()])
    out = await place_call([Key("1"), Key("2"), Key("2"), Type(OWN.number), Key("0")], store)
    assert_handed_over(out, "queue")
    heard = out.caller.heard()
    assert heard[:6] == [*WELCOME, *LANGUAGE, "you_have_open_complaints", "press1_hear_status"]
    start = heard.index("enter_complaint_number") + 1
    assert heard[start : start + len(STATUS_OF_OWN)] == STATUS_OF_OWN
    assert "verify_last4" not in heard
    assert out.session.detail["complaint"] == OWN.number
    assert f"complaint:{OWN.number}" in out.vars["IVR_PATH"]


async def test_caller_with_open_complaints_hears_their_status_first() -> None:
    store = MemoryStore(complaints=[own_as_of_now(), RESOLVED])
    out = await place_call([Key("1"), Key("1"), Key("2"), Key("1")], store)
    assert_handed_over(out, "queue")
    heard = out.caller.heard()
    first = heard.index("complaint_number_is")
    assert heard[first : first + len(STATUS_OF_OWN)] == STATUS_OF_OWN
    assert heard.count("complaint_number_is") == 1  # the resolved one is not "open"
    assert out.session.detail["own_complaints_read"] == [OWN.number]
    assert out.nodes()[-3:] == ["own_status_done", "main_menu", "new_complaint"]


async def test_open_complaints_offer_times_out_to_the_main_menu() -> None:
    out = await place_call([Key("1"), Silence(), Key("1")], MemoryStore(complaints=[OWN]))
    assert_handed_over(out, "queue")
    assert out.nodes()[4:] == ["own_complaints", "main_menu", "new_complaint"]


async def test_a_mistyped_complaint_number_is_caught_by_its_check_digit() -> None:
    store = MemoryStore(complaints=[OWN])
    wrong = OWN.number[:-1] + str((int(OWN.number[-1]) + 1) % 10)
    out = await place_call(
        [Key("1"), Key("2"), Key("2"), Type(wrong), Type(OWN.number), Key("0")], store
    )
    assert_handed_over(out, "queue")
    heard = out.caller.heard()
    at = heard.index("you_entered")
    assert heard[at + 1 : at + 11] == [f"digit_{d}" for d in wrong]
    assert heard[at + 11] == "complaint_number_invalid"
    assert "complaint_number_is" in heard
    assert "check_digit_failed" in out.session.path[6]["event"]


async def test_unknown_complaint_number_then_three_failures_to_an_agent() -> None:
    unknown = complaint_number(100000099)
    out = await place_call([Key("1"), Key("2"), Type(unknown), Type(""), Type("12")])
    assert_handed_over(out, "queue")
    heard = out.caller.heard()
    assert "complaint_not_found" in heard and "no_input" in heard
    assert heard[-1] == "too_many_attempts"
    assert out.session.detail["escalated"] == "failures_at:status_entry"


async def test_a_complaint_from_another_number_needs_its_last_four_digits() -> None:
    store = MemoryStore(complaints=[FOREIGN])
    out = await place_call(
        [Key("1"), Key("2"), Type(FOREIGN.number), Type("0000"), Type(OTHER[-4:]), Key("0")],
        store,
    )
    assert_handed_over(out, "queue")
    heard = out.caller.heard()
    verify = heard.index("verify_last4")
    assert "complaint_number_is" not in heard[:verify]  # nothing personal before verification
    assert heard[verify + 1] == "verify_failed"
    assert heard.index("complaint_number_is") > heard.index("verify_last4", verify + 1)
    assert out.session.detail["verified_by"] == "last4"
    assert OTHER[-4:] not in out.session.digits  # the verification digits are not stored


async def test_wrong_last_four_three_times_goes_to_an_agent_without_the_status() -> None:
    store = MemoryStore(complaints=[FOREIGN])
    out = await place_call(
        [Key("1"), Key("2"), Type(FOREIGN.number), Type("1"), Type("2"), Type("3")], store
    )
    assert_handed_over(out, "queue")
    assert "complaint_number_is" not in out.caller.heard()
    assert out.caller.heard()[-1] == "too_many_attempts"


async def test_withheld_caller_is_never_offered_a_callback_and_must_verify() -> None:
    store = MemoryStore(complaints=[OWN], check=QueueCheck(90_000, 88_000, 0, 0, 600))
    out = await place_call([Key("1"), Key("1")], store, caller_id="anonymous")
    assert_handed_over(out, "queue")
    assert out.session.caller_number is None
    assert out.session.detail["callback_unavailable"] == "withheld"
    assert "you_have_open_complaints" not in out.caller.heard()
    out = await place_call(
        [Key("1"), Key("2"), Type(OWN.number), Type(CALLER[-4:]), Key("0")],
        MemoryStore(complaints=[OWN]),
        caller_id="",
    )
    assert "verify_last4" in out.caller.heard() and "complaint_number_is" in out.caller.heard()


async def test_caller_number_with_prefixes_is_normalised() -> None:
    out = await place_call([Key("1"), Key("1")], MemoryStore(), caller_id="+919876543210")
    assert out.session.caller_number == CALLER
    assert out.session.caller_number_raw == "+919876543210"


async def test_complaint_from_a_withheld_number_cannot_be_verified_by_keypad() -> None:
    store = MemoryStore(complaints=[ANONYMOUS])
    out = await place_call([Key("1"), Key("2"), Type(ANONYMOUS.number)], store)
    assert_handed_over(out, "queue")
    assert out.caller.heard()[-1] == "verify_impossible"
    assert out.session.detail["escalated"] == "cannot_verify"


async def test_hear_again_and_back_to_the_main_menu() -> None:
    store = MemoryStore(complaints=[FOREIGN])
    steps: list[Step] = [
        Key("1"),
        Key("2"),
        Type(FOREIGN.number),
        Type(OTHER[-4:]),
        Key("1"),
        Key("2"),
    ]
    out = await place_call([*steps, Key("1")], store)
    assert_handed_over(out, "queue")
    assert out.caller.heard().count("complaint_number_is") == 2
    assert out.nodes()[-4:] == ["status_read", "status_done", "main_menu", "new_complaint"]


# --------------------------------------------------------------------------- feedback


async def test_satisfied_with_a_resolved_complaint_is_self_served() -> None:
    store = MemoryStore(complaints=[RESOLVED])
    out = await place_call([Key("1"), Key("3"), Type(RESOLVED.number), Key("1")], store)
    assert_handed_over(out, "hangup")
    assert out.caller.heard()[-2:] == ["feedback_thanks", "goodbye"]
    assert out.session.outcome == "self_served"
    assert out.session.detail["feedback"] == {"complaint": RESOLVED.number, "value": "satisfied"}


async def test_reopen_goes_to_an_agent_with_the_complaint_on_screen() -> None:
    store = MemoryStore(complaints=[RESOLVED])
    out = await place_call([Key("1"), Key("3"), Type(RESOLVED.number), Key("2")], store)
    assert_handed_over(out, "queue")
    assert out.vars["IVR_PATH"].endswith(
        f"feedback_entry>complaint:{RESOLVED.number}>feedback_check>feedback_menu>key:2"
        ">reopen>feedback:reopen>reopen_agent"
    )
    assert out.session.detail["queue_reason"] == "reopen"


async def test_feedback_on_an_open_complaint_reads_its_status() -> None:
    store = MemoryStore(complaints=[OWN])
    out = await place_call([Key("1"), Key("2"), Key("3"), Type(OWN.number), Key("0")], store)
    assert_handed_over(out, "queue")
    assert "feedback_question" not in out.caller.heard()
    assert "status_in_progress" in out.caller.heard()


# --------------------------------------------------------------------------- before the queue


async def test_budget_spent_offers_a_callback_which_is_stored() -> None:
    store = MemoryStore(check=QueueCheck(88_000, 88_000, 0, 0, 600))
    out = await place_call([Key("1"), Key("1"), Key("1")], store)
    assert_handed_over(out, "hangup")
    assert out.caller.heard()[-3:] == ["callback_offer", "callback_registered", "goodbye"]
    assert out.session.outcome == "callback"
    assert out.session.detail["callback_id"] == 1
    [job] = store.callbacks
    assert (job.caller_number, job.lang, job.reason) == (CALLER, "hi", "budget")
    assert job.ivr_path.endswith("new_complaint>busy:budget>callback_offer>key:1>callback")


async def test_long_wait_offers_a_callback_and_2_waits_anyway() -> None:
    store = MemoryStore(check=QueueCheck(5, 88_000, 30, 900, 600))
    out = await place_call([Key("1"), Key("1"), Key("2")], store)
    assert_handed_over(out, "queue")
    assert out.session.detail["queue_reason"] == "waited_after_offer"
    assert "busy:wait" in out.vars["IVR_PATH"]
    assert not store.callbacks


# --------------------------------------------------------------------------- our failures


async def test_database_down_never_strands_the_caller() -> None:
    store = MemoryStore(complaints=[OWN], broken=True)
    out = await place_call([Key("1"), Key("1")], store)
    assert_handed_over(out, "queue")  # no open-complaints offer, no budget figures, queued
    assert "queue_check" not in out.session.detail
    out = await place_call([Key("1"), Key("2"), Type(OWN.number)], MemoryStore(broken=True))
    assert_handed_over(out, "queue")
    assert out.caller.heard()[-1] == "technical_problem"
    assert out.session.detail["escalated"] == "db_error"


async def test_a_bug_in_a_node_leaves_ivr_done_unset_so_the_dialplan_falls_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(self: IVRFlow, node: Any) -> str | None:
        raise RuntimeError("bug")

    monkeypatch.setitem(NODE_HANDLERS, "queue", broken)
    out = await place_call([Key("1"), Key("1")])
    assert isinstance(out.error, RuntimeError)
    assert "IVR_DONE" not in out.vars
    assert (out.session.outcome, out.session.last_node) == ("failed", "new_complaint")


# --------------------------------------------------------------------------- hang-ups


SCENARIOS: dict[str, tuple[list[Step], MemoryStore]] = {
    "new_complaint": ([Key("1"), Key("1")], MemoryStore()),
    "status": (
        [Key("1"), Key("2"), Type(FOREIGN.number), Type(OTHER[-4:]), Key("0")],
        MemoryStore(complaints=[FOREIGN]),
    ),
    "callback": ([Key("1"), Key("1"), Key("1")], MemoryStore(check=QueueCheck(9, 1, 0, 0, 9))),
    "police": ([Key("1"), Key("4")], MemoryStore()),
    "feedback": (
        [Key("1"), Key("3"), Type(RESOLVED.number), Key("1")],
        MemoryStore(complaints=[RESOLVED]),
    ),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_hang_up_at_every_step_stores_the_partial_session(name: str) -> None:
    steps, template = SCENARIOS[name]
    full = await place_call(steps, copy.deepcopy(template))
    commands = len(full.peer.commands)
    full_nodes = full.nodes()
    assert commands > 5
    for n in range(commands):
        out = await place_call(steps, copy.deepcopy(template), hangup_at=n)
        assert out.error is None, (n, out.error)
        session = out.session
        last = out.nodes()[-1] if out.nodes() else TREE.start
        if session.detail.get("hung_up_at"):  # after hearing a status: served, not abandoned
            assert session.outcome == "self_served" and "complaint_number_is" in session.prompts
            assert session.detail["hung_up_at"] == last
        else:
            assert session.outcome == "abandoned", (n, session.outcome)  # where: last_node
        assert session.last_node == last
        assert out.nodes() == full_nodes[: len(out.nodes())], n
        if n < commands - 1:  # (a hang-up racing the last command may still see it applied)
            assert "IVR_DONE" not in out.vars, n
        assert session.ended_at is not None and session.duration_ms is not None
    assert full.session.outcome in {"queued", "callback", "transferred", "self_served"}
    if name == "status":  # hanging up at status_done, after the read-back, is being served
        out = await place_call(steps, copy.deepcopy(template), hangup_at=commands - 5)
        assert out.session.outcome == "self_served", out.nodes()


# --------------------------------------------------------------------------- read-back words


async def test_days_open_and_due_date_words() -> None:
    flow = IVRFlow.__new__(IVRFlow)
    flow.state = CallState()
    today = ComplaintInfo("1000000004", "registered", None, NOW, NOW)
    assert flow.complaint_words(today, NOW)[-2:] == ["registered_today", "due_today"]
    old = ComplaintInfo(
        "1000000004", "escalated", None, NOW - timedelta(days=123), NOW - timedelta(days=116)
    )
    words = flow.complaint_words(old, NOW)
    assert words[-10:] == [
        "registered_days_ago_pre", "num_1", "num_hundred", "num_23", "registered_days_ago_post",
        "overdue_pre", "num_1", "num_hundred", "num_16", "overdue_post",
    ]  # fmt: skip
    assert "status_escalated" in words
    odd = ComplaintInfo(
        "1000000004", "archived", None, NOW - timedelta(days=1), NOW + timedelta(days=1)
    )
    assert flow.complaint_words(odd, NOW)[-3:] == [
        "status_unknown",
        "registered_yesterday",
        "due_tomorrow",
    ]
