"""Failed SIP and AMI logins on the real Asterisk land in the instance's ``security.log`` in a
form Debian's fail2ban acts on: its shipped ``asterisk`` filter, run by ``fail2ban-regex``,
finds each attacker's address; our jail (deploy/fail2ban/jail.d/helpline-asterisk.conf) reads
that file. Attackers are loopback aliases (127.0.0.5 for SIP, 127.0.0.6 for AMI), so the
addresses found are theirs and not the stack's own."""

from __future__ import annotations

import asyncio
import configparser
import fnmatch
import hashlib
import re
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from asterisk_config import AsteriskInstance
from core.config import Settings
from core.domain.credentials import SIP_REALM
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

SHIPPED_FILTER = Path("/etc/fail2ban/filter.d/asterisk.conf")
JAIL = Path(__file__).parents[2] / "deploy" / "fail2ban" / "jail.d" / "helpline-asterisk.conf"
SIP_ATTACKER = "127.0.0.5"
AMI_ATTACKER = "127.0.0.6"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _register(
    sock: socket.socket, server: tuple[str, int], user: str, call_id: str, cseq: int, auth: str
) -> str:
    """Send one REGISTER; return the status line and headers of the final answer."""
    host, port = sock.getsockname()
    request = (
        f"REGISTER sip:{server[0]}:{server[1]} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:{port};rport;branch=z9hG4bK{secrets.token_hex(8)}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:{user}@{server[0]}>;tag={secrets.token_hex(4)}\r\n"
        f"To: <sip:{user}@{server[0]}>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} REGISTER\r\n"
        f"Contact: <sip:{user}@{host}:{port}>\r\n"
        "Expires: 60\r\n"
        f"{auth}"
        "Content-Length: 0\r\n\r\n"
    )
    sock.sendto(request.encode(), server)
    while True:
        answer = sock.recv(65535).decode("utf-8", "replace")
        if not answer.startswith("SIP/2.0 1"):  # skip 100 Trying
            return answer


def _wrong_password_register(server: tuple[str, int], user: str) -> list[str]:
    """REGISTER, answer the challenge with a wrong password's digest; the status lines."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((SIP_ATTACKER, 0))
        sock.settimeout(5)
        call_id = f"{secrets.token_hex(8)}@{SIP_ATTACKER}"
        first = _register(sock, server, user, call_id, 1, "")
        statuses = [first.split("\r\n", 1)[0]]
        challenge = re.search(r"^WWW-Authenticate: Digest (.*)$", first, re.MULTILINE | re.I)
        if challenge is None:
            return statuses
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge[1]))
        uri = f"sip:{server[0]}:{server[1]}"
        cnonce, nc = secrets.token_hex(8), "00000001"
        ha1 = _md5(f"{user}:{params.get('realm', SIP_REALM)}:not-the-password")
        ha2 = _md5(f"REGISTER:{uri}")
        response = _md5(f"{ha1}:{params['nonce']}:{nc}:{cnonce}:auth:{ha2}")
        auth = (
            f'Authorization: Digest username="{user}",realm="{params.get("realm", SIP_REALM)}",'
            f'nonce="{params["nonce"]}",uri="{uri}",response="{response}",algorithm=MD5,'
            f'cnonce="{cnonce}",qop=auth,nc={nc}'
            + (f',opaque="{params["opaque"]}"' if "opaque" in params else "")
            + "\r\n"
        )
        statuses.append(_register(sock, server, user, call_id, 2, auth).split("\r\n", 1)[0])
        return statuses


async def _ami_login(settings: Settings, source: str, username: str, secret: str) -> str:
    """One AMI Login from ``source``; the answer's Response/Message (or how it ended)."""
    reader, writer = await asyncio.open_connection(
        settings.ami_host, settings.ami_port, local_addr=(source, 0)
    )
    try:
        await reader.readline()  # the greeting
        writer.write(
            f"Action: Login\r\nActionID: f2b\r\nUsername: {username}\r\n"
            f"Secret: {secret}\r\n\r\n".encode()
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        return answer.decode("utf-8", "replace")
    except (asyncio.IncompleteReadError, ConnectionError) as ended:
        return f"closed: {ended!r}"
    finally:
        writer.close()


def _fail2ban_installed() -> bool:
    return shutil.which("fail2ban-regex") is not None and SHIPPED_FILTER.exists()


def _found(log: Path, filter_file: Path) -> list[str]:
    return subprocess.run(
        ["fail2ban-regex", "-o", "ip", str(log), str(filter_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()


async def test_failed_sip_and_ami_logins_are_found_by_fail2bans_asterisk_filter(
    stack_settings: Settings, tmp_path: Path
) -> None:
    if not _fail2ban_installed():
        pytest.fail("fail2ban missing: scripts/system-deps.sh installs it")
    settings = stack_settings
    instance = AsteriskInstance(settings)
    log = instance.host_path(f"{instance.dirs.log}/security.log")
    server = (settings.sip_host, settings.sip_port)
    started = time.monotonic()
    # The instance's log outlives a run: only what this test makes is read.
    offset = (await asyncio.to_thread(log.stat)).st_size if log.exists() else 0
    ours = tmp_path / "security.log"

    def this_run() -> Path:
        with log.open("rb") as whole:
            whole.seek(offset)
            ours.write_bytes(whole.read())
        return ours

    async with asyncio.timeout(60):
        wrong = await asyncio.to_thread(_wrong_password_register, server, "agent0001")
        unknown = await asyncio.to_thread(_wrong_password_register, server, "admin")
        nobody = await _ami_login(settings, AMI_ATTACKER, "admin", "admin")
        acl = await _ami_login(settings, AMI_ATTACKER, settings.ami_username("api"), "guess")
        local = await _ami_login(settings, "127.0.0.1", settings.ami_username("api"), "guess")
    assert wrong[-1].startswith(("SIP/2.0 401", "SIP/2.0 403")), wrong
    assert unknown[-1].startswith(("SIP/2.0 401", "SIP/2.0 403")), unknown
    for answer in (nobody, acl, local):
        assert "Response: Success" not in answer, answer

    async def ready() -> bool:
        if not await asyncio.to_thread(log.exists):
            return False
        found = await asyncio.to_thread(_found, await asyncio.to_thread(this_run), SHIPPED_FILTER)
        return found.count(SIP_ATTACKER) >= 2 and found.count(AMI_ATTACKER) >= 2

    await wait_for(
        ready, 15, interval=1.0, what=f"fail2ban's asterisk filter finding the attackers in {log}"
    )
    found = await asyncio.to_thread(_found, await asyncio.to_thread(this_run), SHIPPED_FILTER)
    print(f"fail2ban-regex found {found} in {time.monotonic() - started:.1f} s")
    assert set(found) == {SIP_ATTACKER, AMI_ATTACKER, "127.0.0.1"}, found
    # The jail reads this file: its log path covers every instance's security.log.
    jail = configparser.ConfigParser(interpolation=None)
    await asyncio.to_thread(jail.read, JAIL)
    (section,) = jail.sections()
    assert jail[section]["filter"] == "asterisk"
    assert any(fnmatch.fnmatch(str(log), p) for p in jail[section]["logpath"].split())
