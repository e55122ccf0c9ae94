"""Request and response bodies of the API."""

from __future__ import annotations

from datetime import datetime
from types import UnionType
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from core.domain.calls import CallDisposition, ReadbackOutcome, ReadbackThen, WrapupCode
from core.domain.complaints import ComplaintStatus
from core.domain.phone import CallerNumber
from core.domain.queues import PauseReason, Skill
from core.domain.staff import Role
from core.reference import Level


def _number_not_bool_or_text(value: object) -> object:
    """JSON's integer: ``6`` or ``6.0``, never ``true`` or ``"6"`` (pydantic's lax int takes
    both)."""
    if isinstance(value, bool | str | bytes):
        raise ValueError("must be a JSON number")
    return value


#: The check :class:`StrictInput` makes on every number field, for a model that cannot
#: derive from it. Put after an integer's ``Field`` constraints.
JSON_INTEGER = BeforeValidator(_number_not_bool_or_text)


def _scalar_kinds(annotation: Any) -> set[Any]:
    """The scalar types a field's annotation accepts (``int | None`` -> {int, NoneType})."""
    if get_origin(annotation) in (Union, UnionType):
        return set().union(*(_scalar_kinds(arg) for arg in get_args(annotation)))
    if get_origin(annotation) is Annotated:
        return _scalar_kinds(get_args(annotation)[0])
    return {annotation}


