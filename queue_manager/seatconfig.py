"""Seats as data: the ``seats`` table (written by the API) → Asterisk's PJSIP endpoints.

The queue manager renders the instance's config from the enabled seats and reloads only
``res_pjsip`` (calls in progress keep their channels; measured well under a second for 1000
seats). What was applied is recorded in ``seat_config_state`` so the API can tell an admin
when a new seat is usable, and so a change made while Asterisk or this service was down is
applied on the next start or AMI connect.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from asterisk_config.render import SeatCredential
from core.config import Settings
from core.db.channels import SEAT_CONFIG_APPLIED_CHANNEL
from core.db.models import Seat, SeatConfigState
from core.domain.queues import seats_digest

log = logging.getLogger(__name__)

STATE_NAME = "pjsip"

ApplyConfig = Callable[[Sequence[SeatCredential]], None]


def seats_hash(seats: Sequence[SeatCredential]) -> str:
    return seats_digest((seat.name, seat.password) for seat in seats)


def render_and_reload(settings: Settings) -> ApplyConfig:
    """The real applier: render every config file, then ``module reload res_pjsip.so`` (the
    seats' endpoints) and ``dialplan reload`` (each seat's hint, the state app_queue reads for
    its member: a new seat without its hint would never ring)."""

    def apply(seats: Sequence[SeatCredential]) -> None:
        from asterisk_config.instance import AsteriskInstance  # noqa: PLC0415 - subprocess-heavy

        instance = AsteriskInstance(settings)
        instance.render(seats)
        if instance.is_running():
            instance.cli("module reload res_pjsip.so")
            instance.cli("dialplan reload")

    return apply


class SeatConfigurer:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        apply_config: ApplyConfig | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        #: None: nothing to render into (tests without Asterisk); ``serve`` passes the real one.
        self.apply_config = apply_config
        self._lock = asyncio.Lock()

    async def enabled_seats(self) -> list[SeatCredential]:
        async with self.sessions() as session:
            rows = (
                await session.execute(
                    select(Seat.name, Seat.sip_password)
                    .where(Seat.enabled.is_(True))
                    .order_by(Seat.name)
                )
            ).all()
        return [SeatCredential(name, password) for name, password in rows]

    async def apply(self, *, force: bool = False) -> bool:
        """Render and reload if the enabled seats differ from what was applied. True if done."""
        async with self._lock:
            seats = await self.enabled_seats()
            digest = seats_hash(seats)
            async with self.sessions() as session:
                state = await session.get(SeatConfigState, STATE_NAME)
            if (
                not force
                and state is not None
                and state.seats_hash == digest
                and state.error is None
                and state.applied_at is not None
            ):
                return False
            if self.apply_config is None:
                return False
            started = time.monotonic()
            error: str | None = None
            try:
                await asyncio.to_thread(self.apply_config, seats)
            except Exception as exc:  # recorded for the admin; retried on the next trigger
                error = f"{type(exc).__name__}: {exc}"[:2000]
                log.exception("could not apply %d seats to Asterisk", len(seats))
            took = time.monotonic() - started
            await self._record(digest, len(seats), took, error)
            if error is None:
                log.info("PJSIP config: %d seats rendered and reloaded in %.2f s", len(seats), took)
            return error is None

    async def _record(self, digest: str, count: int, took: float, error: str | None) -> None:
        values = {
            "seats_hash": digest,
            "seat_count": count,
            "applied_at": datetime.now(UTC) if error is None else None,
            "reload_seconds": took,
            "error": error,
        }
        statement = insert(SeatConfigState).values(name=STATE_NAME, **values)
        statement = statement.on_conflict_do_update(
            index_elements=["name"], set_={**values, "updated_at": func.now()}
        )
        async with self.sessions() as session:
            await session.execute(statement)
            # Wakes the API's PUT /seats/count, which waits for this row.
            await session.execute(
                text("SELECT pg_notify(:c, '')"), {"c": SEAT_CONFIG_APPLIED_CHANNEL}
            )
            await session.commit()
