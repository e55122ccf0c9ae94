"""Render Asterisk's configuration files from :class:`~core.config.Settings` (pure: no I/O).

:func:`render_configs` returns ``{file name: text}``; :class:`asterisk_config.instance.
AsteriskInstance` writes them into the instance's own ``etc`` directory. Every value that reaches a
file is checked: CR, LF and NUL are refused everywhere (a value with a line break would inject
configuration), names must be simple tokens and hosts must be IP addresses (a chroot has no DNS).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jinja2
from sqlalchemy.engine import make_url

from core.config import AMI_SERVICES, Settings
from core.domain.credentials import SIP_REALM, sip_ha1
from core.domain.queues import SKILL_QUEUES, WRAPUP_SECONDS, all_queues, webrtc_endpoint

#: app_queue strategies we accept; ``ringall`` is deliberately absent (see :func:`check_strategy`).
QUEUE_STRATEGIES: frozenset[str] = frozenset(
    {"leastrecent", "fewestcalls", "random", "rrmemory", "rrordered", "linear", "wrandom"}
)

#: Files rendered, in order.
CONFIG_FILES: tuple[str, ...] = (
    "asterisk.conf",
    "modules.conf",
    "logger.conf",
    "manager.conf",
    "pjsip.conf",
    "http.conf",
    "rtp.conf",
    "musiconhold.conf",
    "queues.conf",
    "extensions.conf",
    "indications.conf",
    "cdr.conf",
    "cel.conf",
    "cel_pgsql.conf",
)

#: Config files of loaded modules that we leave at their defaults: written with only a comment so
#: that Asterisk does not log an error for each missing file at start-up.
STUB_FILES: tuple[str, ...] = (
    "acl.conf",
    "ccss.conf",
    "features.conf",
    "pjproject.conf",
    "queuerules.conf",
    "stasis.conf",
    "udptl.conf",
)

#: The WSS certificate and key as the instance's ``etc/keys`` holds them (copied there by
#: :meth:`asterisk_config.instance.AsteriskInstance.render` from ``asterisk_config.tls``).
TLS_CERT_NAME = "webrtc.crt"
TLS_KEY_NAME = "webrtc.key"

#: Files holding secrets (AMI secrets, seats' digests): written mode 0600.
SECRET_FILES: frozenset[str] = frozenset({"manager.conf", "pjsip.conf", "cel_pgsql.conf"})

#: The explicit module list (autoload=no), grouped for readability of modules.conf.
MODULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "sorcery, timing, RTP",
        (
            "res_sorcery_config.so",
            "res_sorcery_memory.so",
            "res_sorcery_astdb.so",
            "res_timing_timerfd.so",
            "res_rtp_asterisk.so",
            # Security events (failed SIP/AMI logins) to logger.conf's security.log: fail2ban.
            "res_security_log.so",
        ),
    ),
    (
        "PJSIP",
        (
            "res_pjproject.so",
            "res_pjsip.so",
            "res_pjsip_session.so",
            "res_pjsip_pubsub.so",
            "res_pjsip_authenticator_digest.so",
            "res_pjsip_endpoint_identifier_ip.so",
            "res_pjsip_endpoint_identifier_user.so",
            "res_pjsip_registrar.so",
            "res_pjsip_sdp_rtp.so",
            "res_pjsip_nat.so",
            "res_pjsip_caller_id.so",
            "res_pjsip_rfc3326.so",
            "res_pjsip_logger.so",
            "chan_pjsip.so",
        ),
    ),
    (
        "WebRTC: the desk's in-page phone (SIP over WSS; DTLS-SRTP, ICE: res_rtp_asterisk)",
        (
            "res_http_websocket.so",
            "res_pjsip_transport_websocket.so",
            "res_srtp.so",
            "res_format_attr_opus.so",
            "codec_opus_open_source.so",
        ),
    ),
    (
        "codecs and file formats (ulaw on the wire; wav/gsm/ulaw prompts)",
        (
            "codec_ulaw.so",
            "codec_gsm.so",
            "format_wav.so",
            "format_wav_gsm.so",
            "format_gsm.so",
            "format_pcm.so",
            "format_sln.so",
        ),
    ),
    (
        "bridging (queue calls are bridged agent <-> citizen)",
        (
            "bridge_simple.so",
            "bridge_native_rtp.so",
            "bridge_builtin_features.so",
            "bridge_holding.so",
        ),
    ),
    (
        "dialplan, applications and functions",
        (
            "pbx_config.so",
            "res_speech.so",
            "res_agi.so",
            "res_musiconhold.so",
            "app_queue.so",
            "app_playback.so",
            "app_senddtmf.so",
            "app_dial.so",
            "app_verbose.so",
            "app_stack.so",
            "app_echo.so",
            "app_mixmonitor.so",
            "app_exec.so",
            # SoftHangup: a read-back's caller hung up, so the agent's waiting leg is released.
            "app_softhangup.so",
            "func_channel.so",
            "func_strings.so",
            "func_cut.so",
            "func_logic.so",
            "func_callerid.so",
            "func_devstate.so",
        ),
    ),
    (
        "Asterisk's own record of every channel (CEL) into PostgreSQL: the back-fill's source",
        ("cel_pgsql.so",),
    ),
)

#: AMI permissions per service: (read classes, write classes), the least each needs. An action
#: is allowed when the user holds any one of its classes (manager.c); ``Ping``, ``QueueStatus``,
#: ``Login`` and ``Logoff`` need none. Read ``system`` brings ``FullyBooted``. Write:
#:
#: * queue_manager: ``agent`` (QueueAdd/Remove/Pause/Penalty), ``reporting`` (CoreShowChannels);
#: * api: ``call`` (the desk's read-back: Setvar, Getvar, Redirect); it reads no events;
#: * outbound_dialer: ``originate`` (Originate to our dialplan), ``reporting`` (CoreShowChannels).
#:
#: No one holds write ``system`` (an Originate of ``System()``), ``command`` (the CLI) or
#: ``config``; the lint (asterisk_config/lint.py) fails the rendered manager.conf if one does.
AMI_PERMISSIONS: Mapping[str, tuple[str, str]] = {
    "queue_manager": ("system,call,agent,user,reporting", "agent,reporting"),
    "api": ("system", "call"),
    "outbound_dialer": ("system,call,agent", "originate,reporting"),
}
_DEFAULT_PERMISSIONS = ("system", "reporting")

#: Channel variables sent with every event about a channel (``ChanVariable: NAME=value``, empty
#: when unset): the IVR's state, which the queue manager records from them.
AMI_CHANNEL_VARIABLES: tuple[str, ...] = (
    "IVR_DONE",
    "IVR_PATH",
    "IVR_LANG",
    "IVR_ROUTE",
    "IVR_FALLBACK",
)


def channel_variable_fields(variables: Mapping[str, str]) -> list[tuple[str, str]]:
    """The ``ChanVariable`` fields Asterisk appends, with this config, to an event about a
    channel whose variables are ``variables``: every one of :data:`AMI_CHANNEL_VARIABLES`,
    empty when unset (for emulators and tests that play Asterisk)."""
    return [("ChanVariable", f"{name}={variables.get(name, '')}") for name in AMI_CHANNEL_VARIABLES]


#: High-volume events none of our services reads, disabled for every AMI session in
#: manager.conf (``disabledevents``: Asterisk then skips the message's formatting and its
#: queueing to each session). IVR state arrives via ``channelvars`` on every channel event.
AMI_DISABLED_EVENTS: tuple[str, ...] = (
    "Newexten",
    "VarSet",
    "RTCPSent",
    "RTCPReceived",
    "AGIExecStart",
    "AGIExecEnd",
    "DTMFBegin",
    "DTMFEnd",
)

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_SEAT_NAME = re.compile(r"agent[0-9]{2,8}")
_NUMBER = re.compile(r"[0-9]{2,15}")
_SECRET = re.compile(r"[!-~]{8,256}")  # printable ASCII, no space
_FORBIDDEN = ("\r", "\n", "\x00")


class RenderError(ValueError):
    """The settings or seats cannot be rendered into a safe, working configuration."""


@dataclass(frozen=True, slots=True)
class SeatCredential:
    """An agent seat: SIP user name (``agent0001``) and its password (from our database)."""

    name: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """Knobs that are not (yet) in Settings; defaults suit the helpline."""

    #: Seconds a queue member's phone rings before the next one is tried.
    member_timeout: int = 15
    #: Seconds to wait before ringing members again after a round.
    retry: int = 2
    #: Dial timeout of IVR transfers.
    transfer_timeout: int = 60
    #: SIP port of the PSTN trunk (for calls we send to it).
    trunk_port: int = 5060
    #: Default channel language (trunk and seats); the IVR switches with CHANNEL(language).
    default_language: str = "hi"
    #: Digest realm of agents' seats.
    realm: str = SIP_REALM
    #: AMI writetimeout (ms) per user: a reader slower than this is dropped.
    ami_write_timeout_ms: int = 1000
    #: Whether music-on-hold files exist; if not, queue callers hear ringing instead of silence.
    have_moh: bool = False
    #: Also write a verbose ``full.log`` (debugging).
    verbose_log: bool = False


@dataclass(frozen=True, slots=True)
class InstanceDirs:
    """Directories of one instance as Asterisk sees them (inside the chroot, if any)."""

    etc: str
    run: str
    spool: str
    log: str
    lib: str
    data: str
    cache: str
    modules: str = "/usr/lib/x86_64-linux-gnu/asterisk/modules"

    @classmethod
    def under(cls, base: str, modules: str | None = None) -> InstanceDirs:
        base = base.rstrip("/")
        extra = {"modules": modules} if modules else {}
        return cls(
            etc=f"{base}/etc",
            run=f"{base}/run",
            spool=f"{base}/spool",
            log=f"{base}/log",
            lib=f"{base}/lib",
            data=f"{base}/data",
            cache=f"{base}/cache",
            **extra,
        )


# --------------------------------------------------------------------------- validation


def check_strategy(strategy: str) -> str:
    if strategy == "ringall":
        raise RenderError(
            "queue_strategy=ringall is refused: it rings every idle seat for every caller and is "
            "unusable with hundreds of members; use rrmemory, leastrecent or fewestcalls"
        )
    if strategy not in QUEUE_STRATEGIES:
        raise RenderError(
            f"unknown queue_strategy {strategy!r}; choose one of {sorted(QUEUE_STRATEGIES)}"
        )
    return strategy


def _no_newlines(what: str, value: str) -> str:
    if any(c in value for c in _FORBIDDEN):
        raise RenderError(f"{what} contains CR, LF or NUL; refusing to render it into a config")
    return value


def _token(what: str, value: str, pattern: re.Pattern[str] = _TOKEN) -> str:
    _no_newlines(what, value)
    if not pattern.fullmatch(value):
        raise RenderError(f"{what}={value!r} is not a valid name (expected {pattern.pattern})")
    return value


def _ip(what: str, value: str) -> str:
    _no_newlines(what, value)
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise RenderError(
            f"{what}={value!r} must be an IP address (no DNS inside the Asterisk chroot)"
        ) from None
    return value


def _cel_database(database_url: str) -> dict[str, Any]:
    """Where cel_pgsql writes: the helpline's own database, as libpq needs it (an IP address:
    there is no DNS in the chroot; ``localhost`` is taken for 127.0.0.1)."""
    url = make_url(database_url)
    host = "127.0.0.1" if url.host in (None, "localhost") else url.host
    values: dict[str, Any] = {
        "host": _ip("database host", host),
        "port": _port("database port", url.port or 5432),
        "dbname": _token("database name", url.database or ""),
        "user": _token("database user", url.username or ""),
        "password": url.password or "",
    }
    _no_newlines("database password", values["password"])
    if ";" in values["password"] or values["password"] != values["password"].strip():
        raise RenderError("the database password must not hold ';' or surrounding spaces")
    return values


def _port(what: str, value: int) -> int:
    if not 1 <= value <= 65535:
        raise RenderError(f"{what}={value} is not a port number")
    return value


#: An absolute path safe inside a dialplan application's argument (no ',', '$', ';', space).
_PATH = re.compile(r"/[A-Za-z0-9._/+-]{1,400}")


def _path(what: str, value: str) -> str:
    _no_newlines(what, value)
    if not _PATH.fullmatch(value) or "/../" in f"{value}/":
        raise RenderError(f"{what}={value!r} must be an absolute path of [A-Za-z0-9._/+-]")
    return value


def _finalize(value: Any) -> Any:
    """Last line of defence: nothing rendered into a config may carry a line break."""
    if isinstance(value, str):
        _no_newlines("a rendered value", value)
    return value


_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("asterisk_config", "templates"),
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    finalize=_finalize,
)


def seat_ha1(name: str, realm: str, password: str) -> str:
    """Digest HA1 = MD5(user:realm:password), so pjsip.conf never holds the password."""
    return sip_ha1(name, realm, password)


def render_configs(
    settings: Settings,
    seats: Sequence[SeatCredential],
    dirs: InstanceDirs,
    options: RenderOptions | None = None,
) -> dict[str, str]:
    """Render every config file for ``settings``; raises :class:`RenderError` on unsafe input."""
    opts = options or RenderOptions()
    instance = _token("instance", settings.instance)
    for what, d in (
        ("etc", dirs.etc),
        ("run", dirs.run),
        ("spool", dirs.spool),
        ("log", dirs.log),
        ("lib", dirs.lib),
        ("data", dirs.data),
        ("cache", dirs.cache),
        ("modules", dirs.modules),
    ):
        if not d.startswith("/") or any(c in d for c in (*_FORBIDDEN, ";", " ")):
            raise RenderError(f"directory {what}={d!r} must be an absolute path without ';'/spaces")
    rtp_start = _port("rtp_port_start", settings.rtp_port_start)
    rtp_end = _port("rtp_port_end", settings.rtp_port_end)
    if rtp_end - rtp_start < 10:
        raise RenderError(f"RTP range {rtp_start}-{rtp_end} is empty or too small")
    names: set[str] = set()
    seat_rows: list[dict[str, str]] = []
    realm = _token("realm", opts.realm)
    for seat in seats:
        name = _token("seat name", seat.name, _SEAT_NAME)
        if name in names:
            raise RenderError(f"seat {name} appears twice")
        names.add(name)
        if not seat.password:
            raise RenderError(f"seat {name} has an empty password")
        _no_newlines(f"password of seat {name}", seat.password)
        web = webrtc_endpoint(name)
        seat_rows.append(
            {
                "name": name,
                "ha1": seat_ha1(name, realm, seat.password),
                # The in-page phone's endpoint: its own user name, so its HA1 (what the desk
                # is given) cannot register the seat's SIP softphone endpoint.
                "web": web,
                "web_ha1": seat_ha1(web, realm, seat.password),
            }
        )
    users: list[dict[str, Any]] = []
    for service in AMI_SERVICES:
        secret = settings.ami_secret(service)
        if not secret:
            raise RenderError(
                f"AMI secret of {service} is empty: run `helpline up` (it generates secrets into "
                f"{settings.state_dir}/secrets.env) or set HELPLINE_AMI_SECRET_{service.upper()}"
            )
        _no_newlines(f"AMI secret of {service}", secret)
        if not _SECRET.fullmatch(secret) or ";" in secret:
            raise RenderError(
                f"AMI secret of {service} must be 8-256 printable ASCII characters without "
                "spaces or ';'"
            )
        read, write = AMI_PERMISSIONS.get(service, _DEFAULT_PERMISSIONS)
        users.append(
            {
                "service": service,
                "name": _token("AMI user", settings.ami_username(service)),
                "secret": secret,
                "read": read,
                "write": write,
            }
        )
    agi_host = _ip("agi_host", settings.agi_host)
    agi_port = _port("agi_port", settings.agi_port)
    agi_url = (
        f"agi://[{agi_host}]:{agi_port}" if ":" in agi_host else f"agi://{agi_host}:{agi_port}"
    )
    wss_host = _ip("wss_host", settings.wss_host)
    wss_port = _port("wss_port", settings.wss_port)
    ctx: dict[str, Any] = {
        "cel": _cel_database(settings.database_url),
        "instance": instance,
        "dirs": dirs,
        "modules": MODULES,
        "default_language": _token("default_language", opts.default_language),
        "verbose_log": opts.verbose_log,
        "ami_host": _ip("ami_host", settings.ami_host),
        "ami_port": _port("ami_port", settings.ami_port),
        "write_timeout_ms": int(opts.ami_write_timeout_ms),
        "users": users,
        "disabled_events": AMI_DISABLED_EVENTS,
        "channel_variables": AMI_CHANNEL_VARIABLES,
        "sip_host": _ip("sip_host", settings.sip_host),
        "sip_port": _port("sip_port", settings.sip_port),
        "trunk_address": _ip("trunk_address", settings.trunk_address),
        "trunk_port": _port("trunk_port", opts.trunk_port),
        "helpline_number": _token("helpline_number", settings.helpline_number, _NUMBER),
        "realm": realm,
        "seats": seat_rows,
        "rtp_start": rtp_start,
        "rtp_end": rtp_end,
        "queue_name": _token("queue_name", settings.queue_name),
        # The main queue and one per skill (core.domain.queues): agents' skills route callers.
        "queues": [_token("queue", q) for q in all_queues(settings.queue_name)],
        "skill_queues": [_token("skill", s) for s in SKILL_QUEUES],
        "strategy": check_strategy(settings.queue_strategy),
        "member_timeout": int(opts.member_timeout),
        "retry": int(opts.retry),
        # Not a knob here: the supervisors' wrap-up and AHT figures count the same seconds.
        "wrapup_time": WRAPUP_SECONDS,
        "announce_every": int(settings.waiting_announce_seconds),
        "musicclass": "default" if opts.have_moh else "",
        # Without hold music, ringing ('r') rather than silence while waiting.
        "queue_options": "" if opts.have_moh else "r",
        "transfer_timeout": int(opts.transfer_timeout),
        "agi_url": agi_url,
        "recordings_dir": _path("recordings_dir", settings.recordings_dir_for_asterisk),
        "wss_host": wss_host,
        "wss_port": wss_port,
        "wss_bind": f"[{wss_host}]:{wss_port}" if ":" in wss_host else f"{wss_host}:{wss_port}",
        "tls_cert": f"{dirs.etc}/keys/{TLS_CERT_NAME}",
        "tls_key": f"{dirs.etc}/keys/{TLS_KEY_NAME}",
        # Where the in-page phone's media is sent and received: the SIP address (loopback).
        "webrtc_media_address": _ip("sip_host", settings.sip_host),
    }
    if settings.sip_host == settings.trunk_address:
        raise RenderError(
            "trunk_address equals sip_host: the trunk must have its own source address"
        )
    files = {name: _ENV.get_template(name + ".j2").render(ctx) for name in CONFIG_FILES}
    for name in STUB_FILES:
        files[name] = (
            f'; {name} for helpline instance "{instance}" -- GENERATED, do not edit.\n'
            "; Defaults are right for us; this file exists so that start-up logs no error.\n"
        )
    return files
