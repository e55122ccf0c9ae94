"""The desk phone's part of the rendered config: Asterisk's TLS HTTP server, the WSS transport,
a WebRTC endpoint per seat beside its SIP one, and the dialplan that rings both (no Asterisk)."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest

from asterisk_config import AsteriskInstance, InstanceDirs, RenderError, SeatCredential
from asterisk_config.render import render_configs
from asterisk_config.tls import ensure_certificate, spki_sha256, tls_files
from core.config import AMI_SERVICES, Settings
from core.domain.queues import interface_of_seat, seat_of_interface, state_interface_of_seat

DIRS = InstanceDirs.under("/srv/helpline/unit")


def _settings(**kw: object) -> Settings:
    base: dict[str, object] = {f"ami_secret_{s}": f"secret-{s}-0123456789" for s in AMI_SERVICES}
    base.update(instance="unit", trunk_address="127.0.0.2", sip_host="127.0.0.1")
    base.update(kw)
    return Settings(**base)  # type: ignore[arg-type]


def _seats(n: int) -> list[SeatCredential]:
    return [SeatCredential(f"agent{i:04d}", f"seat-pass-{i}") for i in range(1, n + 1)]


def _section(text: str, header: str) -> str:
    """The lines of ``[header]`` (the first such section) up to the next section."""
    start = text.index(header if header.startswith("[") else f"[{header}]")
    rest = text[start:].split("\n", 1)[1]
    match = re.search(r"^\[", rest, re.MULTILINE)
    return rest[: match.start()] if match else rest


def test_http_conf_is_tls_only_on_the_wss_port() -> None:
    http = render_configs(_settings(wss_port=26489), _seats(1), DIRS)["http.conf"]
    settings = dict(re.findall(r"^(\w+) = (.+)$", http, re.MULTILINE))
    assert settings["enabled"] == "yes" and settings["tlsenable"] == "yes"
    assert settings["tlsbindaddr"] == "127.0.0.1:26489"
    assert settings["tlscertfile"] == "/srv/helpline/unit/etc/keys/webrtc.crt"
    assert settings["tlsprivatekey"] == "/srv/helpline/unit/etc/keys/webrtc.key"
    # No plain listener: neither a bind address nor a port for unencrypted HTTP.
    assert "bindaddr" not in settings and "bindport" not in settings


def test_wss_host_must_be_an_address_and_the_port_a_port() -> None:
    with pytest.raises(RenderError, match="wss_host"):
        render_configs(_settings(wss_host="phone.example"), _seats(1), DIRS)
    with pytest.raises(RenderError, match="wss_port"):
        render_configs(_settings(wss_port=70000), _seats(1), DIRS)
    with pytest.raises(RenderError):
        render_configs(_settings(wss_host="127.0.0.1\ntlsenable=no"), _seats(1), DIRS)


def test_every_seat_has_a_webrtc_endpoint_beside_its_sip_one() -> None:
    pjsip = render_configs(_settings(), _seats(3), DIRS)["pjsip.conf"]
    wss = _section(pjsip, "transport-wss")
    assert "protocol = wss" in wss
    template = _section(pjsip, "[agent-webrtc](!)")
    for line in (
        "transport = transport-wss",
        "context = agents",
        "allow = opus,ulaw",
        "webrtc = yes",
        "dtmf_mode = rfc4733",
        "media_address = 127.0.0.1",
        "bind_rtp_to_media_address = yes",
    ):
        assert line in template, line
    webs = re.findall(r"^\[(agent\d{4}-web)\]\(agent-webrtc\)$", pjsip, re.MULTILINE)
    assert webs == ["agent0001-web", "agent0002-web", "agent0003-web"]
    # Its own aor (one contact, a new tab replaces the old) and its own user name and digest.
    assert re.findall(r"^\[(agent\d{4}-web)\]\(agent-aor\)$", pjsip, re.MULTILINE) == webs
    auth = pjsip.split("[agent0002-web](agent-auth)\n", 1)[1].split("\n\n", 1)[0]
    assert "username = agent0002-web" in auth
    web_ha1 = hashlib.md5(b"agent0002-web:helpline:seat-pass-2").hexdigest()
    assert f"password_digest = MD5:{web_ha1}" in auth
    # The SIP endpoint keeps UDP and G.711 only: an external softphone works as before.
    sip = _section(pjsip, "[agent-endpoint](!)")
    assert "transport = transport-udp" in sip and "allow = ulaw" in sip and "webrtc" not in sip


def test_dialplan_rings_every_registered_phone_of_a_seat() -> None:
    ext = render_configs(_settings(), _seats(2), DIRS)["extensions.conf"]
    phones = _section(ext, "seat-phones")
    assert "exten => _age[n]tX.,1," in phones
    assert '${DEVICE_STATE(PJSIP/${EXTEN})}" = "UNAVAILABLE"' in phones
    assert '${DEVICE_STATE(PJSIP/${EXTEN}-web)}" = "UNAVAILABLE"' in phones
    assert "Dial(${RING})" in phones and "Hangup(20)" in phones
    hints = re.findall(r"^exten => (\S+),hint,(\S+)$", _section(ext, "seat-hints"), re.MULTILINE)
    assert hints == [
        ("agent0001", "PJSIP/agent0001&PJSIP/agent0001-web"),
        ("agent0002", "PJSIP/agent0002&PJSIP/agent0002-web"),
    ]
    # The queue's member and state interfaces name exactly these contexts (one mapping).
    local, hint = interface_of_seat("agent0002"), state_interface_of_seat("agent0002")
    assert local == "Local/agent0002@seat-phones" and seat_of_interface(local) == "agent0002"
    assert hint == "hint:agent0002@seat-hints"
    # Seat to seat rings both phones too.
    assert "Dial(Local/${EXTEN}@seat-phones,30)" in _section(ext, "agents")


def test_webrtc_modules_loaded_and_ice_available() -> None:
    files = render_configs(_settings(), _seats(1), DIRS)
    loaded = re.findall(r"^load = (\S+)$", files["modules.conf"], re.MULTILINE)
    for needed in (
        "res_http_websocket.so",
        "res_pjsip_transport_websocket.so",
        "res_srtp.so",
        "codec_opus_open_source.so",
        "res_format_attr_opus.so",
        "func_devstate.so",
    ):
        assert needed in loaded, needed
    assert "icesupport = yes" in files["rtp.conf"]


def test_certificate_made_once_kept_and_copied_into_the_instance(tmp_path: Path) -> None:
    settings = _settings(state_dir=tmp_path / "state", asterisk_root=tmp_path / "root")
    files = ensure_certificate(settings)
    assert files == tls_files(settings)
    assert files.key.stat().st_mode & 0o777 == 0o600
    text = subprocess.run(
        ["openssl", "x509", "-in", str(files.cert), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "IP Address:127.0.0.1" in text
    pin = spki_sha256(files.cert)
    assert len(pin) == 44 and pin.endswith("=")
    # A second run keeps the certificate (browsers that pinned it keep working).
    before = files.cert.read_bytes()
    ensure_certificate(settings)
    assert files.cert.read_bytes() == before
    # One near its end is renewed.
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3"),
            *("-keyout", str(files.key), "-out", str(files.cert), "-subj", "/CN=old"),
        ],
        capture_output=True,
        check=True,
    )
    ensure_certificate(settings)
    assert spki_sha256(files.cert) != pin and b"old" not in files.cert.read_bytes()
    # render() copies both into etc/keys (a chroot cannot read the state dir).
    instance = AsteriskInstance(settings)
    copied = instance._install_tls()
    keys = tmp_path / "root/srv/helpline/unit/etc/keys"
    assert sorted(p.name for p in copied) == ["webrtc.crt", "webrtc.key"]
    assert (keys / "webrtc.crt").read_bytes() == files.cert.read_bytes()
    assert (keys / "webrtc.key").stat().st_mode & 0o777 == 0o600
    assert instance._install_tls() == []  # unchanged: nothing rewritten
