// The agent desk (/desk): sign in, sit at a seat, pause/resume, the screen-pop over /ws/agent,
// the complaint form (cascading pickers from /reference/*, duplicate warning, idempotent
// submit), the read-back button, wrap-up, status look-up and the shift's own counts.
// Plain ES module, no build step; labels come from the page (api/static/desk/labels.json).
//
// The in-page WebRTC phone is api/static/phone.js (window.HelplinePhone, loaded by the page
// before this module, with JsSIP): once the agent sits at a seat the desk reads the phone's
// settings (GET /agents/me/phone) and attaches it to <section id="phone">; on seat logout,
// sign-out or a change of seat it detaches it (the phone unregisters). See mountPhone().

const $ = (id) => document.getElementById(id);
const LABELS = JSON.parse($("labels").textContent);
const CONFIG = JSON.parse($("config").textContent);
let lang = sessionStorage.getItem("helpline_lang") || "hi";
let token = new URLSearchParams(location.hash.slice(1)).get("token") || sessionStorage.getItem("helpline_token");
export const L = (key) => (LABELS[key] ? LABELS[key][lang] : key);

/** The desk's state, exposed for the phone module and for tests (window.HelplineDesk). */
const desk = {
  me: null, agent: null, call: null, departments: [], districts: [],
  formKey: null, filed: null, wrapup: null,
  /** The attached in-page phone (HelplinePhone.attach's object), or null. */
  phone: null,
  /** Tests: (path, options) => true drops that response after the server answered, as a
   *  lost network would (the request was served; the page sees a TypeError). */
  dropResponse: null,
};
window.HelplineDesk = desk;

// ------------------------------------------------------------------ labels and language
function applyLang() {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-l]")) el.textContent = L(el.dataset.l);
  for (const el of document.querySelectorAll("[data-l-placeholder]")) el.placeholder = L(el.dataset.lPlaceholder);
  $("lang").textContent = $("lang").dataset[lang];
  fillPickers(true);
  drawPop();
  drawAgent();
  drawLookup();
  if (desk.filed) drawFiled();
  if (desk.wrapup) drawWrapup();
}
$("lang").addEventListener("click", () => {
  lang = lang === "hi" ? "en" : "hi";
  sessionStorage.setItem("helpline_lang", lang);
  applyLang();
});
const nameOf = (row) => (row ? (lang === "en" ? row.name_en : row.name_hi) || row.name_en : "");

// ------------------------------------------------------------------ the API
class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status; this.detail = detail;
  }
}

/** fetch with the bearer token. A lost network is a TypeError, as fetch raises it. */
async function send(path, options = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + token }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (desk.dropResponse && desk.dropResponse(path, options)) {  // served, but the answer is lost
    throw new TypeError("network lost (test)");
  }
  return response;
}

async function api(path, options = {}) {
  const response = await send(path, options);
  if (response.status === 401) { signOut(); throw new ApiError(401, "signed out"); }
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  // Errors are problem documents (RFC 9457): per-field ones in `errors`, else `detail`.
  if (!response.ok) throw new ApiError(response.status, body ? (body.errors || body.detail || response.statusText) : response.statusText);
  return body;
}
const json = (method, body, headers = {}) => ({
  method, body: JSON.stringify(body), headers: Object.assign({ "Content-Type": "application/json" }, headers),
});
function showError(error) { $("error").textContent = error ? String(error.message || error) : ""; }

// ------------------------------------------------------------------ sign in / out
$("sign-in").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const body = new URLSearchParams({ username: $("username").value, password: $("password").value });
  const r = await fetch("/auth/token", { method: "POST", body });
  if (!r.ok) { $("error").textContent = L("wrong_login"); return; }
  token = (await r.json()).access_token;
  sessionStorage.setItem("helpline_token", token);
  await start();
});
$("sign-out").addEventListener("click", () => signOut());

function signOut() {
  mountPhone(null);
  sessionStorage.removeItem("helpline_token");
  token = null;
  if (socket) { socket.onclose = null; socket.close(); socket = null; }
  $("desk").hidden = true; $("sign-in").hidden = false; $("sign-out").hidden = true;
  desk.agent = null; drawAgent();
}

