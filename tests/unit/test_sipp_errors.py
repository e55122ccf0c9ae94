"""Reading sipp's error log (helpline/sipp.py): entries sipp wrote without a newline between
them are still told apart, so a BYE crossing our own (a hang-up glare) is seen."""

from __future__ import annotations

from pathlib import Path

from helpline.sipp import _tail


def test_entries_run_together_are_split_and_the_bye_kept(tmp_path: Path) -> None:
    path = tmp_path / "citizen.errors"
    path.write_text(
        "The following events occurred:\n"
        "2026-12-06\t08:55:24.584219\t1796547324.584219: Call-Id: 1-28710@127.0.0.2, receive "
        "timeout on message helpline citizen:8, jumping to label 10"
        "2026-12-06\t08:55:24.584446\t1796547324.584446: Aborting call on an unexpected BYE for "
        "call: 1-28710@127.0.0.2\n"
    )
    tail = _tail(path)
    assert "jumping to label" not in tail  # our own scripted timeout: dropped
    assert tail.endswith("Aborting call on an unexpected BYE for call: 1-28710@127.0.0.2")
