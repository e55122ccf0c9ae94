"use strict";
// The /review and /worklist pages: sign in as /wallboard does (#token=… or the form), read the
// JSON API, draw tables and an inline SVG bar chart. Labels: Hindi, with an English toggle.
(() => {
  const $ = (id) => document.getElementById(id);
  const LABELS = JSON.parse($("labels").textContent);
  let lang = sessionStorage.getItem("helpline_lang") || "hi";
  const params = new URLSearchParams(location.hash.slice(1));
  let token = params.get("token") || sessionStorage.getItem("helpline_token");
  const L = (key) => LABELS[key][lang];
  const pct = (x) => (x === null || x === undefined) ? "–" : x.toFixed(1) + " %";
  const name = (row, en, hi) => (lang === "en" ? row[en] : row[hi]) || row[en] || "";
  let redraw = () => {};

  function applyLang() {
    document.documentElement.lang = lang;
    for (const el of document.querySelectorAll("[data-hi][data-en]")) el.textContent = el.dataset[lang];
    redraw();
  }
  $("lang").addEventListener("click", () => {
    lang = lang === "hi" ? "en" : "hi";
    sessionStorage.setItem("helpline_lang", lang);
    applyLang();
  });

  async function api(path, options = {}) {
    const headers = Object.assign({ Authorization: "Bearer " + token }, options.headers || {});
    const r = await fetch(path, Object.assign({}, options, { headers }));
    if (r.status === 401) { signOut("401"); throw new Error("unauthorised"); }
    if (!r.ok) throw new Error((await r.json()).detail || r.statusText);
    return r.json();
  }
  function signOut(why) {
    sessionStorage.removeItem("helpline_token");
    token = null;
    $("content").hidden = true; $("login").hidden = false;
    $("error").textContent = why;
  }
  function cell(tr, text, key) {
    const td = document.createElement("td");
    td.textContent = text;
    if (key) td.dataset.k = key;
    tr.appendChild(td);
    return td;
  }

  // ------------------------------------------------------------------ review
  const FIGURES = ["received", "resolved", "resolved_within_sla", "pending", "overdue"];
  let review = null, unroutable = [];

  function satisfaction(x) { return x === null ? L("no_feedback") : pct(x); }

  function drawReview() {
    if (!review) return;
    for (const k of FIGURES.concat(["sla_pct", "satisfaction_pct"])) {
      const el = $("total-" + k);
      if (!el) continue;
      const v = review.total[k];
      el.textContent = k === "sla_pct" ? pct(v) : k === "satisfaction_pct" ? satisfaction(v) : String(v);
    }
    $("as-of").textContent = review.as_of;
    $("metric").textContent = L(review.action_metric);
    $("threshold").textContent = review.action_threshold;
    $("csv").href = "#";
    const flagged = $("flagged");
    flagged.replaceChildren();
    // In the API's order (worst first), not the table's (busiest first).
    const byCode = new Map(review.departments.map((d) => [d.code || "", d]));
    for (const code of review.flagged_departments) {
      const row = byCode.get(code || "");
      if (!row) continue;
      const li = document.createElement("li");
      li.dataset.department = code;
      li.textContent = name(row, "name_en", "name_hi") + ": " + row[review.action_metric];
      flagged.appendChild(li);
    }
    if (!flagged.children.length) { const li = document.createElement("li"); li.textContent = L("none"); flagged.appendChild(li); }
    for (const group of ["department", "district"]) {
      const body = $(group + "-rows");
      body.replaceChildren();
      for (const row of review[group + "s"]) {
        const tr = document.createElement("tr");
        tr.dataset[group] = row.code || "";
        if (row.flagged) tr.className = "flagged";
        cell(tr, name(row, "name_en", "name_hi"), "name");
        for (const k of FIGURES) cell(tr, String(row[k]), k);
        cell(tr, pct(row.sla_pct), "sla_pct");
        cell(tr, satisfaction(row.satisfaction_pct), "satisfaction_pct");
        body.appendChild(tr);
      }
    }
    drawChart(review.departments);
    const ub = $("unroutable-rows");
    ub.replaceChildren();
    for (const c of unroutable) {
      const tr = document.createElement("tr");
      tr.dataset.number = c.number;
      cell(tr, c.number, "number");
      cell(tr, c.district ? name(c.district, "name_en", "name_hi") : "", "district");
      cell(tr, c.category ? name(c.category, "name_en", "name_hi") : "", "category");
      cell(tr, c.unroutable_reason || "", "reason");
      ub.appendChild(tr);
    }
  }

  function drawChart(rows) {
    const NS = "http://www.w3.org/2000/svg";
    const barH = 14, gap = 8, labelW = 190, width = 720;
    const max = Math.max(1, ...rows.map((r) => r.pending));
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("width", width);
    svg.setAttribute("height", rows.length * (barH + gap) + 10);
    svg.setAttribute("role", "img");
    rows.forEach((row, i) => {
      const y = i * (barH + gap) + 4;
      const text = document.createElementNS(NS, "text");
      text.setAttribute("x", 0); text.setAttribute("y", y + barH - 3);
      text.textContent = name(row, "name_en", "name_hi");
      svg.appendChild(text);
      for (const [k, colour] of [["pending", "#7aa6d8"], ["overdue", "#d9534f"]]) {
        const rect = document.createElementNS(NS, "rect");
        rect.setAttribute("x", labelW);
        rect.setAttribute("y", k === "pending" ? y : y + barH / 2);
        rect.setAttribute("height", k === "pending" ? barH : barH / 2);
        rect.setAttribute("width", ((width - labelW - 60) * row[k]) / max);
        rect.setAttribute("fill", colour);
        rect.dataset.department = row.code || "";
        rect.dataset.k = k;
        rect.dataset.value = row[k];
        svg.appendChild(rect);
      }
      const value = document.createElementNS(NS, "text");
      value.setAttribute("x", labelW + ((width - labelW - 60) * row.pending) / max + 4);
      value.setAttribute("y", y + barH - 3);
      value.textContent = row.pending + " / " + row.overdue;
      svg.appendChild(value);
    });
    $("chart").replaceChildren(svg);
  }

  async function loadReview() {
    // ?metric= and ?threshold= in the page's address are passed on (else the settings').
    const ask = new URLSearchParams();
    const month = $("month").value;
    if (month) ask.set("month", month);
    const here = new URLSearchParams(location.search);
    for (const k of ["metric", "threshold"]) if (here.get(k)) ask.set(k, here.get(k));
    const query = ask.toString() ? "?" + ask.toString() : "";
    review = await api("/reports/monthly" + query);
    unroutable = await api("/complaints?unroutable=true&limit=500");
    $("csv").onclick = async (ev) => {
      ev.preventDefault();
      const r = await fetch("/reports/monthly" + (query ? query + "&" : "?") + "format=csv",
        { headers: { Authorization: "Bearer " + token } });
      const url = URL.createObjectURL(await r.blob());
      const a = document.createElement("a");
      a.href = url; a.download = "monthly-review-" + review.month + ".csv"; a.click();
      URL.revokeObjectURL(url);
    };
    drawReview();
    document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
  }

  // ------------------------------------------------------------------ worklist
  let items = [], officer = null;

  function drawWorklist() {
    $("officer").textContent = officer ? "(" + officer + ")" : "";
    $("count-pending").textContent = items.length;
    $("count-overdue").textContent = items.filter((c) => c.overdue).length;
    const body = $("worklist-rows");
    body.replaceChildren();
    for (const c of items) {
      const tr = document.createElement("tr");
      tr.dataset.number = c.number;
      if (c.overdue) tr.className = "overdue";
      tr.dataset.overdue = String(c.overdue);
      cell(tr, c.number, "number");
      cell(tr, name(c, "category_en", "category_hi"), "category");
      cell(tr, name(c, "district_en", "district_hi"), "district");
      const status = cell(tr, LABELS["status_" + c.status] ? L("status_" + c.status) : c.status, "status");
      status.dataset.status = c.status;
      cell(tr, new Date(c.due_at).toLocaleString(lang === "hi" ? "hi-IN" : "en-IN", { timeZone: "Asia/Kolkata" }), "due");
      const td = cell(tr, "", "actions");
      for (const a of c.actions) {
        const b = document.createElement("button");
        b.type = "button";
        b.dataset.action = a.action;
        b.textContent = L("action_" + a.action);
        b.addEventListener("click", () => act(c.number, a));
        td.appendChild(b);
      }
      const rec = cell(tr, "", "recording");
      const play = document.createElement("button");
      play.type = "button";
      play.dataset.play = c.number;
      play.textContent = L("play_recording");
      play.addEventListener("click", () => playRecording(c.number, rec));
      rec.appendChild(play);
      body.appendChild(tr);
    }
  }

  // The call's recording: the list, then the audio fetched with the token (an <audio src>
  // cannot send the Authorization header) and played from a blob URL. Each fetch is a play
  // the API audits.
  async function playRecording(number, td) {
    try {
      const base = "/complaints/" + encodeURIComponent(number) + "/recordings";
      const recordings = await api(base);
      const playable = recordings.find((r) => r.playable);
      if (!playable) {
        td.textContent = recordings.length ? recordings[0].unavailable : L("no_recording");
        return;
      }
      const r = await fetch(base + "/" + playable.id + "/audio", { headers: { Authorization: "Bearer " + token } });
      if (!r.ok) { td.textContent = (await r.json()).detail || r.statusText; return; }
      const audio = document.createElement("audio");
      audio.controls = true;
      audio.dataset.recording = String(playable.id);
      audio.src = URL.createObjectURL(await r.blob());
      td.replaceChildren(audio);
      await audio.play().catch(() => {});
    } catch (e) {
      $("error").textContent = String(e.message || e);
    }
  }

  async function act(number, a) {
    let note = "";
    if (a.needs_note) {
      note = window.prompt(L("note_prompt")) || "";
      if (!note.trim()) return;
    }
    try {
      await api("/complaints/" + encodeURIComponent(number) + "/transitions", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ action: a.action, note }),
      });
      $("error").textContent = "";
    } catch (e) {
      $("error").textContent = String(e.message || e);
    }
    await loadWorklist();
  }

  async function loadWorklist() {
    if (!officer) {
      officer = new URLSearchParams(location.search).get("officer") || (await api("/auth/me")).username;
    }
    items = await api("/officers/" + encodeURIComponent(officer) + "/worklist");
    drawWorklist();
    document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
  }

  // ------------------------------------------------------------------ start
  const isReview = !!$("month-form");
  const load = isReview ? loadReview : loadWorklist;
  redraw = isReview ? drawReview : () => { if (officer) drawWorklist(); };

  async function start() {
    $("login").hidden = true;
    $("content").hidden = false;
    try { await load(); } catch (e) { if (token) $("error").textContent = String(e.message || e); }
  }
  if (isReview) {
    $("month-form").addEventListener("submit", (ev) => { ev.preventDefault(); start(); });
  }
  $("login").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = new URLSearchParams({ username: $("username").value, password: $("password").value });
    const r = await fetch("/auth/token", { method: "POST", body });
    if (!r.ok) { $("error").textContent = "wrong user name or password"; return; }
    token = (await r.json()).access_token;
    sessionStorage.setItem("helpline_token", token);
    $("error").textContent = "";
    start();
  });
  applyLang();
  if (token) { sessionStorage.setItem("helpline_token", token); start(); } else { $("login").hidden = false; }
})();
