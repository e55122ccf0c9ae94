"""One way in: every entry point reads its settings with ``Settings.load()``, so each sees the
instance's files, above all the secrets ``helpline up`` generated into ``secrets.env`` (a
service built from ``Settings()`` alone would log in to AMI with an empty secret)."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import uvicorn

import agi_scripts.__main__
import agi_scripts.service
import api.__main__
import api.app
import queue_manager.__main__
import queue_manager.service
from core.config import AMI_SERVICES, Settings
from helpline import cli

#: The module, not the function the package re-exports under the same name.
provisioning = importlib.import_module("asterisk_config.provision")
SECRETS = {service: f"generated-{service}-secret" for service in AMI_SERVICES}


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An instance whose secrets and port exist only in its state files."""
    for name in os.environ:
        if name.startswith("HELPLINE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HELPLINE_STATE_DIR", str(tmp_path))
    (tmp_path / "secrets.env").write_text(
        "".join(f"HELPLINE_AMI_SECRET_{s.upper()}={v}\n" for s, v in SECRETS.items())
    )
    (tmp_path / "instance.env").write_text("HELPLINE_API_PORT=18123\n")
    return tmp_path


Seen = list[Settings]


def _serving(seen: Seen) -> Callable[..., Any]:
    async def serve(settings: Settings, *args: object, **kwargs: object) -> None:
        seen.append(settings)

    return serve


def _app(seen: Seen) -> Callable[[Settings], object]:
    def create_app(settings: Settings) -> object:
        seen.append(settings)
        return object()

    return create_app


def run_api(mp: pytest.MonkeyPatch, seen: Seen) -> None:
    mp.setattr(api.__main__, "create_app", _app(seen))
    mp.setattr(uvicorn, "run", lambda *a, **k: None)
    api.__main__.main()


def run_queue_manager(mp: pytest.MonkeyPatch, seen: Seen) -> None:
    mp.setattr(queue_manager.__main__, "serve", _serving(seen))
    queue_manager.__main__.main()


def run_agi(mp: pytest.MonkeyPatch, seen: Seen) -> None:
    mp.setattr(agi_scripts.__main__, "serve", _serving(seen))
    agi_scripts.__main__.main()


def run_provision(mp: pytest.MonkeyPatch, seen: Seen) -> None:
    def provision(settings: Settings, **kwargs: object) -> None:
        seen.append(settings)

    mp.setattr(provisioning, "provision", provision)
    assert provisioning.main([]) == 0


def run_cli(command: str) -> Callable[[pytest.MonkeyPatch, Seen], None]:
    def run(mp: pytest.MonkeyPatch, seen: Seen) -> None:
        mp.setattr(agi_scripts.service, "serve", _serving(seen))
        mp.setattr(queue_manager.service, "serve", _serving(seen))
        mp.setattr(api.app, "create_app", _app(seen))
        mp.setattr(uvicorn, "run", lambda *a, **k: None)
        assert cli.main([command]) == 0

    return run


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param(run_api, id="python -m api"),
        pytest.param(run_queue_manager, id="python -m queue_manager"),
        pytest.param(run_agi, id="python -m agi_scripts"),
        pytest.param(run_provision, id="python -m asterisk_config"),
        pytest.param(run_cli("agi"), id="helpline agi"),
        pytest.param(run_cli("queue-manager"), id="helpline queue-manager"),
        pytest.param(run_cli("api"), id="helpline api"),
    ],
)
def test_each_entry_point_reads_the_generated_secrets(
    entry: Callable[[pytest.MonkeyPatch, Seen], None],
    state_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: Seen = []
    entry(monkeypatch, seen)
    (settings,) = seen
    assert settings.state_dir == state_dir.resolve()
    assert {s: settings.ami_secret(s) for s in AMI_SERVICES} == SECRETS
    assert settings.api_port == 18123


def test_settings_built_directly_do_not_see_them(state_dir: Path) -> None:
    """Why the entry points must not build ``Settings()``: it reads the environment only."""
    assert Settings().ami_secret("queue_manager") == ""
    assert Settings.load().ami_secret("queue_manager") == SECRETS["queue_manager"]