async function start() {
  showError(null);
  try {
    desk.me = await api("/auth/me");
    [desk.departments, desk.districts] = await Promise.all([
      api("/reference/departments"), api("/reference/districts"),
    ]);
  } catch (e) { if (token) showError(e); return; }
  $("who").textContent = desk.me.full_name || desk.me.username;
  $("sign-in").hidden = true; $("desk").hidden = false; $("sign-out").hidden = false;
  fillPickers(false);
  newForm();
  await refreshAgent();
  await refreshShift();
  connect();
  document.body.dataset.ready = "1";
  $("seat").focus();
}

// ------------------------------------------------------------------ seat, pause, live state
async function refreshAgent() {
  try { desk.agent = await api("/agents/me"); } catch (e) { showError(e); return; }
  if (desk.agent.current_call && (!desk.call || desk.call.uniqueid !== desk.agent.current_call.uniqueid)) {
    // A call the screen-pop has not told us about (the page was opened mid-call).
    desk.call = desk.call || { uniqueid: desk.agent.current_call.uniqueid, caller_number: desk.agent.current_call.caller_number };
  }
  drawAgent();
}

function agentState() {
  if (!token || !desk.agent) return "signed_out";
  if (desk.agent.state !== "in_queue") return desk.agent.state;
  return desk.agent.paused ? "paused" : "in_queue";
}

function drawAgent() {
  const state = agentState();
  const el = $("agent-state");
  el.dataset.state = state;
  el.textContent = L("state_" + state) + (desk.agent && desk.agent.seat ? " · " + desk.agent.seat : "")
    + (desk.agent && desk.agent.paused && desk.agent.pause_reason ? " (" + L("pause_" + desk.agent.pause_reason) + ")" : "");
  const seated = !!(desk.agent && desk.agent.seat);
  $("seat-login").hidden = seated;
  $("seat-logout").hidden = !seated;
  $("pause-form").hidden = !seated;
  $("pause").hidden = state === "paused";
  $("pause-reason").disabled = state === "paused";
  $("resume").hidden = state !== "paused";
  mountPhone(desk.agent && token && $("use-phone").checked ? desk.agent.seat : null);
}

// ------------------------------------------------------------------ the in-page phone
// "Phone in this page" (on unless the agent turned it off in this browser): an agent who
// answers on a desk phone or an external softphone only keeps the page from ringing too.
$("use-phone").checked = localStorage.getItem("helpline_page_phone") !== "off";
$("use-phone").addEventListener("change", () => {
  const live = ["ringing", "calling", "in_call", "on_hold"].includes($("phone").dataset.state);
  if (live && !$("use-phone").checked) { $("use-phone").checked = true; return; }  // not mid-call
  localStorage.setItem("helpline_page_phone", $("use-phone").checked ? "on" : "off");
  drawAgent();
});
let phoneSeat = null;  // the seat the phone is (being) attached for
/** Attach the WebRTC phone for `seat`, or detach it (null): called on every drawAgent(), so
 *  after seat login, seat logout, sign-out and when the seat changes. Without phone.js or
 *  JsSIP the desk works as before, with an external softphone on the seat. */
async function mountPhone(seat) {
  const Phone = window.HelplinePhone;
  if (seat === phoneSeat || !Phone) return;
  phoneSeat = seat;
  if (desk.phone) { desk.phone.detach(); desk.phone = null; }
  const el = $("phone");
  el.replaceChildren();
  if (!seat) return;
  try {
    const settings = await Phone.settings(token);
    if (phoneSeat !== seat) return;  // the seat changed (or the agent left) meanwhile
    desk.phone = Phone.attach(el, settings);
  } catch (e) {
    if (phoneSeat !== seat) return;
    phoneSeat = null;  // the next refresh (every 3 s) tries again
    const p = document.createElement("p");
    p.className = "err";
    p.textContent = L("phone_unavailable") + ": " + String(e.message || e);
    el.replaceChildren(p);
  }
}

