// The ward screen: tiles from the server's snapshots (server-sent events), alerts with a banner,
// a sound and acknowledgement, a bed's detail. No framework, no build step: one file a ward's IT
// person can read. Everything the server needs to decide is decided on the server.
"use strict";

const state = { cfg: null, S: {}, snap: null, snapAt: 0, lostSince: null, pauseEnds: 0, csrf: null, heard: new Set(), cues: 0, cueLog: [], lastPlayed: {}, audio: null, openBed: null, detailAt: 0, detailAsk: 0 };
window.kmc = state; // for the browser tests: cues counted, first-seen times of alerts
state.firstSeen = {};

const $ = (id) => document.getElementById(id);
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}
const t = (key) => state.S[key] || key;

function fmtTemp(c) { return c === null || c === undefined ? "--.-" : c.toFixed(1) + " °C"; }
function fmtDur(seconds) {
  const m = Math.max(0, Math.round(seconds / 60));
  return m < 60 ? `${m} ${t("min")}` : `${Math.floor(m / 60)} ${t("h")} ${m % 60} ${t("min")}`;
}
function clock(isoOrSeconds) {
  const d = typeof isoOrSeconds === "number" ? new Date(isoOrSeconds * 1000) : new Date(isoOrSeconds);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

// ---- sound: each alarm priority's own burst (clinical.SIGNALS, docs/alarms.md): `pattern` in
// 100 ms steps, "x" sounding, "." silent; high 10 pulses, medium 3, low 1. Louder when escalated.
const PITCH = { high: 880, medium: 660, low: 520 };
function cue(priority, escalated, why) {
  state.cues += 1;
  state.cueLog.push({ priority, escalated, why: why || "alarm", at: Date.now() / 1000 });
  const sig = state.cfg.signals[priority];
  try {
    if (!state.audio) state.audio = new (window.AudioContext || window.webkitAudioContext)();
    const ctx = state.audio;
    if (ctx.state === "suspended") { $("sound").hidden = false; return; }
    const runs = [...sig.pattern.matchAll(/x+/g)];
    for (const run of runs) {
      const o = ctx.createOscillator(), g = ctx.createGain();
      o.type = "square"; o.frequency.value = PITCH[priority] || 660;
      g.gain.value = escalated ? 0.4 : 0.2;
      o.connect(g); g.connect(ctx.destination);
      const at = ctx.currentTime + run.index * 0.1;
      o.start(at); o.stop(at + run[0].length * 0.1);
    }
  } catch (e) { /* no audio device: the banner still shows */ }
}

const MARKS = { high: "!!!", medium: "!!", low: "!" }; // IEC 60601-1-8's priority markings
function priorityWords(p) { return `${MARKS[p] || "!!"} ${t("priority_" + p)}`; }
// the server sends the alerts most urgent first (priority, then kind: WardModel.snapshot), so
// of any of them kept in that order the first has the highest priority
function highest(alerts) { return alerts.length ? alerts[0].priority : null; }
// the unacknowledged active alarms, and those of them that take the banner (not low)
function unacknowledged(snap) {
  const unacked = snap.alerts.filter((a) => a.state === "active" && !a.acked_by);
  return { unacked, open: unacked.filter((a) => a.priority !== "low") };
}
// the banner's lines: the open alarms, then the chain's acknowledged but still active ones
// (no tile carries those: they stay in view, silent, until the chain is mended)
function bannerLines(snap) {
  const { open } = unacknowledged(snap);
  return open.concat(snap.alerts.filter((a) => a.chain && a.state === "active" && a.acked_by));
}

// ---- the page's own alarm: no snapshot from the ward service for service_lost_after_s (it
// sends one at least every 5 s). A frozen page must never look live: every tile greys, the
// banner says since when, and the high burst repeats; no pause silences it, as nothing can be
// paused or recorded while the service is unreachable. The first snapshot ends it.
// Timed on the monotonic clock (performance.now): a screen PC's clock set back must not hide
// it; counted from the page's start too, so a page that never got a snapshot alarms as well.
function watchService() {
  if (!state.cfg) return;
  const quiet = performance.now() - state.snapAt;
  const lost = quiet > state.cfg.service_lost_after_s * 1000;
  if (lost === (state.lostSince !== null)) return;
  state.lostSince = lost ? Date.now() - quiet : null;
  document.body.classList.toggle("lost", lost);
  renderBanner(state.snap);
  if (state.snap) renderGateway(state.snap);
  soundTick();
}

// ---- the audio pause (docs/alarms.md): ward-wide, held by the server; the countdown runs on
// this page's clock from the time left when the snapshot was made
function pauseLeft() { return Math.max(0, state.pauseEnds - Date.now()); }
function pauseWords() { return `${t("pause_sound")} ${Math.round(state.cfg.audio_pause_s / 6) / 10} ${t("min")}`; }
function renderPause(snap) {
  const p = snap.audio_pause;
  state.pauseEnds = p ? Date.now() + (p.until - snap.now) * 1000 : 0;
  tickPause();
}
function tickPause() {
  if (!state.cfg) return;
  const left = pauseLeft(), p = state.snap && state.snap.audio_pause;
  const btn = $("pause"), shown = $("paused");
  const paused = !!p && left > 0;
  const label = paused ? t("resume_sound") : pauseWords();
  if (btn.textContent !== label) btn.textContent = label;
  btn.dataset.action = paused ? "resume" : "pause";
  shown.hidden = !paused;
  if (paused) {
    const s = Math.ceil(left / 1000);
    const text = `${t("sound_paused")} ${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")} · ${p.by}`;
    if (shown.textContent !== text) shown.textContent = text;
  }
}

// ---- rendering. Elements are updated in place, keyed by strap (tiles) and alert id (banner
// lines, tile alert lines): a tile a nurse is tapping, or a button under her finger, is never
// swapped for a copy between press and release, so every tap lands.
function render(snap) {
  state.snap = snap;
  renderPause(snap);
  renderGateway(snap);
  const now = Date.now() / 1000;
  for (const a of snap.alerts) if (!(a.id in state.firstSeen)) state.firstSeen[a.id] = now;
  renderBanner(snap);
  soundTick();
  const tiles = $("tiles");
  layout(tiles, snap.tiles.length);
  const boxes = new Map([...tiles.querySelectorAll("article.tile")].map((b) => [b.dataset.strap, b]));
  const empty = tiles.querySelector("p.empty");
  if (!snap.tiles.length && !empty) tiles.append(el("p", "empty", t("no_beds")));
  if (snap.tiles.length && empty) empty.remove();
  snap.tiles.forEach((tile, i) => {
    const box = boxes.get(tile.strap) || newTile(tile.strap);
    boxes.delete(tile.strap);
    updateTile(box, tile, snap);
    if (tiles.children[i] !== box) tiles.insertBefore(box, tiles.children[i] || null); // most urgent first
  });
  for (const gone of boxes.values()) gone.remove();
  if (state.openBed && Date.now() - state.detailAt > 2000) loadDetail(state.openBed, false);
  // live only once the snapshot is on the screen: a render that failed leaves the page to alarm
  state.snapAt = performance.now();
  if (state.lostSince !== null) watchService(); // the service is back: the page's alarm ends
}

// the header's word on the gateway, and the detector settings the screen colours with
function renderGateway(snap) {
  const g = snap.gateway, box = $("gw");
  const silent = snap.alerts.some((a) => a.kind === "gateway_silent" && a.state === "active");
  const radios = g.adapters.every((r) => r.scanning);
  // an online gateway with a radio down is not well: the header must not say "online" in red
  const word = state.lostSince !== null ? "?" : silent ? t("gateway_silent")
    : g.state === "online" && !radios ? t("gateway_radio_down")
    : g.state ? t("gateway_" + g.state) : "?";
  const text = `${t("gateway")}: ${word}`;
  if (box.textContent !== text) box.textContent = text;
  box.className = "conn " + (state.lostSince === null && snap.chain_ok && radios && g.state === "online" ? "up" : "down");
  box.title = `${t("settings")} ${g.detector.digest} (${g.settings_from})`;
  box.dataset.digest = g.detector.digest;
}

// a large ward on one screen, without scrolling: beyond COMPACT_FROM beds the tiles shrink to
// bed, temperature, band, state, KMC hours and alarms, in as many columns as make them fit
const COMPACT_FROM = 13;
function layout(tiles, n) {
  const compact = n >= COMPACT_FROM;
  tiles.classList.toggle("compact", compact);
  if (!compact) { tiles.style.removeProperty("--cols"); tiles.style.removeProperty("--rows"); return; }
  const r = tiles.getBoundingClientRect();
  const w = Math.max(1, window.innerWidth), h = Math.max(1, window.innerHeight - r.top);
  // tiles about 1.3 times as wide as tall: columns for the screen's shape
  const cols = Math.max(1, Math.min(n, Math.round(Math.sqrt((n * w) / (h * 1.3)))));
  const rows = Math.ceil(n / cols);
  if (tiles.style.getPropertyValue("--cols") !== String(cols)) tiles.style.setProperty("--cols", cols);
  if (tiles.style.getPropertyValue("--rows") !== String(rows)) tiles.style.setProperty("--rows", rows);
}
window.addEventListener("resize", () => { if (state.snap) layout($("tiles"), state.snap.tiles.length); });

// a keyed list: the children of `parent` matching `selector`, one per item (by `key`), made
// by `make` when new and refreshed by `update` when its `sig` changed, in the items' order just
// before `before` (null: at the end). A node already in its place is not touched.
function syncList(parent, selector, items, key, sig, make, update, before) {
  const old = new Map([...parent.querySelectorAll(":scope > " + selector)].map((e) => [e.dataset.key, e]));
  const nodes = items.map((item) => {
    const k = key(item), s = sig(item);
    let node = old.get(k);
    old.delete(k);
    if (!node) { node = make(item); node.dataset.key = k; }
    if (node.dataset.sig !== s) { update(node, item); node.dataset.sig = s; }
    return node;
  });
  for (const gone of old.values()) gone.remove();
  let ref = before || null;
  for (const node of nodes.reverse()) {
    if (node.parentNode !== parent || node.nextSibling !== ref) parent.insertBefore(node, ref);
    ref = node;
  }
}

// the sound, checked every 250 ms (not only when a snapshot comes): a new alarm plays the burst
// of the highest priority among the new ones; the highest open priority repeats every its
// `repeat_s`, each priority on its own timer (a new low alarm does not hold off a high one's
// repeat); escalated, at least every 10 s
function soundTick() {
  const snap = state.snap;
  if (!state.cfg) return;
  const now = Date.now();
  if (state.lostSince !== null) { // the page's own alarm, whatever the last snapshot said
    if (now - (state.lastPlayed.service_lost || 0) >= state.cfg.signals.high.repeat_s * 1000) {
      cue("high", false, "service_lost");
      state.lastPlayed.service_lost = now;
    }
    return;
  }
  if (!snap) return;
  const { unacked, open } = unacknowledged(snap);
  const escalated = open.some((a) => a.escalated);
  const fresh = unacked.filter((a) => !state.heard.has(a.id));
  fresh.forEach((a) => state.heard.add(a.id));
  if (pauseLeft() > 0) return; // paused: new alarms of no higher priority wait for its end
  if (fresh.length) {
    const p = highest(fresh);
    cue(p, escalated);
    state.lastPlayed[p] = now;
    return;
  }
  const top = highest(open);
  if (!top) return;
  const every = state.cfg.signals[top].repeat_s * 1000;
  const due = escalated ? Math.min(every, 10000) : every;
  if (every > 0 && now - (state.lastPlayed[top] || 0) >= due) {
    cue(top, escalated);
    state.lastPlayed[top] = now;
  }
}

const BANNER_LINES = 3; // the rest of the alarms: "+ N more", their tiles carry them
function renderBanner(snap) {
  const banner = $("banner");
  // low ones stay on the tiles; the page's own alarm, when the service is lost, comes first
  const lost = state.lostSince === null ? [] : [{ id: "service_lost", kind: "service_lost", priority: "high", chain: true,
    source: "", start: new Date(state.lostSince).toISOString(), page: true }];
  const lines = lost.concat(snap ? bannerLines(snap) : []);
  banner.hidden = lines.length === 0;
  const top = highest(lines);
  banner.className = top ? `prio-${top}` : "";
  banner.classList.toggle("escalated", lines.some((a) => a.escalated && !a.acked_by));
  syncList(banner, "div.item", lines.slice(0, BANNER_LINES), (a) => a.id,
    (a) => JSON.stringify([a.extreme_c, a.escalated, a.priority, a.acked_by, bedOf(snap, a.strap)]),
    (a) => {
      const item = el("div", "item");
      item.dataset.alert = a.id;
      item.append(el("span", "lamp"), el("span", "prio"), el("span", "what"));
      if (!a.page) item.append(ackButton(a));
      return item;
    },
    (item, a) => {
      item.className = `item prio-${a.priority}` + (a.acked_by ? " acked" : "");
      item.dataset.priority = a.priority;
      item.querySelector(".prio").textContent = priorityWords(a.priority);
      item.querySelector(".what").textContent = alarmText(snap, a);
      const ack = item.querySelector("button.ack");
      if (ack) ack.hidden = !!a.acked_by;
    }, banner.querySelector("p.more"));
  let more = banner.querySelector("p.more");
  const rest = lines.length - BANNER_LINES;
  if (rest > 0 && !more) { more = el("p", "more"); banner.append(more); }
  if (more) { if (rest > 0) more.textContent = `+ ${rest} ${t("more_alarms")}`; else more.remove(); }
}
// a banner line's words: the bed and baby, or for the chain what failed, then what and since
function alarmText(snap, a) {
  let who;
  if (a.chain) who = a.source.startsWith("adapter ") ? `${t("alert_" + a.kind)} ${a.source.slice(8)}` : t("alert_" + a.kind);
  else {
    const tile = snap.tiles.find((x) => x.strap === a.strap) || {};
    who = `${t("bed")} ${tile.bed || "?"} · ${tile.infant || a.strap} · ${t("alert_" + a.kind)}`;
  }
  const extreme = a.kind === "hyperthermia" ? t("highest") : t("lowest"); // the episode's extreme
  return who + (a.extreme_c ? ` · ${extreme} ${a.extreme_c.toFixed(1)} °C` : "") + ` · ${t("since")} ${clock(a.start)}` +
    (a.chain ? ` · ${t("check_by_hand")}` : "") +
    (a.acked_by ? ` · ${t("acknowledged_by")} ${a.acked_by}` : a.escalated ? ` · ${t("escalated")}` : "");
}
function bedOf(snap, strap) { const x = snap && snap.tiles.find((y) => y.strap === strap); return x ? [x.bed, x.infant] : null; }

function ackButton(a, onTile) {
  const b = el("button", "ack");
  b.append(el("span", "long", t("acknowledge")));
  if (onTile) b.append(el("span", "short", t("acknowledge_short")));
  b.dataset.alert = a.id;
  b.addEventListener("click", (ev) => { ev.stopPropagation(); askAck(a); });
  return b;
}

function newTile(strap) {
  const box = el("article", "tile");
  box.dataset.strap = strap;
  box.tabIndex = 0;
  const top = el("div", "top");
  top.append(el("span", "bedno"), el("span", "infant"));
  const bar = el("div", "bar");
  bar.append(el("div"));
  // the alert lines go between the state and the KMC line (updateTile)
  const kmc = el("div", "kmc");
  box.append(top, el("div", "temp"), el("div", "bandtext"), el("div", "state"), kmc, bar,
    el("div", "meta since"), el("div", "meta battery"));
  box.addEventListener("click", () => loadDetail(strap, true));
  return box;
}

function setText(box, selector, text) {
  const e = box.querySelector(selector);
  if (e.textContent !== text) e.textContent = text;
}

function updateTile(box, tile, snap) {
  const cls = `tile band-${tile.band}` + (tile.priority ? ` prio-${tile.priority}` : "");
  if (box.className !== cls) box.className = cls;
  box.dataset.state = tile.state;
  box.dataset.priority = tile.priority || "";
  setText(box, ".bedno", `${t("bed")} ${tile.bed || "?"}`);
  setText(box, ".infant", tile.infant || tile.strap);
  setText(box, ".temp", tile.state === "no_signal" || tile.state === "off" ? "--.-" : fmtTemp(tile.infant_c));
  setText(box, ".bandtext", t("band_" + tile.band));
  setText(box, ".state", t("state_" + tile.state));
  syncList(box, "div.alert", tile.alerts, (a) => a.id, (a) => JSON.stringify([a.acked_by, a.escalated]),
    () => el("div", "alert"),
    (line, a) => {
      line.className = "alert" + (a.acked_by ? " acked" : ` prio-${a.priority}`) + (a.escalated && !a.acked_by ? " escalated" : "");
      line.dataset.alert = a.id;
      // compact tiles (a large ward) hide the priority's word and the long button label
      const what = el("span", "what");
      if (!a.acked_by) what.append(el("span", "marks", MARKS[a.priority] + " "), el("span", "word", t("priority_" + a.priority) + " · "));
      what.append(t("alert_" + a.kind) + (a.acked_by ? ` · ${t("acknowledged_by")} ${a.acked_by}` : ""));
      line.replaceChildren(el("span", "lamp"), what);
      if (!a.acked_by) line.append(document.createTextNode(" "), ackButton(a, true));
    }, box.querySelector(".kmc"));
  setText(box, ".kmc", `${t("kmc_today")}: ${tile.kmc_hours_today.toFixed(1)} / ${snap.target_h} ${t("h")}`);
  box.querySelector(".bar > div").style.width = `${Math.min(100, (100 * tile.kmc_hours_today) / snap.target_h)}%`;
  let since;
  if (tile.in_kmc_since) since = `${t("in_kmc_since")} ${clock(tile.in_kmc_since)}`;
  else if (tile.last_session_end) since = `${t("last_kmc")} ${fmtDur(Date.now() / 1000 - Date.parse(tile.last_session_end) / 1000)} ${t("ago")}`;
  else since = t("no_kmc_yet");
  setText(box, ".since", since);
  const batt = tile.battery_v === null ? "" : `${t("battery")} ${tile.battery_v.toFixed(2)} V`;
  setText(box, ".battery", tile.battery_low ? `${t("battery_low")} ${batt}` : batt);
}

// ---- a nurse's action (acknowledge, pause or resume the sound): PIN (once per session) and
// initials; the server re-checks everything
function askAck(a) {
  ask("ack", `${t("acknowledge")}: ${t("alert_" + a.kind)} (${a.strap || a.source})`, a.id);
}
function askPause() {
  const action = $("pause").dataset.action || "pause";
  ask(action, action === "pause" ? pauseWords() : t("resume_sound"), "");
}
function ask(action, title, alertId) {
  const dlg = $("ackdialog");
  $("acktitle").textContent = title;
  $("pinrow").hidden = !!state.csrf;
  $("pin").value = "";
  $("ackerror").textContent = "";
  dlg.dataset.action = action;
  dlg.dataset.alert = alertId;
  dlg.hidden = false;
  (state.csrf ? $("initials") : $("pin")).focus();
}

async function submitAck(ev) {
  ev.preventDefault();
  const initials = $("initials").value.trim();
  if (!/^[A-Za-z]{1,4}$/.test(initials)) { $("ackerror").textContent = t("need_initials"); return; }
  if (!state.csrf) {
    const r = await fetch("/api/login", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ pin: $("pin").value }) });
    if (!r.ok) { $("ackerror").textContent = r.status === 403 ? t("wrong_pin") : await r.text(); return; }
    state.csrf = (await r.json()).csrf;
    showSession();
  }
  const dlg = $("ackdialog"), action = dlg.dataset.action;
  const [url, body] = action === "ack" ? ["/api/ack", { alert: dlg.dataset.alert, initials }] : ["/api/pause", { action, initials }];
  const r = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": state.csrf }, body: JSON.stringify(body) });
  if (r.status === 403) { state.csrf = null; showSession(); $("pinrow").hidden = false; $("ackerror").textContent = await r.text(); return; }
  if (!r.ok) { $("ackerror").textContent = await r.text(); return; }
  $("ackdialog").hidden = true;
}

