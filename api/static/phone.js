// The desk's in-page phone: registers the agent's seat over WSS (JsSIP, served by us at
// /pages/vendor/jssip.min.js as the global JsSIP), rings, answers, holds, mutes, sends DTMF and
// hangs up. A plain ES module:
//
//   const seat = await HelplinePhone.settings(token);   // GET /agents/me/phone
//   const phone = HelplinePhone.attach(element, seat);   // draws itself into `element`
//
//   phone.detach();                                      // unregisters, empties `element`
//
// The desk (/desk, api/static/desk/desk.js) mounts it after seat login and detaches it on seat
// logout and sign-out. Labels follow the page's <html lang> (hi, en), as the desk toggles it.
// Keyboard (anywhere on the page): Alt+A answer, Alt+E end (hang up), Alt+H hold/unhold,
// Alt+M mute/unmute (the desk's access keys use other letters: docs/agents.md); during a call
// 0-9 * # send DTMF unless the focus is in a form field.
// For tests and the desk: `element.dataset.state` (connecting, registered, unregistered,
// ringing, calling, in_call, on_hold), `dataset.muted`, `phone.calls`, and `phone.lastStats`
// (getStats() figures, refreshed every second in a call).
"use strict";

const LABELS = {
  connecting: ["जुड़ रहा है…", "connecting…"],
  registered: ["फ़ोन तैयार", "phone ready"],
  unregistered: ["फ़ोन नहीं जुड़ा", "phone not connected"],
  ringing: ["कॉल आ रही है", "incoming call"],
  calling: ["कॉल लग रही है", "calling"],
  in_call: ["बातचीत जारी", "in call"],
  on_hold: ["होल्ड पर", "on hold"],
  answer: ["उत्तर दें (Alt+A)", "Answer (Alt+A)"],
  hangup: ["कॉल काटें (Alt+E)", "Hang up (Alt+E)"],
  hold: ["होल्ड (Alt+H)", "Hold (Alt+H)"],
  unhold: ["होल्ड हटाएँ (Alt+H)", "Resume (Alt+H)"],
  mute: ["म्यूट (Alt+M)", "Mute (Alt+M)"],
  unmute: ["म्यूट हटाएँ (Alt+M)", "Unmute (Alt+M)"],
  echo: ["हेडसेट जाँच", "Headset test"],
  muted: ["आपकी आवाज़ बंद है", "you are muted"],
};
const DIGITS = "123456789*0#";
const TEXT_FIELDS = "input, textarea, select, [contenteditable=''], [contenteditable='true']";

function label(key) {
  return LABELS[key][document.documentElement.lang === "en" ? 1 : 0];
}

function button(parent, key, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.dataset.action = key;
  b.addEventListener("click", onClick);
  parent.appendChild(b);
  return b;
}

/** A ring for an incoming call: two short tones every 3 s (Web Audio, no sound file). */
function ringer() {
  let context = null, timer = null;
  const burst = () => {
    for (const offset of [0, 0.5]) {
      const osc = context.createOscillator(), gain = context.createGain();
      osc.frequency.value = 440;
      gain.gain.value = 0.15;
      osc.connect(gain).connect(context.destination);
      osc.start(context.currentTime + offset);
      osc.stop(context.currentTime + offset + 0.4);
    }
  };
  return {
    start() {
      if (timer) return;
      try { context = context || new AudioContext(); burst(); } catch (e) { return; }
      timer = setInterval(burst, 3000);
    },
    stop() { clearInterval(timer); timer = null; },
  };
}

/** Figures from RTCPeerConnection.getStats(): packets each way, codec, DTLS, audio energy. */
async function readStats(pc) {
  const out = { packetsReceived: 0, packetsSent: 0, bytesReceived: 0, bytesSent: 0,
    packetsLost: 0, codec: null, dtlsState: null, inboundAudioEnergy: 0, at: Date.now() };
  const report = await pc.getStats();
  const codecs = {};
  report.forEach((s) => { if (s.type === "codec") codecs[s.id] = s.mimeType; });
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") {
      out.packetsReceived += s.packetsReceived || 0;
      out.bytesReceived += s.bytesReceived || 0;
      out.packetsLost += s.packetsLost || 0;
      out.inboundAudioEnergy += s.totalAudioEnergy || 0;
    } else if (s.type === "outbound-rtp" && s.kind === "audio") {
      out.packetsSent += s.packetsSent || 0;
      out.bytesSent += s.bytesSent || 0;
      out.codec = codecs[s.codecId] || out.codec;
    } else if (s.type === "transport") {
      out.dtlsState = s.dtlsState;
    }
  });
  return out;
}