async function agentAction(path, body) {
  showError(null);
  try {
    desk.agent = await api(path, body === undefined ? { method: "POST" } : json("POST", body));
  } catch (e) { showError(e); }
  drawAgent();
}
$("seat-login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  await agentAction("/agents/me/login", { seat: $("seat").value.trim() });
  if (socket) socket.close();  // the hello names the seat: reconnect
});
$("seat-logout").addEventListener("click", () => agentAction("/agents/me/logout"));
$("pause-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  await agentAction("/agents/me/pause", { reason: $("pause-reason").value });
  $("resume").focus();
});
$("resume").addEventListener("click", async () => {
  await agentAction("/agents/me/unpause");
  $("pause").focus();
});

async function refreshShift() {
  try {
    const s = await api("/agents/me/shift");
    $("shift-answered").textContent = s.calls_answered;
    $("shift-filed").textContent = s.complaints_filed;
    $("shift-aht").textContent = s.average_handle_seconds === null ? "–" : Math.round(s.average_handle_seconds) + " " + L("seconds");
  } catch (e) { /* the counts are a convenience */ }
}

// ------------------------------------------------------------------ screen-pop (/ws/agent)
let socket = null;
function connect() {
  if (!token) return;
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  socket = new WebSocket(scheme + location.host + "/ws/agent?token=" + encodeURIComponent(token));
  socket.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === "screen_pop") {
      desk.call = msg;
      document.body.dataset.pops = String(Number(document.body.dataset.pops || 0) + 1);
      drawPop();
      newForm();
      refreshAgent();
      checkDuplicate();
    }
  };
  socket.onclose = (ev) => {
    socket = null;
    if (ev.code === 4401) { signOut(); return; }
    if (token) setTimeout(connect, 2000);
  };
}

function drawPop() {
  const c = desk.call;
  $("no-call").hidden = !!c; $("pop-details").hidden = !c;
  if (!c) return;
  $("pop-number").textContent = c.caller_number || L("withheld");
  $("pop-name").textContent = c.caller_name || "";
  $("pop-lang").textContent = c.ivr_lang ? L("lang_" + c.ivr_lang) : "";
  $("pop-path").textContent = c.ivr_path || "";
  $("pop-hold").textContent = c.hold_seconds === null || c.hold_seconds === undefined ? "" : c.hold_seconds;
  // Why the dialer called this citizen: a callback request (reason, place in line) or the
  // complaint a click-to-call is about.
  const why = c.outbound;
  let whyText = L("why_inbound");
  if (why && why.callback) {
    whyText = L("why_callback") + ": " + why.callback.reason + " · " +
      new Date(why.callback.place_at || why.callback.requested_at).toLocaleString(lang === "hi" ? "hi-IN" : "en-IN", { timeZone: "Asia/Kolkata" });
  } else if (why && why.complaint) {
    whyText = L("why_click") + " " + why.complaint.number + " (" + L("status_" + why.complaint.status) + ")";
  } else if (why) {
    whyText = why.campaign;
  }
  $("pop-why").textContent = whyText;
  $("pop-why").dataset.campaign = why ? why.campaign : "";
  const body = $("history");
  body.replaceChildren();
  for (const p of c.previous_complaints || []) {
    const tr = document.createElement("tr");
    tr.dataset.number = p.number;
    for (const text of [p.number, L("status_" + p.status),
      lang === "en" ? p.category_en || p.category : p.category_hi || p.category,
      p.officer ? (lang === "en" ? p.officer.designation_en : p.officer.designation_hi) : "–"]) {
      const td = document.createElement("td"); td.textContent = text || ""; tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  const cbs = $("callbacks");
  cbs.replaceChildren();
  for (const cb of c.pending_callbacks || []) {
    const li = document.createElement("li");
    li.textContent = new Date(cb.requested_at).toLocaleString(lang === "hi" ? "hi-IN" : "en-IN", { timeZone: "Asia/Kolkata" }) + " · " + cb.reason;
    cbs.appendChild(li);
  }
  if (!cbs.children.length) { const li = document.createElement("li"); li.textContent = L("none"); cbs.appendChild(li); }
}

// ------------------------------------------------------------------ the complaint form
function options(select, rows, { placeholder = "choose", keep = true } = {}) {
  const before = keep ? select.value : "";
  select.replaceChildren();
  const first = document.createElement("option");
  first.value = ""; first.textContent = L(placeholder);
  select.appendChild(first);
  for (const row of rows) {
    const o = document.createElement("option");
    o.value = row.code; o.textContent = nameOf(row);
    select.appendChild(o);
  }
  if (before && rows.some((r) => r.code === before)) select.value = before;
}

function fillPickers(keep) {
  if (!desk.departments.length) return;
  options($("department"), desk.departments, { keep });
  options($("district"), desk.districts, { keep });
  cascade(keep);
}

function cascade(keep = true) {
  const dept = desk.departments.find((d) => d.code === $("department").value);
  options($("category"), dept ? dept.categories : [], { keep });
  $("category").disabled = !dept;
  const district = desk.districts.find((d) => d.code === $("district").value);
  options($("tehsil"), district ? district.tehsils : [], { placeholder: "not_known", keep });
  const tehsil = $("tehsil").value;
  const thanas = district ? district.thanas.filter((t) => !tehsil || !t.tehsil || t.tehsil === tehsil) : [];
  options($("thana"), thanas, { placeholder: "not_known", keep });
  $("tehsil").disabled = !district; $("thana").disabled = !district;
}
for (const id of ["department", "district", "tehsil"]) $(id).addEventListener("change", () => { cascade(); checkDuplicate(); });
$("category").addEventListener("change", () => checkDuplicate());

/** Characters as the API counts them: Unicode code points (a matra is one). */
const chars = (text) => [...text].length;
function drawCounter() {
  const n = chars($("description").value);
  $("count").textContent = n;
  $("counter").classList.toggle("over", n > CONFIG.description_max);
}
$("description").addEventListener("input", drawCounter);
// Enter submits from any field but the description (Ctrl+Enter submits from there too).
$("description").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); $("complaint-form").requestSubmit(); }
});

