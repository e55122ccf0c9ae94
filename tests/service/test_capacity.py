"""The capacity calculator against a real PostgreSQL: today's live figures (calls that reached
the queue, by IST hour, the last 60 minutes, answered calls' talk time), the seats and agents
logged in, the verdict; ``GET /capacity`` (who may ask, given figures, refusals) and
``helpline capacity`` giving the same answer from the same service."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.schemas import CapacityQuery
from api.services import capacity
from core.config import Settings
from core.db.models import Call, SeatStatus
from core.domain import design_day, erlang
from core.domain.clock import IST
from core.domain.queues import WRAPUP_SECONDS
from helpline import cli
from tests.api_app import api_client
from tests.service.test_routing import Users, seeded, token

__all__ = ["seeded"]

NOW = datetime(2026, 12, 6, 11, 30, tzinfo=IST)


def queued(uniqueid: str, joined: datetime | None, talk: int | None = None) -> Call:
    """A call that joined the queue at ``joined`` (None: the IVR finished it), answered after
    10 s with ``talk`` seconds of talk if given."""
    answered = talk is not None and joined is not None
    return Call(
        uniqueid=uniqueid,
        caller_number="9839100001",
        started_at=(joined or NOW) - timedelta(seconds=40),
        queue="helpline" if joined is not None else None,
        queue_joined_at=joined,
        agent_connected_at=joined + timedelta(seconds=10) if answered and joined else None,
        talk_seconds=talk,
    )


async def add_day(sessions: async_sessionmaker[AsyncSession], at: datetime) -> dict[str, Any]:
    """Calls around ``at`` (IST hours): yesterday's, 09:xx, 10:xx (the busiest), the last hour,
    one the IVR finished, one after ``at``; two seats of three in the queue."""
    day = at.astimezone(IST).replace(hour=0, minute=0, second=0, microsecond=0)
    calls = [
        queued("y-1", day - timedelta(minutes=30), 500),  # yesterday: not today's
        queued("ivr-1", None),  # never reached the queue
        queued("future-1", at + timedelta(minutes=1), 700),  # after "now"
    ]
    talks = {"h9": [100, 200, None, 300, None], "h10": [60, 120, 180, 240, None, None, None, 90]}
    for index, talk in enumerate(talks["h9"]):
        calls.append(queued(f"h9-{index}", day + timedelta(hours=9, minutes=5 * index), talk))
    for index, talk in enumerate(talks["h10"]):
        calls.append(queued(f"h10-{index}", day + timedelta(hours=10, minutes=7 * index), talk))
    for index in range(3):
        calls.append(queued(f"h11-{index}", day + timedelta(hours=11, minutes=10 * index), 150))
    async with sessions() as session:
        session.add_all(calls)
        session.add_all(
            [
                SeatStatus(seat="agent0001", in_queue=True),
                SeatStatus(seat="agent0002", in_queue=True),
                SeatStatus(seat="agent0003", in_queue=False),
            ]
        )
        await session.commit()
    window = at - timedelta(hours=1)
    today = [c for c in calls if c.queue_joined_at and day <= c.queue_joined_at <= at]
    talked = [c.talk_seconds for c in today if c.talk_seconds is not None]
    return {
        "calls": len(today),
        "last_hour": sum(
            1 for c in calls if c.queue_joined_at and window < c.queue_joined_at <= at
        ),
        "talked": len(talked),
        "aht": sum(talked) / len(talked) + WRAPUP_SECONDS,
    }


async def test_live_figures_of_a_day(
    seeded: Users, sessions: async_sessionmaker[AsyncSession]
) -> None:
    expected = await add_day(sessions, NOW)
    # By hand: 5 + 8 + 3 calls today; 10:30-11:30 holds 10:35, 10:42, 10:49 and 11:00-11:20.
    assert expected["calls"] == 16
    assert expected["last_hour"] == 6
    async with sessions() as session:
        out = await capacity.capacity(session, CapacityQuery(), now=NOW)
    aht = expected["aht"]
    assert out.calls_today == 16
    assert out.answered_today == expected["talked"] == 11
    assert out.aht_source == "today"
    assert out.aht_s == pytest.approx(aht, abs=0.01)
    assert out.now_source == "last_hour"
    assert out.now.calls_per_hour == 6
    assert out.now.agents_needed == erlang.agents_needed(6, aht)
    assert out.peak_today is not None
    assert (out.peak_today.hour, out.peak_today.calls_per_hour) == ("10:00", 8)
    assert out.peak_today.agents_needed == erlang.agents_needed(8, aht)
    assert out.design_peak.hour == "10:00"
    assert out.design_peak.calls_per_hour == design_day.peak_calls_per_hour()
    assert out.design_peak.agents_needed == erlang.agents_needed(11_968, aht)
    assert (out.seats_configured, out.agents_logged_in) == (3, 2)
    assert out.seats_suffice is False
    assert out.logged_in_suffice is (out.now.agents_needed <= 2)
    assert out.verdict.startswith("NOT ENOUGH SEATS: the design day's busiest hour")
    # Erlang A with a patience: the model, and no more agents than Erlang C.
    async with sessions() as session:
        patient = await capacity.capacity(session, CapacityQuery(patience=60), now=NOW)
    assert patient.target.model == "erlang_a"
    assert patient.design_peak.agents_needed <= out.design_peak.agents_needed


async def test_an_empty_day_assumes_the_default_handle_time(
    seeded: Users, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as session:
        out = await capacity.capacity(session, CapacityQuery(), now=NOW)
    assert (out.calls_today, out.aht_source, out.aht_s) == (0, "default", capacity.DEFAULT_AHT_S)
    assert out.now.agents_needed == 0 and out.now.service_level is None
    assert out.peak_today is None
    assert out.agents_logged_in == 0


@pytest.fixture
async def client(db_settings: Settings, seeded: Users) -> AsyncIterator[httpx.AsyncClient]:
    async for http in api_client(db_settings):
        yield http


async def test_route_who_may_ask_given_figures_and_refusals(
    client: httpx.AsyncClient, seeded: Users
) -> None:
    for role in ("supervisor", "cm_office", "admin"):
        headers = await token(client, seeded, role)
        response = await client.get(
            "/capacity", params={"calls_per_hour": 200, "aht": 180}, headers=headers
        )
        assert response.status_code == 200, response.text
    body = response.json()
    assert body["now"]["agents_needed"] == 14
    assert body["now"]["service_level"] == pytest.approx(0.8884, abs=1e-4)
    assert (body["aht_source"], body["now_source"]) == ("given", "given")
    assert body["seats_configured"] == 3 and body["agents_logged_in"] == 0
    assert body["logged_in_suffice"] is False
    for role in ("agent", "officer"):
        refused = await client.get("/capacity", headers=await token(client, seeded, role))
        assert refused.status_code == 403
    assert (await client.get("/capacity")).status_code == 401
    a = await client.get(
        "/capacity",
        params={"calls_per_hour": 200, "aht": 180, "patience": 60, "target": 0.9},
        headers=headers,
    )
    assert a.json()["target"] == {
        "service_level": 0.9,
        "threshold_s": 20.0,
        "patience_s": 60.0,
        "model": "erlang_a",
    }
    assert a.json()["now"]["agents_needed"] == erlang.agents_needed(
        200, 180, target_sl=0.9, patience_s=60
    )
    for bad in (
        {"target": 1.5},
        {"aht": "four minutes"},
        {"calls_per_hour": -1},
        {"threshold": "nan"},
        {"shifts": 3},  # not a parameter
        {"calls_per_hour": 60_000},  # more than the calculator takes
        {"aht": 3_600},
    ):
        problem = await client.get("/capacity", params=bad, headers=headers)
        assert problem.status_code == 422, (bad, problem.text)
        assert problem.headers["content-type"].startswith("application/problem+json")


async def test_cli_and_route_give_the_same_answer(
    client: httpx.AsyncClient,
    seeded: Users,
    sessions: async_sessionmaker[AsyncSession],
    db_settings: Settings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Today's calls by the real clock (the CLI and the route read "now"), whatever the hour:
    # add_day's fixed IST hours are all still to come between midnight and 09:00 IST.
    now = datetime.now(UTC)
    midnight = now.astimezone(IST).replace(hour=0, minute=0, second=0, microsecond=0)
    earlier = max(midnight, now - timedelta(minutes=20))
    async with sessions() as session:
        session.add_all(queued(f"now-{i}", earlier + timedelta(seconds=i), 120) for i in range(3))
        session.add_all(SeatStatus(seat=f"agent000{i}", in_queue=i != 3) for i in range(1, 4))
        await session.commit()
    args = cli.parser().parse_args(["capacity", "--json"])
    code = await asyncio.to_thread(args.func, db_settings, args)
    printed = json.loads(capsys.readouterr().out)
    response = await client.get("/capacity", headers=await token(client, seeded, "supervisor"))
    assert response.status_code == 200
    routed = response.json()
    assert code == 3  # 3 seats cannot carry the design day
    assert printed["calls_today"] > 0
    for key in ("at",):
        printed.pop(key), routed.pop(key)
    assert printed == routed