export async function settings(token) {
  const r = await fetch("/agents/me/phone", { headers: { Authorization: "Bearer " + token } });
  if (!r.ok) throw new Error((await r.json()).detail || r.statusText);
  return r.json();
}

export function attach(el, seat, options = {}) {
  const JsSIP = window.JsSIP;
  if (!JsSIP) throw new Error("JsSIP is not loaded (/pages/vendor/jssip.min.js)");
  el.classList.add("helpline-phone");
  el.replaceChildren();
  const status = document.createElement("div");
  status.className = "phone-status";
  const peer = document.createElement("div");
  peer.className = "phone-peer";
  const buttons = document.createElement("div");
  const keypad = document.createElement("div");
  keypad.className = "phone-keypad";
  const audio = document.createElement("audio");
  audio.autoplay = true;
  el.append(status, peer, buttons, keypad, audio);

  const ring = ringer();
  let session = null, registered = false, statsTimer = null, gone = false;
  // calls: how many calls this phone has had (a caller brought back after a read-back is the
  // same call, not a new one).
  const phone = { seat: seat.seat, lastStats: null, dtmfSent: "", calls: 0 };

  function setState(state) {
    if (gone) return;
    el.dataset.state = state;
    render();
  }
  function render() {
    if (gone) return;
    const state = el.dataset.state;
    status.textContent = label(state) + " · " + seat.seat;
    const muted = el.dataset.muted === "true";
    if (muted) status.textContent += " · " + label("muted");
    const live = state === "in_call" || state === "on_hold";
    b.answer.hidden = state !== "ringing";
    b.hangup.hidden = !(live || state === "ringing" || state === "calling");
    b.hold.hidden = !live;
    b.hold.textContent = label(state === "on_hold" ? "unhold" : "hold");
    b.mute.hidden = !live;
    b.mute.textContent = label(muted ? "unmute" : "mute");
    b.echo.hidden = !(state === "registered");
    b.answer.textContent = label("answer");
    b.hangup.textContent = label("hangup");
    b.echo.textContent = label("echo");
    keypad.style.display = live ? "" : "none";  // not `hidden`: a page may style it as a grid
  }

  const b = {
    answer: button(buttons, "answer", () => phone.answer()),
    hangup: button(buttons, "hangup", () => phone.hangup()),
    hold: button(buttons, "hold", () => phone.toggleHold()),
    mute: button(buttons, "mute", () => phone.toggleMute()),
    echo: button(buttons, "echo", () => phone.call(seat.echo_test)),
  };
  for (const d of DIGITS) {
    const k = button(keypad, "dtmf", () => phone.dtmf(d));
    k.dataset.digit = d;
    k.textContent = d;
  }

  const ua = new JsSIP.UA({
    sockets: [new JsSIP.WebSocketInterface(seat.wss_url)],
    uri: seat.sip_uri,
    authorization_user: seat.authorization_user,
    realm: seat.realm,
    ha1: seat.ha1,
    display_name: seat.display_name,
    register: true,
    session_timers: false,
    user_agent: "helpline-1076-desk",
  });
  ua.on("connecting", () => { if (!session) setState("connecting"); });
  ua.on("registered", () => { registered = true; if (!session) setState("registered"); });
  ua.on("unregistered", () => { registered = false; if (!session) setState("unregistered"); });
  ua.on("registrationFailed", () => { registered = false; if (!session) setState("unregistered"); });
  ua.on("disconnected", () => { registered = false; if (!session) setState("unregistered"); });
  ua.on("newRTCSession", ({ originator, session: s }) => {
    if (session) {  // one call at a time: the queue never offers a second (ringinuse=no)
      if (originator === "remote") s.terminate({ status_code: 486 });
      return;
    }
    session = s;
    phone.calls += 1;
    delete el.dataset.muted;
    const who = s.remote_identity;
    peer.textContent = (who.display_name ? who.display_name + " " : "") + (who.uri.user || "");
    el.dataset.peer = who.uri.user || "";
    s.on("peerconnection", ({ peerconnection }) => watch(peerconnection));
    if (s.connection) watch(s.connection);
    s.on("confirmed", () => { ring.stop(); setState("in_call"); });
    s.on("hold", () => setState("on_hold"));
    s.on("unhold", () => setState("in_call"));
    s.on("muted", () => { el.dataset.muted = "true"; render(); });
    s.on("unmuted", () => { delete el.dataset.muted; render(); });
    s.on("ended", finished);
    s.on("failed", finished);
    if (originator === "remote") {
      setState("ringing");
      ring.start();
      if (options.autoAnswer) phone.answer();
    } else {
      setState("calling");
    }
  });

  function watch(pc) {
    pc.addEventListener("track", (event) => { audio.srcObject = event.streams[0]; });
    clearInterval(statsTimer);
    statsTimer = setInterval(async () => {
      try { phone.lastStats = await readStats(pc); } catch (e) { /* closed meanwhile */ }
    }, 1000);
  }
  function finished() {
    ring.stop();
    clearInterval(statsTimer);
    session = null;
    peer.textContent = "";
    delete el.dataset.peer;
    delete el.dataset.muted;
    setState(registered ? "registered" : "unregistered");
  }

  const callOptions = {
    mediaConstraints: { audio: true, video: false },
    pcConfig: { iceServers: [] },
  };
  Object.assign(phone, {
    answer() { if (session && el.dataset.state === "ringing") session.answer(callOptions); },
    hangup() { if (session) session.terminate(); },
    call(target) {
      if (!session && registered) ua.call(`sip:${target}@${seat.sip_uri.split("@")[1]}`, callOptions);
    },
    hold() { if (session && el.dataset.state === "in_call") session.hold(); },
    unhold() { if (session && el.dataset.state === "on_hold") session.unhold(); },
    toggleHold() { el.dataset.state === "on_hold" ? phone.unhold() : phone.hold(); },
    mute() { if (session) session.mute({ audio: true }); },
    unmute() { if (session) session.unmute({ audio: true }); },
    toggleMute() { el.dataset.muted === "true" ? phone.unmute() : phone.mute(); },
    dtmf(digit) {
      if (!session || !DIGITS.includes(digit) || el.dataset.state !== "in_call") return;
      session.sendDTMF(digit, { transportType: JsSIP.C.DTMF_TRANSPORT.RFC2833 });
      phone.dtmfSent += digit;
    },
    async stats() { return session && session.connection ? readStats(session.connection) : null; },
    /** Unregister (JsSIP ends a call in progress first) and leave `el` empty. */
    detach() {
      document.removeEventListener("keydown", onKey);
      window.removeEventListener("pagehide", stop);
      observer.disconnect();
      ring.stop();
      clearInterval(statsTimer);
      gone = true;  // the UA's last events (unregistered, disconnected) draw nothing
      ua.stop();
      session = null;
      audio.srcObject = null;
      el.replaceChildren();
      el.classList.remove("helpline-phone");
      for (const key of ["state", "muted", "peer"]) delete el.dataset[key];
    },
  });

  function onKey(event) {
    const key = event.key.toLowerCase();
    if (event.altKey && !event.ctrlKey && !event.metaKey) {
      const act = { a: phone.answer, e: phone.hangup, h: phone.toggleHold, m: phone.toggleMute }[key];
      if (act) { event.preventDefault(); act(); }
      return;
    }
    if (!event.ctrlKey && !event.metaKey && DIGITS.includes(event.key) && session
        && !(event.target instanceof Element && event.target.closest(TEXT_FIELDS))) {
      event.preventDefault();
      phone.dtmf(event.key);
    }
  }
  const stop = () => ua.stop();
  document.addEventListener("keydown", onKey);
  window.addEventListener("pagehide", stop);
  const observer = new MutationObserver(render);
  observer.observe(document.documentElement, { attributeFilter: ["lang"] });

  setState("connecting");
  ua.start();
  return phone;
}

window.HelplinePhone = { attach, settings };