function newForm() {
  desk.formKey = crypto.randomUUID();  // one key per form fill: retries and double clicks reuse it
  desk.filed = null;
  if (desk.wrapup && (!desk.call || desk.wrapup.call_uniqueid !== desk.call.uniqueid)) {
    desk.wrapup = null;
    $("wrapup-state").textContent = "";
  }
  $("complaint-form").reset();
  fillPickers(false);
  drawCounter();
  $("filed").hidden = true; $("duplicate").hidden = true;
  $("form-error").textContent = ""; $("readback-state").textContent = "";
  $("submit").disabled = false;
  $("caller-number").disabled = !!(desk.call && desk.call.caller_number);
}
$("new-form").addEventListener("click", () => { newForm(); $("department").focus(); });

function callerForCheck() {
  return (desk.call && desk.call.caller_number) || $("caller-number").value.trim();
}

let checks = 0;
async function checkDuplicate() {
  const caller = callerForCheck(), category = $("category").value;
  const box = $("duplicate");
  // Once filed, the open complaint of this category is the one just filed: no warning.
  const asked = ++checks;
  if (!caller || !category || desk.filed) { box.hidden = true; return; }
  try {
    const c = await api("/complaints/check?" + new URLSearchParams({ caller, category }));
    if (asked !== checks || desk.filed) return;  // a newer check, or filed meanwhile
    const lines = [];
    if (c.possible_duplicate_of) lines.push(L("duplicate_warning") + ": " + c.possible_duplicate_of);
    lines.push(L("monthly_count") + ": " + c.complaints_this_month + " / " + c.monthly_cap);
    if (c.complaints_this_month >= c.monthly_cap) lines.push(L("cap_reached"));
    box.textContent = lines.join(" · ");
    box.dataset.duplicate = c.possible_duplicate_of || "";
    box.hidden = false;
  } catch (e) { box.hidden = true; }
}
$("caller-number").addEventListener("change", checkDuplicate);

