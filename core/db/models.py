"""The helpline's tables. The writer of each table is named in its docstring."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Sequence,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from core.domain.calls import CallbackReason, CallbackStatus, CallDisposition, IvrOutcome
from core.domain.complaints import SEQUENCE_START, ComplaintStatus, HistoryAction
from core.domain.notifications import SmsKind, SmsStatus
from core.domain.phone import NATIONAL_DIGITS, CallerNumber
from core.domain.queues import PauseReason, Skill
from core.domain.staff import Role
from core.reference.models import Level

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TZ = DateTime(timezone=True)


E = TypeVar("E", bound=enum.StrEnum)


class StrEnumColumn(TypeDecorator[E]):
    """A ``VARCHAR`` holding one of a :class:`~enum.StrEnum`'s values: written from a member
    or its value (anything else raises before the database sees it), read as the member. The
    database's own guard is a CHECK constraint from :func:`one_of`."""

    impl = String
    cache_ok = True

    def __init__(self, enum_class: type[E], length: int) -> None:
        super().__init__(length)
        self.enum_class = enum_class

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else str(self.enum_class(value).value)

    def process_result_value(self, value: Any, dialect: Dialect) -> E | None:
        return None if value is None else self.enum_class(value)


class CallerNumberColumn(TypeDecorator[CallerNumber]):
    """A :class:`CallerNumber` as its 10 digits: validated when written, trusted when read
    (a number stored under older numbering rules still reads back)."""

    impl = String
    cache_ok = True

    def __init__(self) -> None:
        super().__init__(16)

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else str(CallerNumber(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> CallerNumber | None:
        return None if value is None else CallerNumber.from_stored(value)


def one_of(column: str, values: type[enum.StrEnum]) -> CheckConstraint:
    """CHECK that ``column`` holds one of ``values`` (or NULL), named ``ck_<table>_<column>``;
    a state added to the enum needs a migration that replaces this constraint (the drift test
    compares them)."""
    allowed = ", ".join(f"'{member.value}'" for member in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=column)


def caller_number_check(column: str = "caller_number") -> CheckConstraint:
    """CHECK that ``column`` is a 10-digit national number (what :class:`CallerNumber` holds)."""
    return CheckConstraint(f"{column} ~ '^[1-9][0-9]{{{NATIONAL_DIGITS - 1}}}$'", name=column)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSONB, datetime: TZ}


#: Source of complaint numbers (a check digit is appended, see core.domain.complaints).
complaint_sequence = Sequence("complaint_number_seq", start=SEQUENCE_START, metadata=Base.metadata)


class User(Base):
    """Agents, supervisors, officers and admins. Writer: api (and ``helpline seed``)."""

    __tablename__ = "users"
    __table_args__ = (
        one_of("role", Role),
        CheckConstraint(
            "jsonb_typeof(skills) = 'array' AND skills <@ '[{}]'::jsonb".format(
                ", ".join(f'"{skill.value}"' for skill in Skill)
            ),
            name="skills",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(StrEnumColumn(Role, 20))
    password_hash: Mapped[str] = mapped_column(Text)
    #: Skills for routing priority callers (:class:`Skill` values; JSONB, read as strings).
    skills: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[\"general\"]'::jsonb"))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ApiToken(Base):
    """Bearer tokens; only their SHA-256 is stored. Writer: api."""

    __tablename__ = "api_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column()


class AuthThrottle(Base):
    """Failed logins per ``user:<name>`` and per ``addr:<ip>`` within a window, and until
    when the key is blocked (429). Writer: api (api.services.auth, atomic upserts)."""

    __tablename__ = "auth_throttle"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    window_started_at: Mapped[datetime] = mapped_column()
    blocked_until: Mapped[datetime | None] = mapped_column()


class Seat(Base):
    """A SIP endpoint an agent can sit at (``agent0001``…). Writer: api / ``helpline seed``."""

    __tablename__ = "seats"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    sip_password: Mapped[str] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class AgentSession(Base):
    """An agent's intent to sit at a seat: the truth re-applied to app_queue after every
    reconnect or Asterisk restart. Writer: api."""

    __tablename__ = "agent_sessions"
    __table_args__ = (
        # One open session per agent and per seat.
        Index(
            "uq_agent_sessions_open_user",
            "user_id",
            unique=True,
            postgresql_where=text("logged_out_at IS NULL"),
        ),
        Index(
            "uq_agent_sessions_open_seat",
            "seat",
            unique=True,
            postgresql_where=text("logged_out_at IS NULL"),
        ),
        one_of("pause_reason", PauseReason),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    seat: Mapped[str] = mapped_column(ForeignKey("seats.name"))
    logged_in_at: Mapped[datetime] = mapped_column(server_default=func.now())
    logged_out_at: Mapped[datetime | None] = mapped_column()
    penalty: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    #: Pause intent, re-applied after restarts.
    paused: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    pause_reason: Mapped[PauseReason | None] = mapped_column(StrEnumColumn(PauseReason, 32))


class SeatStatus(Base):
    """What app_queue says about a seat right now. Writer: queue_manager."""

    __tablename__ = "seat_status"

    seat: Mapped[str] = mapped_column(ForeignKey("seats.name"), primary_key=True)
    in_queue: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    paused: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    #: As app_queue reports it: free text, since a pause made at the Asterisk CLI has any reason.
    pause_reason: Mapped[str | None] = mapped_column(String(64))
    #: app_queue member status number (AST_DEVICE_*), e.g. 1 not in use, 2 in use, 5 unavailable.
    device_status: Mapped[int | None] = mapped_column(Integer)
    agent_session_id: Mapped[int | None] = mapped_column(BigInteger)
    current_call_uniqueid: Mapped[str | None] = mapped_column(String(64))
    #: Queues the seat is a member of (the main queue, plus skill queues).
    queues: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    #: End of the seat's last queue call: wrap-up runs from here (queues.conf wrapuptime).
    last_call_ended_at: Mapped[datetime | None] = mapped_column()
    #: Time of the newest member event applied: an older (reordered) one is ignored.
    state_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Call(Base):
    """One row per citizen's channel (Asterisk uniqueid). Writer: queue_manager (from AMI)."""

    __tablename__ = "calls"
    __table_args__ = (caller_number_check(), one_of("disposition", CallDisposition))

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    uniqueid: Mapped[str] = mapped_column(String(64), unique=True)
    linkedid: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(128))
    #: Normalised 10-digit number, or NULL when withheld.
    caller_number: Mapped[CallerNumber | None] = mapped_column(CallerNumberColumn(), index=True)
    #: What the carrier sent, bounded and made safe (core.domain.phone.raw_caller_id).
    caller_number_raw: Mapped[str | None] = mapped_column(String(64))
    caller_name: Mapped[str | None] = mapped_column(String(200))
    dnis: Mapped[str | None] = mapped_column(String(32))
    started_at: Mapped[datetime | None] = mapped_column()
    answered_at: Mapped[datetime | None] = mapped_column()
    ivr_done: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    ivr_fallback: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    ivr_path: Mapped[str | None] = mapped_column(Text)
    ivr_lang: Mapped[str | None] = mapped_column(String(8))
    queue: Mapped[str | None] = mapped_column(String(64))
    queue_joined_at: Mapped[datetime | None] = mapped_column(index=True)
    queue_left_at: Mapped[datetime | None] = mapped_column()
    agent_connected_at: Mapped[datetime | None] = mapped_column()
    agent_seat: Mapped[str | None] = mapped_column(String(32), index=True)
    agent_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    ended_at: Mapped[datetime | None] = mapped_column()
    hangup_cause: Mapped[int | None] = mapped_column(Integer)
    #: QueueCallerAbandon: the caller hung up while waiting.
    abandoned_at: Mapped[datetime | None] = mapped_column()
    agent_completed_at: Mapped[datetime | None] = mapped_column()
    #: app_queue's HoldTime (AgentConnect) and TalkTime (AgentComplete), seconds.
    hold_seconds: Mapped[int | None] = mapped_column(Integer)
    talk_seconds: Mapped[int | None] = mapped_column(Integer)
    #: Set once at hang-up.
    disposition: Mapped[CallDisposition | None] = mapped_column(StrEnumColumn(CallDisposition, 32))
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class QueueEvent(Base):
    """Queue events of calls and members as AMI reported them; duplicates are ignored.
    Writer: queue_manager."""

    __tablename__ = "queue_events"
    __table_args__ = (
        UniqueConstraint(
            "uniqueid", "event", "interface", "event_time", name="uq_queue_events_key"
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    uniqueid: Mapped[str | None] = mapped_column(String(64), index=True)
    event: Mapped[str] = mapped_column(String(64))
    queue: Mapped[str | None] = mapped_column(String(64))
    interface: Mapped[str] = mapped_column(String(128), server_default=text("''"))
    event_time: Mapped[datetime] = mapped_column()
    payload: Mapped[dict[str, Any]] = mapped_column()


class Complaint(Base):
    """A citizen's grievance, routed to an officer. Stored exactly once: UNIQUE on the client's
    Idempotency-Key, and on (call, request hash) so the same request twice on one call is one
    complaint while a call may carry several different ones. Writer: api (complaints service)."""

    __tablename__ = "complaints"
    __table_args__ = (
        caller_number_check(),
        one_of("status", ComplaintStatus),
        one_of("level", Level),
        UniqueConstraint("call_id", "request_hash", name="uq_complaints_call_request"),
        #: The monthly cap counts a caller's complaints since the month began: an index range.
        Index("ix_complaints_caller_month", "caller_number", "created_at"),
        #: The SLA pass's one query: complaints an officer holds, by due date (lifecycle.sla).
        Index(
            "ix_complaints_overdue",
            "due_at",
            "id",
            postgresql_where=text("status IN ('assigned', 'reopened', 'escalated', 'in_progress')"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    number: Mapped[str] = mapped_column(String(16), unique=True)
    #: The call's number, or the one the caller told the agent (also when the call's was
    #: withheld); NULL only when neither is known.
    caller_number: Mapped[CallerNumber | None] = mapped_column(CallerNumberColumn(), index=True)
    caller_name: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"), index=True)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    status: Mapped[ComplaintStatus] = mapped_column(
        StrEnumColumn(ComplaintStatus, 20), server_default=text("'registered'")
    )
    idempotency_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    due_at: Mapped[datetime] = mapped_column()
    #: What and where (reference codes); NULL only on complaints filed before routing existed.
    department: Mapped[str | None] = mapped_column(ForeignKey("departments.code"))
    category: Mapped[str | None] = mapped_column(ForeignKey("categories.code"))
    district: Mapped[str | None] = mapped_column(ForeignKey("districts.code"))
    tehsil: Mapped[str | None] = mapped_column(ForeignKey("tehsils.code"))
    thana: Mapped[str | None] = mapped_column(ForeignKey("thanas.code"))
    #: The officer's post holding the complaint; NULL while ``unroutable_reason`` says why.
    assigned_officer: Mapped[str | None] = mapped_column(ForeignKey("officers.code"), index=True)
    level: Mapped[Level | None] = mapped_column(StrEnumColumn(Level, 16))
    #: Why no rule placed the complaint: it is listed on the review page until someone does.
    unroutable_reason: Mapped[str | None] = mapped_column(Text)
    resolution_text: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None] = mapped_column()
    resolved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reopen_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    #: An open complaint of the same caller and category when this one was filed.
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("complaints.id"))


class ComplaintHistory(Base):
    """One row per transition or assignment of a complaint, in the transaction that made it:
    who (NULL = the helpline itself), when, from and to which status and officer, why.
    Append-only. Writer: api (complaints service)."""

    __tablename__ = "complaint_history"
    __table_args__ = (
        one_of("action", HistoryAction),
        one_of("from_status", ComplaintStatus),
        one_of("to_status", ComplaintStatus),
        Index("ix_complaint_history_complaint_at", "complaint_id", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    complaint_id: Mapped[int] = mapped_column(ForeignKey("complaints.id"))
    at: Mapped[datetime] = mapped_column(server_default=func.now())
    #: The user who acted; NULL when the helpline did (routing, the SLA worker).
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    action: Mapped[HistoryAction] = mapped_column(StrEnumColumn(HistoryAction, 32))
    from_status: Mapped[ComplaintStatus | None] = mapped_column(StrEnumColumn(ComplaintStatus, 20))
    to_status: Mapped[ComplaintStatus] = mapped_column(StrEnumColumn(ComplaintStatus, 20))
    from_officer: Mapped[str | None] = mapped_column(ForeignKey("officers.code"))
    to_officer: Mapped[str | None] = mapped_column(ForeignKey("officers.code"))
    note: Mapped[str | None] = mapped_column(Text)


class AcrBreach(Base):
    """The ACR ledger: one row per SLA breach, charged to the officer whose assignment ran out
    (their Annual Confidential Report counts these). Named by the assignment (complaint,
    level, due date), so however many SLA passes (or a reassign) decide the same breach, it is
    one row. Writer: lifecycle.transitions (the SLA pass, and a reassign of an overdue one)."""

    __tablename__ = "acr_breaches"
    __table_args__ = (
        one_of("level", Level),
        UniqueConstraint("complaint_id", "level", "due_at", name="uq_acr_breaches_assignment"),
        Index("ix_acr_breaches_officer_breached", "officer_id", "breached_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    complaint_id: Mapped[int] = mapped_column(ForeignKey("complaints.id"))
    #: The post (officers.code) whose SLA ran out.
    officer_id: Mapped[str] = mapped_column(ForeignKey("officers.code"))
    level: Mapped[Level] = mapped_column(StrEnumColumn(Level, 16))
    due_at: Mapped[datetime] = mapped_column()
    #: When the breach was decided: the SLA pass's as-of time (or the reassign's).
    breached_at: Mapped[datetime] = mapped_column()


class AuditLog(Base):
    """Append-only record of who did what. Every service appends; nobody updates or deletes."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    at: Mapped[datetime] = mapped_column(server_default=func.now())
    service: Mapped[str] = mapped_column(String(32))
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))


class ServiceHeartbeat(Base):
    """Liveness of each service, for /health and ``helpline status``.
    Writer: each service, its own row."""

    __tablename__ = "service_heartbeats"

    service: Mapped[str] = mapped_column(String(32), primary_key=True)
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column()
    seen_at: Mapped[datetime] = mapped_column()
    detail: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))


class SeatConfigState(Base):
    """Which seats Asterisk's PJSIP config was last rendered and reloaded with.
    Writer: queue_manager (the api compares it with the ``seats`` table)."""

    __tablename__ = "seat_config_state"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    seats_hash: Mapped[str] = mapped_column(String(64))
    seat_count: Mapped[int] = mapped_column(Integer)
    applied_at: Mapped[datetime | None] = mapped_column()
    reload_seconds: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


#: The IVR's budget check counts today's inbound calls on every queued call: keep it an index scan.
Index("ix_calls_started_at_budget", Call.started_at)


class IvrSession(Base):
    """One caller's walk through the IVR: nodes, keys, prompts, outcome; stored even when the
    caller hangs up mid-menu, so drop-off per node can be reported. Writer: agi."""

    __tablename__ = "ivr_sessions"
    __table_args__ = (caller_number_check(), one_of("outcome", IvrOutcome))

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    uniqueid: Mapped[str] = mapped_column(String(64), unique=True)
    #: Normalised 10-digit number, or NULL when withheld.
    caller_number: Mapped[CallerNumber | None] = mapped_column(CallerNumberColumn())
    #: What the carrier sent, bounded and made safe (core.domain.phone.raw_caller_id).
    caller_number_raw: Mapped[str | None] = mapped_column(String(64))
    lang: Mapped[str] = mapped_column(String(8))
    started_at: Mapped[datetime] = mapped_column(index=True)
    ended_at: Mapped[datetime | None] = mapped_column()
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    #: [{"node", "type", "at_ms", "ms", "keys", "event"}] in the order the caller went.
    path: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    #: Every key the caller pressed, in order.
    digits: Mapped[str] = mapped_column(String(256), server_default=text("''"))
    #: Every sound the IVR played, in order (the AGI transcript of what the caller heard).
    prompts: Mapped[list[str]] = mapped_column(JSONB)
    #: NULL while the call is in the IVR.
    outcome: Mapped[IvrOutcome | None] = mapped_column(StrEnumColumn(IvrOutcome, 80), index=True)
    #: The node the caller was at when the session ended (where they hung up, for ``abandoned``).
    last_node: Mapped[str | None] = mapped_column(String(64))
    #: Emergency choice, complaint looked up, budget/wait figures, feedback, callback id.
    detail: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))


class CallbackRequest(Base):
    """A caller who chose to be called back instead of waiting; ``id`` is the request order the
    outbound dialer follows. One per call. Writer: agi (the dialer records attempts elsewhere)."""

    __tablename__ = "callback_requests"
    __table_args__ = (
        Index("ix_callback_requests_status_id", "status", "id"),
        caller_number_check(),
        one_of("reason", CallbackReason),
        one_of("status", CallbackStatus),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    uniqueid: Mapped[str] = mapped_column(String(64), unique=True)
    caller_number: Mapped[CallerNumber] = mapped_column(CallerNumberColumn())
    lang: Mapped[str] = mapped_column(String(8))
    reason: Mapped[CallbackReason] = mapped_column(StrEnumColumn(CallbackReason, 32))
    ivr_path: Mapped[str | None] = mapped_column(Text)
    status: Mapped[CallbackStatus] = mapped_column(
        StrEnumColumn(CallbackStatus, 16), server_default=text("'pending'")
    )
    requested_at: Mapped[datetime] = mapped_column(server_default=func.now())


# ----------------------------------------------------------------------------- reference data
# Copies of core.reference's data (places, departments, categories, officers' posts), upserted
# by code from the shipped files by ``helpline seed``, so complaints can point at them with
# foreign keys. Writer: api (reference service, run by ``helpline seed``); the API answers
# reference requests from the data loaded in memory, not from these tables.


class ReferenceManifest(Base):
    """Which reference data set the tables below hold: an unchanged one is not seeded again."""

    __tablename__ = "reference_manifest"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(64))
    seeded_at: Mapped[datetime] = mapped_column(server_default=func.now())


class RefDivision(Base):
    __tablename__ = "divisions"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name_en: Mapped[str] = mapped_column(String(200))
    name_hi: Mapped[str] = mapped_column(String(200))
    #: Code of the district where the division's offices sit (not a key: districts come after).
    headquarters: Mapped[str] = mapped_column(String(40))
    lgd_code: Mapped[int | None] = mapped_column(Integer)


class RefDistrict(Base):
    __tablename__ = "districts"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    division: Mapped[str] = mapped_column(ForeignKey("divisions.code"))
    name_en: Mapped[str] = mapped_column(String(200))
    name_hi: Mapped[str] = mapped_column(String(200))
    lgd_code: Mapped[int | None] = mapped_column(Integer)


class RefTehsil(Base):
    __tablename__ = "tehsils"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    district: Mapped[str] = mapped_column(ForeignKey("districts.code"))
    name_en: Mapped[str] = mapped_column(String(200))
    name_hi: Mapped[str] = mapped_column(String(200))
    lgd_code: Mapped[int | None] = mapped_column(Integer)


class RefThana(Base):
    __tablename__ = "thanas"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    district: Mapped[str] = mapped_column(ForeignKey("districts.code"))
    tehsil: Mapped[str | None] = mapped_column(ForeignKey("tehsils.code"))
    name_en: Mapped[str] = mapped_column(String(200))
    name_hi: Mapped[str] = mapped_column(String(200))


class RefDepartment(Base):
    __tablename__ = "departments"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name_en: Mapped[str] = mapped_column(String(200))
    name_hi: Mapped[str] = mapped_column(String(200))


class RefCategory(Base):
    __tablename__ = "categories"
    __table_args__ = (one_of("first_level", Level),)

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    department: Mapped[str] = mapped_column(ForeignKey("departments.code"))
    name_en: Mapped[str] = mapped_column(String(200))
    name_hi: Mapped[str] = mapped_column(String(200))
    sla_days: Mapped[int] = mapped_column(Integer)
    first_level: Mapped[Level] = mapped_column(StrEnumColumn(Level, 16))
    #: The levels an overdue complaint climbs, lowest first (Level values).
    ladder: Mapped[list[str]] = mapped_column(JSONB)


class RefOfficer(Base):
    """An officer's post (department, level, place); ``user_id`` is the login of whoever holds
    it (seeding the data never changes it)."""

    __tablename__ = "officers"
    __table_args__ = (one_of("level", Level),)

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: NULL only at the CM office.
    department: Mapped[str | None] = mapped_column(ForeignKey("departments.code"))
    level: Mapped[Level] = mapped_column(StrEnumColumn(Level, 16))
    #: Code of the thana, tehsil, district or division; the state's at state and cm_office.
    place: Mapped[str] = mapped_column(String(40))
    designation_en: Mapped[str] = mapped_column(String(200))
    designation_hi: Mapped[str] = mapped_column(String(200))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), unique=True)


class SmsOutbox(Base):
    """SMS to callers about their complaints, queued in the transaction of the change they
    report and delivered at least once by the ``sla`` worker (``lifecycle.notifications``).
    One event queues once: UNIQUE on (complaint, kind, dedupe key). Writers: whoever changes a
    complaint (enqueue, through ``lifecycle.notifications.enqueue``) and the ``sla`` worker
    (delivery columns)."""

    __tablename__ = "sms_outbox"
    __table_args__ = (
        UniqueConstraint("complaint_number", "kind", "dedupe_key", name="uq_sms_outbox_event"),
        # The delivery loop's claim: due rows of the claimable statuses, oldest first.
        Index(
            "ix_sms_outbox_due",
            "next_attempt_at",
            postgresql_where=text("status IN ('pending', 'failed', 'sending')"),
        ),
        caller_number_check(),
        one_of("kind", SmsKind),
        one_of("status", SmsStatus),
        CheckConstraint("attempts >= 0", name="attempts"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    complaint_number: Mapped[str] = mapped_column(String(16), index=True)
    #: NULL when the caller's number is not known (withheld): the row is ``skipped``.
    caller_number: Mapped[CallerNumber | None] = mapped_column(CallerNumberColumn())
    kind: Mapped[SmsKind] = mapped_column(StrEnumColumn(SmsKind, 16))
    #: What tells two events of one kind apart (a history row id, a breach key).
    dedupe_key: Mapped[str] = mapped_column(String(128))
    language: Mapped[str] = mapped_column(String(8))
    #: The rendered SMS, as the caller will read it.
    body: Mapped[str] = mapped_column(Text)
    dlt_template_id: Mapped[str] = mapped_column(String(32))
    status: Mapped[SmsStatus] = mapped_column(
        StrEnumColumn(SmsStatus, 16), server_default=text("'pending'")
    )
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    #: When a ``pending``/``failed`` row is due; for a ``sending`` row, when its lease ends.
    next_attempt_at: Mapped[datetime] = mapped_column(server_default=func.now())
    #: Names the claim a worker holds: a worker whose lease ran out cannot overwrite the
    #: result of the worker that claimed the row after it.
    lease_token: Mapped[str | None] = mapped_column(String(36))
    last_error: Mapped[str | None] = mapped_column(Text)
    provider_message_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column()
