"""The helpline's tables. The writer of each table is named in its docstring."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any, ClassVar, TypeVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
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

from core.domain.calls import (
    CallbackReason,
    CallbackStatus,
    CallDisposition,
    IvrOutcome,
    ReadbackOutcome,
    ReadbackThen,
    WrapupCode,
)
from core.domain.complaints import SEQUENCE_START, ComplaintStatus, HistoryAction
from core.domain.dialing import Campaign, DncSource, JobState, Outcome, SurveyResult
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
    #: The caller's place in line: their first QueueCallerJoin (the waiting room's re-entries
    #: after each announcement keep it).
    queue_joined_at: Mapped[datetime | None] = mapped_column(index=True)
    #: When the caller stopped waiting for good (connected, gave up, hung up); a re-entry
    #: after a waiting-room announcement clears it.
    queue_left_at: Mapped[datetime | None] = mapped_column()
    #: The latest QueueCallerJoin and QueueCallerLeave: the caller is in app_queue's list right
    #: now when entered > exited (between them the waiting room speaks to the caller).
    queue_entered_at: Mapped[datetime | None] = mapped_column()
    queue_exited_at: Mapped[datetime | None] = mapped_column()
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
    #: The dialer's call (a callback that reached the queue, a click-to-call): its attempt,
    #: which says why the citizen was called. NULL for a citizen's own call on the trunk. No
    #: foreign key (calls -> attempts -> jobs -> complaints -> calls would be a cycle); the
    #: recorder copies it from an existing attempt's row.
    dialer_attempt_id: Mapped[str | None] = mapped_column(String(64))


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
    #: When the citizen's personal data (number, name, description, resolution text, history
    #: notes) was anonymised, long after closure (lifecycle.privacy); the rest stays for the
    #: statistics.
    anonymised_at: Mapped[datetime | None] = mapped_column()


class ComplaintHistory(Base):
    """One row per transition or assignment of a complaint, in the transaction that made it:
    who (NULL = the helpline itself), when, from and to which status and officer, why.
    Append-only; the privacy pass clears the notes of an anonymised complaint (lifecycle.privacy).
    Writer: api (complaints service)."""

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


class Recording(Base):
    """A call's recording: MixMonitor's file of the citizen's conversation with the agent (one
    per call), tied to the complaints filed on that call through ``call_id``. Writers: the
    queue_manager creates the row (MixMonitorStart) and completes it once (MixMonitorStop, or
    the call's Hangup); the retention pass (lifecycle.recordings) deletes the file and sets
    ``deleted_at``. ``path`` is relative to ``Settings.recordings_dir``."""

    __tablename__ = "recordings"
    __table_args__ = (
        #: The retention pass's one query: live recordings by the day they may go.
        Index(
            "ix_recordings_retain_until",
            "retain_until",
            "id",
            postgresql_where=text("deleted_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"), unique=True)
    path: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column()
    #: Set once, when the file was closed (None while the call lasts).
    ended_at: Mapped[datetime | None] = mapped_column()
    #: Seconds of audio in the file (8 kHz 16-bit: its data bytes / 16,000), and its size.
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    bytes: Mapped[int | None] = mapped_column(BigInteger)
    #: The call's end plus the retention period; a complaint still open keeps it longer.
    retain_until: Mapped[datetime | None] = mapped_column()
    deleted_at: Mapped[datetime | None] = mapped_column()
    #: Why the file is gone (retention, or missing when the call ended).
    deleted_reason: Mapped[str | None] = mapped_column(String(200))


class AuditLog(Base):
    """Append-only record of who did what. Every service appends; nobody updates; only the
    privacy pass deletes rows past ``privacy_audit_days`` (lifecycle.privacy)."""

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
#: The callers waiting in a queue now (hundreds at most, whatever the hour): the IVR's queue
#: check and the waiting room's position count them on every queued call.
Index(
    "ix_calls_waiting",
    Call.queue_joined_at,
    postgresql_where=Call.queue_joined_at.is_not(None)
    & Call.queue_left_at.is_(None)
    & Call.agent_connected_at.is_(None)
    & Call.ended_at.is_(None),
)


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


class CallWrapup(Base):
    """The agent's wrap-up of a call: a code (``WrapupCode``) and a note, one per call, which
    the agent may correct until the shift ends. Kept apart from ``calls`` (one writer per
    table: the queue manager writes ``calls``, whose ``disposition`` says what happened on the
    line). Writer: api."""

    __tablename__ = "call_wrapups"
    __table_args__ = (one_of("code", WrapupCode),)

    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"), primary_key=True)
    code: Mapped[WrapupCode] = mapped_column(StrEnumColumn(WrapupCode, 32))
    note: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(server_default=func.now())


class ReadbackSession(Base):
    """One read-back of a complaint number to a caller (``agi://…/readback``, started by the
    agent's button through an AMI Redirect): the digits spoken, prompts played, outcome.
    A call may have several (two complaints, or the button pressed twice). Writer: agi."""

    __tablename__ = "readback_sessions"
    __table_args__ = (
        UniqueConstraint("uniqueid", "started_at", name="uq_readback_sessions_key"),
        one_of("outcome", ReadbackOutcome),
        one_of("then_action", ReadbackThen),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    #: The caller's channel (``calls.uniqueid``).
    uniqueid: Mapped[str] = mapped_column(String(64), index=True)
    complaint_number: Mapped[str] = mapped_column(String(16))
    lang: Mapped[str] = mapped_column(String(8))
    then_action: Mapped[ReadbackThen] = mapped_column(StrEnumColumn(ReadbackThen, 16))
    started_at: Mapped[datetime] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    #: Every digit of the number as it was spoken, both readings (20 digits when complete).
    digits_spoken: Mapped[str] = mapped_column(String(64), server_default=text("''"))
    #: Every sound played, in order.
    prompts: Mapped[list[str]] = mapped_column(JSONB)
    #: NULL while the number is being read.
    outcome: Mapped[ReadbackOutcome | None] = mapped_column(StrEnumColumn(ReadbackOutcome, 16))


class CallbackRequest(Base):
    """A caller who chose to be called back instead of waiting. The dialer calls them back in
    order of ``place_at`` (their place in line: when they joined the queue, or asked, if they
    never joined), then ``id``. One per call (``uniqueid``) and one pending per caller number.
    Writer: agi (the dialer records attempts elsewhere; docs/dialer.md has the contract)."""

    __tablename__ = "callback_requests"
    __table_args__ = (
        Index("ix_callback_requests_status_id", "status", "id"),
        Index("ix_callback_requests_status_place", "status", "place_at", "id"),
        Index(
            "uq_callback_requests_pending_caller",
            "caller_number",
            unique=True,
            postgresql_where=text("status = 'pending'"),
        ),
        caller_number_check(),
        one_of("reason", CallbackReason),
        one_of("status", CallbackStatus),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    uniqueid: Mapped[str] = mapped_column(String(64), unique=True)
    #: NULL once anonymised (lifecycle.privacy: a settled request past its retention).
    caller_number: Mapped[CallerNumber | None] = mapped_column(CallerNumberColumn())
    lang: Mapped[str] = mapped_column(String(8))
    reason: Mapped[CallbackReason] = mapped_column(StrEnumColumn(CallbackReason, 32))
    ivr_path: Mapped[str | None] = mapped_column(Text)
    status: Mapped[CallbackStatus] = mapped_column(
        StrEnumColumn(CallbackStatus, 16), server_default=text("'pending'")
    )
    requested_at: Mapped[datetime] = mapped_column(server_default=func.now())
    #: The caller's place in line: when they joined the queue (``calls.queue_joined_at``), or
    #: when they asked if they never joined (queue full, budget spent).
    place_at: Mapped[datetime] = mapped_column(server_default=func.now())
    #: The queue they waited in or would have joined (a skill queue's callers go back to it).
    queue: Mapped[str | None] = mapped_column(String(64))


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


# ----------------------------------------------------------------------------- outbound dialer
# Writer of every table below: outbound_dialer (``helpline dialer``), except the campaigns'
# settings (api: ``PUT /campaigns/{name}``) and the do-not-call list (api for supervisors, the
# dialer for a citizen's "9"). The limits are enforced here, atomically: see
# outbound_dialer.store and docs/dialer.md.


class DialerCampaign(Base):
    """A campaign's switches and limits (one row per :class:`Campaign`, made by the migration).
    Writer: api (``PUT /campaigns/{name}``)."""

    __tablename__ = "dialer_campaigns"
    __table_args__ = (
        one_of("name", Campaign),
        CheckConstraint("max_attempts > 0", name="max_attempts"),
        CheckConstraint("max_concurrent IS NULL OR max_concurrent >= 0", name="max_concurrent"),
        CheckConstraint("daily_limit IS NULL OR daily_limit >= 0", name="daily_limit"),
    )

    name: Mapped[Campaign] = mapped_column(StrEnumColumn(Campaign, 16), primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    #: Attempts per job (per complaint and resolution, or per callback request).
    max_attempts: Mapped[int] = mapped_column(Integer, server_default=text("3"))
    #: This campaign's share of the outbound channels (NULL: the global cap only).
    max_concurrent: Mapped[int | None] = mapped_column(Integer)
    #: This campaign's share of the day's budget (NULL: the global budget only).
    daily_limit: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class DialerJob(Base):
    """Someone to call, for one reason: a complaint's resolution (feedback), a follow-up period
    of an open complaint, or a callback request. Made at most once: UNIQUE on (campaign,
    complaint, dedupe key) and on the callback request. Writer: outbound_dialer."""

    __tablename__ = "dialer_jobs"
    __table_args__ = (
        UniqueConstraint(
            "campaign", "complaint_id", "dedupe_key", name="uq_dialer_jobs_complaint_key"
        ),
        UniqueConstraint("callback_request_id", name="uq_dialer_jobs_callback_request_id"),
        CheckConstraint(
            "(complaint_id IS NULL) <> (callback_request_id IS NULL)", name="one_subject"
        ),
        CheckConstraint("attempts >= 0", name="attempts"),
        #: A click-to-call job rings its seat first; no other campaign has one.
        CheckConstraint("(campaign = 'click') = (seat IS NOT NULL)", name="click_seat"),
        caller_number_check("number"),
        one_of("campaign", Campaign),
        one_of("state", JobState),
        one_of("last_outcome", Outcome),
        one_of("result", SurveyResult),
        #: The claim: pending jobs in its order (a click-to-call, then callbacks, then the
        #: rest; each by due time), so that taking the first due one is an index scan, not a
        #: sort of every pending job (0019_dialer_claim_index).
        Index(
            "ix_dialer_jobs_claim",
            text("(campaign <> 'click')"),
            text("(campaign <> 'callback')"),
            "not_before",
            "id",
            postgresql_where=text("state = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    campaign: Mapped[Campaign] = mapped_column(StrEnumColumn(Campaign, 16))
    complaint_id: Mapped[int | None] = mapped_column(ForeignKey("complaints.id"))
    callback_request_id: Mapped[int | None] = mapped_column(ForeignKey("callback_requests.id"))
    #: What makes the job one of its kind: ``resolve:<history id>`` for feedback,
    #: ``<status>:<period>`` for follow-ups, ``callback`` for callbacks.
    dedupe_key: Mapped[str] = mapped_column(String(64))
    #: Feedback: the resolution asked about (its ``complaint_history`` row), for the reports.
    resolution_id: Mapped[int | None] = mapped_column(ForeignKey("complaint_history.id"))
    #: NULL once anonymised (lifecycle.privacy: a finished job past its retention).
    number: Mapped[CallerNumber | None] = mapped_column(CallerNumberColumn(), index=True)
    not_before: Mapped[datetime] = mapped_column(server_default=func.now())
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    state: Mapped[JobState] = mapped_column(
        StrEnumColumn(JobState, 16), server_default=text("'pending'")
    )
    last_outcome: Mapped[Outcome | None] = mapped_column(StrEnumColumn(Outcome, 16))
    #: The feedback survey's answer.
    result: Mapped[SurveyResult | None] = mapped_column(StrEnumColumn(SurveyResult, 16))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column()
    #: Click-to-call: the seat that rings first, and who asked (an agent or supervisor).
    seat: Mapped[str | None] = mapped_column(ForeignKey("seats.name"))
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class DialerAttempt(Base):
    """One ``Originate``: its id is the AMI ``ChannelId`` (the channel's uniqueid), so every
    event of the call names its attempt. At most one per (job, attempt number), and one open
    (``ended_at`` NULL) per job. Writer: outbound_dialer."""

    __tablename__ = "dialer_attempts"
    __table_args__ = (
        UniqueConstraint("job_id", "attempt_no", name="uq_dialer_attempts_job_attempt"),
        Index(
            "uq_dialer_attempts_open_job",
            "job_id",
            unique=True,
            postgresql_where=text("ended_at IS NULL"),
        ),
        Index("ix_dialer_attempts_number_started", "number", "started_at"),
        caller_number_check("number"),
        one_of("campaign", Campaign),
        one_of("outcome", Outcome),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("dialer_jobs.id"))
    attempt_no: Mapped[int] = mapped_column(Integer)
    campaign: Mapped[Campaign] = mapped_column(StrEnumColumn(Campaign, 16))
    #: NULL once anonymised (lifecycle.privacy: an ended attempt past its retention).
    number: Mapped[CallerNumber | None] = mapped_column(CallerNumberColumn())
    #: The IST day whose budget the attempt was counted in.
    day: Mapped[date] = mapped_column(Date)
    started_at: Mapped[datetime] = mapped_column()
    answered_at: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    outcome: Mapped[Outcome | None] = mapped_column(StrEnumColumn(Outcome, 16), index=True)
    #: ``OriginateResponse``'s Reason (the last control frame: 4 answered, 5 busy...).
    originate_reason: Mapped[int | None] = mapped_column(Integer)
    #: Q.850 cause of the channel's Hangup.
    hangup_cause: Mapped[int | None] = mapped_column(Integer)
    answered: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    abandoned: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    #: Which dialer process sent the Originate (host:pid).
    dialer: Mapped[str] = mapped_column(String(128))
    #: Click-to-call: ``Dial()``'s DIALSTATUS towards the citizen (``DialEnd``): ANSWER, BUSY...
    dial_status: Mapped[str | None] = mapped_column(String(16))


class InboundBudget(Base):
    """Per IST day: citizens' calls recorded (``used``), the daily inbound budget's count.

    Incremented in the statement that inserts the call's row, and only when that insert made
    the row (a replayed ``Newchannel`` changes nothing), so the count is the calls' without
    counting them: the IVR reads one row before every queued call. Writer: queue_manager."""

    __tablename__ = "inbound_budget"
    __table_args__ = (CheckConstraint("used >= 0", name="used"),)

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    used: Mapped[int] = mapped_column(Integer, server_default=text("0"))


class DialerBudget(Base):
    """Per IST day: calls started (``used``) and channels on the line now (``active``), for
    all campaigns (``scope`` 'all') and for each. A claim takes its calls with one statement
    per row that locks it and takes what its bounds leave, so no number of dialers can pass
    the budget or the channel cap. Writer: outbound_dialer."""

    __tablename__ = "dialer_budget"
    __table_args__ = (
        CheckConstraint(
            "scope IN ('all', {})".format(", ".join(f"'{c.value}'" for c in Campaign)),
            name="scope",
        ),
        CheckConstraint("used >= 0", name="used"),
        CheckConstraint("active >= 0", name="active"),
    )

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    used: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    active: Mapped[int] = mapped_column(Integer, server_default=text("0"))


class DialerNumberDay(Base):
    """Attempts to one number on one IST day, reserved like the budget. Writer: outbound_dialer."""

    __tablename__ = "dialer_number_day"
    __table_args__ = (
        caller_number_check("number"),
        CheckConstraint("attempts >= 0", name="attempts"),
    )

    number: Mapped[CallerNumber] = mapped_column(CallerNumberColumn(), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))


class DoNotCall(Base):
    """Numbers never dialled by any campaign. Writers: outbound_dialer (a citizen's "9"), api
    (supervisors)."""

    __tablename__ = "dialer_dnc"
    __table_args__ = (caller_number_check("number"), one_of("source", DncSource))

    number: Mapped[CallerNumber] = mapped_column(CallerNumberColumn(), primary_key=True)
    source: Mapped[DncSource] = mapped_column(StrEnumColumn(DncSource, 16))
    added_at: Mapped[datetime] = mapped_column(server_default=func.now())
    added_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    note: Mapped[str | None] = mapped_column(Text)


class AsteriskCel(Base):
    """Asterisk's own record of every channel event (CEL), written by Asterisk's ``cel_pgsql``
    (the column names are its own; ``eventtime`` in UTC without a zone: ``usegmtime``). The
    queue manager back-fills from it the calls it did not see (queue_manager/backfill.py).
    Writer: Asterisk."""

    __tablename__ = "asterisk_cel"
    __table_args__ = (
        Index("ix_asterisk_cel_linkedid", "linkedid", "eventtime"),
        Index("ix_asterisk_cel_eventtype", "eventtype", "eventtime"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    eventtime: Mapped[datetime] = mapped_column(DateTime(timezone=False))
    amaflags: Mapped[int | None] = mapped_column(Integer)
    eventtype: Mapped[str | None] = mapped_column(Text)
    userdeftype: Mapped[str | None] = mapped_column(Text)
    cid_name: Mapped[str | None] = mapped_column(Text)
    cid_num: Mapped[str | None] = mapped_column(Text)
    cid_ani: Mapped[str | None] = mapped_column(Text)
    cid_rdnis: Mapped[str | None] = mapped_column(Text)
    cid_dnid: Mapped[str | None] = mapped_column(Text)
    exten: Mapped[str | None] = mapped_column(Text)
    context: Mapped[str | None] = mapped_column(Text)
    channame: Mapped[str | None] = mapped_column(Text)
    appname: Mapped[str | None] = mapped_column(Text)
    appdata: Mapped[str | None] = mapped_column(Text)
    accountcode: Mapped[str | None] = mapped_column(Text)
    peeraccount: Mapped[str | None] = mapped_column(Text)
    uniqueid: Mapped[str | None] = mapped_column(Text)
    linkedid: Mapped[str | None] = mapped_column(Text)
    userfield: Mapped[str | None] = mapped_column(Text)
    peer: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[str | None] = mapped_column(Text)