function formBody() {
  const body = {
    department: $("department").value, category: $("category").value, district: $("district").value,
    description: $("description").value,
  };
  if ($("tehsil").value) body.tehsil = $("tehsil").value;
  if ($("thana").value) body.thana = $("thana").value;
  if ($("caller-name").value.trim()) body.caller_name = $("caller-name").value.trim();
  if (desk.call && desk.call.uniqueid) body.call_uniqueid = desk.call.uniqueid;
  else if ($("caller-number").value.trim()) body.caller_number = $("caller-number").value.trim();
  return body;
}

function validate(body) {
  for (const field of ["department", "category", "district"]) {
    if (!body[field]) { $(field).focus(); return L("required") + ": " + L(field); }
  }
  const n = chars(body.description);
  if (!body.description.trim() || n < CONFIG.description_min) { $("description").focus(); return L("too_short"); }
  if (n > CONFIG.description_max) { $("description").focus(); return L("too_long"); }
  return null;
}

let submitting = false;
$("complaint-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (submitting || desk.filed) return;  // a second Enter or click while filing files nothing
  const body = formBody();
  const problem = validate(body);
  $("form-error").textContent = problem || "";
  if (problem) return;
  submitting = true;
  $("submit").disabled = true;
  $("form-error").textContent = L("submitting");
  try {
    const complaint = await fileOnce(body);
    showFiled(complaint);
    refreshShift();
  } catch (e) {
    $("form-error").textContent = describe(e);
    $("submit").disabled = false;
  } finally {
    submitting = false;
  }
});

/** POST /complaints with this form's Idempotency-Key; a lost network is retried with the same
 *  key (the server answers a replay with the complaint it stored), a refusal is not. */
async function fileOnce(body) {
  const delays = [500, 1000, 2000, 4000];
  for (let attempt = 0; ; attempt++) {
    try {
      return await api("/complaints", json("POST", body, { "Idempotency-Key": desk.formKey }));
    } catch (e) {
      const transient = e instanceof TypeError || (e instanceof ApiError && e.status >= 500);
      if (!transient || attempt >= delays.length) throw e;
      $("form-error").textContent = L("retrying");
      document.body.dataset.retries = String(Number(document.body.dataset.retries || 0) + 1);
      await new Promise((resolve) => setTimeout(resolve, delays[attempt]));
    }
  }
}

function describe(error) {
  if (error instanceof ApiError && Array.isArray(error.detail)) {
    return error.detail.map((d) => (d.loc || []).slice(-1)[0] + ": " + d.msg).join("; ");
  }
  return String(error.message || error);
}

function dateText(iso) {
  return new Date(iso).toLocaleDateString(lang === "hi" ? "hi-IN" : "en-IN", { timeZone: "Asia/Kolkata", day: "numeric", month: "long", year: "numeric" });
}

function drawFiled() {
  const c = desk.filed;
  $("filed-number").textContent = c.number;
  $("filed-officer").textContent = c.assigned_officer ? (lang === "en" ? c.assigned_officer.designation_en : c.assigned_officer.designation_hi) : "–";
  $("filed-due").textContent = dateText(c.due_at);
}

function showFiled(c) {
  desk.filed = c;
  $("form-error").textContent = "";
  checks++;  // an answer still on its way is about the form before filing
  $("duplicate").hidden = true;
  $("filed").hidden = false;
  drawFiled();
  const canRead = !!(desk.call && desk.call.uniqueid && c.call_uniqueid === desk.call.uniqueid);
  $("readback-return").disabled = !canRead; $("readback-hangup").disabled = !canRead;
  $("wrapup-code").value = "complaint_filed";
  (canRead ? $("readback-return") : $("wrapup-code")).focus();
}

// ------------------------------------------------------------------ read-back
async function readBack(then) {
  if (!desk.filed || !desk.call) return;
  const uid = desk.call.uniqueid;
  $("readback-return").disabled = true; $("readback-hangup").disabled = true;
  try {
    await api("/calls/" + encodeURIComponent(uid) + "/readback", json("POST", { complaint: desk.filed.number, then }));
    $("readback-state").textContent = L("readback_sent");
    watchReadback(uid, desk.filed.number);
  } catch (e) {
    $("readback-state").textContent = describe(e);
    $("readback-return").disabled = false; $("readback-hangup").disabled = false;
  }
}
$("readback-return").addEventListener("click", () => readBack("return"));
$("readback-hangup").addEventListener("click", () => readBack("hangup"));

