"""Typed settings, read once from environment variables (prefix ``HELPLINE_``).

Defaults are safe for a single machine: every listener binds to loopback. Secrets (AMI users,
seat passwords) are never defaulted: they are generated on first ``helpline up`` into
``<state_dir>/secrets.env`` (git-ignored, mode 0600) and read from there or the environment.
Build settings with :meth:`Settings.load`, once, in each process's ``main``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.reference import DEFAULT_DATA_DIR, Reference, load_reference

#: Services that log in to AMI; each gets its own AMI user (and eventfilter) in manager.conf.
AMI_SERVICES: tuple[str, ...] = ("queue_manager", "api", "outbound_dialer")


class Settings(BaseSettings):
    """Everything one helpline instance needs; built once in ``main`` and passed down."""

    model_config = SettingsConfigDict(env_prefix="HELPLINE_", extra="ignore")

    #: Name of this instance; test runs use their own so they never touch a demo instance.
    instance: str = "main"
    #: Where runtime state lives: logs, pid files, generated secrets, rendered config, prompts.
    state_dir: Path = Path(".helpline")

    # PostgreSQL
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/helpline"

    # Asterisk
    #: Root of the Debian sid chroot holding Asterisk 22 ("" or "/" means a native install).
    asterisk_root: Path = Path("/var/lib/helpline/asterisk-sid")
    ami_host: str = "127.0.0.1"
    ami_port: int = 5038
    sip_host: str = "127.0.0.1"
    sip_port: int = 5060
    #: Source address of the "PSTN trunk": calls from here are citizens dialling 1076.
    trunk_address: str = "127.0.0.2"
    rtp_port_start: int = 10000
    rtp_port_end: int = 20000
    helpline_number: str = "1076"
    queue_name: str = "helpline"
    #: app_queue strategy; ``ringall`` is refused (unusable at 500 members).
    queue_strategy: str = "rrmemory"
    seat_count: int = 500

    # FastAGI
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    agi_backlog: int = 4096
    agi_handshake_timeout: float = 5.0
    agi_command_timeout: float = 30.0
    agi_call_timeout: float = 900.0

    # AMI client behaviour
    ami_action_timeout: float = 10.0
    ami_ping_interval: float = 5.0
    ami_reconnect_max_backoff: float = 30.0
    #: Per-service AMI secrets, generated; keyed by service name in :data:`AMI_SERVICES`.
    ami_secret_queue_manager: str = ""
    ami_secret_api: str = ""
    ami_secret_outbound_dialer: str = ""

    # API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    token_ttl_seconds: int = Field(default=12 * 3600, gt=0)
    #: Largest request body the API reads (bytes), checked on Content-Length first and counted
    #: while streaming, before any authentication or parsing: 413 past it. The biggest body any
    #: route takes is a complaint (10,000 characters of text, up to 40 KB as UTF-8 Devanagari);
    #: 64 KiB holds it and keeps a flood of large bodies from costing memory.
    api_max_body_bytes: int = Field(default=64 * 1024, gt=0)
    #: uvicorn: largest request head, request line and headers (``h11_max_incomplete_event_size``).
    api_max_header_bytes: int = Field(default=16 * 1024, gt=0)
    #: uvicorn: seconds an idle keep-alive connection is kept open.
    api_keep_alive_seconds: int = Field(default=5, gt=0)
    #: uvicorn: connections served at once; past it, new requests answer 503.
    api_max_concurrency: int = Field(default=1000, gt=0)
    #: Failed logins within ``login_window_seconds`` that block a user name, and an address,
    #: for ``login_block_seconds`` (answered 429 with Retry-After). Stored in PostgreSQL, so
    #: every API process counts the same failures.
    login_failures_per_user: int = Field(default=5, gt=0)
    login_failures_per_address: int = Field(default=30, gt=0)
    login_window_seconds: int = Field(default=900, gt=0)
    login_block_seconds: int = Field(default=900, gt=0)
    #: Threads that hash passwords (scrypt, ~40 ms of CPU each, off the event loop) and how
    #: many logins may wait for one; past that a login answers 429 at once instead of queueing.
    #: One thread leaves the other core to the event loop (about 20 logins a second per API
    #: process: a 500-seat shift signs in within 25 s); a queue of 8 keeps a storm of logins
    #: from holding database connections that every other request needs.
    login_hash_threads: int = Field(default=1, gt=0)
    login_hash_queue: int = Field(default=8, gt=0)

    # Business rules
    daily_inbound_budget: int = 88_000
    daily_outbound_budget: int = 55_000
    resolution_days: int = 7
    #: Complaints one caller number may file per calendar month (IST); more answer 429.
    complaints_per_caller_month: int = Field(default=10, gt=0)
    #: The CM's monthly review flags a department whose ``review_action_metric`` (complaints
    #: ``overdue`` = pending past their due date, or all ``pending``) at month end is more
    #: than ``review_action_threshold``.
    review_action_metric: Literal["overdue", "pending"] = "overdue"
    review_action_threshold: int = Field(default=100, ge=0)
    #: Directory of the reference data (places, departments, categories, officers); None: the
    #: data shipped in core/reference/data.
    reference_dir: Path | None = None

    # IVR (agi_scripts.ivr)
    #: Emergency numbers: key 4 (police) and key 5 (health/ambulance).
    ivr_police_number: str = Field(default="112", pattern=r"^[0-9]{2,15}$")
    ivr_health_number: str = Field(default="108", pattern=r"^[0-9]{2,15}$")
    #: ``transfer``: dial the emergency number (``ivr_transfer_dial``); ``priority_queue``: the
    #: caller goes to the head of the skill queue instead.
    ivr_emergency_route: Literal["transfer", "priority_queue"] = "transfer"
    #: Dial string of emergency transfers; ``{number}`` becomes the emergency number.
    ivr_transfer_dial: str = Field(
        default="PJSIP/{number}@trunk", pattern=r"^[^\r\n\x00]*\{number\}[^\r\n\x00]*$"
    )
    #: Queue priority of emergency callers (and of a failed emergency transfer).
    ivr_emergency_priority: int = Field(default=9, ge=0, le=9)
    #: Offer a callback instead of waiting when the estimated wait is longer than this.
    ivr_max_wait_seconds: int = Field(default=600, gt=0)
    #: Deadline of each IVR database query; a slow database sends the caller to an agent.
    ivr_db_timeout: float = Field(default=2.0, gt=0)

    # SMS to callers (lifecycle.notifications; delivered by the `sla` worker)
    #: ``logging`` writes each SMS to the worker's log (number masked); ``http`` sends it
    #: through the SMS gateway at ``sms_http_url``.
    sms_provider: Literal["logging", "http"] = "logging"
    #: The gateway's send endpoint (POST, JSON body; see ``lifecycle.notifications``).
    sms_http_url: str = ""
    #: Sent as ``Authorization: Bearer …``; never logged, never in an error text.
    sms_http_api_key: SecretStr = SecretStr("")
    #: The DLT-registered sender ID (header), 6 characters, e.g. ``UPCMHL``.
    sms_sender_id: str = Field(default="", pattern=r"^([A-Za-z0-9]{6})?$")
    #: The DLT principal entity ID of the helpline (19 digits), sent with every SMS.
    sms_entity_id: str = Field(default="", pattern=r"^([0-9]{10,25})?$")
    sms_http_timeout: float = Field(default=10.0, gt=0)
    #: Templates (Hindi and English text and DLT template ID per kind); empty means the
    #: shipped ``lifecycle/sms_templates.json``, whose IDs are placeholders to replace with
    #: the ones registered on the operator's DLT portal.
    sms_templates_path: Path | None = None
    #: How often the worker looks for due SMS when no NOTIFY woke it.
    sms_poll_seconds: float = Field(default=5.0, gt=0)
    #: Rows claimed per delivery pass.
    sms_batch: int = Field(default=50, gt=0, le=1000)
    #: How long a claimed row is a worker's: after that, another worker sends it again.
    sms_lease_seconds: float = Field(default=120.0, gt=0)
    #: Attempts before a row is given up (``dead``).
    sms_max_attempts: int = Field(default=8, gt=0)
    #: Retry backoff: ``base * 2**(attempt-1)`` seconds, at most ``cap``.
    sms_backoff_base_seconds: float = Field(default=30.0, gt=0)
    sms_backoff_cap_seconds: float = Field(default=3600.0, gt=0)
    #: How often the ``sla`` worker runs the SLA escalation pass (lifecycle.sla).
    sla_pass_minutes: float = Field(default=5.0, gt=0)

    def ami_username(self, service: str) -> str:
        """AMI user of ``service``: one per service, so logs and event filters tell them apart."""
        return f"helpline_{service}"

    def ami_secret(self, service: str) -> str:
        """Generated AMI secret of ``service``; empty until ``helpline up`` generated it."""
        secret: str = getattr(self, f"ami_secret_{service}")
        return secret

    @classmethod
    def load(cls, state_dir: Path | None = None) -> Settings:
        """Settings from the environment plus the instance's files in ``state_dir``.

        ``instance.env`` pins an instance's ports and database (test instances write one);
        ``secrets.env`` holds the generated secrets. The environment wins over both.
        """
        if state_dir is None:
            state_dir = Path(os.environ.get("HELPLINE_STATE_DIR", ".helpline"))
        files = [state_dir / "instance.env", state_dir / "secrets.env"]
        return cls(
            _env_file=[f for f in files if f.exists()] or None,
            state_dir=state_dir.resolve(),
        )

    def load_reference(self) -> Reference:
        """The reference data of this instance (validated; raises ReferenceDataError)."""
        return load_reference(self.reference_dir or DEFAULT_DATA_DIR)

    @property
    def agi_url(self) -> str:
        return f"agi://{self.agi_host}:{self.agi_port}"

    @property
    def native_asterisk(self) -> bool:
        return str(self.asterisk_root) in ("", "/", ".")
