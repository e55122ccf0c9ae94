"""``GET /capacity``: the agents the queue needs now and at the peak hour (Erlang C, or
Erlang A with a patience), against the seats configured and the agents logged in
(:mod:`api.services.capacity`; the CLI's ``helpline capacity`` calls the same service)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import CurrentUser, SessionDep
from api.schemas import CapacityOut, CapacityQuery
from api.services import capacity

router = APIRouter(tags=["stats"])


@router.get("/capacity")
async def get_capacity(
    query: Annotated[CapacityQuery, Query()], user: CurrentUser, session: SessionDep
) -> CapacityOut:
    """Agents needed for ``target`` of calls answered within ``threshold`` s, now (the last
    60 minutes' calls reaching the queue, or ``calls_per_hour``), at today's busiest hour and
    at the 88,000-call design day's; handle time today's (talk + wrap-up) or ``aht``; with
    ``patience`` (mean seconds before a caller gives up) Erlang A, else Erlang C. Says whether
    the configured seats and the agents logged in suffice."""
    return await capacity.capacity(session, query)
