"""``helpline capacity`` with given figures: no database, the same answer as the formulas,
text or JSON, exit 3 when the seats are not enough, refusals of bad figures."""

from __future__ import annotations

import json

import pytest

from core.domain import erlang
from helpline import cli


@pytest.fixture(autouse=True)
def no_database(monkeypatch: pytest.MonkeyPatch) -> None:
    """Given figures must not touch a database: one that does not exist, and 500 seats."""
    monkeypatch.setenv("HELPLINE_DATABASE_URL", "postgresql+asyncpg://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("HELPLINE_SEAT_COUNT", "500")


def test_given_figures_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["capacity", "--calls-per-hour", "200", "--aht", "180", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 3  # the seats are not enough (below)
    assert out["now"]["agents_needed"] == 14
    assert out["now"]["erlangs"] == 10.0
    assert out["design_peak"]["agents_needed"] == erlang.agents_needed(11_968, 180)
    assert out["seats_configured"] == 500
    assert out["agents_logged_in"] is None and out["calls_today"] is None
    assert out["seats_suffice"] is False  # 609 agents for the design day at 3 minutes
    assert out["verdict"].startswith("NOT ENOUGH SEATS")


def test_given_figures_as_text_and_the_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["capacity", "--calls-per-hour", "1200", "--aht", "100", "--patience", "90"])
    lines = capsys.readouterr().out.splitlines()
    needed = erlang.agents_needed(1200, 100, patience_s=90)
    assert code == 0  # the design day's 11,968 calls/h at 100 s fit in 500 seats
    assert (
        lines[0]
        == "target: 80% answered within 20 s (Erlang A, patience 90 s); handle time 100 s (given)"
    )
    assert lines[1].startswith(f"now (given): 1,200 calls/h -> {needed} agents (service level")
    assert "abandoned" in lines[1]
    assert lines[-2] == "seats configured: 500; agents logged in: unknown"
    assert lines[-1].startswith("seats suffice: 500 configured")


def test_bad_figures_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["capacity", "--calls-per-hour", "200", "--aht", "180", "--target", "1"]) == 1
    assert "target" in capsys.readouterr().err
    assert cli.main(["capacity", "--calls-per-hour", "90000", "--aht", "180"]) == 1
    assert "calls_per_hour" in capsys.readouterr().err