class StrictInput(BaseModel):
    """The base of every request body: what FastAPI parses is then refused as JSON would
    mean it. A number field takes a JSON number only (not ``true``, not ``"500"``), a boolean
    field ``true``/``false`` only (not ``1``, not ``"yes"``), and no float is NaN or infinite
    (the boundary refuses those in the JSON text already; this holds for any other source).
    Text is checked for NUL and lone surrogates at the boundary (api.boundary), for every
    route whatever its model."""

    model_config = ConfigDict(allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _json_scalars(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is None:
            return value
        kinds = _scalar_kinds(field.annotation)
        numeric = bool(kinds & {int, float})
        if str in kinds or not (numeric or bool in kinds):
            return value
        if isinstance(value, str | bytes):
            raise ValueError("must be a JSON " + ("number" if numeric else "boolean"))
        if isinstance(value, bool) and bool not in kinds:
            raise ValueError("must be a JSON number, not true or false")
        if isinstance(value, int | float) and not isinstance(value, bool) and not numeric:
            raise ValueError("must be true or false")
        return value


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


class UserActiveIn(StrictInput):
    active: bool


class UserActiveOut(BaseModel):
    username: str
    active: bool
    #: Tokens of the user deleted by this change (0 when enabling).
    tokens_ended: int


class SeatLoginIn(StrictInput):
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


#: A complaint's description, in characters (Unicode code points, as Python and the desk's
#: ``[...text].length`` count them; a Devanagari matra is one).
DESCRIPTION_MIN: Final = 3
DESCRIPTION_MAX: Final = 10_000


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("the description is blank")
    return value


class ComplaintIn(StrictInput):
    description: Annotated[
        str,
        Field(min_length=DESCRIPTION_MIN, max_length=DESCRIPTION_MAX),
        AfterValidator(_not_blank),
    ]
    caller_name: str | None = Field(default=None, max_length=200)
    #: Defaults to the agent's current (or just-ended) call.
    call_uniqueid: str | None = Field(default=None, max_length=64)
    #: For a complaint not tied to a call, or when the call's number was withheld and the
    #: caller told the agent; a call's known number wins otherwise. Any Indian spelling
    #: (+91, 0, 091, spaces, dashes); stored as the 10-digit national number.
    caller_number: CallerNumber | None = None
    #: What and where, as codes of ``GET /reference/departments`` and ``/reference/districts``
    #: (checked against the reference data: an unknown or inconsistent code is a 422).
    department: str = Field(max_length=40, examples=["police"])
    category: str = Field(max_length=64, examples=["police.harassment"])
    district: str = Field(max_length=40, examples=["lucknow"])
    tehsil: str | None = Field(default=None, max_length=40, examples=["lucknow_sadar"])
    thana: str | None = Field(default=None, max_length=40, examples=["lucknow_hazratganj"])


class PlaceOut(BaseModel):
    """A reference record (place, department, category) by its code and names."""

    model_config = ConfigDict(from_attributes=True)

    code: str
    name_en: str
    name_hi: str


class OfficerOut(BaseModel):
    """The officer's post a complaint is assigned to."""

    code: str
    designation_en: str
    designation_hi: str
    level: Level


#: Shortest reason accepted for unmasking a caller's number: a few words, not "x".
UNMASK_REASON_MIN: Final = 10


class UnmaskIn(StrictInput):
    """Why the full number is needed (``POST /complaints/{number}/unmask``): kept in the audit
    row, so a later review can ask whether it was a good reason."""

    reason: str = Field(
        min_length=UNMASK_REASON_MIN,
        max_length=500,
        examples=["calling the citizen back about the site inspection on 12 March"],
    )

    @field_validator("reason")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        text = " ".join(value.split())
        if len(text) < UNMASK_REASON_MIN:
            raise ValueError(f"say why, in at least {UNMASK_REASON_MIN} characters")
        return text


class CallerNumberOut(BaseModel):
    """A complaint's caller number unmasked (``POST /complaints/{number}/unmask``, audited)."""

    number: str
    #: None when the caller withheld it and told the agent none.
    caller_number: str | None


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
    #: Created + the category's SLA days.
    due_at: datetime
    #: None only on complaints filed before routing existed.
    department: PlaceOut | None = None
    category: PlaceOut | None = None
    district: PlaceOut | None = None
    tehsil: PlaceOut | None = None
    thana: PlaceOut | None = None
    assigned_officer: OfficerOut | None = None
    level: Level | None = None
    #: Why no rule placed it (then it waits on the review page, status ``registered``).
    unroutable_reason: str | None = None
    #: An open complaint of the same caller and category: this one is linked to it.
    possible_duplicate_of: str | None = None
    reopen_count: int = 0


class ComplaintCheckOut(BaseModel):
    """What the desk is warned of before filing a complaint for a caller."""

    #: The newest open complaint of this caller in this category, if any.
    possible_duplicate_of: str | None
    complaints_this_month: int
    monthly_cap: int


class ThanaOut(PlaceOut):
    #: None where the data does not say which tehsil the thana is in.
    tehsil: str | None


class DistrictOut(PlaceOut):
    division: PlaceOut
    tehsils: list[PlaceOut]
    thanas: list[ThanaOut]


class CategoryOut(PlaceOut):
    sla_days: int
    first_level: Level


class DepartmentOut(PlaceOut):
    categories: list[CategoryOut]


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


class PartHealth(BaseModel):
    """One part of the helpline as ``/health`` and ``helpline status`` see it."""

    ok: bool
    #: Seconds since the part last showed it lives (its heartbeat row; Asterisk: the last
    #: bytes on the API's AMI link; the database: 0, it answered this probe); None: never.
    age_seconds: float | None
    detail: str


class HealthOut(BaseModel):
    #: ``ok`` when every part below is; ``degraded`` (HTTP 503) when any probe fails or any
    #: service's heartbeat is older than ``stale_after_seconds`` or missing.
    status: Literal["ok", "degraded"]
    database: ServiceHealth
    ami: ServiceHealth
    fastagi: ServiceHealth
    #: Each part by name: database, asterisk, fastagi, queue_manager, dialer, sla.
    parts: dict[str, PartHealth] = {}
    #: The parts that are not ok, by name (empty when ``status`` is ``ok``).
    failing: list[str] = []
    stale_after_seconds: float = 0.0
    #: Every row of ``service_heartbeats``, by service: what each background service last
    #: said of itself (its counters in ``detail``).
    heartbeats: dict[str, HeartbeatOut] = {}


class PauseIn(StrictInput):
    reason: PauseReason


class RoutingIn(StrictInput):
    #: Base member penalty: lower rings first (0 = first choice).
    penalty: Annotated[int, Field(ge=0, le=9)] | None = None
    skills: list[Skill] | None = None


class RoutingOut(BaseModel):
    username: str
    skills: list[str]
    penalty: int | None
    seat: str | None


#: Seats are ``agent0001`` … ``agent9999``.
MAX_SEATS = 9999


class SeatCountIn(StrictInput):
    #: Strict: ``true`` or ``"500"`` is no seat count.
    count: Annotated[int, Field(ge=1, le=MAX_SEATS, examples=[1000])]


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


class PhoneOut(BaseModel):
    """What the desk's in-page phone needs to register the agent's seat over WSS (JsSIP's
    ``uri``, ``authorization_user``, ``realm`` and ``ha1``): the digest of the seat's WebRTC
    endpoint, never the seat's password, and only while the agent sits at the seat."""

    seat: str
    wss_url: str
    sip_uri: str
    authorization_user: str
    realm: str
    ha1: str
    display_name: str
    #: Extension of the echo test (a call to it plays back what the phone sends).
    echo_test: str = "600"


AgentStateOut.model_rebuild()


class TransitionIn(StrictInput):
    """An action on a complaint (``core.domain.lifecycle.Action``: start, resolve, reopen,
    reject_duplicate, request_closure, approve_closure, refuse_closure, reassign, close...)."""

    action: str = Field(min_length=1, max_length=32)
    #: What was done, why, what the citizen said (required by resolve, reopen, reassign...).
    note: str = Field(default="", max_length=4000)
    #: The officer's post (code) for ``reassign`` (and ``assign`` from the review page).
    officer: str | None = Field(default=None, max_length=64)
    #: For ``reject_duplicate``: the number of the complaint this one duplicates.
    duplicate_of: str | None = Field(default=None, max_length=16)


class HistoryEntryOut(BaseModel):
    """One row of a complaint's history."""

    at: datetime
    action: str
    #: Username of whoever acted; None when the helpline itself did (routing, the SLA pass).
    actor: str | None
    from_status: ComplaintStatus | None
    to_status: ComplaintStatus
    from_officer: str | None
    to_officer: str | None
    note: str | None


class ComplaintDetailOut(ComplaintOut):
    """A complaint with its resolution and its whole history, oldest first."""

    resolution_text: str | None = None
    resolved_at: datetime | None = None
    history: list[HistoryEntryOut] = []


class RecordingOut(BaseModel):
    """A recording of the call a complaint was filed on
    (``GET /complaints/{number}/recordings``)."""

    id: int
    #: The call's Asterisk uniqueid (``calls.uniqueid``).
    call: str
    started_at: datetime
    ended_at: datetime | None
    duration_seconds: float | None
    bytes: int | None
    retain_until: datetime | None
    #: Whether ``…/recordings/{id}/audio`` can play it now; if not, ``unavailable`` says why.
    playable: bool
    unavailable: str | None = None


# ----------------------------------------------------------------------------- the desk


class WrapupIn(StrictInput):
    """The agent's account of a call, after it: one code, and a note for ``other`` (or any)."""

    code: WrapupCode
    note: str | None = Field(default=None, max_length=1000)


class WrapupOut(BaseModel):
    call_uniqueid: str
    code: WrapupCode
    note: str | None
    by: str
    at: datetime
    #: What the queue manager recorded of the line (``calls.disposition``), kept apart.
    disposition: CallDisposition | None


class ReadbackIn(StrictInput):
    """Read ``complaint`` (filed on this call) to the caller, then ``then``."""

    complaint: str = Field(pattern=r"^[0-9]{10}$", examples=["1000000016"])
    then: ReadbackThen = ReadbackThen.RETURN


class ReadbackOut(BaseModel):
    call_uniqueid: str
    complaint: str
    then: ReadbackThen
    #: The caller's channel (sent to ``readback``) and the agent's leg (waits in the dialplan).
    caller_channel: str
    agent_channel: str


class ReadbackSessionOut(BaseModel):
    """One read-back as the ``readback`` script stored it."""

    model_config = ConfigDict(from_attributes=True)

    complaint_number: str
    lang: str
    then_action: ReadbackThen
    started_at: datetime
    ended_at: datetime | None
    digits_spoken: str
    outcome: ReadbackOutcome | None


class ShiftOut(BaseModel):
    """The agent's own figures since the start of the helpline's day (IST)."""

    since: datetime
    calls_answered: int
    complaints_filed: int
    #: Talk time plus the queue's wrap-up, averaged over answered calls that ended (seconds).
    average_handle_seconds: float | None
    wrapups: int


class CapacityQuery(BaseModel):
    """``GET /capacity``'s query: figures that replace today's live ones (each optional)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    #: Calls reaching the queue per hour now (default: those of the last 60 minutes). At
    #: most ~5x the design day's busiest hour; with ``aht`` at most 25,000 erlangs, which
    #: Erlang A answers within seconds.
    calls_per_hour: float | None = Field(default=None, ge=0, le=50_000)
    #: Handle time, talk + wrap-up, seconds (default: today's answered calls').
    aht: float | None = Field(default=None, ge=1, le=1_800)
    #: Share of calls to answer within ``threshold`` seconds.
    target: float = Field(default=0.8, ge=0.05, le=0.99)
    threshold: float = Field(default=20.0, ge=0, le=600)
    #: Callers' mean patience, seconds: Erlang A (abandonment) instead of Erlang C.
    patience: float | None = Field(default=None, ge=1, le=7_200)


class CapacityEstimate(BaseModel):
    """The agents one arrival rate needs, and what that many give."""

    #: IST hour it is for (``"11:00"``), or None for "now".
    hour: str | None
    calls_per_hour: float
    #: Offered load: calls_per_hour × aht / 3600.
    erlangs: float
    agents_needed: int
    #: At ``agents_needed`` agents (None when no calls come).
    service_level: float | None
    mean_wait_s: float | None
    occupancy: float | None
    abandon_rate: float | None


class CapacityTarget(BaseModel):
    service_level: float
    threshold_s: float
    #: None: Erlang C (nobody gives up); else Erlang A with this mean patience.
    patience_s: float | None
    model: Literal["erlang_c", "erlang_a"]


class CapacityOut(BaseModel):
    at: datetime
    target: CapacityTarget
    #: Handle time used (talk + wrap-up), and where it came from.
    aht_s: float
    aht_source: Literal["given", "today", "default"]
    #: Calls reached the queue today (IST) so far and the answered ones with a talk time
    #: (None with given figures and no database).
    calls_today: int | None
    answered_today: int | None
    now_source: Literal["given", "last_hour"]
    now: CapacityEstimate
    #: The busiest IST hour today so far (None: no calls yet, or no database).
    peak_today: CapacityEstimate | None
    #: The busiest hour of the 88,000-call design day (core.domain.design_day).
    design_peak: CapacityEstimate
    #: Enabled seats, and agents in the queue now (None without a database).
    seats_configured: int
    agents_logged_in: int | None
    #: The configured seats cover the most agents any estimate needs.
    seats_suffice: bool
    #: The agents logged in cover the agents needed now (None without a database).
    logged_in_suffice: bool | None
    verdict: str
