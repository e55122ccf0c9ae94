"use strict";
// Token: #token=… in the address (kept out of server logs), else the login form.
const params = new URLSearchParams(location.hash.slice(1));
let token = params.get("token") || sessionStorage.getItem("helpline_token");
const $ = (id) => document.getElementById(id);
const pct = (x) => (x === null || x === undefined) ? "–" : (100 * x).toFixed(1) + " %";
const num = (x) => (x === null || x === undefined) ? "–" : String(x);

// The day's trend (s.trend): plain SVG drawn here, one slot per half hour of the IST day.
const SVG = "http://www.w3.org/2000/svg";
const SLOTS = 48;
const BOX = { left: 40, right: 44, top: 12, bottom: 22, width: 960 };

function el(tag, attrs, parent) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (parent) parent.appendChild(e);
  return e;
}

/** The smallest 1, 2 or 5 × 10^k at or above x (at least 1): the top of a y axis. */
function niceMax(x) {
  if (!(x > 1)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(x)));
  for (const m of [1, 2, 5, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

function frame(svg, height, yMax, rightLabels) {
  svg.replaceChildren();
  const plotW = BOX.width - BOX.left - BOX.right;
  const plotH = height - BOX.top - BOX.bottom;
  const slot = plotW / SLOTS;
  const x = (i) => BOX.left + i * slot;
  const y = (v, max) => BOX.top + plotH * (1 - v / max);
  el("line", { x1: BOX.left, y1: BOX.top + plotH, x2: BOX.left + plotW, y2: BOX.top + plotH, stroke: "#444" }, svg);
  for (let h = 0; h < 24; h += 3) {
    const t = el("text", { x: x(2 * h), y: height - 6, "text-anchor": "middle" }, svg);
    t.textContent = String(h).padStart(2, "0") + ":00";
  }
  el("text", { x: BOX.left - 4, y: BOX.top + 10, "text-anchor": "end" }, svg).textContent = String(yMax);
  el("text", { x: BOX.left - 4, y: BOX.top + plotH, "text-anchor": "end" }, svg).textContent = "0";
  for (const [v, label] of rightLabels) {
    el("text", { x: BOX.left + plotW + 4, y: y(v, 1) + 4 }, svg).textContent = label;
  }
  svg.dataset.max = String(yMax);
  svg.dataset.plotHeight = String(plotH);
  return { plotW, plotH, slot, x, y };
}

function hhmm(iso) {
  // The IST clock time of a bucket's start, whatever the browser's time zone.
  const d = new Date(Date.parse(iso) + 330 * 60000);
  return String(d.getUTCHours()).padStart(2, "0") + ":" + String(d.getUTCMinutes()).padStart(2, "0");
}

function drawTrend(trend) {
  const buckets = trend.buckets;
  const calls = $("trend_calls");
  const callsMax = niceMax(Math.max(0, ...buckets.map((b) => b.offered)));
  const g = frame(calls, 220, callsMax, [[1, "100 %"], [0.8, "80 %"], [0, "0 %"]]);
  const bar = g.slot * 0.8;
  const h = (v) => g.plotH * v / callsMax;
  const base = BOX.top + g.plotH;
  el("line", { x1: BOX.left, x2: BOX.left + g.plotW, y1: g.y(0.8, 1), y2: g.y(0.8, 1),
    stroke: "#f5d76e", "stroke-dasharray": "4 4", "stroke-opacity": 0.5 }, calls);
  const slPoints = [];
  buckets.forEach((b, i) => {
    const grp = el("g", { class: "bucket", "data-bucket": i, "data-start": b.start,
      "data-offered": b.offered, "data-answered": b.answered, "data-abandoned": b.abandoned,
      "data-sl": b.service_level === null ? "" : b.service_level }, calls);
    const x0 = g.x(i) + (g.slot - bar) / 2;
    el("rect", { class: "offered", x: x0, width: bar, y: base - h(b.offered), height: h(b.offered), fill: "#555" }, grp);
    el("rect", { class: "answered", x: x0, width: bar, y: base - h(b.answered), height: h(b.answered), fill: "#3c9a5f" }, grp);
    el("rect", { class: "abandoned", x: x0, width: bar, y: base - h(b.answered + b.abandoned),
      height: h(b.abandoned), fill: "#c9453c" }, grp);
    el("title", {}, grp).textContent = hhmm(b.start) + " offered " + b.offered + ", answered " +
      b.answered + ", abandoned " + b.abandoned + ", service level " + pct(b.service_level);
    if (b.service_level !== null) slPoints.push([g.x(i) + g.slot / 2, g.y(b.service_level, 1)]);
  });
  el("polyline", { id: "trend_sl", points: slPoints.map((p) => p.join(",")).join(" "),
    fill: "none", stroke: "#f5d76e", "stroke-width": 2 }, calls);
  for (const [cx, cy] of slPoints) el("circle", { cx, cy, r: 2.5, fill: "#f5d76e" }, calls);

  const agents = $("trend_agents");
  const needed = buckets.map((b) => b.agents_needed);
  const haveNeeded = needed.some((n) => n !== null && n !== undefined);
  const agentsMax = niceMax(Math.max(0, ...buckets.map((b) => b.agents_logged_in),
    ...needed.filter((n) => n !== null && n !== undefined)));
  const a = frame(agents, 160, agentsMax, []);
  const point = (i, v) => [a.x(i) + a.slot / 2, a.y(v, agentsMax)];
  buckets.forEach((b, i) => {
    const grp = el("g", { class: "bucket", "data-bucket": i, "data-logged-in": b.agents_logged_in,
      "data-needed": haveNeeded && b.agents_needed !== null ? b.agents_needed : "" }, agents);
    const [cx, cy] = point(i, b.agents_logged_in);
    el("circle", { cx, cy, r: 2.5, fill: "#4a90d9" }, grp);
    el("title", {}, grp).textContent = hhmm(b.start) + " agents logged in " + b.agents_logged_in +
      (haveNeeded ? ", needed " + num(b.agents_needed) : "");
  });
  el("polyline", { id: "trend_logged_in", fill: "none", stroke: "#4a90d9", "stroke-width": 2,
    points: buckets.map((b, i) => point(i, b.agents_logged_in).join(",")).join(" ") }, agents);
  if (haveNeeded) {
    el("polyline", { id: "trend_needed", fill: "none", stroke: "#f5a623", "stroke-width": 2,
      "stroke-dasharray": "6 3",
      points: buckets.map((b, i) => b.agents_needed === null ? null : point(i, b.agents_needed).join(","))
        .filter((p) => p !== null).join(" ") }, agents);
  }
  $("needed_legend").hidden = !haveNeeded;
}

function render(s) {
  const o = s.overall;
  $("calls_waiting").textContent = o.calls_waiting;
  $("longest_wait_seconds").textContent = Math.round(o.longest_wait_seconds);
  for (const k of ["logged_in", "available", "on_call", "in_wrapup", "paused"]) {
    $("agents_" + k).textContent = o.agents[k];
  }
  $("offered").textContent = o.offered;
  $("answered").textContent = o.answered;
  $("abandoned").textContent = o.abandoned;
  $("sl_seconds").textContent = s.service_level_seconds;
  $("service_level").textContent = pct(o.service_level);
  $("asa_seconds").textContent = num(o.asa_seconds);
  $("aht_seconds").textContent = num(o.aht_seconds);
  $("abandon_rate").textContent = pct(o.abandon_rate);
  $("inbound").textContent = s.inbound.used + " / " + s.inbound.budget;
  $("outbound").textContent = s.outbound.used + " / " + s.outbound.budget;
  $("outbound").title = s.outbound.note;
  const out = s.outbound_live;
  $("outbound_calls").textContent = out.attempts + " / " + out.connected + " / " + out.abandoned;
  $("outbound_calls").title = Object.entries(out.campaigns)
    .map(([c, d]) => c + ": " + d.attempts + " / " + d.connected + " / " + d.abandoned).join("\n");
  $("outbound_left").textContent = out.budget_left;
  $("outbound_pace").textContent = out.pace_allowed;
  $("outbound_active").textContent = out.active;
  $("paused_by_reason").textContent = "Paused by reason: " + Object.entries(o.agents.paused_by_reason)
    .map(([r, n]) => r + " " + n).join(", ");
  const rows = Object.entries(s.queues).map(([name, q]) =>
    "<tr data-queue=\"" + name + "\"><td>" + name + "</td><td>" + q.calls_waiting + "</td><td>" +
    Math.round(q.longest_wait_seconds) + "</td><td>" + q.agents.logged_in + "</td><td>" +
    q.agents.available + "</td><td>" + q.agents.on_call + "</td><td>" + q.agents.paused +
    "</td><td>" + q.offered + "</td><td>" + q.answered + "</td><td>" + q.abandoned + "</td><td>" +
    pct(q.service_level) + "</td></tr>");
  $("queues").innerHTML = rows.join("");
  drawTrend(s.trend);
  $("status").textContent = "updated " + new Date(s.at).toLocaleTimeString();
  document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
}

function connect() {
  $("board").hidden = false;
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const ws = new WebSocket(scheme + location.host + "/ws/stats?token=" + encodeURIComponent(token));
  ws.onmessage = (m) => { const s = JSON.parse(m.data); if (s.type === "stats") render(s); };
  ws.onclose = (e) => {
    if (e.code === 4401 || e.code === 4403) {
      sessionStorage.removeItem("helpline_token");
      $("board").hidden = true; $("login").hidden = false;
      $("login-error").textContent = e.reason;
      return;
    }
    $("status").textContent = "disconnected; reconnecting…";
    setTimeout(connect, 2000);
  };
}

$("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const body = new URLSearchParams({ username: $("username").value, password: $("password").value });
  const r = await fetch("/auth/token", { method: "POST", body });
  if (!r.ok) { $("login-error").textContent = "wrong user name or password"; return; }
  token = (await r.json()).access_token;
  sessionStorage.setItem("helpline_token", token);
  $("login").hidden = true;
  connect();
});

if (token) { connect(); } else { $("login").hidden = false; }
