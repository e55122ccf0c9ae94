"""``GET /review`` (the CM office's monthly review) and ``GET /worklist`` (an officer's own
complaints): Jinja2 pages in Hindi with an English toggle, signed in as ``/wallboard`` is
(``#token=…`` or the login form); their script reads the JSON API and draws the chart as
inline SVG. ``GET /pages/reports.js`` serves that script (no CDN)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from core.domain.clock import helpline_day

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
