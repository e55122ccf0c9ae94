"""Rendering Asterisk's configuration without Asterisk: safety checks and shape of the output."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from asterisk_config import AsteriskInstance, InstanceDirs, RenderError, SeatCredential
from asterisk_config.provision import ProvisionError, debian_mirror_from_apt
from asterisk_config.render import render_configs
from core.config import AMI_SERVICES, Settings
from core.domain.queues import WRAPUP_SECONDS

DIRS = InstanceDirs.under("/srv/helpline/unit")
SECRETS = {s: f"secret-{s}-0123456789abcdef" for s in AMI_SERVICES}


def _settings(**kw: object) -> Settings:
    base: dict[str, object] = {f"ami_secret_{s}": v for s, v in SECRETS.items()}
    base.update(instance="unit", trunk_address="127.0.0.2", sip_host="127.0.0.1")
    base.update(kw)
    return Settings(**base)  # type: ignore[arg-type]


def _seats(n: int) -> list[SeatCredential]:
    return [SeatCredential(f"agent{i:04d}", f"seat-pass-{i}") for i in range(1, n + 1)]


def _sections(text: str) -> list[str]:
    return re.findall(r"^\[([^\]]+)\]", text, flags=re.MULTILINE)


def test_ringall_refused_with_clear_error() -> None:
    with pytest.raises(RenderError, match="ringall"):
        render_configs(_settings(queue_strategy="ringall"), _seats(2), DIRS)


def test_unknown_strategy_refused() -> None:
    with pytest.raises(RenderError, match="unknown queue_strategy"):
        render_configs(_settings(queue_strategy="roundrobin-ish"), _seats(2), DIRS)


@pytest.mark.parametrize(
    ("settings_kw", "seats"),
    [
        ({}, [SeatCredential("agent0001", "pass\nword")]),
        ({}, [SeatCredential("agent0001", "pass\rword")]),
        ({"ami_secret_api": "abcdefgh\r\n[evil]"}, []),
        ({"helpline_number": "1076\nexten => 1,1,Dial(x)"}, []),
        ({"queue_name": "helpline\n[x]"}, []),
        ({"instance": "unit\nverbose=9"}, []),
        ({"sip_host": "127.0.0.1\nbind=0.0.0.0"}, []),
    ],
)
def test_cr_lf_refused(settings_kw: dict[str, object], seats: list[SeatCredential]) -> None:
    with pytest.raises(RenderError):
        render_configs(_settings(**settings_kw), seats or _seats(1), DIRS)


def test_bad_seat_names_and_duplicates_refused() -> None:
    with pytest.raises(RenderError):
        render_configs(_settings(), [SeatCredential("agent0001]\n[x", "p")], DIRS)
    with pytest.raises(RenderError, match="twice"):
        render_configs(_settings(), [SeatCredential("agent0001", "p")] * 2, DIRS)
    with pytest.raises(RenderError, match="empty password"):
        render_configs(_settings(), [SeatCredential("agent0001", "")], DIRS)


def test_empty_ami_secret_refused() -> None:
    with pytest.raises(RenderError, match="helpline up"):
        render_configs(_settings(ami_secret_api=""), _seats(1), DIRS)


def test_hosts_must_be_ip_addresses() -> None:
    with pytest.raises(RenderError, match="IP address"):
        render_configs(_settings(agi_host="agi.example"), _seats(1), DIRS)
    with pytest.raises(RenderError, match="trunk"):
        render_configs(_settings(trunk_address="127.0.0.1"), _seats(1), DIRS)


@pytest.mark.parametrize("n", [500, 1000])
def test_seats_become_endpoints_aors_and_auths(n: int) -> None:
    files = render_configs(_settings(), _seats(n), DIRS)
    pjsip = files["pjsip.conf"]
    names = [f"agent{i:04d}" for i in range(1, n + 1)]
    assert re.findall(r"^\[(agent\d{4})\]\(agent-endpoint\)$", pjsip, re.MULTILINE) == names
    assert re.findall(r"^\[(agent\d{4})\]\(agent-aor\)$", pjsip, re.MULTILINE) == names
    assert re.findall(r"^\[(agent\d{4})\]\(agent-auth\)$", pjsip, re.MULTILINE) == names
    # Digest HA1 only; the seats' passwords never reach a file.
    digests = re.findall(r"^password_digest = MD5:([0-9a-f]{32})$", pjsip, re.MULTILINE)
    assert digests[0] == hashlib.md5(b"agent0001:helpline:seat-pass-1").hexdigest()
    # Each seat also has its in-page phone's endpoint, with its own user name and digest.
    assert digests[1] == hashlib.md5(b"agent0001-web:helpline:seat-pass-1").hexdigest()
    assert len(digests) == 2 * n
    for text in files.values():
        assert "seat-pass-" not in text
    # Templates keep it readable: a handful of lines per seat.
    assert len(pjsip.splitlines()) < 150 + 20 * n


def test_trunk_identified_by_its_address_only() -> None:
    pjsip = render_configs(_settings(trunk_address="127.0.0.2"), _seats(3), DIRS)["pjsip.conf"]
    assert re.findall(r"^match = (.+)$", pjsip, re.MULTILINE) == ["127.0.0.2/32"]
    trunk = pjsip.split("[trunk]\ntype = endpoint", 1)[1].split("\n\n", 1)[0]
    for line in (
        "context = from-trunk",
        "allow = ulaw",
        "dtmf_mode = rfc4733",
        "rtp_symmetric = yes",
        "direct_media = no",
    ):
        assert line in trunk
    assert "bind = 127.0.0.1:5060" in pjsip
    assert "max_contacts = 1" in pjsip and "remove_existing = yes" in pjsip


def test_ami_secrets_only_in_manager_conf() -> None:
    files = render_configs(_settings(), _seats(5), DIRS)
    manager = files["manager.conf"]
    for service, secret in SECRETS.items():
        assert f"[helpline_{service}]\n" in manager
        assert f"secret = {secret}\n" in manager
        for name, text in files.items():
            if name != "manager.conf":
                assert secret not in text, name
    assert "bindaddr = 127.0.0.1" in manager
    assert manager.count("permit = 127.0.0.1/255.255.255.255") == len(AMI_SERVICES)
    assert "channelvars = IVR_DONE,IVR_PATH,IVR_LANG,IVR_ROUTE" in manager
    assert "disabledevents = Newexten,VarSet," in manager


def test_modules_explicit_and_minimal() -> None:
    modules = render_configs(_settings(), _seats(1), DIRS)["modules.conf"]
    assert "autoload = no" in modules
    loaded = re.findall(r"^load = (\S+)$", modules, re.MULTILINE)
    for needed in ("chan_pjsip.so", "app_queue.so", "res_agi.so", "pbx_config.so", "codec_ulaw.so"):
        assert needed in loaded
    assert len(loaded) == len(set(loaded)) < 80


def test_queue_and_dialplan_follow_settings() -> None:
    s = _settings(queue_name="grievance", queue_strategy="leastrecent", agi_port=4999)
    files = render_configs(s, _seats(1), DIRS)
    queues = files["queues.conf"]
    assert "grievance" in _sections(queues)
    for line in (
        "strategy = leastrecent",
        "ringinuse = no",
        "joinempty = yes",
        "leavewhenempty = no",
        "persistentmembers = no",
        "announce-position = no",
        "announce-holdtime = no",
        "context = waiting-room-keys",
    ):
        assert line in queues
    ext = files["extensions.conf"]
    assert "AGI(agi://127.0.0.1:4999/ivr)" in ext
    assert "exten => 1076,1," in ext
    assert '$["${IVR_DONE}" != "1"]?fallback' in ext
    assert "Set(IVR_FALLBACK=1)" in ext
    assert "HELPLINE_QUEUE = grievance" in ext
    assert "agents" in _sections(ext)
    rtp = files["rtp.conf"]
    assert "rtpstart = 10000" in rtp and "rtpend = 20000" in rtp
    ast = files["asterisk.conf"]
    assert "astetcdir => /srv/helpline/unit/etc" in ast
    assert "astrundir => /srv/helpline/unit/run" in ast


def test_wrapup_is_rendered_from_the_one_constant() -> None:
    """queues.conf's wrap-up is the one the supervisors' figures count (core.domain.queues)."""
    queues = render_configs(_settings(), _seats(1), DIRS)["queues.conf"]
    found = re.findall(r"^wrapuptime = (\d+)$", queues, flags=re.MULTILINE)
    assert len(found) == len(_sections(queues)) - 1  # every queue ([general] has none)
    assert set(found) == {str(WRAPUP_SECONDS)}


def test_instance_paths_are_per_instance(tmp_path: Path) -> None:
    a = AsteriskInstance(_settings(instance="one", asterisk_root=tmp_path / "root"))
    b = AsteriskInstance(_settings(instance="two", asterisk_root=tmp_path / "root"))
    assert a.sounds_dir("hi") == tmp_path / "root/srv/helpline/one/data/sounds/hi/helpline"
    assert b.sounds_dir("en") == tmp_path / "root/srv/helpline/two/data/sounds/en/helpline"
    assert a.config_path == "/srv/helpline/one/etc/asterisk.conf"
    with pytest.raises(ValueError):
        a.sounds_dir("fr")
    assert not a.is_running()


def test_mirror_read_from_apt_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# comment\nURIs: http://mirror.invalid/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.invalid/debian/\nSuites: bookworm bookworm-updates\n"
        "Components: main\n",
        encoding="utf-8",
    )
    assert debian_mirror_from_apt(tmp_path) == "http://mirror.invalid/debian"
    other = tmp_path / "other"
    other.mkdir()
    (other / "sources.list").write_text(
        "# deb http://nope.invalid/debian bookworm main\n"
        "deb [arch=amd64] http://list.invalid/debian bookworm main\n",
        encoding="utf-8",
    )
    assert debian_mirror_from_apt(other) == "http://list.invalid/debian"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ProvisionError, match="no Debian mirror"):
        debian_mirror_from_apt(empty)
