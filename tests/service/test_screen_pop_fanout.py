"""The screen-pop fans out by seat, not by socket: the statements one answered call costs do not
grow with the number of agents connected to ``/ws/agent`` (500 seats would otherwise cost 500
queries per answered call), and only the seat's own agent gets the pop."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.live import LiveHub, Subscriber
from api.services.notify import Notifications
from api.services.seats import seat_name
from core.config import Settings
from core.db.models import AgentSession, Call, User
from core.db.session import create_engine, session_factory
from core.reference import Reference
from helpline.seed import seed_seats
from tests.statements import statements_sent

AGENTS = 50
POP_PAYLOAD = json.dumps({"seat": seat_name(7), "uniqueid": "1733500000.7"})


async def _agents_at_seats(sessions: async_sessionmaker[AsyncSession], count: int) -> list[int]:
    """``count`` agents, each logged in at its own seat ``agentNNNN``; their user ids."""
    async with sessions() as session:
        await seed_seats(session, count)
        users = [
            User(
                username=f"fanout{i:03d}",
                full_name=f"Fan-out agent {i}",
                role="agent",
                password_hash="not-used",
            )
            for i in range(1, count + 1)
        ]
        session.add_all(users)
        await session.flush()
        session.add_all(
            AgentSession(user_id=user.id, seat=seat_name(i))
            for i, user in enumerate(users, start=1)
        )
        now = datetime.now(UTC)
        session.add(
            Call(
                uniqueid="1733500000.7",
                channel="PJSIP/trunk-00000007",
                caller_number="9876500007",
                started_at=now - timedelta(seconds=40),
                queue_joined_at=now - timedelta(seconds=20),
                agent_connected_at=now,
                agent_seat=seat_name(7),
                agent_user_id=users[6].id,
            )
        )
        await session.commit()
        return [user.id for user in users]


async def _pop_with(
    settings: Settings, reference: Reference, user_ids: list[int], connected: int
) -> tuple[list[str], list[Subscriber]]:
    """Deliver one answered call's pop with ``connected`` agents' sockets open (always the
    seat's own agent among them); the statements it ran and the sockets."""
    engine = create_engine(settings, pool_size=1)
    try:
        hub = LiveHub(settings, session_factory(engine), Notifications(settings, ()), reference)
        chosen = [user_ids[6], *(uid for uid in user_ids if uid != user_ids[6])][:connected]
        sockets = [Subscriber(user_id=uid, role="agent") for uid in chosen]
        for socket in sockets:
            hub.add_agent(socket)
        assert hub.agent_sockets == connected
        with statements_sent(engine) as sent:
            await hub._deliver_pop(POP_PAYLOAD)
        return [statement for statement, _ in sent], sockets
    finally:
        await engine.dispose()


async def test_a_screen_pop_costs_the_same_statements_for_1_and_50_agents(
    db_settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    reference_data: Reference,
) -> None:
    user_ids = await _agents_at_seats(sessions, AGENTS)
    alone, [only] = await _pop_with(db_settings, reference_data, user_ids, 1)
    crowded, sockets = await _pop_with(db_settings, reference_data, user_ids, AGENTS)

    assert only.queue.qsize() == 1
    assert 0 < len(crowded) == len(alone) <= 6, crowded
    # The pop reached the seat's own agent, once, and nobody else.
    assert [s.user_id for s in sockets if s.queue.qsize()] == [user_ids[6]]
    assert sockets[0].queue.qsize() == 1
    assert '"uniqueid": "1733500000.7"' in sockets[0].queue.get_nowait()


async def test_a_second_socket_of_the_same_agent_gets_the_pop_too(
    db_settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    reference_data: Reference,
) -> None:
    """An agent with the desk open in two tabs sees the caller in both; a closed socket is
    forgotten."""
    user_ids = await _agents_at_seats(sessions, 8)
    engine = create_engine(db_settings, pool_size=1)
    try:
        hub = LiveHub(db_settings, session_factory(engine), Notifications(db_settings, ()))
        tabs = [Subscriber(user_id=user_ids[6]), Subscriber(user_id=user_ids[6])]
        closed = Subscriber(user_id=user_ids[6])
        for tab in (*tabs, closed):
            hub.add_agent(tab)
        hub.remove_agent(closed)
        await hub._deliver_pop(POP_PAYLOAD)
    finally:
        await engine.dispose()
    assert [tab.queue.qsize() for tab in tabs] == [1, 1]
    assert closed.queue.qsize() == 0
    assert hub.agent_sockets == 2
