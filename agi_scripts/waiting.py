"""``agi://…/waiting``: the waiting room. Position and expected wait in the caller's language,
and "press 1 to be called back without losing your place".

Asterisk's own announcements (``announce-position``/``announce-holdtime``) speak numbers with
``say.c``, which has no Hindi; they are off (queues.conf). Instead the dialplan
(asterisk_config/templates/extensions.conf.j2, ``[route-queue]``) runs ``Queue()`` with a
timeout of ``waiting_announce_seconds``; when it returns ``TIMEOUT`` it runs this script, which
plays the announcement built from our prompt catalogue and ``ivr.numbers``, then re-enters the
queue at the caller's place. Key 1 pressed while waiting (queues.conf ``context``: the
``[waiting-room-keys]`` context) runs this script with ``WAIT_KEY=1``.

The contract with the dialplan: arguments ``queue``, ``key`` (``1`` or empty) and ``place``
(the dialplan's clock at the first join, seconds since the epoch); the script sets
``WAIT_POS`` (where to re-enter: position in app_queue's list) and, for a stored callback,
``WAIT_ROUTE=hangup``; ``WAIT_DONE=1`` last. Without ``WAIT_DONE`` (our server down or dead
mid-call) the dialplan re-enters at app_queue's own ``QUEUEPOSITION``: the caller keeps waiting.

The place in line is the caller's first join (``calls.queue_joined_at``); the position said is
1 + the callers of the same queue still waiting who joined earlier. The caller re-enters at 1 +
those of them in app_queue's list now (the others hear their own announcement and re-enter
ahead by the same rule), so leaving for an announcement costs no place. The expected wait is
the position over the rate at which this queue's callers were answered in the last 15 minutes
(as the queue manager recorded them); with none answered there is no honest figure and only the
position is said.

Every visit is appended to the call's ``ivr_sessions`` row (``detail.waiting_room``, prompts,
keys); a chosen callback makes its outcome ``callback`` at ``last_node = waiting_room``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Iterable
from datetime import UTC, datetime
from typing import Final, TypeVar

from agi_scripts.store import CallbackJob, WaitFigures, WaitingStore, WaitingVisit
from core.config import Settings
from core.domain.calls import CallbackReason, IvrOutcome
from core.domain.phone import parse_caller_id, raw_caller_id
from core.transport.fastagi import AGICall, AGIHangup
from ivr.catalogue import DEFAULT_LANG, LANGS
from ivr.menus import PromptRef
from ivr.numbers import NUMBER_FRAGMENT_IDS, number_fragments

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The key that asks for a callback while waiting (queues.conf ``context`` exits on it).
CALLBACK_KEY: Final = "1"

#: Prompts this script plays (besides number fragments); checked against the catalogue.
WAITING_PROMPTS: Final = frozenset(
    {
        "queue_next",
        "queue_position_pre",
        "queue_position_post",
        "wait_minutes_pre",
        "wait_minutes_post",
        "waiting_callback_offer",
        "waiting_callback_registered",
        "waiting_callback_unavailable",
        "technical_problem",
        "goodbye",
    }
)


def waiting_playable() -> set[str]:
    return set(WAITING_PROMPTS | NUMBER_FRAGMENT_IDS)


def wait_minutes(seconds: int) -> int:
    """Minutes to say for an expected wait: rounded, at least one ("about 1 minute")."""
    return max(1, round(seconds / 60))


def announcement(figures: WaitFigures, lang: str, *, offer_callback: bool) -> list[str]:
    """Prompt ids of one waiting-room announcement in ``lang`` (pure; numbers on the Indian
    scale from ``ivr.numbers``)."""
    if figures.position <= 1:
        refs = ["queue_next"]
    else:
        refs = [
            "queue_position_pre",
            *number_fragments(figures.position, lang),
            "queue_position_post",
        ]
    wait = figures.estimated_wait_s
    if wait is not None:
        minutes = number_fragments(wait_minutes(wait), lang)
        refs += ["wait_minutes_pre", *minutes, "wait_minutes_post"]
    if offer_callback:
        refs.append("waiting_callback_offer")
    return refs


def _epoch(text: str) -> datetime | None:
    try:
        value = float(text)
    except ValueError:
        return None
    if not 1e9 < value < 1e10:  # 2001..2286: anything else is not the dialplan's clock
        return None
    return datetime.fromtimestamp(value, UTC)


class _DBError(Exception):
    """Internal: a database call failed or timed out (already logged)."""


class WaitingFlow:
    """One visit to the waiting room (see the module docstring)."""

    def __init__(self, call: AGICall, store: WaitingStore, settings: Settings) -> None:
        self.call = call
        self.store = store
        self.settings = settings
        args = [*call.args, "", "", ""]
        self.queue = (args[0] or settings.queue_name)[:64]  # callback_requests.queue
        self.key = args[1].strip()
        self.fallback_place = _epoch(args[2].strip())
        lang = call.env.language
        self.lang = lang if lang in LANGS else DEFAULT_LANG
        self.caller_number = parse_caller_id(call.caller_id)
        self.visit = WaitingVisit(
            uniqueid=call.uniqueid,
            caller_number=self.caller_number,
            caller_number_raw=raw_caller_id(call.caller_id),
            lang=self.lang,
            at=datetime.now(UTC),
        )
        self.visit.entry = {"at": self.visit.at.isoformat(), "queue": self.queue}

    async def run(self) -> None:
        try:
            if self.key == CALLBACK_KEY:
                self._note_key(self.key)
                await self.callback(None)
            else:
                await self.announce()
        except AGIHangup:
            self.visit.entry["hung_up"] = True
        finally:
            await self._save()

    # ------------------------------------------------------------------ steps

    async def announce(self) -> None:
        try:
            figures = await self._db(
                self.store.wait_figures(self.call.uniqueid, self.queue, self.fallback_place)
            )
        except _DBError:
            # No figures: nothing true to say. The caller keeps waiting where app_queue had them.
            await self.finish()
            return
        self.visit.entry.update(figures.as_detail())
        refs = announcement(figures, self.lang, offer_callback=self.caller_number is not None)
        key = await self.play_all(refs, CALLBACK_KEY if self.caller_number is not None else "")
        if key == CALLBACK_KEY:
            self._note_key(key)
            await self.callback(figures)
            return
        await self.finish(figures.reentry)

    async def callback(self, figures: WaitFigures | None) -> None:
        if figures is None:  # key 1 pressed in the queue: where the caller stands first
            with contextlib.suppress(_DBError):
                figures = await self._db(
                    self.store.wait_figures(self.call.uniqueid, self.queue, self.fallback_place)
                )
                self.visit.entry.update(figures.as_detail())
        reentry = figures.reentry if figures is not None else None
        if self.caller_number is None:
            self.visit.entry["callback"] = "withheld"
            await self.play_all(["waiting_callback_unavailable"], "")
            await self.finish(reentry)
            return
        place = (figures.place_at if figures is not None else None) or self.fallback_place
        job = CallbackJob(
            uniqueid=self.call.uniqueid,
            caller_number=self.caller_number,
            lang=self.lang,
            reason=CallbackReason.WAITING.value,
            ivr_path=f"waiting_room:{self.queue}",
            place_at=place,
            queue=self.queue,
        )
        try:
            request_id = await self._db(self.store.add_callback(job))
        except _DBError:
            # Not stored, so not promised: the caller keeps waiting, at their place.
            self.visit.entry["callback"] = "db_error"
            await self.play_all(["technical_problem"], "")
            await self.finish(reentry)
            return
        self.visit.entry["callback"] = request_id
        self.visit.outcome = IvrOutcome.CALLBACK
        self.visit.detail = {"callback_id": request_id, "callback_reason": job.reason}
        # Said only after the COMMIT returned: a promise we can keep.
        await self.play_all(["waiting_callback_registered", "goodbye"], "")
        await self.call.set_variable("WAIT_ROUTE", "hangup")
        await self.call.set_variable("WAIT_DONE", "1")

    async def finish(self, reentry: int | None = None) -> None:
        """Back to the queue: at ``reentry`` (else where app_queue had the caller)."""
        if reentry is not None:
            await self.call.set_variable("WAIT_POS", str(reentry))
        await self.call.set_variable("WAIT_DONE", "1")

    # ------------------------------------------------------------------ helpers

    async def play_all(self, refs: Iterable[str], escape: str) -> str:
        for ref in refs:
            self.visit.prompts.append(ref)
            key = await self.call.stream_file(PromptRef(ref).sound(), escape)
            if key:
                return key
        return ""

    def _note_key(self, key: str) -> None:
        self.visit.digits += key
        self.visit.entry["key"] = key

    async def _db(self, what: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.settings.ivr_db_timeout):
                return await what
        except Exception as exc:
            log.exception("waiting room: database call failed (uniqueid=%s)", self.call.uniqueid)
            self.visit.entry.setdefault("db_errors", []).append(type(exc).__name__)
            raise _DBError from exc

    async def _save(self) -> None:
        try:
            async with asyncio.timeout(self.settings.ivr_db_timeout):
                await self.store.add_waiting_visit(self.visit)
        except Exception:
            log.exception("could not store the waiting-room visit of %s", self.call.uniqueid)


class WaitingScript:
    """The ``waiting`` FastAGI script: one :class:`WaitingFlow` per visit."""

    def __init__(self, store: WaitingStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    async def __call__(self, call: AGICall) -> None:
        flow = WaitingFlow(call, self.store, self.settings)
        with contextlib.suppress(AGIHangup):
            await flow.run()
        log.info("waiting room %s (%s): %s", call.uniqueid, flow.queue, flow.visit.entry)
