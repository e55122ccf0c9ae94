"""``python -m bench api --quick`` still runs (it needs PostgreSQL, hence here and not with the
other benchmarks' smoke tests in tests/unit): migrates its own database, seeds it, serves it
with ours and the psycopg peer in turn and drives both with the open-loop generator."""

from __future__ import annotations

import shutil

import pytest

from tests.unit.test_bench_smoke import run_bench


@pytest.mark.skipif(shutil.which("gcc") is None, reason="the HTTP load generator needs gcc")
def test_api_bench_runs() -> None:
    """Both answer every kind of the mix, and every filing answered 201 is stored (the bench's
    consistency check). The quick run's latencies say nothing (a second of load on a shared
    machine), so they are not asserted; the full run is ``python -m bench api``."""
    code, result = run_bench("api", timeout=300)
    assert code == 0, result["failed_criteria"]
    assert result["consistency"]["filings_answered"] > 0
    for side in ("ours", "peer"):
        at_rate = result[side]["at_rate"]
        assert at_rate["requests"] == int(result["config"]["rate"] * result["config"]["seconds"])
        for kind in ("read", "list", "create"):
            answered = at_rate["by_kind"][kind]["requests"] - at_rate["by_kind"][kind]["errors"]
            assert answered > 0, (side, kind, at_rate)
        assert result[side]["saturation"]["steps"], side
        assert result[side]["server_cpu_ms_per_request"] > 0
