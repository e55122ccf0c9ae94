"""The waiting room: prompt building for positions and waits (Hindi and English, large numbers),
the ``waiting`` script over a real socket (hanging up at every command), and the dialplan it
lives in (the queue loop, key 1, and seats that can no longer dial out)."""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from agi_scripts.store import CallbackJob, WaitFigures, WaitingVisit
from agi_scripts.waiting import (
    WaitingScript,
    announcement,
    wait_minutes,
    waiting_playable,
)
from asterisk_config import InstanceDirs, SeatCredential
from asterisk_config.render import render_configs
from core.config import AMI_SERVICES, Settings
from core.transport.fake_agi import FakeAsterisk, run_fake_call
from ivr.catalogue import LANGS, load_catalogue
from ivr.numbers import number_fragments

PLACE = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
CALLER = "9876543210"


def figures(position: int, connected: int = 0, reentry: int | None = None) -> WaitFigures:
    return WaitFigures(
        position=position,
        reentry=position if reentry is None else reentry,
        place_at=PLACE,
        connected_recently=connected,
        window_s=900,
    )


# --------------------------------------------------------------------------- prompt building


def test_every_waiting_prompt_exists_in_hindi_and_english() -> None:
    catalogue = load_catalogue()
    for pid in waiting_playable() | {"outbound_refused"}:
        for lang in LANGS:
            assert lang in catalogue[pid].texts, (pid, lang)


@pytest.mark.parametrize("lang", LANGS)
def test_first_in_line_hears_queue_next_not_a_number(lang: str) -> None:
    assert announcement(figures(1), lang, offer_callback=True) == [
        "queue_next",
        "waiting_callback_offer",
    ]


def test_position_and_wait_in_hindi_with_the_indian_scale() -> None:
    # 1,23,456 callers ahead of a 15-minute window in which 900 were answered: one a second.
    refs = announcement(figures(123_457, connected=900), "hi", offer_callback=True)
    position = number_fragments(123_457, "hi")
    assert position == ["num_1", "num_lakh", "num_23", "num_thousand", "num_4", "num_hundred",
                        "num_57"]  # fmt: skip
    minutes = number_fragments(round(123_457 / 60), "hi")  # 2058 minutes
    assert refs == [
        "queue_position_pre",
        *position,
        "queue_position_post",
        "wait_minutes_pre",
        *minutes,
        "wait_minutes_post",
        "waiting_callback_offer",
    ]


def test_english_uses_the_same_fragments_and_a_withheld_caller_gets_no_offer() -> None:
    refs = announcement(figures(42, connected=30), "en", offer_callback=False)
    # 42 ahead of 30 answered in 900 s: 42 * 30 s = 21 minutes.
    assert refs == [
        "queue_position_pre",
        "num_42",
        "queue_position_post",
        "wait_minutes_pre",
        "num_21",
        "wait_minutes_post",
    ]


def test_no_answers_recently_means_no_wait_is_invented() -> None:
    f = figures(7, connected=0)
    assert f.estimated_wait_s is None
    refs = announcement(f, "hi", offer_callback=True)
    assert "wait_minutes_pre" not in refs
    assert refs == ["queue_position_pre", "num_7", "queue_position_post", "waiting_callback_offer"]


@pytest.mark.parametrize(
    ("seconds", "minutes"), [(1, 1), (29, 1), (90, 2), (150, 2), (151, 3), (600, 10)]
)
def test_wait_minutes_round_and_never_say_zero(seconds: int, minutes: int) -> None:
    assert wait_minutes(seconds) == minutes


def test_crore_sized_positions_still_build() -> None:
    refs = announcement(figures(12_34_56_789, connected=1), "hi", offer_callback=False)
    assert refs[:5] == ["queue_position_pre", "num_12", "num_crore", "num_34", "num_lakh"]
    assert all(r in waiting_playable() for r in refs)


# --------------------------------------------------------------------------- the script


