"""Request and response bodies of the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.domain.calls import CallDisposition
from core.domain.complaints import ComplaintStatus
from core.domain.phone import CallerNumber
from core.domain.queues import PauseReason, Skill
from core.domain.staff import Role


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    role: Role
    expires_at: datetime


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    full_name: str
    role: Role


class SeatLoginIn(BaseModel):
    seat: str = Field(pattern=r"^agent\d{4}$", examples=["agent0001"])


class AgentStateOut(BaseModel):
    username: str
    seat: str | None
    #: logged_out | pending (intent stored, queue not yet confirmed) | in_queue
    state: Literal["logged_out", "pending", "in_queue"]
    paused: bool = False
    pause_reason: str | None = None
    current_call: CallOut | None = None


class CallOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    uniqueid: str
    caller_number: str | None
    caller_name: str | None
    dnis: str | None
    started_at: datetime | None
    answered_at: datetime | None
    queue_joined_at: datetime | None
    agent_connected_at: datetime | None
    agent_seat: str | None
    ended_at: datetime | None
    disposition: CallDisposition | None
    ivr_path: str | None
    ivr_lang: str | None
    ivr_fallback: bool


class ComplaintIn(BaseModel):
    description: str = Field(min_length=3, max_length=10_000)
    caller_name: str | None = Field(default=None, max_length=200)
    #: Defaults to the agent's current (or just-ended) call.
    call_uniqueid: str | None = Field(default=None, max_length=64)
    #: For a complaint not tied to a call, or when the call's number was withheld and the
    #: caller told the agent; a call's known number wins otherwise. Any Indian spelling
    #: (+91, 0, 091, spaces, dashes); stored as the 10-digit national number.
    caller_number: CallerNumber | None = None


class ComplaintOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: str
    status: ComplaintStatus
    caller_number: str | None
    caller_name: str | None
    description: str
    call_uniqueid: str | None
    created_by: str
    created_at: datetime
    due_at: datetime


class ServiceHealth(BaseModel):
    ok: bool
    detail: str


class HeartbeatOut(BaseModel):
    pid: int
    started_at: datetime
    seen_at: datetime
    #: Seconds since the service last wrote its row (a stale row: the service is gone).
    age_seconds: float
    detail: dict[str, Any]


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    database: ServiceHealth
    ami: ServiceHealth
    fastagi: ServiceHealth
    #: Every row of ``service_heartbeats``, by service: what each background service last
    #: said of itself. Informational: ``status`` depends on the three probes above only.
    heartbeats: dict[str, HeartbeatOut] = {}


class PauseIn(BaseModel):
    reason: PauseReason


class RoutingIn(BaseModel):
    #: Base member penalty: lower rings first (0 = first choice).
    penalty: int | None = Field(default=None, ge=0, le=9)
    skills: list[Skill] | None = None


class RoutingOut(BaseModel):
    username: str
    skills: list[str]
    penalty: int | None
    seat: str | None


#: Seats are ``agent0001`` … ``agent9999``.
MAX_SEATS = 9999


class SeatCountIn(BaseModel):
    count: int = Field(ge=1, le=MAX_SEATS, examples=[1000])


class SeatsOut(BaseModel):
    #: Enabled seats (``agent0001`` … ``agentNNNN``).
    count: int
    #: Whether Asterisk's PJSIP config holds exactly these seats.
    applied: bool
    applied_count: int | None
    applied_at: str | None
    reload_seconds: float | None
    error: str | None


class CredentialsOut(BaseModel):
    seat: str
    username: str
    password: str
    sip_server: str
    sip_port: int
    transport: str = "udp"


AgentStateOut.model_rebuild()
