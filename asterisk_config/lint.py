"""A lint of the *rendered* Asterisk configuration: the boundary rules, checked on the files
Asterisk reads (not on our templates or settings), so a template edit that opens a hole fails CI.

``python -m asterisk_config lint [dir]`` lints a directory of rendered files (an instance's
``etc``); without ``dir`` it renders this machine's settings into a temporary directory first.
:func:`lint_rendered` does the same for a test. Each finding names its rule (:data:`RULES`):

* ``ami-loopback``: AMI (manager.conf) bound to a loopback address, not served over HTTP.
* ``fastagi-loopback``: every ``AGI()``/``EAGI()`` in the dialplan is ``agi://`` to loopback (no
  local script, no remote AGI server).
* ``http-loopback``: http.conf's listeners (``bindaddr``, ``tlsbindaddr``) on loopback.
* ``ami-users``: one AMI user per service (``helpline_<service>``), no other user.
* ``ami-privilege``: no write class ``system``, ``command``, ``config`` or ``all`` (nor ``all``
  to read); ``originate`` only for the services of :data:`ORIGINATE_SERVICES`.
* ``ami-secret``: each secret generated-strong: >= 16 characters, >= 80 bits by its character
  classes, >= 8 distinct characters, no sample word, none shared between users.
* ``ami-acl``: every AMI user denies everything and permits loopback networks only.
* ``live-dangerously``: ``live_dangerously = no`` in asterisk.conf's ``[options]``.
* ``no-guest``: no anonymous or guest SIP: no ``anonymous`` endpoint, no anonymous identifier
  or chan_sip module loaded, no ``allowguest``, and every PJSIP endpoint either authenticates
  (``auth``) or is identified by exactly one address (``identify`` ``match`` of a /32 or /128).
"""

from __future__ import annotations

import ipaddress
import math
import re
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from core.config import AMI_SERVICES, Settings

RULES: Final = (
    "ami-loopback",
    "fastagi-loopback",
    "http-loopback",
    "ami-users",
    "ami-privilege",
    "ami-secret",
    "ami-acl",
    "live-dangerously",
    "no-guest",
)

#: The services whose AMI user may ``Originate`` (the dialer places every outbound call,
#: click-to-call included: the API only files the job).
ORIGINATE_SERVICES: Final = frozenset({"outbound_dialer"})
#: Write classes no service of ours may hold: shell commands (``system``: ``Originate`` of
#: ``System()``, ``command``: the CLI) and configuration writes (``config``).
FORBIDDEN_WRITE: Final = frozenset({"system", "command", "config", "all"})
FORBIDDEN_READ: Final = frozenset({"all"})
#: Words of sample and default secrets (Asterisk's samples, tutorials, our own names).
SAMPLE_WORDS: Final = (
    "secret",
    "password",
    "passw0rd",
    "changeme",
    "admin",
    "amp111",
    "asterisk",
    "helpline",
    "sample",
    "example",
    "default",
    "1234",
)
MIN_SECRET_LENGTH: Final = 16
MIN_SECRET_BITS: Final = 80.0
MIN_SECRET_DISTINCT: Final = 8


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    file: str
    section: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file} [{self.section}]" if self.section else self.file
        return f"{where}: {self.rule}: {self.message}"


@dataclass(slots=True)
class Section:
    """One ``[name](options)`` block; ``items`` in order, with what its templates give first."""

    name: str
    template: bool = False
    parents: tuple[str, ...] = ()
    items: list[tuple[str, str]] = field(default_factory=list)

    def values(self, key: str) -> list[str]:
        return [v for k, v in self.items if k == key]

    def get(self, key: str) -> str | None:
        found = self.values(key)
        return found[-1] if found else None


_HEADER: Final = re.compile(r"\[([^\]]+)\](?:\(([^)]*)\))?\s*$")


def parse_config(text: str) -> list[Section]:
    """Asterisk's config syntax as far as our files use it: ``;`` comments (``\\;`` is a
    literal), ``[name](!,parent)`` headers, ``key = value`` and ``key => value``; templates'
    items are copied into the sections that name them, as Asterisk does."""
    sections: list[Section] = []
    by_name: dict[str, list[Section]] = {}
    current: Section | None = None
    for raw in text.splitlines():
        line = re.sub(r"(?<!\\);.*", "", raw).strip()
        if not line or line.startswith("#"):
            continue
        header = _HEADER.match(line)
        if header:
            options = [o.strip() for o in (header[2] or "").split(",") if o.strip()]
            current = Section(
                header[1].strip(),
                template="!" in options,
                parents=tuple(o for o in options if o not in ("!", "+")),
            )
            for parent in current.parents:
                for source in by_name.get(parent, []):
                    if source.template or source.name == parent:
                        current.items.extend(source.items)
            sections.append(current)
            by_name.setdefault(current.name, []).append(current)
            continue
        key, sep, value = line.partition("=")
        if not sep or current is None:
            continue
        current.items.append((key.strip().lower(), value.removeprefix(">").strip()))
    return sections


