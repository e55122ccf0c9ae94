"""Call recordings: where a call's file lives, how long its audio is, and when it may go.

Pure rules (no I/O), shared by the queue manager (which records the file's row), the retention
pass (lifecycle.recordings) and the API (which plays it). The dialplan names the file the same
way (asterisk_config/templates/extensions.conf.j2, ``RECORDING``).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from core.domain.complaints import ComplaintStatus
from core.domain.lifecycle import FINAL

#: MixMonitor writes ``wav``: 8 kHz, 16-bit, mono PCM behind a 44-byte RIFF header.
WAV_HEADER_BYTES = 44
WAV_BYTES_PER_SECOND = 8000 * 2

#: An Asterisk uniqueid: ``[<systemname>-]<epoch>.<sequence>`` (ours name the instance,
#: ``helpline-main-1796522470.12``); the epoch has 10 digits from 2001 to 2286.
_UNIQUEID = re.compile(r"(?:[A-Za-z0-9_-]{1,64}-)?([0-9]{10})\.[0-9]{1,12}")
#: A path ``recording_path`` makes: nothing else is ever opened under the recordings directory.
_PATH = re.compile(
    r"[0-9]{4}/[0-9]{2}/[0-9]{2}/(?:[A-Za-z0-9_-]{1,64}-)?[0-9]{10}\.[0-9]{1,12}\.wav"
)


def recording_path(uniqueid: str) -> str | None:
    """The file of the call ``uniqueid``, relative to the recordings directory:
    ``YYYY/MM/DD/<uniqueid>.wav`` under the UTC day of the uniqueid's epoch (the dialplan's
    ``STRFTIME`` of the 10 digits before the dot); None for a uniqueid of another shape."""
    match = _UNIQUEID.fullmatch(uniqueid)
    if match is None:
        return None
    day = datetime.fromtimestamp(int(match.group(1)), UTC)
    return f"{day:%Y/%m/%d}/{uniqueid}.wav"


def is_recording_path(path: str) -> bool:
    """Whether ``path`` is one :func:`recording_path` makes (relative, no ``..``)."""
    return _PATH.fullmatch(path) is not None


def wav_duration_seconds(size: int) -> float:
    """Seconds of audio in a MixMonitor wav of ``size`` bytes."""
    return max(0, size - WAV_HEADER_BYTES) / WAV_BYTES_PER_SECOND


def retain_until(ended_at: datetime, retention_days: int) -> datetime:
    """The day a recording may be deleted: the call's end plus the retention period."""
    return ended_at + timedelta(days=retention_days)


class Keep(enum.StrEnum):
    """Why the retention pass keeps a recording (or ``DELETE``: it goes)."""

    DELETE = "delete"
    #: Its retention period has not run out.
    WITHIN_RETENTION = "within_retention"
    #: A complaint filed on its call is still open: the evidence stays until it closes.
    COMPLAINT_OPEN = "complaint_open"
    #: The call has not ended (no retention date yet).
    CALL_LIVE = "call_live"


@dataclass(frozen=True, slots=True)
class Decision:
    keep: Keep

    @property
    def delete(self) -> bool:
        return self.keep is Keep.DELETE


def decide(
    retain_until: datetime | None,
    as_of: datetime,
    complaint_statuses: Iterable[ComplaintStatus],
) -> Decision:
    """Whether a recording goes at ``as_of``: once its retention date has passed and every
    complaint filed on its call is closed or rejected (a call with no complaint: just the
    date). A pure function of its inputs: a pass that runs late, twice or in two processes
    at once decides alike."""
    if retain_until is None:
        return Decision(Keep.CALL_LIVE)
    if retain_until > as_of:
        return Decision(Keep.WITHIN_RETENTION)
    if any(status not in FINAL for status in complaint_statuses):
        return Decision(Keep.COMPLAINT_OPEN)
    return Decision(Keep.DELETE)
