"use strict";
// Token: #token=… in the address (kept out of server logs), else the login form.
const params = new URLSearchParams(location.hash.slice(1));
let token = params.get("token") || sessionStorage.getItem("helpline_token");
const $ = (id) => document.getElementById(id);
const pct = (x) => (x === null || x === undefined) ? "–" : (100 * x).toFixed(1) + " %";
const num = (x) => (x === null || x === undefined) ? "–" : String(x);

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
