"""Call recordings, played from the complaint filed on the call.

Who may is :data:`api.services.access.OWNERSHIP`'s ``recording`` row: supervisors, the CM
office and admins, any complaint's; an officer, a complaint within their jurisdiction (the
same condition as reading it: others get 404, as for the complaint); an agent, only a
complaint filed on a call they answered (their own conversation, for a dispute or their own
quality check; not their colleagues' calls, which hold citizens' voices and numbers they have
no reason to hear): on any other call the list is empty and the audio 404, as if it had none.
Each play writes an audit row (who, which complaint, which recording), committed before the
first byte is sent. A recording whose file the retention pass deleted, or that is missing, is
410 with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.schemas import RecordingOut
from api.services.access import complaint_scope, recording_scope
from api.services.errors import Gone, Invalid, NotFound
from core.config import Settings
from core.db.audit import audit
from core.db.models import Call, Complaint, Recording, User
from core.domain.complaints import is_valid_complaint_number
from core.domain.recordings import is_recording_path

#: The audio's media type (MixMonitor's 8 kHz 16-bit PCM wav).
MEDIA_TYPE = "audio/wav"


@dataclass(frozen=True, slots=True)
class Playable:
    """A recording's file, cleared for the viewer and audited."""

    path: Path
    filename: str


async def _complaint_call(session: AsyncSession, number: str, viewer: User) -> Call | None:
    """The call complaint ``number`` was filed on, if ``viewer`` may hear its recordings (None:
    no call, or an agent's on a call another agent answered); :class:`NotFound` outside their
    scope."""
    if not is_valid_complaint_number(number):
        raise Invalid(f"{number!r} is not a complaint number (10 digits with a valid check digit)")
    condition = Complaint.number == number
    scope = complaint_scope(viewer)
    if scope is not None:
        condition = and_(condition, scope)
    found = (
        await session.execute(
            select(Complaint.id, Call, recording_scope(viewer).label("may_hear"))
            .outerjoin(Call, Call.id == Complaint.call_id)
            .where(condition)
        )
    ).one_or_none()
    if found is None:
        raise NotFound(f"no complaint {number}")
    call: Call | None = found[1]
    if call is None or not found.may_hear:
        return None
    return call


def _unavailable(recording: Recording, root: Path) -> str | None:
    if recording.deleted_at is not None:
        reason = recording.deleted_reason or "deleted"
        return f"{reason} (deleted {recording.deleted_at.isoformat()})"
    if recording.ended_at is None:
        return "the call is still being recorded"
    if not is_recording_path(recording.path) or not (root / recording.path).is_file():
        return "the file is missing"
    return None


async def for_complaint(
    session: AsyncSession, settings: Settings, number: str, *, viewer: User
) -> list[RecordingOut]:
    """The recordings of the call complaint ``number`` was filed on (none for a complaint
    filed without a call)."""
    call = await _complaint_call(session, number, viewer)
    if call is None:
        return []
    root = Path(settings.recordings_dir)
    rows = (
        await session.execute(
            select(Recording).where(Recording.call_id == call.id).order_by(Recording.id)
        )
    ).scalars()
    out = []
    for row in rows:
        unavailable = _unavailable(row, root)
        out.append(
            RecordingOut(
                id=row.id,
                call=call.uniqueid,
                started_at=row.started_at,
                ended_at=row.ended_at,
                duration_seconds=row.duration_seconds,
                bytes=row.bytes,
                retain_until=row.retain_until,
                playable=unavailable is None,
                unavailable=unavailable,
            )
        )
    return out


async def play(
    session: AsyncSession,
    settings: Settings,
    number: str,
    recording_id: int,
    *,
    viewer: User,
    byte_range: str | None = None,
) -> Playable:
    """Clear recording ``recording_id`` of complaint ``number`` for ``viewer`` and write the
    play's audit row (committed); :class:`Gone` if its file is deleted or missing."""
    call = await _complaint_call(session, number, viewer)
    recording = None
    if call is not None:
        recording = (
            await session.execute(
                select(Recording).where(Recording.id == recording_id, Recording.call_id == call.id)
            )
        ).scalar_one_or_none()
    if recording is None:
        raise NotFound(f"no recording {recording_id} of complaint {number} that you may hear")
    root = Path(settings.recordings_dir)
    unavailable = _unavailable(recording, root)
    if unavailable is not None:
        raise Gone(f"recording {recording_id} cannot be played: {unavailable}")
    assert call is not None
    audit(
        session,
        service="api",
        actor_user_id=viewer.id,
        action="recording_played",
        entity="recording",
        entity_id=str(recording.id),
        detail={
            "complaint": number,
            "call": call.uniqueid,
            "role": viewer.role,
            **({"range": byte_range[:100]} if byte_range else {}),
        },
    )
    await session.commit()
    return Playable(root / recording.path, f"complaint-{number}-recording-{recording.id}.wav")
