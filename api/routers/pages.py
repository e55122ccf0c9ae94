"""``GET /review`` (the CM office's monthly review) and ``GET /worklist`` (an officer's own
complaints): Jinja2 pages in Hindi with an English toggle, signed in as ``/wallboard`` is
(``#token=…`` or the login form); their script reads the JSON API and draws the chart as
inline SVG. ``GET /pages/reports.js`` serves that script (no CDN).

``GET /desk``: the agent desk (docs/agents.md), a server-rendered page in Hindi with an English
toggle whose labels are data (``api/static/desk/labels.json``), and its plain ES module and
style sheet from ``GET /pages/desk/{name}`` (our origin, no build step)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from api.schemas import DESCRIPTION_MAX, DESCRIPTION_MIN
from core.domain.calls import WrapupCode
from core.domain.clock import helpline_day
from core.domain.queues import PAUSE_REASONS

router = APIRouter(tags=["reports"], include_in_schema=False)

#: Every label of both pages: key -> (Hindi, English).
LABELS: dict[str, tuple[str, str]] = {
    "review_title": ("मासिक समीक्षा — मुख्यमंत्री कार्यालय", "Monthly review — CM office"),
    "worklist_title": ("मेरी शिकायतें", "My complaints"),
    "month": ("माह", "Month"),
    "show": ("दिखाएँ", "Show"),
    "login": ("प्रवेश करें", "Sign in"),
    "username": ("उपयोगकर्ता नाम", "user name"),
    "password": ("पासवर्ड", "password"),
    "received": ("प्राप्त", "Received"),
    "resolved": ("निस्तारित", "Resolved"),
    "resolved_within_sla": ("समय से निस्तारित", "Resolved in time"),
    "pending": ("लंबित", "Pending"),
    "overdue": ("समय-सीमा पार", "Overdue"),
    "sla_pct": ("समय-सीमा में %", "Within SLA %"),
    "satisfaction_pct": ("संतुष्टि %", "Satisfaction %"),
    "no_feedback": ("अभी प्रतिक्रिया नहीं", "no feedback yet"),
    "department": ("विभाग", "Department"),
    "district": ("जनपद", "District"),
    "by_department": ("विभागवार", "By department"),
    "by_district": ("जनपदवार", "By district"),
    "flagged": ("कार्रवाई हेतु चिन्हित विभाग", "Departments flagged for action"),
    "threshold": ("सीमा", "threshold"),
    "unroutable": ("जिन्हें कोई अधिकारी नहीं मिला", "Complaints no rule placed"),
    "number": ("शिकायत संख्या", "Number"),
    "reason": ("कारण", "Reason"),
    "status": ("स्थिति", "Status"),
    "category": ("श्रेणी", "Category"),
    "due": ("नियत तिथि", "Due"),
    "actions": ("कार्रवाई", "Actions"),
    "recording": ("कॉल रिकॉर्डिंग", "Call recording"),
    "play_recording": ("सुनें", "Play"),
    "no_recording": ("रिकॉर्डिंग नहीं", "no recording"),
    "chart": ("विभागवार लंबित व समय-सीमा पार", "Pending and overdue by department"),
    "none": ("कोई नहीं", "none"),
    "note_prompt": ("टिप्पणी लिखें", "Write a note"),
    "action_start": ("कार्य आरंभ", "Start"),
    "action_resolve": ("निस्तारण", "Resolve"),
    "action_request_closure": ("विशेष बंदी अनुरोध", "Request closure"),
    "csv": ("CSV डाउनलोड", "Download CSV"),
    "status_assigned": ("आवंटित", "assigned"),
    "status_in_progress": ("कार्यवाही जारी", "in progress"),
    "status_reopened": ("पुनः खोली गई", "reopened"),
    "status_escalated": ("उच्च स्तर पर भेजी गई", "escalated"),
    "status_registered": ("दर्ज", "registered"),
}


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("api", "templates"), autoescape=select_autoescape(["html"])
    )


def _label(key: str) -> Markup:
    hindi, english = LABELS[key]
    return Markup('<span class="l" data-hi="{0}" data-en="{1}">{0}</span>').format(hindi, english)


def _page(template: str) -> HTMLResponse:
    labels = {key: {"hi": hi, "en": en} for key, (hi, en) in LABELS.items()}
    html = (
        _environment()
        .get_template(template)
        .render(
            t=_label,
            labels_json=Markup(json.dumps(labels, ensure_ascii=False).replace("</", "<\\/")),
            this_month=helpline_day().strftime("%Y-%m"),
        )
    )
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


@router.get("/review", response_class=HTMLResponse)
async def review_page() -> HTMLResponse:
    """Needs a cm_office, supervisor or admin token: ``/review#token=…`` or the login form."""
    return _page("review.html")


@router.get("/worklist", response_class=HTMLResponse)
async def worklist_page() -> HTMLResponse:
    """Needs an officer's token (``?officer=`` lets a supervisor look at one officer's)."""
    return _page("worklist.html")


@router.get("/pages/reports.js")
async def reports_script() -> Response:
    script = resources.files("api").joinpath("static/reports.js").read_text(encoding="utf-8")
    return Response(script, media_type="text/javascript", headers={"Cache-Control": "no-cache"})


# ----------------------------------------------------------------------------- the desk

#: The desk's files under api/static/desk, by name, with their media types.
DESK_FILES: dict[str, str] = {
    "desk.js": "text/javascript",
    "desk.css": "text/css",
    "labels.json": "application/json",
}


@cache
def desk_labels() -> dict[str, dict[str, str]]:
    """The desk's labels: key -> {"hi": …, "en": …} (``_``-keys are comments)."""
    raw = resources.files("api").joinpath("static/desk/labels.json").read_text(encoding="utf-8")
    data: dict[str, dict[str, str]] = json.loads(raw)
    return {key: value for key, value in data.items() if not key.startswith("_")}


def _script_json(value: object) -> Markup:
    return Markup(json.dumps(value, ensure_ascii=False).replace("</", "<\\/"))


@router.get("/desk", response_class=HTMLResponse)
async def desk_page() -> HTMLResponse:
    """The agent desk; signs in with the form (or ``/desk#token=…``)."""
    labels = desk_labels()
    html = (
        _environment()
        .get_template("desk.html")
        .render(
            t=lambda key: labels[key]["hi"],
            labels_json=_script_json(labels),
            config_json=_script_json(
                {"description_min": DESCRIPTION_MIN, "description_max": DESCRIPTION_MAX}
            ),
            description_min=DESCRIPTION_MIN,
            description_max=DESCRIPTION_MAX,
            pause_reasons=list(PAUSE_REASONS),
            wrapup_codes=[code.value for code in WrapupCode],
        )
    )
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


@router.get("/pages/desk/{name}")
async def desk_file(name: str = Path(max_length=32)) -> Response:
    """The desk's script, style sheet and labels."""
    media_type = DESK_FILES.get(name)
    if media_type is None:
        raise HTTPException(404, f"no desk file {name!r}")
    body = resources.files("api").joinpath(f"static/desk/{name}").read_text(encoding="utf-8")
    return Response(body, media_type=media_type, headers={"Cache-Control": "no-cache"})
