"""The recordings' pure rules: file names, durations, and when the retention pass may delete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asterisk_config import InstanceDirs, SeatCredential
from asterisk_config.render import render_configs
from core.config import AMI_SERVICES, Settings
from core.domain.complaints import ComplaintStatus
from core.domain.lifecycle import FINAL
from core.domain.recordings import (
    Keep,
    decide,
    is_recording_path,
    recording_path,
    retain_until,
    wav_duration_seconds,
)

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
OPEN = [s for s in ComplaintStatus if s not in FINAL]


def test_the_file_is_named_by_the_uniqueid_under_its_utc_day() -> None:
    # 1733443200 is 2024-12-06T00:00:00Z: the day of the uniqueid's epoch, not of today.
    assert recording_path("1733443200.17") == "2024/12/06/1733443200.17.wav"
    assert recording_path("1733443199.3") == "2024/12/05/1733443199.3.wav"
    # Our instances set a systemname (asterisk.conf), which Asterisk puts first.
    assert recording_path("helpline-main-1733443200.5") == (
        "2024/12/06/helpline-main-1733443200.5.wav"
    )
    for bad in ("", "abc", "1733443200", "../1733443200.2", "1733443200.2/3", "17334432.1"):
        assert recording_path(bad) is None


@given(
    st.from_regex(r"(helpline-[a-z0-9]{1,10}-)?", fullmatch=True),
    st.integers(1_000_000_000, 9_999_999_999),
    st.integers(0, 10**9),
)
def test_every_path_made_is_one_the_api_will_open(prefix: str, epoch: int, sequence: int) -> None:
    path = recording_path(f"{prefix}{epoch}.{sequence}")
    assert path is not None and is_recording_path(path)
    assert not path.startswith("/") and ".." not in path


def test_paths_from_elsewhere_are_refused() -> None:
    for bad in (
        "/etc/passwd",
        "2024/12/06/../../x.wav",
        "2024/12/06/1733443200.2.mp3",
        "x/1733443200.2.wav",
        "2024/12/06/a/b-1733443200.2.wav",
    ):
        assert not is_recording_path(bad)


def test_duration_is_the_pcm_data_at_8_khz_16_bit() -> None:
    assert wav_duration_seconds(44) == 0
    assert wav_duration_seconds(0) == 0
    assert wav_duration_seconds(44 + 16_000) == 1.0
    assert wav_duration_seconds(44 + 8_000) == 0.5


def test_retention_runs_from_the_calls_end() -> None:
    assert retain_until(NOW, 365) == NOW + timedelta(days=365)


def test_a_live_call_and_a_recording_within_retention_are_kept() -> None:
    assert decide(None, NOW, []).keep is Keep.CALL_LIVE
    assert decide(NOW + timedelta(seconds=1), NOW, []).keep is Keep.WITHIN_RETENTION
    assert decide(NOW + timedelta(days=1), NOW, [ComplaintStatus.CLOSED]).keep is (
        Keep.WITHIN_RETENTION
    )


def test_past_retention_with_no_complaint_or_only_final_ones_it_goes() -> None:
    assert decide(NOW, NOW, []).delete
    assert decide(NOW - timedelta(days=1), NOW, [ComplaintStatus.CLOSED]).delete
    assert decide(NOW - timedelta(days=1), NOW, list(FINAL)).delete


@pytest.mark.parametrize("status", OPEN)
def test_a_complaint_still_open_keeps_its_calls_recording(status: ComplaintStatus) -> None:
    decision = decide(NOW - timedelta(days=400), NOW, [ComplaintStatus.CLOSED, status])
    assert decision.keep is Keep.COMPLAINT_OPEN and not decision.delete


@given(
    st.integers(-1000, 1000),
    st.lists(st.sampled_from(list(ComplaintStatus)), max_size=4),
)
def test_the_decision_is_deletion_exactly_when_due_and_nothing_is_open(
    days: int, statuses: list[ComplaintStatus]
) -> None:
    decision = decide(NOW + timedelta(days=days), NOW, statuses)
    assert decision.delete == (days <= 0 and all(s in FINAL for s in statuses))
    # Deciding again gives the same answer (two passes at once agree).
    assert decide(NOW + timedelta(days=days), NOW, statuses) == decision


def test_the_dialplan_records_before_the_queue_with_the_same_file_name() -> None:
    secrets = {f"ami_secret_{s}": f"secret-{s}-0123456789abcdef" for s in AMI_SERVICES}
    settings = Settings(instance="rec", **secrets)  # type: ignore[arg-type]
    dirs = InstanceDirs.under(settings.asterisk_instance_dir)
    files = render_configs(settings, [SeatCredential("agent0001", "seat-pass")], dirs)
    dialplan = files["extensions.conf"]
    record = dialplan.index("MixMonitor(/srv/helpline/rec/recordings/${RECORDING},b)")
    assert dialplan.index("STRFTIME(${RECORDING_EPOCH:-10},UTC,%Y/%m/%d)}/${UNIQUEID}.wav") < record
    assert record < dialplan.index("Queue(${QUEUE_NAME}")
    assert "exten => s,1,StopMixMonitor()" in dialplan
    assert "hangup_handler_push)=recording-stop,s,1" in dialplan
    assert "load = app_mixmonitor.so" in files["modules.conf"]
    assert "load = func_cut.so" in files["modules.conf"]
    assert settings.recordings_dir == settings.asterisk_root.absolute() / (
        "srv/helpline/rec/recordings"
    )
