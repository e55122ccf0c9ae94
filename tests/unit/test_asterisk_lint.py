"""The boundary lint over the rendered configuration: clean as rendered, and each rule catches
a rendered file mutated to break it (asterisk_config/lint.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from asterisk_config.__main__ import main
from asterisk_config.lint import RULES, lint_files, lint_rendered, secret_weakness
from asterisk_config.render import InstanceDirs, SeatCredential, render_configs
from core.config import AMI_SERVICES, Settings
from core.domain.credentials import generate_secret

DIRS = InstanceDirs.under("/srv/helpline/lint")


def _rendered() -> dict[str, str]:
    settings = Settings(
        instance="lint",
        trunk_address="127.0.0.2",
        sip_host="127.0.0.1",
        **{f"ami_secret_{s}": generate_secret() for s in AMI_SERVICES},  # type: ignore[arg-type]
    )
    seats = [SeatCredential(f"agent{i:04d}", generate_secret()) for i in (1, 2, 3)]
    return render_configs(settings, seats, DIRS)


def test_the_rendered_configuration_passes_the_lint(tmp_path: Path) -> None:
    files = _rendered()
    assert lint_rendered(files, tmp_path) == []
    assert main(["lint", str(tmp_path)]) == 0


def _user(files: dict[str, str], service: str) -> str:
    block = re.search(
        rf"^\[helpline_{service}\]\n(?:[^\[].*\n|\n)*", files["manager.conf"], re.MULTILINE
    )
    assert block is not None
    return block[0]


def _in_user(service: str, old: str, new: str) -> Callable[[dict[str, str]], None]:
    def mutate(files: dict[str, str]) -> None:
        block = _user(files, service)
        assert re.search(old, block, re.MULTILINE), old
        files["manager.conf"] = files["manager.conf"].replace(
            block, re.sub(old, new, block, count=1, flags=re.MULTILINE)
        )

    return mutate


def _sub(name: str, old: str, new: str) -> Callable[[dict[str, str]], None]:
    def mutate(files: dict[str, str]) -> None:
        assert re.search(old, files[name], re.MULTILINE), (name, old)
        files[name] = re.sub(old, new, files[name], flags=re.MULTILINE)

    return mutate


def _append(name: str, text: str) -> Callable[[dict[str, str]], None]:
    def mutate(files: dict[str, str]) -> None:
        files[name] = files.get(name, "") + text

    return mutate


def _share_secret(files: dict[str, str]) -> None:
    api = re.search(r"^secret = (.*)$", _user(files, "api"), re.MULTILINE)
    assert api is not None
    _in_user("queue_manager", r"^secret = .*$", f"secret = {api[1]}")(files)


EXTRA_USER = (
    f"\n[admin]\nsecret = {generate_secret()}\ndeny = 0.0.0.0/0.0.0.0\n"
    "permit = 127.0.0.1/255.255.255.255\nread = system\nwrite = call\n"
)
ANONYMOUS = "\n[anonymous]\ntype = endpoint\ncontext = from-trunk\n"

#: (rule, what the mutation does, the mutation)
MUTATIONS: list[tuple[str, str, Callable[[dict[str, str]], None]]] = [
    (
        "ami-loopback",
        "AMI on every address",
        _sub("manager.conf", r"^bindaddr = .*$", "bindaddr = 0.0.0.0"),
    ),
    (
        "ami-loopback",
        "AMI over HTTP",
        _sub("manager.conf", r"^webenabled = no$", "webenabled = yes"),
    ),
    (
        "fastagi-loopback",
        "a remote AGI server",
        _sub("extensions.conf", r"agi://127\.0\.0\.1", "agi://10.0.0.5"),
    ),
    (
        "fastagi-loopback",
        "a local AGI script",
        _sub("extensions.conf", r"AGI\(agi://[^/]*/ivr\)", "AGI(/bin/sh)"),
    ),
    (
        "http-loopback",
        "WSS on every address",
        _sub("http.conf", r"^tlsbindaddr = .*$", "tlsbindaddr = 0.0.0.0:8089"),
    ),
    ("http-loopback", "plain HTTP on every address", _append("http.conf", "bindaddr = 0.0.0.0\n")),
    ("ami-users", "an extra AMI user", _append("manager.conf", EXTRA_USER)),
    (
        "ami-users",
        "a service without its user",
        _sub("manager.conf", r"^\[helpline_api\]$", "[helpline_ui]"),
    ),
    (
        "ami-privilege",
        "write system",
        _in_user("queue_manager", r"^write = .*$", "write = system,agent"),
    ),
    ("ami-privilege", "write command", _in_user("api", r"^write = .*$", "write = call,command")),
    (
        "ami-privilege",
        "write config",
        _in_user("outbound_dialer", r"^write = .*$", "write = originate,config"),
    ),
    (
        "ami-privilege",
        "originate for the API",
        _in_user("api", r"^write = .*$", "write = call,originate"),
    ),
    ("ami-privilege", "read all", _in_user("api", r"^read = .*$", "read = all")),
    ("ami-secret", "a short secret", _in_user("api", r"^secret = .*$", "secret = Xq7pLm2Z")),
    (
        "ami-secret",
        "a sample secret",
        _in_user("api", r"^secret = .*$", "secret = mysecretAB12cd34EF56"),
    ),
    (
        "ami-secret",
        "few distinct characters",
        _in_user("api", r"^secret = .*$", "secret = abababababababababababab"),
    ),
    ("ami-secret", "a shared secret", _share_secret),
    ("ami-acl", "no deny", _in_user("api", r"^deny = .*\n", "")),
    ("ami-acl", "permit any", _in_user("api", r"^permit = .*$", "permit = 0.0.0.0/0.0.0.0")),
    (
        "live-dangerously",
        "live_dangerously = yes",
        _sub("asterisk.conf", r"^live_dangerously = no$", "live_dangerously = yes"),
    ),
    (
        "live-dangerously",
        "live_dangerously left out",
        _sub("asterisk.conf", r"^live_dangerously = no\n", ""),
    ),
    ("no-guest", "an anonymous endpoint", _append("pjsip.conf", ANONYMOUS)),
    ("no-guest", "a seat without auth", _sub("pjsip.conf", r"^auth = agent0002$\n", "")),
    (
        "no-guest",
        "the trunk identified by a network",
        _sub("pjsip.conf", r"^match = 127\.0\.0\.2/32$", "match = 127.0.0.0/24"),
    ),
    ("no-guest", "chan_sip with guests", _append("sip.conf", "[general]\nallowguest = yes\n")),
    (
        "no-guest",
        "the anonymous identifier loaded",
        _append("modules.conf", "load => res_pjsip_endpoint_identifier_anonymous.so\n"),
    ),
]


@pytest.mark.parametrize(("rule", "what", "mutate"), MUTATIONS, ids=[m[1] for m in MUTATIONS])
def test_each_rule_catches_a_config_mutated_to_break_it(
    rule: str, what: str, mutate: Callable[[dict[str, str]], None]
) -> None:
    files = _rendered()
    mutate(files)
    findings = lint_files(files)
    assert findings, what
    assert {f.rule for f in findings} == {rule}, [str(f) for f in findings]


def test_every_rule_has_a_negative_test() -> None:
    assert {m[0] for m in MUTATIONS} == set(RULES)


def test_the_cli_fails_a_broken_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = _rendered()
    _sub("asterisk.conf", r"^live_dangerously = no$", "live_dangerously = yes")(files)
    lint_rendered(files, tmp_path)
    assert main(["lint", str(tmp_path)]) == 1
    assert "live-dangerously" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("secret", "weak"),
    [
        (generate_secret(), False),
        ("Zx81-Qp02_Lm93!Rt", False),
        ("a" * 40, True),
        ("0123456789012345", True),  # 16 digits: 53 bits
        ("amp111amp111amp111XYZ", True),
    ],
)
def test_secret_strength(secret: str, weak: bool) -> None:
    assert (secret_weakness(secret) is not None) is weak