@dataclass
class MemoryWaiting:
    """In-memory WaitingStore (the PostgreSQL one runs in tests/service)."""

    figures: WaitFigures = field(default_factory=lambda: figures(3, connected=90, reentry=2))
    broken: bool = False
    callbacks: list[CallbackJob] = field(default_factory=list)
    visits: list[WaitingVisit] = field(default_factory=list)
    asked: list[tuple[str, str, datetime | None]] = field(default_factory=list)

    async def wait_figures(
        self, uniqueid: str, queue: str, fallback_place: datetime | None
    ) -> WaitFigures:
        self.asked.append((uniqueid, queue, fallback_place))
        if self.broken:
            raise ConnectionRefusedError("database down")
        return self.figures

    async def add_callback(self, job: CallbackJob) -> int:
        if self.broken:
            raise ConnectionRefusedError("database down")
        for i, known in enumerate(self.callbacks, start=1):
            if known.uniqueid == job.uniqueid:
                return i
        self.callbacks.append(job)
        return len(self.callbacks)

    async def add_waiting_visit(self, visit: WaitingVisit) -> None:
        self.visits.append(copy.deepcopy(visit))


@dataclass
class Waiter:
    """A waiting caller answering the script's commands: presses ``key`` during ``during``."""

    key: str | None = None
    during: str | None = None
    played: list[str] = field(default_factory=list)
    variables: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, argv: list[str]) -> str | Sequence[str] | None:
        words = [w.upper() for w in argv[:2]]
        if words == ["STREAM", "FILE"]:
            self.played.append(argv[2].removeprefix("helpline/"))
            if self.key and self.during == argv[2].removeprefix("helpline/"):
                if self.key not in argv[3]:
                    return "200 result=0 endpos=8000"  # not an escape digit: plays on
                return f"200 result={ord(self.key)} endpos=1000"
            return "200 result=0 endpos=8000"
        if words == ["SET", "VARIABLE"]:
            self.variables.append((argv[2], argv[3]))
            return "200 result=1"
        return None


@dataclass
class Visit:
    waiter: Waiter
    peer: FakeAsterisk
    store: MemoryWaiting
    error: BaseException | None

    @property
    def vars(self) -> dict[str, str]:
        return dict(self.waiter.variables)


async def visit(
    waiter: Waiter,
    store: MemoryWaiting,
    *,
    args: Sequence[str] = ("helpline", "", "1765000000.250"),
    caller_id: str = CALLER,
    language: str = "hi",
    hangup_at: int | None = None,
) -> Visit:
    peer = FakeAsterisk(
        [waiter] * 50,
        script="waiting",
        args=args,
        env={"agi_callerid": caller_id, "agi_language": language},
        hangup_at=hangup_at,
    )
    script = WaitingScript(store, Settings(ivr_db_timeout=1.0))
    result = await run_fake_call(script, peer, command_timeout=2.0, call_timeout=10.0)
    assert not peer.unexpected, peer.unexpected
    assert set(waiter.played) <= waiting_playable()
    return Visit(waiter, peer, store, result.error)


async def test_announcement_then_back_to_the_queue_at_the_callers_place() -> None:
    store = MemoryWaiting()
    out = await visit(Waiter(), store)
    assert out.error is None
    # 3rd in line, 90 answered in 15 min: 3 * 10 s = 30 s, said as "about 1 minute".
    assert out.waiter.played == [
        "queue_position_pre",
        "num_3",
        "queue_position_post",
        "wait_minutes_pre",
        "num_1",
        "wait_minutes_post",
        "waiting_callback_offer",
    ]
    assert out.waiter.variables == [("WAIT_POS", "2"), ("WAIT_DONE", "1")]
    assert store.asked == [("1700000000.1", "helpline", datetime.fromtimestamp(1765000000.25, UTC))]
    (v,) = store.visits
    assert v.prompts == out.waiter.played and v.outcome is None
    assert v.entry["position"] == 3 and v.entry["reentry"] == 2
    assert v.entry["estimated_wait_s"] == 30
    assert not store.callbacks


async def test_key_1_during_the_announcement_stores_a_callback_with_the_place() -> None:
    store = MemoryWaiting()
    out = await visit(Waiter("1", "waiting_callback_offer"), store, language="en")
    assert out.error is None
    assert out.waiter.played[-3:] == [
        "waiting_callback_offer",
        "waiting_callback_registered",
        "goodbye",
    ]
    assert out.waiter.variables == [("WAIT_ROUTE", "hangup"), ("WAIT_DONE", "1")]
    (job,) = store.callbacks
    assert (job.caller_number, job.reason, job.place_at, job.queue, job.lang) == (
        CALLER,
        "waiting",
        PLACE,
        "helpline",
        "en",
    )
    (v,) = store.visits
    assert v.outcome == "callback" and v.detail == {"callback_id": 1, "callback_reason": "waiting"}
    assert v.digits == "1"


