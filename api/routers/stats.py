"""Supervisors' numbers: ``GET /stats`` (REST), ``/ws/stats`` (pushed), ``/metrics``
(Prometheus), and agents' screen-pop on ``/ws/agent``.

WebSockets cannot send an ``Authorization`` header from a browser, so they take the bearer
token as ``?token=``; a bad token closes the socket with code 4401, a wrong role with 4403.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, WebSocket, WebSocketDisconnect
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import select

from api.deps import WS_POLICY_VIOLATION, CurrentUser, SessionDep, SettingsDep, websocket_caller
from api.live import (
    LiveHub,
    StatsOut,
    Subscriber,
    agent_greeting,
    compute_stats,
    outbound_pacing,
)
from api.schemas import HealthOut
from api.services import health as probes
from core.config import Settings
from core.db.models import User
from core.db.queries import CampaignDay, outbound_today

router = APIRouter(tags=["stats"])


@router.get("/stats")
async def stats(user: CurrentUser, session: SessionDep, settings: SettingsDep) -> StatsOut:
    """Live numbers per queue and overall: waiting callers, agents by state, today's offered /
    answered / abandoned / service level (answered within 20 s / answered + abandoned after
    20 s) / ASA / AHT / abandon rate, budgets used today, and the day's half-hour ``trend``."""
    return await compute_stats(session, settings)