# --------------------------------------------------------------------------- helpers


def _loopback_host(value: str) -> bool:
    """``127.0.0.1``, ``[::1]:8089``, ``127.0.0.1:5038``: an address on loopback."""
    host = value.strip()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return None


def secret_bits(secret: str) -> float:
    """Bits of a secret guessed by its character classes (length x log2 of the classes'
    combined size): what a brute force over those classes must try."""
    size = 0
    for chars in (
        string.ascii_lowercase,
        string.ascii_uppercase,
        string.digits,
        string.punctuation,
    ):
        if any(c in chars for c in secret):
            size += len(chars)
    return len(secret) * math.log2(size) if size > 1 else 0.0


def secret_weakness(secret: str) -> str | None:
    """Why ``secret`` is not a generated strong secret, or ``None``."""
    lowered = secret.lower()
    if len(secret) < MIN_SECRET_LENGTH:
        return f"{len(secret)} characters (at least {MIN_SECRET_LENGTH})"
    if len(set(secret)) < MIN_SECRET_DISTINCT:
        return f"only {len(set(secret))} distinct characters"
    if secret_bits(secret) < MIN_SECRET_BITS:
        return f"about {secret_bits(secret):.0f} bits (at least {MIN_SECRET_BITS:.0f})"
    word = next((w for w in SAMPLE_WORDS if w in lowered), None)
    if word is not None:
        return f"contains the sample word {word!r}"
    return None


def _classes(value: str | None) -> set[str]:
    return {c.strip().lower() for c in (value or "").split(",") if c.strip()}


def expected_ami_users() -> dict[str, str]:
    """AMI user name -> service: the one user each service logs in as."""
    names = Settings.model_construct()  # the naming rule only; no environment read
    return {names.ami_username(service): service for service in AMI_SERVICES}


# --------------------------------------------------------------------------- rules


def _lint_manager(sections: list[Section], findings: list[Finding]) -> None:
    file = "manager.conf"

    def add(rule: str, section: str, message: str) -> None:
        findings.append(Finding(rule, file, section, message))

    general = next((s for s in sections if s.name == "general"), None)
    if general is None:
        add("ami-loopback", "", "no [general] section")
    else:
        bind = general.get("bindaddr")
        if bind is None or not _loopback_host(bind):
            add("ami-loopback", "general", f"bindaddr = {bind!r} is not a loopback address")
        if (general.get("webenabled") or "no").lower() in ("yes", "true", "1", "on"):
            add("ami-loopback", "general", "webenabled = yes serves AMI over HTTP")
    users = [s for s in sections if s.name != "general" and not s.template]
    expected = expected_ami_users()
    seen: dict[str, str] = {}
    for user in users:
        service = expected.get(user.name)
        if service is None:
            add("ami-users", user.name, "an AMI user that is no service's")
        if user.name in seen:
            add("ami-users", user.name, "defined twice")
        write, read = _classes(user.get("write")), _classes(user.get("read"))
        bad = sorted(write & FORBIDDEN_WRITE)
        if bad:
            add("ami-privilege", user.name, f"write holds {', '.join(bad)}")
        if read & FORBIDDEN_READ:
            add("ami-privilege", user.name, "read = all")
        if "originate" in write and service not in ORIGINATE_SERVICES:
            add("ami-privilege", user.name, "originate for a service that places no calls")
        secret = user.get("secret")
        if not secret:
            add("ami-secret", user.name, "no secret")
        else:
            weakness = secret_weakness(secret)
            if weakness:
                add("ami-secret", user.name, f"weak secret: {weakness}")
            other = seen.get(secret)
            if other is not None:
                add("ami-secret", user.name, f"same secret as {other}")
            seen[secret] = user.name
        _lint_acl(user, add)
    missing = sorted(set(expected) - {u.name for u in users})
    for name in missing:
        add("ami-users", name, f"no AMI user for service {expected[name]}")


def _lint_acl(user: Section, add: Callable[[str, str, str], None]) -> None:
    denies = [_network(v) for v in user.values("deny")]
    permits = [_network(v) for v in user.values("permit")]
    if not any(n is not None and n.prefixlen == 0 for n in denies):
        add("ami-acl", user.name, "no deny = 0.0.0.0/0.0.0.0 (everything not permitted)")
    if not permits:
        add("ami-acl", user.name, "no permit")
    for value, net in zip(user.values("permit"), permits, strict=True):
        if net is None or not net.is_loopback:
            add("ami-acl", user.name, f"permit = {value} is not a loopback network")