async def test_key_1_from_the_queue_context_goes_straight_to_the_callback() -> None:
    store = MemoryWaiting()
    out = await visit(Waiter(), store, args=("helpline-police", "1", "1765000000"))
    assert out.waiter.played == ["waiting_callback_registered", "goodbye"]
    assert out.vars["WAIT_ROUTE"] == "hangup"
    assert store.callbacks[0].queue == "helpline-police"
    assert store.asked[0][1] == "helpline-police"


async def test_place_falls_back_to_the_dialplans_clock_when_the_row_is_late() -> None:
    store = MemoryWaiting(figures=WaitFigures(1, 1, None, 0, 900))
    await visit(Waiter(), store, args=("helpline", "1", "1765000000.5"))
    assert store.callbacks[0].place_at == datetime.fromtimestamp(1765000000.5, UTC)


async def test_withheld_caller_is_not_offered_and_key_1_keeps_them_waiting() -> None:
    store = MemoryWaiting()
    out = await visit(Waiter("1", "queue_position_post"), store, caller_id="")
    assert "waiting_callback_offer" not in out.waiter.played
    assert out.vars == {"WAIT_POS": "2", "WAIT_DONE": "1"}  # the key was not an escape digit
    out = await visit(Waiter(), MemoryWaiting(), caller_id="", args=("helpline", "1", ""))
    assert out.waiter.played == ["waiting_callback_unavailable"]
    assert out.vars == {"WAIT_POS": "2", "WAIT_DONE": "1"}
    assert not out.store.callbacks


async def test_database_down_promises_nothing_and_the_caller_keeps_waiting() -> None:
    store = MemoryWaiting(broken=True)
    out = await visit(Waiter(), store)
    assert out.waiter.played == []  # no figures: nothing true to say
    assert out.vars == {"WAIT_DONE": "1"}  # WAIT_POS stays app_queue's own
    out = await visit(Waiter(), MemoryWaiting(broken=True), args=("helpline", "1", ""))
    assert out.waiter.played == ["technical_problem"]
    assert out.vars == {"WAIT_DONE": "1"} and not out.store.callbacks
    assert out.store.visits[0].entry["callback"] == "db_error"


@pytest.mark.parametrize(
    ("name", "waiter", "args"),
    [
        ("announce", Waiter(), ("helpline", "", "")),
        (
            "callback during announcement",
            Waiter("1", "waiting_callback_offer"),
            ("helpline", "", ""),
        ),
        ("callback from the queue", Waiter(), ("helpline", "1", "")),
    ],
)
async def test_hang_up_at_every_command_stores_the_visit_and_never_a_done_marker(
    name: str, waiter: Waiter, args: tuple[str, ...]
) -> None:
    full = await visit(copy.deepcopy(waiter), MemoryWaiting(), args=args)
    commands = len(full.peer.commands)
    assert commands >= 3, name
    for n in range(commands):
        out = await visit(copy.deepcopy(waiter), MemoryWaiting(), args=args, hangup_at=n)
        assert out.error is None, (name, n, out.error)
        (v,) = out.store.visits  # stored whatever happened
        assert v.entry.get("hung_up") is True, (name, n)
        if n < commands - 1:
            assert "WAIT_DONE" not in out.vars, (name, n)
        # A callback is stored (and counted) only once, even if the caller hangs up after.
        assert len(out.store.callbacks) <= 1


# --------------------------------------------------------------------------- the dialplan

DIRS = InstanceDirs.under("/srv/helpline/unit")


def _render(**kw: object) -> dict[str, str]:
    base: dict[str, object] = {f"ami_secret_{s}": f"secret-{s}-0123456789" for s in AMI_SERVICES}
    base.update(instance="unit", trunk_address="127.0.0.2", sip_host="127.0.0.1", **kw)
    seats = [SeatCredential("agent0001", "pass-1"), SeatCredential("agent0002", "pass-2")]
    return render_configs(Settings(**base), seats, DIRS)  # type: ignore[arg-type]


def _context(conf: str, name: str) -> list[str]:
    body = conf.split(f"\n[{name}]\n", 1)[1].split("\n[", 1)[0]
    return [ln.strip() for ln in body.splitlines() if ln.strip() and not ln.startswith(";")]


