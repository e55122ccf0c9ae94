"""The ``sla`` worker's hourly passes (recordings' retention, the privacy pass): one at most
every ``every``, whatever the worker's own poll interval; a line in the log when it did
something."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Generic, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings

log = logging.getLogger(__name__)


class PassReport(Protocol):
    def lines(self) -> list[str]: ...


R = TypeVar("R", bound=PassReport)


class HourlyPass(Generic[R]):
    """A subclass says what one pass is (:meth:`run`) and whether it changed anything."""

    #: The pass's name in the log.
    name = "pass"

    def __init__(self, settings: Settings, every: timedelta = timedelta(hours=1)) -> None:
        self.settings = settings
        self.every = every
        self.last: datetime | None = None
        self.last_report: R | None = None

    async def run(self, sessions: async_sessionmaker[AsyncSession], now: datetime) -> R:
        raise NotImplementedError

    def changed(self, report: R) -> bool:
        raise NotImplementedError

    async def __call__(self, sessions: async_sessionmaker[AsyncSession], now: datetime) -> None:
        if self.last is not None and self.last <= now < self.last + self.every:
            return
        self.last = now
        report = await self.run(sessions, now)
        self.last_report = report
        if self.changed(report):
            log.info("%s: %s", self.name, report.lines()[-1])
