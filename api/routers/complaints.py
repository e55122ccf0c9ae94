"""Complaints, routed and stored exactly once (:mod:`api.services.complaints`), and their
actions (:mod:`api.services.transitions`: 409 illegal, 403 forbidden, 422 invalid): 201 when
stored now, 200 with the original for a replay, 422 for an unknown code or an
``Idempotency-Key`` reused for another body, 403 on a call another agent handled, 429 when the
caller's monthly cap is reached."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response, status
from fastapi.responses import FileResponse
from pydantic import AfterValidator

from api.deps import CurrentUser, ReferenceDep, SessionDep, SettingsDep, reads_only
from api.schemas import (
    CallerNumberOut,
    ComplaintCheckOut,
    ComplaintDetailOut,
    ComplaintIn,
    ComplaintOut,
    RecordingOut,
    TransitionIn,
    UnmaskIn,
)
from api.services import click, complaints, recordings, transitions
from core.domain.complaints import is_valid_complaint_number
from core.domain.phone import CallerNumber

router = APIRouter(prefix="/complaints", tags=["complaints"])


def _complaint_number(value: str) -> str:
    if not is_valid_complaint_number(value):
        raise ValueError("not a complaint number (10 digits with a valid check digit)")
    return value


#: A complaint number in a path: refused as FastAPI refuses any bad parameter (422, its shape).
ComplaintNumber = Annotated[str, Path(pattern=r"^[0-9]{10}$"), AfterValidator(_complaint_number)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"description": "a replay: the complaint stored before", "model": ComplaintOut},
        403: {"description": "the call was handled by another agent"},
        409: {"description": "no current call and no caller_number"},
        429: {"description": "the caller's complaints this month reached the cap"},
    },
)
async def create_complaint(
    body: ComplaintIn,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    reference: ReferenceDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
) -> ComplaintOut:
    registered = await complaints.register(
        session, settings, reference, user, body, idempotency_key
    )
    if not registered.created:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/complaints/{registered.complaint.number}"
    return registered.complaint


@router.get("/check")
async def check_complaint(
    caller: CallerNumber,
    category: str,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    reference: ReferenceDep,
) -> ComplaintCheckOut:
    """Before filing: an open complaint of this caller and category, and the monthly count."""
    return await complaints.check(session, settings, reference, caller, category)


@router.get("/{number}", responses={404: {"description": "no such complaint in your scope"}})
@reads_only
async def get_complaint(
    number: ComplaintNumber, user: CurrentUser, session: SessionDep, reference: ReferenceDep
) -> ComplaintDetailOut:
    """Status, officer, level, due date, resolution, reopen count and the history. Officers see
    complaints of their department within their jurisdiction (others: 404); officers and the
    CM office see the caller's number masked."""
    return await transitions.detail(session, reference, number, viewer=user)


@router.post(
    "/{number}/transitions",
    responses={
        403: {"description": "the action is legal, but not for this user"},
        404: {"description": "no such complaint in your scope"},
        409: {"description": "the complaint's status does not allow the action (reason given)"},
        422: {"description": "a note, officer or duplicate number the action needs is missing"},
    },
)
async def transition_complaint(
    number: ComplaintNumber,
    body: TransitionIn,
    user: CurrentUser,
    session: SessionDep,
    reference: ReferenceDep,
) -> ComplaintDetailOut:
    """Take an action on the complaint (start, resolve, reopen, reassign...): the complaint as
    it now stands, with its history."""
    return await transitions.act(session, reference, user, number, body)


@router.post(
    "/{number}/call",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        404: {"description": "no such complaint"},
        409: {
            "description": "outside the calling window, on the do-not-call list, not at a "
            "seat, click-to-call paused, or a call about it already on its way"
        },
        422: {"description": "no caller number, or not a mobile or landline the dialer may call"},
        429: {"description": "the budget allowed by now, the channels or the number's calls today"},
    },
)
async def call_citizen(
    number: ComplaintNumber, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    """Call the complaint's caller back through the dialer: your seat rings first, and when
    you answer the citizen is dialled and bridged. Counted in the day's outbound budget;
    audited. 202: the dialer claims it within its poll interval."""
    queued = await click.call_complaint(session, settings, user, number, datetime.now(UTC))
    await session.commit()
    return queued


@router.get("/{number}/call", responses={404: {"description": "no call of yours about it"}})
async def last_call(
    number: ComplaintNumber, user: CurrentUser, session: SessionDep
) -> dict[str, Any]:
    """Your latest click-to-call about the complaint: its state and outcome."""
    return await click.last_call(session, number, user)


@router.post(
    "/{number}/unmask", responses={404: {"description": "no such complaint in your scope"}}
)
async def unmask_caller_number(
    number: ComplaintNumber, body: UnmaskIn, user: CurrentUser, session: SessionDep
) -> CallerNumberOut:
    """The caller's full number, for a role that sees it masked, with a reason (required);
    the audit row (who, why) is committed before the number is returned."""
    return await complaints.unmask(session, number, viewer=user, reason=body.reason)


@router.get(
    "/{number}/recordings",
    responses={404: {"description": "no such complaint in your scope"}},
)
async def list_recordings(
    number: ComplaintNumber, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> list[RecordingOut]:
    """The recordings of the call the complaint was filed on: when, how long, playable (an
    agent: only of a call they answered)."""
    return await recordings.for_complaint(session, settings, number, viewer=user)


@router.get(
    "/{number}/recordings/{recording_id}/audio",
    response_class=FileResponse,
    responses={
        200: {"content": {recordings.MEDIA_TYPE: {}}, "description": "the recording (wav)"},
        206: {"content": {recordings.MEDIA_TYPE: {}}, "description": "the Range asked for"},
        404: {"description": "no such complaint in your scope, or no recording of it you may hear"},
        410: {"description": "deleted after its retention period, or its file is missing"},
    },
)
async def recording_audio(
    number: ComplaintNumber,
    recording_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
) -> FileResponse:
    """The recording's audio (8 kHz wav; Range requests answered with 206). Every request is
    a play, audited: who, when, which complaint and recording."""
    playable = await recordings.play(
        session,
        settings,
        number,
        recording_id,
        viewer=user,
        byte_range=request.headers.get("range"),
    )
    return FileResponse(
        playable.path,
        media_type=recordings.MEDIA_TYPE,
        filename=playable.filename,
        content_disposition_type="inline",
        headers={"Cache-Control": "no-store"},
    )


@router.get("")
@reads_only
async def list_complaints(
    user: CurrentUser,
    session: SessionDep,
    reference: ReferenceDep,
    caller: CallerNumber | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    unroutable: Annotated[bool, Query(description="only those no rule placed")] = False,
) -> list[ComplaintOut]:
    return await complaints.latest(
        session, reference, viewer=user, caller=caller, limit=limit, unroutable=unroutable
    )
