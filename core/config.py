"""Typed settings, read once from environment variables (prefix ``HELPLINE_``).

Defaults are safe for a single machine: every listener binds to loopback. Secrets (AMI users,
seat passwords) are never defaulted: they are generated on first ``helpline up`` into
``<state_dir>/secrets.env`` (git-ignored, mode 0600) and read from there or the environment.
Build settings with :meth:`Settings.load`, once, in each process's ``main``.
"""

from __future__ import annotations

import os
from datetime import time
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

    # WebRTC: the desk's in-page phone registers over a WebSocket with TLS to Asterisk's own
    # HTTP server (http.conf), at wss://wss_host:wss_port/ws; the certificate is generated into
    # <state_dir>/tls/ by `helpline up` (asterisk_config.tls).
    wss_host: str = "127.0.0.1"
    wss_port: int = 8089

    # FastAGI
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    agi_backlog: int = 4096
    agi_handshake_timeout: float = 5.0
    agi_command_timeout: float = 30.0
    agi_call_timeout: float = 900.0
    #: A FastAGI process whose event loop has not ticked (core.liveness) for this long is
    #: stalled: ``helpline supervise`` kills it, so that Asterisk's AGI sockets close and the
    #: dialplan sends its callers to the queue (docs/operations.md, "Fault injection").
    agi_stall_seconds: float = Field(default=10.0, gt=0)
    #: An IVR session still open this long after its call ended was left by a dead FastAGI
    #: process (its own save lands within seconds): reconciliation closes it as ``failed``.
    ivr_orphan_grace_seconds: float = Field(default=30.0, gt=0)
    #: How often the FastAGI service looks for such sessions (and once at start).
    ivr_orphan_pass_seconds: float = Field(default=60.0, gt=0)

    #: How often each background service rewrites its heartbeat row (core/db/heartbeat.py);
    #: ``/health`` calls a row stale after 15 s whatever this is. The fault suites beat faster.
    heartbeat_seconds: float = Field(default=5.0, gt=0, le=5.0)

    # AMI client behaviour
    ami_action_timeout: float = 10.0
    ami_ping_interval: float = 5.0
    ami_reconnect_max_backoff: float = 30.0
    #: How far back the queue manager looks in Asterisk's CEL for calls it did not see end,
    #: after each (re)connect and resync (``helpline backfill --since`` reaches further).
    backfill_lookback_minutes: int = Field(default=180, gt=0)
    #: Per-service AMI secrets, generated; keyed by service name in :data:`AMI_SERVICES`.
    ami_secret_queue_manager: str = ""
    ami_secret_api: str = ""
    ami_secret_outbound_dialer: str = ""

    # API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    token_ttl_seconds: int = Field(default=12 * 3600, gt=0)
    #: How long an API process may answer "whose token is this" from memory
    #: (api/services/auth.py, :class:`TokenCache`); 0 reads it from PostgreSQL on every
    #: request. A logout or a disabled user ends the cached token at once in every process
    #: (NOTIFY); this bounds it only if a notification is lost.
    api_token_cache_seconds: float = Field(default=10.0, ge=0)
    #: Largest request body the API reads (bytes), checked on Content-Length first and counted
    #: while streaming, before any authentication or parsing: 413 past it. The biggest body any
    #: route takes is a complaint (10,000 characters of text, up to 40 KB as UTF-8 Devanagari);
    #: 64 KiB holds it and keeps a flood of large bodies from costing memory.
    api_max_body_bytes: int = Field(default=64 * 1024, gt=0)
    #: uvicorn: largest request head, request line and headers (``h11_max_incomplete_event_size``).
    api_max_header_bytes: int = Field(default=16 * 1024, gt=0)
    #: uvicorn: seconds an idle keep-alive connection is kept open. Longer than the idle
    #: timeout of any client or load balancer in front (nginx and cloud balancers: 60 s): a
    #: server that closes first races the client's next request on that connection, which then
    #: fails with no answer at all (seen with httpx, whose default is the same 5 s as uvicorn's).
    api_keep_alive_seconds: int = Field(default=75, gt=0)
    #: Seconds a client has to send a whole request head (api/http_protocol.py): a slower one
    #: is disconnected, so slow-headers clients cannot hold the connection slots.
    api_header_timeout_seconds: float = Field(default=10.0, gt=0)
    #: HTTP requests in flight at once (api/boundary.py); past it a request answers 503 with
    #: Retry-After. WebSockets are not requests: they count against ``api_max_sockets``.
    api_max_concurrency: int = Field(default=1000, gt=0)
    #: WebSockets open at once (desks' screen-pops, wallboards); past it a new one is refused
    #: with 503 before the upgrade. 1,000 seats' desks, a second tab each, and the wallboards.
    api_max_sockets: int = Field(default=3000, gt=0)
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
    #: Deadline of storing an IVR session (waiting for a pooled connection included): long,
    #: because nobody waits on it (the first write runs beside the welcome, the last after the
    #: caller left) and a session given up is a session lost.
    ivr_save_timeout: float = Field(default=30.0, gt=0)
    #: Seconds between the waiting room's announcements to a caller in the queue (position,
    #: expected wait, "press 1 for a callback"): the Queue() timeout the dialplan loops on.
    #: 60 s: often enough that a caller knows they are not forgotten, rare enough that the
    #: few seconds of each announcement spent outside app_queue's list stay a small share.
    waiting_announce_seconds: int = Field(default=60, ge=15, le=600)

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

    # Call recording (docs/lifecycle.md "Recording")
    #: Days a call's recording is kept after the call; a recording tied to a complaint that is
    #: still open is kept until the complaint closes, however old. 365: a year covers the
    #: CM's monthly reviews, a reopened complaint's appeal and the officer's annual ACR, which
    #: may cite what the caller said.
    recording_retention_days: int = Field(default=365, gt=0)

    # Privacy (India's DPDP Act): retention by data class, enforced by the ``sla`` worker's
    # hourly privacy pass and ``helpline privacy prune`` (lifecycle.privacy; docs/lifecycle.md
    # "Retention and anonymisation"). Each is days after the row's own clock.
    #: Callers' numbers, raw caller IDs and caller names on ``calls`` and ``ivr_sessions``,
    #: from the call's start. 180: two quarters of repeat-caller history for the desk.
    privacy_call_days: int = Field(default=180, gt=0)
    #: Numbers of settled callback requests, finished dialer jobs and ended attempts (and the
    #: per-number daily counters, deleted), from when they ended. 180, as for calls.
    privacy_outbound_days: int = Field(default=180, gt=0)
    #: A closed (or rejected-as-duplicate) complaint's personal data -- number, name,
    #: description, resolution text, history notes -- from its last transition; the complaint
    #: itself stays for the statistics. 365: the CM's annual review and an appeal's window.
    privacy_complaint_days: int = Field(default=365, gt=0)
    #: Bodies and numbers of SMS that are sent, dead or skipped, from when they were queued.
    privacy_sms_days: int = Field(default=90, gt=0)
    #: Audit-log rows, deleted. 1095: three years of who saw or changed what.
    privacy_audit_days: int = Field(default=1095, gt=0)
    #: Asterisk's CEL rows (``asterisk_cel``: callers' numbers, every channel's events),
    #: deleted. 30: the back-fill needs hours; a month leaves room to investigate a call.
    privacy_cel_days: int = Field(default=30, gt=0)
    #: Rows per UPDATE/DELETE of the privacy pass (each batch its own short transaction).
    privacy_batch: int = Field(default=1000, gt=0)

    # Outbound dialer (outbound_dialer; docs/dialer.md says why each default)
    #: Caller ID of outbound calls: Indian government service calls use 1600-series numbers.
    outbound_caller_id: str = Field(default="1600110076", pattern=r"^1600[0-9]{6}$")
    #: Dial string of outbound calls; ``{number}`` becomes the citizen's 10-digit number.
    dialer_trunk_dial: str = Field(
        default="PJSIP/{number}@trunk", pattern=r"^[^\r\n\x00,]*\{number\}[^\r\n\x00,]*$"
    )
    #: The calling window, IST (start before end, within one day).
    dialer_window_start: time = time(9, 0)
    dialer_window_end: time = time(21, 0)
    #: Calls the pacing lets go at once above the even spread of the day's budget.
    dialer_burst: int = Field(default=200, ge=0)
    #: Outbound channels at once, all campaigns: the trunk's room left to inbound is the rest.
    dialer_max_channels: int = Field(default=120, ge=0)
    #: Attempts to one number per IST day, all campaigns together.
    dialer_attempts_per_number_day: int = Field(default=3, gt=0)
    #: How long an outbound call rings before it counts as not answered (Originate Timeout).
    dialer_ring_seconds: int = Field(default=30, gt=0, le=120)
    #: Retry delays by outcome, minutes.
    dialer_retry_busy_minutes: float = Field(default=30.0, gt=0)
    dialer_retry_no_answer_minutes: float = Field(default=180.0, gt=0)
    dialer_retry_congestion_minutes: float = Field(default=15.0, gt=0)
    dialer_retry_failed_minutes: float = Field(default=360.0, gt=0)
    dialer_retry_silence_minutes: float = Field(default=240.0, gt=0)
    #: A follow-up call every this many days while a complaint is open (and again when its
    #: status changes).
    dialer_followup_every_days: int = Field(default=3, gt=0)
    #: How often the dialer looks for due jobs, and re-checks live channels against open
    #: attempts (CoreShowChannels).
    dialer_poll_seconds: float = Field(default=2.0, gt=0)
    #: How often a dialer makes the missing feedback and follow-up jobs (a set-based pass).
    dialer_job_pass_seconds: float = Field(default=60.0, gt=0)
    dialer_reconcile_seconds: float = Field(default=60.0, gt=0)

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
    def wss_url(self) -> str:
        """The WebSocket URL of the in-page phone (Asterisk's ``/ws``, TLS)."""
        host = f"[{self.wss_host}]" if ":" in self.wss_host else self.wss_host
        return f"wss://{host}:{self.wss_port}/ws"

    @property
    def native_asterisk(self) -> bool:
        return str(self.asterisk_root) in ("", "/", ".")

    @property
    def asterisk_instance_dir(self) -> str:
        """This instance's directory as Asterisk sees it: ``/srv/helpline/<instance>`` inside
        the chroot, ``<state_dir>/asterisk/<instance>`` for a native install."""
        if self.native_asterisk:
            return str((Path(self.state_dir) / "asterisk" / self.instance).absolute())
        return f"/srv/helpline/{self.instance}"

    @property
    def recordings_dir_for_asterisk(self) -> str:
        """Where MixMonitor writes the calls' recordings, as Asterisk sees it."""
        return f"{self.asterisk_instance_dir}/recordings"

    @property
    def recordings_dir(self) -> Path:
        """The same directory as our services see it (under the chroot's root, if any);
        ``recordings.path`` is relative to it."""
        inner = self.recordings_dir_for_asterisk
        if self.native_asterisk:
            return Path(inner)
        return Path(self.asterisk_root).absolute() / inner.lstrip("/")
