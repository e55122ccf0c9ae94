"""The desk's labels are data (api/static/desk/labels.json): every key the page and its script
use is there, in Hindi and in English, and each value the page can show a label for (complaint
status, wrap-up code, pause reason, agent state, language) has one."""

from __future__ import annotations

import re
from importlib import resources

from api.routers.pages import desk_labels
from core.domain.calls import WrapupCode
from core.domain.complaints import ComplaintStatus
from core.domain.queues import PauseReason
from ivr.catalogue import LANGS

DEVANAGARI = re.compile(r"[\u0900-\u097F]")


def _text(name: str) -> str:
    return resources.files("api").joinpath(name).read_text(encoding="utf-8")


def test_every_label_has_hindi_in_devanagari_and_english() -> None:
    labels = desk_labels()
    assert len(labels) > 50
    for key, value in labels.items():
        assert set(value) == {"hi", "en"}, key
        assert value["hi"].strip() and value["en"].strip(), key
        assert DEVANAGARI.search(value["hi"]), f"{key}: Hindi label without Devanagari"
        assert not DEVANAGARI.search(value["en"]), f"{key}: English label in Devanagari"


def test_every_key_the_template_and_the_script_use_exists() -> None:
    labels = desk_labels()
    template = _text("templates/desk.html")
    script = _text("static/desk/desk.js")
    used = set(re.findall(r"""\bt\('([a-z0-9_]+)'\)""", template))
    used |= set(re.findall(r'data-l(?:-placeholder)?="([a-z0-9_]+)"', template))
    used |= set(re.findall(r'\bL\("([a-z0-9_]+)"\)', script))
    used |= set(re.findall(r'placeholder = "([a-z0-9_]+)"', script))
    used |= set(re.findall(r'placeholder: "([a-z0-9_]+)"', script))
    assert {"submit", "readback_return", "wrapup", "sign_in", "too_long"} <= used  # the scan works
    # Keys built at run time: L("status_" + …), L("wrapup_" + …), L("pause_" + …), …
    families = {
        "status_": {s.value for s in ComplaintStatus},
        "wrapup_": {c.value for c in WrapupCode},
        "pause_": {r.value for r in PauseReason},
        "state_": {"signed_out", "logged_out", "pending", "in_queue", "paused"},
        "lang_": set(LANGS),
    }
    for prefix in families:
        assert f'L("{prefix}" +' in script or f"'{prefix}' ~" in template, prefix
    used |= {prefix + value for prefix, values in families.items() for value in values}
    # L(field) for the form's required fields names them.
    used |= {"department", "category", "district"}
    missing = sorted(used - labels.keys())
    assert missing == [], f"labels missing from labels.json: {missing}"
