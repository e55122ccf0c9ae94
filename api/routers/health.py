"""``GET /health``: is each part of the helpline alive right now?

200 when the database, AMI and the FastAGI server answer and every service's heartbeat is fresh;
503 (same body, ``failing`` names the parts) otherwise, so ``helpline up``, an operator's monitor
or a load balancer can wait on it (docs/operations.md "Health").
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from api.schemas import HealthOut
from api.services import health as probes

router = APIRouter(tags=["health"])


@router.get("/health", responses={503: {"model": HealthOut}})
async def health(request: Request, response: Response) -> HealthOut:
    state = request.app.state
    report = await probes.check(state.sessions, state.ami, state.settings)
    if report.status != "ok":
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return report