async function watchReadback(uid, number) {
  for (let i = 0; i < 60; i++) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    let sessions;
    try { sessions = await api("/calls/" + encodeURIComponent(uid) + "/readbacks"); } catch (e) { return; }
    const mine = sessions.filter((s) => s.complaint_number === number);
    const last = mine[mine.length - 1];
    if (last) {
      $("readback-state").textContent = L("readback_done") + ": " + (last.digits_spoken || "–") + (last.outcome ? " (" + last.outcome + ")" : "");
      $("readback-state").dataset.outcome = last.outcome || "";
      if (last.outcome) { $("readback-return").disabled = false; $("readback-hangup").disabled = false; return; }
    }
  }
}

// ------------------------------------------------------------------ wrap-up and look-up
$("wrapup-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const state = $("wrapup-state");
  if (!desk.call) { state.textContent = L("no_call"); return; }
  try {
    const body = { code: $("wrapup-code").value };
    if ($("wrapup-note").value.trim()) body.note = $("wrapup-note").value.trim();
    desk.wrapup = await api("/calls/" + encodeURIComponent(desk.call.uniqueid) + "/wrapup", json("PUT", body));
    drawWrapup();
    refreshShift();
  } catch (e) { state.textContent = describe(e); }
});

function drawWrapup() {
  $("wrapup-state").textContent = L("saved") + ": " + L("wrapup_" + desk.wrapup.code);
  $("wrapup-state").dataset.code = desk.wrapup.code;
}

let looked = null;
$("lookup-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  looked = null;
  $("lookup-result").replaceChildren();
  try {
    looked = await api("/complaints/" + encodeURIComponent($("lookup-number").value.trim()));
    drawLookup();
  } catch (e) { $("lookup-result").textContent = describe(e); }
});

function drawLookup() {
  if (!looked) return;
  const c = looked, out = $("lookup-result");
  out.replaceChildren();
  const dl = document.createElement("dl");
  dl.dataset.number = c.number;
  const rows = [
    ["number", c.number], ["status", L("status_" + c.status)],
    ["category", nameOf(c.category)], ["district", nameOf(c.district)],
    ["officer", c.assigned_officer ? (lang === "en" ? c.assigned_officer.designation_en : c.assigned_officer.designation_hi) : "–"],
    ["due", dateText(c.due_at)],
  ];
  for (const [key, value] of rows) {
    const dt = document.createElement("dt"); dt.textContent = L(key);
    const dd = document.createElement("dd"); dd.textContent = value || ""; dd.dataset.k = key;
    dl.append(dt, dd);
  }
  out.appendChild(dl);
  // Click-to-call: through the dialer (the seat may not dial out); the seat rings first.
  const call = document.createElement("button");
  call.type = "button"; call.id = "call-citizen"; call.textContent = L("call_citizen");
  const state = document.createElement("p");
  state.id = "call-state"; state.setAttribute("aria-live", "polite");
  call.addEventListener("click", () => callCitizen(c.number, call, state));
  out.append(call, state);
}

async function callCitizen(number, button, state) {
  const path = "/complaints/" + encodeURIComponent(number) + "/call";
  button.disabled = true;
  try {
    const queued = await api(path, { method: "POST" });
    state.dataset.state = queued.state; state.textContent = L("call_" + queued.state);
    for (let i = 0; i < 60; i++) {
      await new Promise((resolve) => setTimeout(resolve, 2000));
      const now = await api(path);
      state.dataset.state = now.state; state.textContent = L("call_" + now.state);
      if (now.state !== "pending" && now.state !== "dialing") break;
    }
  } catch (e) { state.textContent = describe(e); }
  button.disabled = false;
}

// ------------------------------------------------------------------ start
setInterval(() => { if (token && !$("desk").hidden) refreshAgent(); }, 3000);
setInterval(() => { if (token && !$("desk").hidden) refreshShift(); }, 30000);
applyLang();
if (token) start(); else { $("sign-in").hidden = false; $("username").focus(); }