function showSession() {
  $("logout").hidden = !state.csrf;
  $("audit").hidden = !state.csrf;
}

// ---- a bed's detail: 24 h trace with KMC shaded, sessions, alert history. The panel and its
// close button stay while it is open; a refresh (at most every 2 s) replaces only the contents.
async function loadDetail(strap, open) {
  state.detailAt = Date.now();
  const ask = ++state.detailAsk; // only the newest request may fill the panel
  if (open) state.openBed = strap;
  const r = await fetch(`/api/bed/${encodeURIComponent(strap)}`);
  if (!r.ok) return;
  const d = await r.json();
  if (ask !== state.detailAsk || state.openBed !== strap) return; // closed or superseded meanwhile
  let panel = $("detail").querySelector(".panel");
  if (!panel || panel.dataset.strap !== strap) {
    panel = el("div", "panel");
    panel.dataset.strap = strap;
    const head = el("div", "top");
    head.append(el("h2"));
    const close = el("button", "close", t("close"));
    close.addEventListener("click", () => { $("detail").hidden = true; state.openBed = null; });
    head.append(close);
    panel.append(head, el("div", "contents"));
    $("detail").replaceChildren(panel);
  }
  panel.querySelector("h2").textContent = `${t("bed")} ${d.bed} · ${d.infant || d.strap}`;
  panel.querySelector(".contents").replaceChildren(
    el("h3", null, t("trace_24h")), trace(d.trace, d.bands),
    el("h3", null, t("sessions_today")), table(d.sessions.slice(-12).reverse().map((s) => [clock(s.start), clock(s.end), `${s.minutes.toFixed(0)} ${t("min")}`])),
    el("h3", null, t("alert_history")), table(d.alerts.slice(0, 20).map((a) => [t("alert_" + a.kind), clock(a.start), a.end ? clock(a.end) : "…", a.extreme_c ? a.extreme_c.toFixed(1) + " °C" : "", a.acked_by ? `${t("acknowledged_by")} ${a.acked_by}` : ""])));
  if (open) $("detail").hidden = false;
}