_AGI_CALL: Final = re.compile(r"\b(?:E|Dead)?AGI\(([^,)]*)", re.IGNORECASE)
_AGI_URL: Final = re.compile(r"agi://(\[[^\]]+\]|[^/:]+)")


def _lint_dialplan(sections: list[Section], findings: list[Finding]) -> None:
    for section in sections:
        for _key, value in section.items:
            for call in _AGI_CALL.finditer(value):
                target = call[1].strip()
                url = _AGI_URL.match(target)
                if url is None or not _loopback_host(url[1]):
                    findings.append(
                        Finding(
                            "fastagi-loopback",
                            "extensions.conf",
                            section.name,
                            f"AGI target {target!r} is not agi:// on a loopback address",
                        )
                    )


def _lint_http(sections: list[Section], findings: list[Finding]) -> None:
    for section in sections:
        if section.name != "general":
            continue
        for key in ("bindaddr", "tlsbindaddr"):
            value = section.get(key)
            if value is not None and not _loopback_host(value):
                findings.append(
                    Finding("http-loopback", "http.conf", "general", f"{key} = {value}")
                )


def _lint_asterisk(sections: list[Section], findings: list[Finding]) -> None:
    options = next((s for s in sections if s.name == "options"), None)
    value = None if options is None else options.get("live_dangerously")
    if value is None or value.lower() not in ("no", "false", "0", "off"):
        findings.append(
            Finding(
                "live-dangerously",
                "asterisk.conf",
                "options",
                f"live_dangerously = {value!r}: must be 'no'",
            )
        )


def _lint_sip(files: Mapping[str, list[Section]], findings: list[Finding]) -> None:
    def add(file: str, section: str, message: str) -> None:
        findings.append(Finding("no-guest", file, section, message))

    for file, sections in files.items():
        for section in sections:
            if (section.get("allowguest") or "no").lower() in ("yes", "true", "1", "on"):
                add(file, section.name, "allowguest = yes")
    modules = files.get("modules.conf", [])
    for section in modules:
        for key, value in section.items:
            if key in ("load", "require", "preload") and (
                "endpoint_identifier_anonymous" in value or value.strip() == "chan_sip.so"
            ):
                add("modules.conf", section.name, f"{key} = {value}: anonymous/guest SIP")
    pjsip = files.get("pjsip.conf", [])
    endpoints = [s for s in pjsip if not s.template and s.get("type") == "endpoint"]
    single_identified = {
        s.get("endpoint")
        for s in pjsip
        if not s.template
        and s.get("type") == "identify"
        and s.values("match")
        and all(_single_address(m) for m in s.values("match"))
    }
    for endpoint in endpoints:
        if endpoint.name == "anonymous":
            add("pjsip.conf", endpoint.name, "an anonymous endpoint takes unidentified calls")
        elif not endpoint.get("auth") and endpoint.name not in single_identified:
            add(
                "pjsip.conf",
                endpoint.name,
                "endpoint without auth and not identified by one address",
            )


def _single_address(match: str) -> bool:
    nets = [_network(m) for m in match.split(",") if m.strip()]
    return bool(nets) and all(n is not None and n.num_addresses == 1 for n in nets)


# --------------------------------------------------------------------------- entry points


def lint_files(texts: Mapping[str, str]) -> list[Finding]:
    """Findings of the rendered files ``{name: text}`` (a missing file is a finding)."""
    findings: list[Finding] = []
    parsed = {name: parse_config(text) for name, text in texts.items()}
    checks = (
        ("manager.conf", _lint_manager),
        ("extensions.conf", _lint_dialplan),
        ("http.conf", _lint_http),
        ("asterisk.conf", _lint_asterisk),
    )
    for name, check in checks:
        if name not in parsed:
            findings.append(Finding("missing", name, "", "file not rendered"))
        else:
            check(parsed[name], findings)
    _lint_sip(parsed, findings)
    return findings


def lint_dir(directory: Path) -> list[Finding]:
    """Findings of the ``*.conf`` files in ``directory``."""
    return lint_files(
        {p.name: p.read_text(encoding="utf-8", errors="replace") for p in directory.glob("*.conf")}
    )


def lint_rendered(files: Mapping[str, str], directory: Path) -> list[Finding]:
    """Write rendered ``files`` into ``directory`` as Asterisk would read them, then lint it."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return lint_dir(directory)


def report(findings: Iterable[Finding]) -> list[str]:
    return [str(f) for f in findings]