def _pattern_matches(pattern: str, number: str) -> bool:
    """Asterisk's extension pattern rules (X, Z, N, [..], '.', '!') as a regex."""
    if not pattern.startswith("_"):
        return pattern == number
    out = ""
    i, body = 0, pattern[1:]
    while i < len(body):
        c = body[i]
        if c == "X":
            out += "[0-9]"
        elif c == "Z":
            out += "[1-9]"
        elif c == "N":
            out += "[2-9]"
        elif c == ".":
            out += ".+"
        elif c == "!":
            out += ".*"
        elif c == "[":
            end = body.index("]", i)
            out += "[" + body[i + 1 : end] + "]"
            i = end
        else:
            out += re.escape(c)
        i += 1
    return re.fullmatch(out, number) is not None


def _first_lines(lines: list[str]) -> dict[str, str]:
    """Extension -> its priority 1 (application and arguments)."""
    found = {}
    for ln in lines:
        m = re.match(r"exten => ([^,]+),1,(.*)$", ln)
        if m:
            found[m.group(1)] = m.group(2)
    return found


@pytest.mark.parametrize(
    "dialled", ["9876543210", "09876543210", "+919876543210", "112", "5", "*69", "trunk", "100"]
)
def test_a_seat_dialling_anything_else_is_refused_never_routed_to_the_trunk(dialled: str) -> None:
    ext = _render()["extensions.conf"]
    agents = _context(ext, "agents")
    assert not any(re.search(r"@trunk|PJSIP/trunk", ln) for ln in agents), agents
    matching = {p: app for p, app in _first_lines(agents).items() if _pattern_matches(p, dialled)}
    assert matching, dialled
    assert set(matching.values()) == {"Goto(agents-refused,s,1)"}, matching
    refused = _context(ext, "agents-refused")
    assert "Playback(helpline/outbound_refused)" in " ".join(refused)
    assert refused[-1].endswith("Hangup(21)")
    assert not any("Dial(" in ln for ln in refused)


def test_seats_may_still_dial_each_other_the_echo_test_and_the_helpline() -> None:
    agents = _first_lines(_context(_render()["extensions.conf"], "agents"))
    assert agents["_age[n]tX."] == "Dial(Local/${EXTEN}@seat-phones,30)"
    assert agents["600"] == "Answer()"
    assert agents["1076"] == "Goto(from-trunk,${EXTEN},1)"
    # The only Dial of the context is seat to seat.
    ext = _render()["extensions.conf"]
    dials = [ln for ln in _context(ext, "agents") if "Dial(" in ln]
    assert dials == ["exten => _age[n]tX.,1,Dial(Local/${EXTEN}@seat-phones,30)"]


def test_queue_loop_announces_in_our_prompts_and_keeps_the_place() -> None:
    files = _render(waiting_announce_seconds=45, agi_port=4999)
    queues = files["queues.conf"]
    for line in ("announce-frequency = 0", "periodic-announce-frequency = 0",
                 "announce-position = no", "announce-holdtime = no",
                 "context = waiting-room-keys"):  # fmt: skip
        # once per queue: the main queue and both skill queues
        assert len(re.findall(f"^{re.escape(line)}$", queues, re.MULTILINE)) == 3, line
    route = _context(files["extensions.conf"], "route-queue")
    text = "\n".join(route)
    assert "(enter),Queue(${QUEUE_NAME},r,,,45,,,,${WAIT_POS})" in text
    assert '$["${QUEUESTATUS}" = "TIMEOUT"]?announce' in text
    assert "AGI(agi://127.0.0.1:4999/waiting,${QUEUE_NAME},${WAIT_KEY},${WAIT_PLACE})" in text
    # Without WAIT_DONE the caller goes back in at app_queue's own position.
    assert "(waitroom),Set(WAIT_POS=${FILTER(0-9,${QUEUEPOSITION})})" in text
    assert '$["${WAIT_DONE}" != "1"]?enter' in text
    assert '$["${WAIT_ROUTE}" = "hangup"]?route-hangup,s,1' in text
    keys = _context(files["extensions.conf"], "waiting-room-keys")
    assert keys == ["exten => 1,1,Set(WAIT_KEY=1)", "same => n,Goto(route-queue,s,waitroom)"]
