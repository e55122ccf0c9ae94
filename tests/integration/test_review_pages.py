"""The CM office's /review and an officer's /worklist in a real headless Chromium (the
wallboard's DevTools helper), on the demo complaints: the numbers the pages show are the
API's, the flagged departments are highlighted, the English toggle works, and an action
button posts to the transitions route with the agreed body."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.config import Settings
from helpline.cli import demo_complaints
from tests.integration.browser import chromium

pytestmark = pytest.mark.integration

FIGURES = ("received", "resolved", "resolved_within_sla", "pending", "overdue")


@pytest.fixture(scope="module")
def demo_filed(stack_settings: Settings) -> int:
    """The demo complaints, filed as ``helpline up`` files them (a sync fixture: the CLI
    runs its own event loop)."""
    return demo_complaints(stack_settings)


async def _token(api: httpx.AsyncClient, user: dict[str, str]) -> str:
    reply = await api.post(
        "/auth/token", data={"username": user["username"], "password": user["password"]}
    )
    assert reply.status_code == 200, reply.text
    token: str = reply.json()["access_token"]
    return token


def _user(demo_users: dict[str, list[dict[str, str]]], role: str, name: str) -> dict[str, str]:
    return next(user for user in demo_users[role] if user["username"] == name)


async def _cells(page: Any, selector: str) -> dict[str, str]:
    found = await page.evaluate(
        "Object.fromEntries([...document.querySelectorAll("
        + json.dumps(selector + " td[data-k]")
        + ")].map((td) => [td.dataset.k, td.textContent]))"
    )
    assert isinstance(found, dict)
    return found


async def test_review_page_shows_the_apis_figures(
    stack_settings: Settings,
    api: httpx.AsyncClient,
    demo_users: dict[str, list[dict[str, str]]],
    tmp_path: Path,
    demo_filed: int,
) -> None:
    token = await _token(api, _user(demo_users, "cm_office", "cm_office.up"))
    headers = {"Authorization": f"Bearer {token}"}
    # The lowest department's overdue figure as the threshold: at least one flagged, not all.
    month = (await api.get("/reports/monthly", headers=headers)).json()
    threshold = min(d["overdue"] for d in month["departments"])
    assert threshold < max(d["overdue"] for d in month["departments"]), "demo data too even"
    page_html = await api.get("/review")
    assert page_html.status_code == 200 and "/pages/reports.js" in page_html.text
    script = await api.get("/pages/reports.js")
    assert script.status_code == 200 and "transitions" in script.text

    base = f"http://{stack_settings.api_host}:{stack_settings.api_port}"
    url = f"{base}/review?threshold={threshold}#token={token}"
    async with chromium(url, tmp_path / "chromium", "review") as page:
        await page.wait_for("Number(document.body.dataset.loaded || 0) >= 1")
        review = (
            await api.get(
                f"/reports/monthly?month={month['month']}&threshold={threshold}", headers=headers
            )
        ).json()
        for key in FIGURES:
            assert int(await page.text(f"total-{key}")) == review["total"][key], key
        # Satisfaction as the API gives it (none until the feedback campaign has answers).
        satisfaction = review["total"]["satisfaction_pct"]
        shown = {"hi": "अभी प्रतिक्रिया नहीं", "en": "no feedback yet"}
        if satisfaction is not None:
            shown = {lang: f"{satisfaction:.1f} %" for lang in shown}
        assert await page.text("total-satisfaction_pct") == shown["hi"]
        for row in review["departments"]:
            cells = await _cells(page, f'tr[data-department="{row["code"]}"]')
            assert cells["name"] == row["name_hi"]
            assert {key: int(cells[key]) for key in FIGURES} == {key: row[key] for key in FIGURES}
        for row in review["districts"]:
            cells = await _cells(page, f'tr[data-district="{row["code"]}"]')
            assert {key: int(cells[key]) for key in FIGURES} == {key: row[key] for key in FIGURES}
        # The chart has a pending and an overdue bar per department, sized by the API's figure.
        bars = await page.evaluate(
            "[...document.querySelectorAll('#chart rect')].map((r) => "
            "[r.dataset.department, r.dataset.k, Number(r.dataset.value)])"
        )
        assert bars == [
            [row["code"], k, row[k]]
            for row in review["departments"]
            for k in ("pending", "overdue")
        ]
        # The departments over the threshold are highlighted and listed, as the API flags them.
        assert review["flagged_departments"], "some department is over the lowest figure"
        flagged_rows = await page.evaluate(
            "[...document.querySelectorAll('tr.flagged')].map((tr) => tr.dataset.department)"
        )
        assert sorted(flagged_rows) == sorted(review["flagged_departments"])
        listed = await page.evaluate(
            "[...document.querySelectorAll('#flagged li')].map((li) => li.dataset.department)"
        )
        assert listed == review["flagged_departments"]
        assert await page.text("threshold") == str(threshold)

        # English toggle: labels and names switch without a reload.
        await page.evaluate("document.getElementById('lang').click()")
        await page.wait_for("document.documentElement.lang === 'en'")
        first = review["departments"][0]
        cells = await _cells(page, f'tr[data-department="{first["code"]}"]')
        assert cells["name"] == first["name_en"]
        assert await page.text("total-satisfaction_pct") == shown["en"]
        assert await page.evaluate("performance.getEntriesByType('navigation').length") == 1

        # Unroutable complaints are listed (none with the shipped data: the list is the API's).
        unroutable = (
            await api.get("/complaints?unroutable=true&limit=500", headers=headers)
        ).json()
        shown = await page.evaluate(
            "[...document.querySelectorAll('#unroutable-rows tr')].map((tr) => tr.dataset.number)"
        )
        assert shown == [c["number"] for c in unroutable]


async def test_worklist_page_lists_the_officers_complaints_overdue_first(
    stack_settings: Settings,
    api: httpx.AsyncClient,
    demo_users: dict[str, list[dict[str, str]]],
    tmp_path: Path,
    demo_filed: int,
) -> None:
    officer = "police.thana.lucknow_hazratganj"
    token = await _token(api, _user(demo_users, "officer", officer))
    headers = {"Authorization": f"Bearer {token}"}
    items = (await api.get(f"/officers/{officer}/worklist", headers=headers)).json()
    assert items and any(item["overdue"] for item in items)
    base = f"http://{stack_settings.api_host}:{stack_settings.api_port}"
    async with chromium(
        f"{base}/worklist#token={token}", tmp_path / "chromium", "worklist"
    ) as page:
        await page.wait_for("Number(document.body.dataset.loaded || 0) >= 1")
        rows = await page.evaluate(
            "[...document.querySelectorAll('#worklist-rows tr')].map((tr) => "
            "[tr.dataset.number, tr.dataset.overdue === 'true', "
            "tr.querySelector('td[data-k=status]').dataset.status, "
            "[...tr.querySelectorAll('button[data-action]')].map((b) => b.dataset.action)])"
        )
        assert rows == [
            [
                item["number"],
                item["overdue"],
                item["status"],
                [a["action"] for a in item["actions"]],
            ]
            for item in items
        ]
        overdue = [row[1] for row in rows]
        assert overdue == sorted(overdue, reverse=True), "overdue complaints come first"
        assert int(await page.text("count-overdue")) == sum(overdue)
        assert officer in await page.text("officer")

        # A button posts {"action", "note"} to /complaints/{number}/transitions (the
        # transitions route's contract); the page's fetch is watched, not the route.
        await page.evaluate(
            "window.posted = []; const realFetch = window.fetch; window.fetch = (url, o) => {"
            " if (o && o.method === 'POST') window.posted.push([url, o.body]);"
            " return realFetch(url, o); }; window.prompt = () => 'काम पूरा';"
        )
        number = items[0]["number"]
        await page.evaluate(
            f'document.querySelector(\'tr[data-number="{number}"] '
            'button[data-action="resolve"]\').click()'
        )
        await page.wait_for("window.posted.length >= 1")
        url, body = await page.evaluate("window.posted[0]")
        assert url == f"/complaints/{number}/transitions"
        assert json.loads(body) == {"action": "resolve", "note": "काम पूरा"}

    # Another officer's worklist is not theirs to see.
    other = await api.get("/officers/health.district.varanasi/worklist", headers=headers)
    assert other.status_code == 403


#: Wraps the page's fetch before its script runs: the monthly review's departments come in
#: reverse order (the table's order is then not the flagged list's), the rest as the API sent it.
REVERSE_DEPARTMENTS = """
window.__reversed = true;
const realFetch = window.fetch.bind(window);
window.fetch = async (url, options) => {
  const reply = await realFetch(url, options);
  if (!String(url).startsWith("/reports/monthly") || String(url).includes("format=csv")) {
    return reply;
  }
  const body = await reply.json();
  window.__answer = {
    flagged: [...body.flagged_departments],
    departments: body.departments.map((row) => [row.code, row.overdue]),
  };
  body.departments.reverse();
  return new Response(JSON.stringify(body), { status: reply.status, headers: reply.headers });
};
"""


async def test_review_page_lists_the_flagged_departments_worst_first(
    stack_settings: Settings,
    api: httpx.AsyncClient,
    demo_users: dict[str, list[dict[str, str]]],
    tmp_path: Path,
    demo_filed: int,
) -> None:
    """The flagged list is the API's ``flagged_departments`` in its order (worst first by the
    metric), whatever order the department rows come in: the page does not re-sort it. The
    page's own answer is the one compared: overdue counts move as complaints pass their due
    time, so an answer fetched by the test a few seconds earlier may rank them otherwise."""
    token = await _token(api, _user(demo_users, "cm_office", "cm_office.up"))
    base = f"http://{stack_settings.api_host}:{stack_settings.api_port}"
    async with chromium(
        f"{base}/review?threshold=0#token={token}", tmp_path / "chromium", "review"
    ) as page:
        await page.command("Page.enable", {})  # else the script below is not injected
        await page.command("Page.addScriptToEvaluateOnNewDocument", {"source": REVERSE_DEPARTMENTS})
        await page.command("Page.reload", {})
        await page.wait_for(
            "window.__reversed === true && Number(document.body.dataset.loaded || 0) >= 1"
        )
        answer = await page.evaluate("window.__answer")
        flagged = answer["flagged"]
        assert len(flagged) >= 2, "the demo data has overdue complaints in several departments"
        overdue = dict(answer["departments"])
        assert [overdue[code] for code in flagged] == sorted(
            (overdue[code] for code in flagged), reverse=True
        )
        rows_reversed = [code for code, _ in reversed(answer["departments"])]
        in_table_order = [code for code in rows_reversed if code in flagged]
        assert in_table_order != flagged, "the table's order must differ for this test to tell"
        table = await page.evaluate(
            "[...document.querySelectorAll('#department-rows tr')]"
            ".map((tr) => tr.dataset.department)"
        )
        assert table == rows_reversed  # the rows as the (reordered) answer gave them
        listed = await page.evaluate(
            "[...document.querySelectorAll('#flagged li')].map((li) => li.dataset.department)"
        )
        assert listed == flagged
