"""The whole helpline on real parts for integration tests: a real Asterisk 22 instance of its
own (ports apart from the demo instance's), real PostgreSQL, our services as subprocesses,
brought up by the same functions ``helpline up`` uses."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from asterisk_config.instance import AsteriskInstance
from core import logs
from core.config import Settings
from core.db.session import create_engine, session_factory
from helpline import services
from helpline.cli import prepare_asterisk, seed, wait_healthy
from helpline.secrets import ensure_secrets
from tests.conftest import fresh_database

#: Shifts every port of the test instance, so that two test runs on one machine do not collide
#: (the demo instance uses 5038/5060/4573/8000).
PORT_OFFSET = int(os.environ.get("HELPLINE_TEST_PORT_OFFSET", "0"))
TEST_INSTANCE = {
    "HELPLINE_INSTANCE": f"itest{PORT_OFFSET or ''}",
    "HELPLINE_AMI_PORT": str(26038 + PORT_OFFSET),
    "HELPLINE_SIP_PORT": str(26060 + PORT_OFFSET),
    "HELPLINE_AGI_PORT": str(26573 + PORT_OFFSET),
    "HELPLINE_API_PORT": str(26000 + PORT_OFFSET),
    "HELPLINE_WSS_PORT": str(26089 + PORT_OFFSET),
    "HELPLINE_RTP_PORT_START": str(31000 + PORT_OFFSET * 10),
    "HELPLINE_RTP_PORT_END": str(31999 + PORT_OFFSET * 10),
    # The dialer runs with the stack but dials nothing unless a test lets it
    # (tests/integration/test_dialer.py): no stray calls through the trunk in other tests.
    "HELPLINE_DAILY_OUTBOUND_BUDGET": "0",
}


@pytest.fixture(scope="session")
def stack_database() -> Iterator[str]:
    with fresh_database("itest") as url:
        yield url


@pytest.fixture(scope="session")
def stack_settings(
    stack_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """Asterisk + agi + queue-manager + api for the test instance; torn down at the end."""
    state_dir: Path = tmp_path_factory.mktemp("helpline-itest")
    lines = [f"{key}={value}" for key, value in TEST_INSTANCE.items()]
    lines.append(f"HELPLINE_DATABASE_URL={stack_database}")
    (state_dir / "instance.env").write_text("\n".join(lines) + "\n")
    settings = ensure_secrets(Settings.load(state_dir))
    seats = seed(settings)
    prepare_asterisk(settings, seats)
    try:
        for name in services.SERVICES:
            services.start(settings, name)
        wait_healthy(settings, timeout=60)
        yield settings
    finally:
        for name in reversed(services.SERVICES):
            services.stop(settings, name)
        AsteriskInstance(settings).stop()
    # After every test on the stack: no full phone number in our services' logs (DPDP; the
    # in-process scan of complaint texts is tests/service/test_log_privacy.py).
    leaks = numbers_in_logs(settings)
    print(f"\nlog privacy: {len(services.SERVICES)} service logs scanned, {len(leaks)} leaks")
    assert not leaks, "full phone numbers in the services' logs:\n" + "\n".join(leaks)


@pytest.fixture(autouse=True)
def services_back_after_the_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that stops a service (the queue manager, FastAGI...) and fails before starting it
    again must not fail every test after it: whatever is down afterwards is started again."""
    yield
    if "stack_settings" not in request.fixturenames:
        return
    settings: Settings = request.getfixturevalue("stack_settings")
    down = [name for name in services.SERVICES if not services.state(settings, name).running]
    for name in down:
        services.start(settings, name)
    if down:
        wait_healthy(settings, timeout=60)


def numbers_in_logs(settings: Settings) -> list[str]:
    """Lines of our services' log files holding a valid Indian phone number (Asterisk's own
    log is not ours: it records caller IDs by design, and stays on the machine)."""
    leaks = []
    for name in services.SERVICES:
        path = services.log_file(settings, name)
        if not path.exists():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if logs.mask_numbers(line) != line:
                leaks.append(f"{path.name}:{number}: {line[:200]}")
    return leaks


@pytest.fixture(scope="session")
def demo_users(stack_settings: Settings) -> dict[str, list[dict[str, str]]]:
    users: dict[str, list[dict[str, str]]] = json.loads(
        (stack_settings.state_dir / "demo-credentials.json").read_text()
    )
    return users


@pytest.fixture
async def db(stack_settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the test instance's database (to check what the services stored)."""
    engine = create_engine(stack_settings, pool_size=2)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def api(stack_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the test instance's API, as an agent's desk or a supervisor uses it."""
    base = f"http://{stack_settings.api_host}:{stack_settings.api_port}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        yield client
