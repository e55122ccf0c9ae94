"""The ``readback`` FastAGI script against the scripted AGI peer (FakeAsterisk over a real
socketpair): the number digit by digit, twice, then the due date, in the caller's language;
the hand-back to the dialplan (``READBACK_DONE=1`` last); every read-back stored with the
digits actually spoken, also when the caller hangs up at any command."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from agi_scripts.readback import READBACK_PROMPTS, ReadbackRecord, ReadbackScript
from agi_scripts.store import ComplaintInfo
from core.config import Settings
from core.domain.calls import ReadbackOutcome, ReadbackThen
from core.domain.complaints import ComplaintStatus, complaint_number
from core.domain.phone import CallerNumber
from core.transport.fake_agi import FakeAsterisk, run_fake_call
from ivr.catalogue import load_catalogue
from ivr.numbers import NUMBER_FRAGMENT_IDS

NUMBER = complaint_number(100000123)
#: 2026-12-13 10:00 IST: "13 December 2026" whatever the machine's zone.
DUE = datetime(2026, 12, 13, 4, 30, tzinfo=UTC)
COMPLAINT = ComplaintInfo(NUMBER, ComplaintStatus.ASSIGNED, CallerNumber("9876543210"), DUE, DUE)


@dataclass
class Line:
    """Asterisk's side as the read-back sees it: the IVR's language on the channel, every
    prompt played to the end, variables set."""

    lang: str | None = "hi"
    played: list[str] = field(default_factory=list)
    variables: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, argv: list[str]) -> str | Sequence[str] | None:
        words = [w.upper() for w in argv[:2]]
        if words == ["GET", "VARIABLE"]:
            return "200 result=0" if self.lang is None else f"200 result=1 ({self.lang})"
        if words == ["STREAM", "FILE"]:
            assert argv[3] == "", "nothing interrupts a read-back"
            self.played.append(argv[2].removeprefix("helpline/"))
            return "200 result=0 endpos=8000"
        if words == ["SET", "VARIABLE"]:
            self.variables.append((argv[2], argv[3]))
            return "200 result=1"
        return None


@dataclass
class MemoryStore:
    complaints: list[ComplaintInfo] = field(default_factory=lambda: [COMPLAINT])
    broken: bool = False
    saved: list[ReadbackRecord] = field(default_factory=list)

    async def find_complaint(self, number: str) -> ComplaintInfo | None:
        if self.broken:
            raise ConnectionRefusedError("database down")
        return next((c for c in self.complaints if c.number == number), None)

    async def save_readback(self, record: ReadbackRecord) -> None:
        self.saved.append(copy.deepcopy(record))

    @property
    def last(self) -> ReadbackRecord:
        return self.saved[-1]


@dataclass
class Outcome:
    line: Line
    store: MemoryStore
    peer: FakeAsterisk
    error: BaseException | None


async def read_back(
    args: Sequence[str] = (NUMBER, "return"),
    *,
    lang: str | None = "hi",
    store: MemoryStore | None = None,
    hangup_at: int | None = None,
) -> Outcome:
    line = Line(lang)
    db = store or MemoryStore()
    peer = FakeAsterisk([line] * 200, script="readback", args=args, hangup_at=hangup_at)
    script = ReadbackScript(db, Settings(ivr_db_timeout=1.0))
    result = await run_fake_call(script, peer, command_timeout=2.0, call_timeout=20.0)
    assert not peer.unexpected, peer.unexpected
    return Outcome(line, db, peer, result.error)


def spoken_digits(played: list[str]) -> str:
    return "".join(p.removeprefix("digit_") for p in played if p.startswith("digit_"))


def test_every_readback_prompt_is_in_the_catalogue_in_both_languages() -> None:
    catalogue = load_catalogue()
    for prompt in READBACK_PROMPTS | NUMBER_FRAGMENT_IDS:
        assert catalogue[prompt].text("hi") and catalogue[prompt].text("en"), prompt


async def test_the_number_is_read_twice_digit_by_digit_then_the_due_date_in_hindi() -> None:
    out = await read_back()
    assert out.error is None
    played = out.line.played
    assert spoken_digits(played) == NUMBER * 2
    first, second = played.index("complaint_number_is"), played.index("repeat_number")
    assert spoken_digits(played[first:second]) == NUMBER
    assert played[0] == "readback_intro"
    due = played[played.index("due_date_is") :]
    # 13 (तेरह), December, 2026 (दो हज़ार छब्बीस: num_2 num_thousand num_26), then back to the agent.
    assert due == ["due_date_is", "num_13", "month_12", "num_2", "num_thousand", "num_26",
                   "readback_return"]  # fmt: skip
    assert ("CHANNEL(language)", "hi") in out.line.variables
    assert out.line.variables[-1] == ("READBACK_DONE", "1")
    assert ("READBACK_OUTCOME", "completed") in out.line.variables
    record = out.store.last
    assert record.outcome is ReadbackOutcome.COMPLETED
    assert record.digits_spoken == NUMBER * 2
    assert record.then_action is ReadbackThen.RETURN and record.lang == "hi"
    assert record.prompts == played and record.ended_at is not None
    assert len(out.store.saved) == 2  # stored when it starts, completed when it ends


async def test_english_callers_hear_it_in_english_and_hangup_says_goodbye() -> None:
    out = await read_back((NUMBER, "hangup"), lang="en")
    assert ("CHANNEL(language)", "en") in out.line.variables
    assert out.line.played[-1] == "goodbye"
    assert out.store.last.lang == "en" and out.store.last.then_action is ReadbackThen.HANGUP


async def test_a_channel_without_the_ivr_s_language_hears_hindi() -> None:
    out = await read_back(lang=None)
    assert out.store.last.lang == "hi" and spoken_digits(out.line.played) == NUMBER * 2


@pytest.mark.parametrize("number", ["", "12345", NUMBER[:-1] + str((int(NUMBER[-1]) + 1) % 10)])
async def test_a_number_that_is_not_a_stored_complaint_is_never_read(number: str) -> None:
    out = await read_back((number, "return"))
    assert spoken_digits(out.line.played) == ""
    assert out.line.played == ["complaint_not_found", "readback_return"]
    assert out.store.last.outcome is ReadbackOutcome.NOT_FOUND
    assert out.line.variables[-1] == ("READBACK_DONE", "1")


async def test_a_database_failure_is_apologised_for_and_the_caller_still_handed_back() -> None:
    out = await read_back(store=MemoryStore(broken=True))
    assert out.line.played == ["technical_problem", "readback_return"]
    assert out.store.last.outcome is ReadbackOutcome.FAILED
    assert out.line.variables[-1] == ("READBACK_DONE", "1")


async def test_an_unknown_choice_returns_the_caller_to_the_agent() -> None:
    out = await read_back((NUMBER, "transfer"))
    assert out.store.last.then_action is ReadbackThen.RETURN


async def test_hanging_up_at_every_command_stores_what_was_spoken() -> None:
    complete = await read_back()
    commands = len(complete.peer.commands)
    assert commands > 30
    for n in range(commands):
        out = await read_back(hangup_at=n)
        assert out.error is None, (n, out.error)
        record = out.store.last
        assert record.ended_at is not None, n
        if n < commands - 1:  # a hang-up racing the last command may still see it applied
            assert record.outcome is ReadbackOutcome.HUNG_UP, (n, record.outcome)
            assert ("READBACK_DONE", "1") not in out.line.variables, n
        # What is stored is exactly what was played to the end before the hang-up (the n-th
        # command was answered with HANGUP: its digit was not heard).
        heard = [c.split()[2].removeprefix("helpline/") for c in out.peer.commands[:n]
                 if c.startswith("STREAM FILE")]  # fmt: skip
        assert record.digits_spoken == spoken_digits(heard), n
        assert (NUMBER * 2).startswith(record.digits_spoken), n
