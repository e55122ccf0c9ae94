"""The capacity calculator (``GET /capacity``, ``helpline capacity``): the agents the queue
needs for its service level now, at today's busiest hour and at the design day's, from today's
live figures or given ones, against the seats configured and the agents logged in.

Live figures count calls that *reached the queue* (``queue_joined_at``): a call the IVR
finishes on its own needs no agent. "Now" is the last 60 minutes' arrivals; the handle time is
today's answered calls' mean talk time plus the wrap-up every call gets (as ``/stats`` counts
AHT). One aggregate query over the ``queue_joined_at`` index, and one for the seats.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from api.schemas import CapacityEstimate, CapacityOut, CapacityQuery, CapacityTarget
from api.services.errors import InvalidField
from core.domain import design_day, erlang
from core.domain.clock import day_start
from core.domain.queues import WRAPUP_SECONDS

#: Handle time assumed before any call of the day was answered (the docs' middle column).
DEFAULT_AHT_S = 240.0

_TODAY_SQL = text(
    """
    SELECT floor(extract(epoch FROM queue_joined_at - :day) / 3600)::int AS hour,
           count(*) FILTER (WHERE queue_joined_at >= :day) AS offered,
           count(*) FILTER (WHERE queue_joined_at > :hour_ago) AS last_hour,
           count(talk_seconds) FILTER (WHERE queue_joined_at >= :day) AS talked,
           coalesce(sum(talk_seconds) FILTER (WHERE queue_joined_at >= :day), 0) AS talk
    FROM calls
    WHERE queue_joined_at >= least(:day, :hour_ago) AND queue_joined_at <= :now
    GROUP BY 1
    """
)

_SEATS_SQL = text(
    """
    SELECT (SELECT count(*) FROM seats WHERE enabled) AS configured,
           (SELECT count(*) FROM seat_status WHERE in_queue) AS logged_in
    """
)


@dataclass(slots=True)
class Today:
    """Today's (IST) live figures."""

    calls: int = 0
    #: Answered calls with a talk time, and their talk seconds in total.
    talked: int = 0
    talk_seconds: float = 0.0
    #: Calls that joined the queue in the last 60 minutes.
    last_hour: int = 0
    #: Calls by IST hour of the day (0-23).
    by_hour: dict[int, int] = field(default_factory=dict)
    seats_configured: int = 0
    agents_logged_in: int = 0


async def today(session: AsyncSession, now: datetime) -> Today:
    start = day_start(now)
    figures = Today()
    rows = await session.execute(
        _TODAY_SQL, {"day": start, "hour_ago": now - timedelta(hours=1), "now": now}
    )
    for row in rows:
        figures.last_hour += row.last_hour
        if row.hour >= 0:
            figures.calls += row.offered
            figures.talked += row.talked
            figures.talk_seconds += float(row.talk)
            figures.by_hour[row.hour] = row.offered
    seats = (await session.execute(_SEATS_SQL)).one()
    figures.seats_configured = seats.configured
    figures.agents_logged_in = seats.logged_in
    return figures


async def capacity(
    session: AsyncSession, query: CapacityQuery, now: datetime | None = None
) -> CapacityOut:
    """From today's figures, any of them replaced by the query's."""
    now = now or datetime.now(UTC)
    figures = await today(session, now)
    # Erlang A's search can take a good part of a second: off the event loop.
    return await asyncio.to_thread(plan, query, now, figures, figures.seats_configured)


def given(query: CapacityQuery, seats_configured: int, now: datetime | None = None) -> CapacityOut:
    """From given figures only (``calls_per_hour`` and ``aht``), no database."""
    if query.calls_per_hour is None or query.aht is None:
        raise InvalidField("calls_per_hour", "given figures need calls_per_hour and aht")
    return plan(query, now or datetime.now(UTC), None, seats_configured)