function table(rows) {
  if (!rows.length) return el("p", null, t("none"));
  const tb = el("table");
  for (const row of rows) { const tr = el("tr"); row.forEach((c) => tr.append(el("td", null, c))); tb.append(tr); }
  return tb;
}

function trace(points, bands) {
  const NS = "http://www.w3.org/2000/svg", W = 1000, H = 240;
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("preserveAspectRatio", "none");
  if (!points.length) return svg;
  // the last 24 h, or less when the strap has been on for less: the data fills the width
  const t1 = points[points.length - 1].t, t0 = Math.max(points[0].t, t1 - 86400), span = Math.max(600, t1 - t0);
  const lo = 34, hi = 38.5;
  const x = (tt) => ((tt - t0) / span) * W, y = (c) => H - ((Math.min(hi, Math.max(lo, c)) - lo) / (hi - lo)) * H;
  for (const p of points) if (p.kmc) {
    const r = document.createElementNS(NS, "rect");
    r.setAttribute("x", x(p.t)); r.setAttribute("y", 0); r.setAttribute("width", Math.max(1, (60 / span) * W)); r.setAttribute("height", H);
    r.setAttribute("fill", "#c7e9c0"); svg.append(r);
  }
  const colours = {cold_stress: "#e08214", moderate_hypothermia: "#b2182b", hyperthermia: "#c51b7d"};
  for (const {kind, threshold_c: c} of bands) {
    const colour = colours[kind] || "#555555";
    const l = document.createElementNS(NS, "line");
    l.setAttribute("x1", 0); l.setAttribute("x2", W); l.setAttribute("y1", y(c)); l.setAttribute("y2", y(c));
    l.setAttribute("stroke", colour); l.setAttribute("stroke-dasharray", "6 4"); svg.append(l);
    const label = document.createElementNS(NS, "text");
    label.setAttribute("x", 4); label.setAttribute("y", y(c) - 3); label.setAttribute("font-size", 14); label.textContent = `${c} °C`; svg.append(label);
  }
  let d = "", pen = false, prev = null;
  for (const p of points) {
    if (p.c === null || (prev !== null && p.t - prev > 180)) { pen = false; prev = p.t; if (p.c === null) continue; }
    d += `${pen ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.c).toFixed(1)}`; pen = true; prev = p.t;
  }
  for (const [tt, anchor, xpos] of [[t0, "start", 4], [t1, "end", W - 4]]) {
    const label = document.createElementNS(NS, "text");
    label.setAttribute("x", xpos); label.setAttribute("y", H - 6); label.setAttribute("font-size", 16);
    label.setAttribute("text-anchor", anchor); label.textContent = clock(tt); svg.append(label);
  }
  const path = document.createElementNS(NS, "path");
  path.setAttribute("d", d); path.setAttribute("fill", "none"); path.setAttribute("stroke", "#111"); path.setAttribute("stroke-width", 2);
  svg.append(path);
  return svg;
}

