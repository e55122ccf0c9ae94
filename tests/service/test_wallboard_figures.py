"""The supervisors' figures on a real PostgreSQL, from calls seeded at known times: the service
level's convention (answered within 20 s / (answered + abandoned after 20 s); short abandons
count neither way), the day's half-hour trend bucket by bucket, the agents logged in per half
hour, and Erlang C's column filled from whatever ``agents_needed`` is given."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.live import BUCKET_SECONDS, compute_stats, service_level
from core.config import Settings
from core.db.models import AgentSession, Call, User
from core.domain.clock import IST
from core.domain.staff import Role
from helpline.seed import seed_seats
from tests.statements import statements_sent

#: The IST day the calls are seeded on, and the moment the figures are asked for.
DAY = datetime(2026, 12, 6, tzinfo=IST)
NOW = DAY + timedelta(hours=10, minutes=5)


def at(hhmmss: str, day: datetime = DAY) -> datetime:
    h, m, s = (int(x) for x in hhmmss.split(":"))
    return day + timedelta(hours=h, minutes=m, seconds=s)


def call(
    uid: str,
    joined: datetime,
    *,
    answered_after: float | None = None,
    abandoned_after: float | None = None,
    talk: int | None = None,
) -> Call:
    row = Call(uniqueid=uid, queue="helpline", queue_joined_at=joined, started_at=joined)
    if answered_after is not None:
        row.agent_connected_at = row.queue_left_at = joined + timedelta(seconds=answered_after)
        row.talk_seconds = talk
    if abandoned_after is not None:
        row.abandoned_at = row.queue_left_at = joined + timedelta(seconds=abandoned_after)
        row.ended_at = row.abandoned_at
    return row


def calls() -> list[Call]:
    """Bucket 18 is 09:00-09:30 IST, 19 is 09:30-10:00, 20 the current one (10:00-10:05)."""
    return [
        call("y1", at("23:50:00", DAY - timedelta(days=1)), answered_after=5, talk=60),  # yesterday
        call("b0", at("00:10:00"), abandoned_after=2),
        call("a10", at("09:01:00"), answered_after=10, talk=100),  # within
        call("a40", at("09:02:00"), answered_after=40, talk=200),  # late
        call("x3", at("09:03:00"), abandoned_after=3),  # short abandon: neither way
        call("x30", at("09:04:00"), abandoned_after=30),  # missed
        call("a20", at("09:05:00"), answered_after=20, talk=150),  # exactly T: within
        call("x20", at("09:06:00"), abandoned_after=20),  # exactly T: not after T
        call("x25", at("09:45:00"), abandoned_after=25),  # missed
        call("a15", at("09:59:50"), answered_after=15, talk=60),  # answered 10:00:05, joined in 19
        call("w", at("10:04:00")),  # still waiting
    ]


@dataclass
class FakeStaffing:
    """Stands in for ``core.domain.erlang.agents_needed``: records what it is asked."""

    asked: list[tuple[float, float, float, float]] = field(default_factory=list)

    def __call__(
        self,
        calls_per_hour: float,
        aht_s: float,
        *,
        target_sl: float = 0.8,
        threshold_s: float = 20.0,
    ) -> int:
        self.asked.append((calls_per_hour, aht_s, target_sl, threshold_s))
        return int(calls_per_hour * aht_s / 3600) + 1


async def seed(session: AsyncSession) -> None:
    session.add_all(calls())
    seats = await seed_seats(session, 3)
    users = [
        User(username=f"wb{i}", full_name=f"WB {i}", role=Role.AGENT, password_hash="x")
        for i in range(3)
    ]
    session.add_all(users)
    await session.flush()
    session.add_all(
        [
            # Half of 09:00-09:30 and half of 09:30-10:00.
            AgentSession(
                user_id=users[0].id,
                seat=seats[0].name,
                logged_in_at=at("09:15:00"),
                logged_out_at=at("09:45:00"),
            ),
            # Since 08:00, still logged in.
            AgentSession(user_id=users[1].id, seat=seats[1].name, logged_in_at=at("08:00:00")),
            # From yesterday night until 00:15 today.
            AgentSession(
                user_id=users[2].id,
                seat=seats[2].name,
                logged_in_at=at("22:00:00", DAY - timedelta(days=1)),
                logged_out_at=at("00:15:00"),
            ),
        ]
    )
    await session.commit()


def test_service_level_convention() -> None:
    assert service_level(2, 3, 1) == 0.5
    assert service_level(0, 0, 0) is None
    # All abandoned after T, none answered: 0 %, not "nothing to say" (the 100 % beside
    # 99.9 % abandoned that this convention replaces).
    assert service_level(0, 0, 5) == 0.0


async def test_totals_count_late_abandons_and_not_short_ones(
    sessions: async_sessionmaker[AsyncSession], db_settings: Settings
) -> None:
    async with sessions() as session:
        await seed(session)
    async with sessions() as session:
        stats = await compute_stats(session, db_settings, now=NOW)
    o = stats.overall
    figures = (o.offered, o.answered, o.abandoned, o.answered_within_sl, o.abandoned_after_sl)
    assert figures == (10, 4, 5, 3, 2)
    # a10, a20, a15 within; counted: 4 answered + x30, x25 (x3, x20, b0 gave up within 20 s).
    assert o.service_level == 0.5
    assert o.abandon_rate == 0.5
    assert o.calls_waiting == 1
    assert stats.queues["helpline"].service_level == 0.5


async def test_trend_by_half_hour_in_one_calls_query(
    sessions: async_sessionmaker[AsyncSession], db_settings: Settings
) -> None:
    async with sessions() as session:
        await seed(session)
    staffing = FakeStaffing()
    async with sessions() as session:
        stats = await compute_stats(session, db_settings, now=NOW, agents_needed=staffing)
    trend = stats.trend
    assert trend.bucket_seconds == BUCKET_SECONDS == 1800
    buckets = trend.buckets
    assert len(buckets) == 21  # 00:00 … 10:00, the current half hour included
    assert [b.start for b in buckets] == [DAY + timedelta(minutes=30 * i) for i in range(21)]

    def figures(i: int) -> tuple[Any, ...]:
        b = buckets[i]
        return (
            b.offered,
            b.answered,
            b.abandoned,
            b.answered_within_sl,
            b.abandoned_after_sl,
            b.service_level,
            b.aht_seconds,
        )

    assert figures(0) == (1, 0, 1, 0, 0, None, None)
    assert figures(18) == (6, 3, 3, 2, 1, 0.5, 155.0)  # talk (100+200+150)/3 + 5 s wrap-up
    assert figures(19) == (2, 1, 1, 1, 1, 0.5, 65.0)
    assert figures(20) == (1, 0, 0, 0, 0, None, None)
    assert all(figures(i)[0] == 0 for i in range(1, 18))
    assert sum(b.offered for b in buckets) == stats.overall.offered
    # Time-weighted mean of agents logged in.
    logged_in = [b.agents_logged_in for b in buckets]
    assert logged_in[0] == 0.5  # the night session until 00:15
    assert logged_in[1:16] == [0.0] * 15
    assert logged_in[16:21] == [1.0, 1.0, 1.5, 1.5, 1.0]
    # Erlang C asked once per bucket with calls: bucket 0 and 20 with the day's AHT
    # ((100+200+150+60)/4 + 5), the current half hour's rate over its 5 minutes so far.
    assert staffing.asked == [
        (2.0, 132.5, 0.8, 20.0),
        (12.0, 155.0, 0.8, 20.0),
        (4.0, 65.0, 0.8, 20.0),
        (12.0, 132.5, 0.8, 20.0),
    ]
    assert buckets[18].agents_needed == 1 and buckets[5].agents_needed == 0
    body = stats.model_dump(mode="json")
    assert body["trend"]["buckets"][18]["agents_needed"] == 1
    # Without a staffing function, the column is there and null.
    async with sessions() as session:
        plain = await compute_stats(session, db_settings, now=NOW, agents_needed=None)
    assert all(b.agents_needed is None for b in plain.trend.buckets)
    # By default it is Erlang C's: every half hour with calls needs at least one agent.
    async with sessions() as session:
        erlang = await compute_stats(session, db_settings, now=NOW)
    assert erlang.trend.buckets[18].agents_needed is not None
    assert erlang.trend.buckets[18].agents_needed >= 1
    assert erlang.trend.buckets[5].agents_needed == 0


async def test_statements_do_not_grow_with_the_buckets(
    sessions: async_sessionmaker[AsyncSession], db_settings: Settings
) -> None:
    async with sessions() as session:
        await seed(session)
    counts = []
    for now in (DAY + timedelta(minutes=10), DAY + timedelta(hours=23, minutes=59)):
        with statements_sent(sessions.kw["bind"]) as sent:
            async with sessions() as session:
                stats = await compute_stats(session, db_settings, now=now)
        statements = [statement for statement, _ in sent]
        counts.append(len(statements))
        assert len(stats.trend.buckets) == (1 if now.hour == 0 else 48)
    assert counts[0] == counts[1]
    assert sum(1 for s in statements if "FROM calls" in s and "bucket" in s) == 1