def plan(
    query: CapacityQuery, now: datetime, figures: Today | None, seats_configured: int
) -> CapacityOut:
    """The estimates and the verdict (pure)."""
    if query.aht is not None:
        aht, aht_source = query.aht, "given"
    elif figures is not None and figures.talked:
        aht, aht_source = figures.talk_seconds / figures.talked + WRAPUP_SECONDS, "today"
    else:
        aht, aht_source = DEFAULT_AHT_S, "default"
    if query.calls_per_hour is not None:
        rate, now_source = query.calls_per_hour, "given"
    else:
        rate, now_source = float(figures.last_hour if figures else 0), "last_hour"

    def estimate(calls_per_hour: float, hour: int | None) -> CapacityEstimate:
        load = erlang.offered_load(calls_per_hour, aht)
        agents = erlang.agents_needed(
            calls_per_hour,
            aht,
            target_sl=query.target,
            threshold_s=query.threshold,
            patience_s=query.patience,
        )
        label = None if hour is None else f"{hour:02d}:00"
        if agents == 0:
            return CapacityEstimate(
                hour=label,
                calls_per_hour=calls_per_hour,
                erlangs=0.0,
                agents_needed=0,
                service_level=None,
                mean_wait_s=None,
                occupancy=None,
                abandon_rate=None,
            )
        shown = erlang.performance(
            calls_per_hour, aht, agents, threshold_s=query.threshold, patience_s=query.patience
        )
        return CapacityEstimate(
            hour=label,
            calls_per_hour=calls_per_hour,
            erlangs=round(load, 2),
            agents_needed=agents,
            service_level=round(shown.service_level, 4),
            mean_wait_s=round(shown.mean_wait_s, 2),
            occupancy=round(shown.occupancy, 4),
            abandon_rate=round(shown.abandon_probability, 4),
        )

    now_estimate = estimate(rate, None)
    peak_today = None
    if figures is not None and figures.by_hour:
        hour, calls = max(figures.by_hour.items(), key=lambda item: (item[1], -item[0]))
        if calls:
            peak_today = estimate(float(calls), hour)
    peak = design_day.busiest_hour()
    design = estimate(design_day.peak_calls_per_hour(), peak)
    logged_in = figures.agents_logged_in if figures is not None else None
    needs = [("now", now_estimate), ("the design day's busiest hour", design)]
    if peak_today is not None:
        needs.append(("today's busiest hour", peak_today))
    worst_name, worst = max(needs, key=lambda item: item[1].agents_needed)
    suffice = seats_configured >= worst.agents_needed
    logged_in_suffice = None if logged_in is None else logged_in >= now_estimate.agents_needed
    verdict = _verdict(
        seats_configured, worst_name, worst, now_estimate, logged_in, suffice, logged_in_suffice
    )
    return CapacityOut(
        at=now,
        target=CapacityTarget(
            service_level=query.target,
            threshold_s=query.threshold,
            patience_s=query.patience,
            model="erlang_c" if query.patience is None else "erlang_a",
        ),
        aht_s=round(aht, 2),
        aht_source=aht_source,
        calls_today=figures.calls if figures is not None else None,
        answered_today=figures.talked if figures is not None else None,
        now_source=now_source,
        now=now_estimate,
        peak_today=peak_today,
        design_peak=design,
        seats_configured=seats_configured,
        agents_logged_in=logged_in,
        seats_suffice=suffice,
        logged_in_suffice=logged_in_suffice,
        verdict=verdict,
    )


def _verdict(
    seats: int,
    worst_name: str,
    worst: CapacityEstimate,
    now: CapacityEstimate,
    logged_in: int | None,
    suffice: bool,
    logged_in_suffice: bool | None,
) -> str:
    rate = f"{worst.calls_per_hour:,.0f} calls/h"
    if not suffice:
        return (
            f"NOT ENOUGH SEATS: {worst_name} ({rate}) needs {worst.agents_needed} agents, "
            f"{seats} seats are configured ({worst.agents_needed - seats} short)"
        )
    text = (
        f"seats suffice: {seats} configured, {worst.agents_needed} needed at {worst_name} ({rate})"
    )
    if logged_in_suffice is False:
        assert logged_in is not None
        text += (
            f"; but only {logged_in} agents are logged in and {now.agents_needed} are needed "
            f"now ({now.agents_needed - logged_in} more)"
        )
    elif logged_in is not None:
        text += f"; {logged_in} logged in, {now.agents_needed} needed now"
    return text