// ---- live updates: EventSource reconnects by itself after a server restart
function connect() {
  const es = new EventSource("/events");
  es.onopen = () => { $("conn").textContent = t("live"); $("conn").className = "conn up"; };
  es.onmessage = (ev) => render(JSON.parse(ev.data));
  es.onerror = () => { $("conn").textContent = t("reconnecting"); $("conn").className = "conn down"; };
}

async function start() {
  for (;;) {
    try {
      const r = await fetch("/api/config");
      state.cfg = await r.json();
      break;
    } catch (e) { await new Promise((ok) => setTimeout(ok, 1000)); }
  }
  state.S = state.cfg.strings;
  document.documentElement.lang = state.cfg.language;
  $("title").textContent = `KMC Sense · ${state.cfg.site} / ${state.cfg.ward} · ${t("title")}`;
  $("sound").textContent = t("enable_sound");
  $("sound").addEventListener("click", () => { if (state.audio) state.audio.resume(); $("sound").hidden = true; });
  $("logout").textContent = t("log_out");
  $("logout").addEventListener("click", async () => { await fetch("/api/logout", { method: "POST" }); state.csrf = null; showSession(); });
  $("audit").textContent = t("export_audit");
  $("pinlabel").textContent = t("pin");
  $("initlabel").textContent = t("initials");
  $("ackok").textContent = t("ok");
  $("ackcancel").textContent = t("cancel");
  $("ackcancel").addEventListener("click", () => { $("ackdialog").hidden = true; });
  $("ackform").addEventListener("submit", submitAck);
  $("pause").addEventListener("click", askPause);
  setInterval(() => { $("clock").textContent = new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }); }, 1000);
  state.snapAt = performance.now(); // the page's start: no snapshot within the limit alarms too
  setInterval(soundTick, 250);
  setInterval(() => { watchService(); tickPause(); }, 500);
  connect();
}
start();