@router.get("/metrics", response_class=Response, include_in_schema=True)
async def metrics(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """Prometheus text format; aggregate numbers only (no caller data), and each part's health
    as ``/health`` reports it."""
    data = await compute_stats(session, settings)
    registry = CollectorRegistry()
    state = request.app.state
    health_metrics(registry, await probes.check(state.sessions, state.ami, settings))
    labels = ["queue"]
    gauges = {
        name: Gauge(f"helpline_{name}", doc, labels, registry=registry)
        for name, doc in (
            ("calls_waiting", "Callers waiting in the queue now"),
            ("longest_wait_seconds", "Wait of the longest-waiting caller now"),
            ("calls_offered_today", "Callers who joined the queue today (IST)"),
            ("calls_answered_today", "Callers connected to an agent today"),
            ("calls_abandoned_today", "Callers who hung up while waiting today"),
            ("calls_answered_within_sl_today", "Answered within the service level today"),
            (
                "calls_abandoned_after_sl_today",
                "Hung up after waiting longer than the service level today",
            ),
            (
                "service_level_today",
                "Answered within the service level / (answered + abandoned after it), today",
            ),
            ("asa_seconds", "Average speed of answer today"),
            ("aht_seconds", "Average handling time (talk + wrap-up) today"),
        )
    }
    agents = Gauge("helpline_agents", "Agents by state now", ["queue", "state"], registry=registry)
    paused = Gauge(
        "helpline_agents_paused", "Paused agents by reason", ["queue", "reason"], registry=registry
    )
    for queue, q in {"all": data.overall, **data.queues}.items():
        gauges["calls_waiting"].labels(queue).set(q.calls_waiting)
        gauges["longest_wait_seconds"].labels(queue).set(q.longest_wait_seconds)
        gauges["calls_offered_today"].labels(queue).set(q.offered)
        gauges["calls_answered_today"].labels(queue).set(q.answered)
        gauges["calls_abandoned_today"].labels(queue).set(q.abandoned)
        gauges["calls_answered_within_sl_today"].labels(queue).set(q.answered_within_sl)
        gauges["calls_abandoned_after_sl_today"].labels(queue).set(q.abandoned_after_sl)
        if q.service_level is not None:
            gauges["service_level_today"].labels(queue).set(q.service_level)
        gauges["asa_seconds"].labels(queue).set(q.asa_seconds or 0.0)
        gauges["aht_seconds"].labels(queue).set(q.aht_seconds or 0.0)
        for state in ("logged_in", "available", "on_call", "ringing", "in_wrapup", "paused"):
            agents.labels(queue, state).set(getattr(q.agents, state))
        for reason, count in q.agents.paused_by_reason.items():
            paused.labels(queue, reason).set(count)
    budget = Gauge(
        "helpline_budget_used_today",
        "Calls counted against the daily budget",
        ["direction"],
        registry=registry,
    )
    budget.labels("inbound").set(data.inbound.used)
    budget.labels("outbound").set(data.outbound.used)
    outbound_metrics(registry, await outbound_today(session, data.at), settings, data.at)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def health_metrics(registry: CollectorRegistry, report: HealthOut) -> None:
    """``/health``'s verdict per part: up (1/0) and the age of its last sign of life."""
    up = Gauge("helpline_part_up", "1 if the part is ok (as /health)", ["part"], registry=registry)
    age = Gauge(
        "helpline_part_age_seconds",
        "Seconds since the part last showed it lives (-1: never)",
        ["part"],
        registry=registry,
    )
    for name, part in report.parts.items():
        up.labels(name).set(1 if part.ok else 0)
        age.labels(name).set(-1 if part.age_seconds is None else part.age_seconds)


def outbound_metrics(
    registry: CollectorRegistry, today: dict[str, CampaignDay], settings: Settings, now: datetime
) -> None:
    """The dialer's figures: attempts, connected, abandoned and channels by campaign; budget
    left today and what the pacing allows by now (IST)."""
    by_campaign = {
        name: Gauge(f"helpline_outbound_{name}", doc, ["campaign"], registry=registry)
        for name, doc in (
            ("attempts_today", "Outbound attempts started today (IST)"),
            ("connected_today", "Outbound attempts answered today"),
            ("abandoned_today", "Answered outbound calls with no agent free today"),
            ("channels_active", "Outbound channels on the line now"),
        )
    }
    for campaign, day in today.items():
        by_campaign["attempts_today"].labels(campaign).set(day.attempts)
        by_campaign["connected_today"].labels(campaign).set(day.connected)
        by_campaign["abandoned_today"].labels(campaign).set(day.abandoned)
        by_campaign["channels_active"].labels(campaign).set(day.active)
    used = today["all"].attempts
    Gauge(
        "helpline_outbound_budget_left_today",
        "Outbound calls left in today's budget",
        registry=registry,
    ).set(max(0, settings.daily_outbound_budget - used))
    pacing = outbound_pacing(settings)
    Gauge(
        "helpline_outbound_pace_allowed",
        "Outbound calls the pacing allows by now (budget spread over the window, plus burst)",
        registry=registry,
    ).set(pacing.allowed(now))


async def _pump(websocket: WebSocket, subscriber: Subscriber) -> None:
    """Send the subscriber's messages until the client goes (reading detects the close) or
    the subscriber is ended (its user disabled: closed with 1008, policy violation)."""

    async def drain_client() -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await websocket.receive_text()

    reader = asyncio.create_task(drain_client())
    ended = asyncio.create_task(subscriber.ended.wait())
    try:
        while not reader.done() and not subscriber.ended.is_set():
            getter = asyncio.create_task(subscriber.queue.get())
            done, _ = await asyncio.wait(
                {getter, reader, ended}, return_when=asyncio.FIRST_COMPLETED
            )
            if getter not in done:
                getter.cancel()
                break
            await websocket.send_text(getter.result())
        if subscriber.ended.is_set() and not reader.done():
            await websocket.close(code=WS_POLICY_VIOLATION, reason="user disabled")
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        for task in (reader, ended):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _still_active(websocket: WebSocket, user_id: int) -> bool:
    """Whether the user is still enabled once subscribed: a disable committed between the
    token check and the subscription sent its NOTIFY before anyone listened for this one."""
    async with websocket.app.state.sessions() as session:
        return bool(await session.scalar(select(User.active).where(User.id == user_id)))


def _hub(websocket: WebSocket | Request) -> LiveHub:
    hub: LiveHub = websocket.app.state.live_hub
    return hub


@router.websocket("/ws/stats")
async def ws_stats(websocket: WebSocket, token: Annotated[str | None, Query()] = None) -> None:
    """The same body as ``GET /stats`` (plus ``"type": "stats"``), pushed on every change."""
    await websocket.accept()
    user = await websocket_caller(websocket, token)
    if user is None:
        return
    hub = _hub(websocket)
    subscriber = Subscriber(user_id=user.id, role=user.role)
    subscriber.offer(await hub.stats_json())
    hub.stats_subscribers.add(subscriber)
    try:
        if not await _still_active(websocket, user.id):
            subscriber.ended.set()
        await _pump(websocket, subscriber)
    finally:
        hub.stats_subscribers.discard(subscriber)


@router.websocket("/ws/agent")
async def ws_agent(websocket: WebSocket, token: Annotated[str | None, Query()] = None) -> None:
    """An agent's screen-pop: ``{"type": "screen_pop", caller_number, ivr_path, ivr_lang,
    previous_complaints, ...}`` whenever a caller is connected to the agent's seat (and at once
    if one is connected when the socket opens)."""
    await websocket.accept()
    user = await websocket_caller(websocket, token)
    if user is None:
        return
    hub = _hub(websocket)
    subscriber = Subscriber(user_id=user.id, role=user.role)
    hub.add_agent(subscriber)
    try:
        if not await _still_active(websocket, user.id):
            subscriber.ended.set()
        async with websocket.app.state.sessions() as session:
            for message in await agent_greeting(
                session, user.id, user.username, websocket.app.state.reference, user.role
            ):
                subscriber.offer(message)
        await _pump(websocket, subscriber)
    finally:
        hub.remove_agent(subscriber)
