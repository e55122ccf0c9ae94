"""The helpline's tables. The writer of each table is named in its docstring."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
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
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.domain.complaints import SEQUENCE_START

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TZ = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSONB, datetime: TZ}


#: Source of complaint numbers (a check digit is appended, see core.domain.complaints).
complaint_sequence = Sequence("complaint_number_seq", start=SEQUENCE_START, metadata=Base.metadata)


class User(Base):
    """Agents, supervisors, officers and admins. Writer: api (and ``helpline seed``)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(Text)
    #: Skills for routing priority callers (general, police, health).
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
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    seat: Mapped[str] = mapped_column(ForeignKey("seats.name"))
    logged_in_at: Mapped[datetime] = mapped_column(server_default=func.now())
    logged_out_at: Mapped[datetime | None] = mapped_column()
    penalty: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    #: Pause intent (break, training, meeting, after_call_work), re-applied after restarts.
    paused: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    pause_reason: Mapped[str | None] = mapped_column(String(32))


class SeatStatus(Base):
    """What app_queue says about a seat right now. Writer: queue_manager."""

    __tablename__ = "seat_status"

    seat: Mapped[str] = mapped_column(ForeignKey("seats.name"), primary_key=True)
    in_queue: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    paused: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
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

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    uniqueid: Mapped[str] = mapped_column(String(64), unique=True)
    linkedid: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(128))
    #: Normalised 10-digit number, or NULL when withheld.
    caller_number: Mapped[str | None] = mapped_column(String(16), index=True)
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
    #: answered | abandoned | ivr_only | unanswered (set at hang-up)
    disposition: Mapped[str | None] = mapped_column(String(32))
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
    """A citizen's grievance. Stored exactly once: UNIQUE on the call and on the client's
    Idempotency-Key. Writer: api."""

    __tablename__ = "complaints"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    number: Mapped[str] = mapped_column(String(16), unique=True)
    caller_number: Mapped[str | None] = mapped_column(String(16), index=True)
    caller_name: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"), unique=True)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(20), server_default=text("'registered'"))
    idempotency_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    due_at: Mapped[datetime] = mapped_column()


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

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    uniqueid: Mapped[str] = mapped_column(String(64), unique=True)
    #: Normalised 10-digit number, or NULL when withheld.
    caller_number: Mapped[str | None] = mapped_column(String(16))
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
    #: queued | self_served | transferred | callback | abandoned_at:<node> | failed_at:<node>;
    #: NULL while the call is in the IVR.
    outcome: Mapped[str | None] = mapped_column(String(80), index=True)
    last_node: Mapped[str | None] = mapped_column(String(64))
    #: Emergency choice, complaint looked up, budget/wait figures, feedback, callback id.
    detail: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))


class CallbackRequest(Base):
    """A caller who chose to be called back instead of waiting; ``id`` is the request order the
    outbound dialer follows. One per call. Writer: agi (the dialer records attempts elsewhere)."""

    __tablename__ = "callback_requests"
    __table_args__ = (Index("ix_callback_requests_status_id", "status", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    uniqueid: Mapped[str] = mapped_column(String(64), unique=True)
    caller_number: Mapped[str] = mapped_column(String(16))
    lang: Mapped[str] = mapped_column(String(8))
    #: budget (today's inbound budget spent) | wait (estimated wait over the limit)
    reason: Mapped[str] = mapped_column(String(32))
    ivr_path: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), server_default=text("'pending'"))
    requested_at: Mapped[datetime] = mapped_column(server_default=func.now())
