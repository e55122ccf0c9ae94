"""Every atheris target in fuzz/ runs in the suite at a small size, and finds nothing.

Each target runs in a subprocess (libFuzzer owns the process) for ``HELPLINE_FUZZ_RUNS``
inputs (default 2,000), stopped after ``HELPLINE_FUZZ_SECONDS`` (default 3) if slower, and
must end cleanly having run at least :data:`MIN_RUNS`; the inputs run per target are printed.
``make fuzz`` is the long run (``FUZZ_RUNS``, 100,000 each). A crash leaves its input in a
temporary directory, named in the failure.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")

REPO = Path(__file__).resolve().parents[2]
TARGETS = sorted(path.name for path in (REPO / "fuzz").glob("fuzz_*.py"))
RUNS = int(os.environ.get("HELPLINE_FUZZ_RUNS", "2000"))
SECONDS = int(os.environ.get("HELPLINE_FUZZ_SECONDS", "3"))
#: Fewer than this in the time given means the target is too slow to fuzz, or broken early.
MIN_RUNS = 100
DONE = re.compile(r"^Done (\d+) (?:runs )?in (\d+) second", re.MULTILINE)


def test_every_parser_has_a_target() -> None:
    assert set(TARGETS) >= {
        "fuzz_agi_env.py",
        "fuzz_agi_reply.py",
        "fuzz_ami.py",
        "fuzz_caller_number.py",
        "fuzz_complaint_number.py",
        "fuzz_ivr_data.py",
        "fuzz_reference_csv.py",
        "fuzz_sms_templates.py",
    }


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_target_runs_clean(
    target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "fuzz" / target),
            f"-atheris_runs={RUNS}",
            f"-max_total_time={SECONDS}",
            f"-artifact_prefix={tmp_path}/",
            "-print_final_stats=0",
        ],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=SECONDS + 60,
    )
    tail = "\n".join(proc.stderr.splitlines()[-25:])
    assert proc.returncode == 0, f"{target} crashed (inputs in {tmp_path}):\n{tail}"
    done = DONE.search(proc.stderr)
    assert done is not None, tail
    runs = int(done.group(1))
    with capsys.disabled():
        print(f"\nfuzz {target}: {runs} inputs in {done.group(2)} s, 0 crashes", end="")
    assert runs >= MIN_RUNS, f"{target}: only {runs} inputs in {SECONDS} s"
