// The page's wiring: the editor, the source picker and panels, the stream and the table.

import { api, errorOf, getToken, setToken } from "./api.js";
import { Editor } from "./predicate.js";
import { EventTable, maxRows } from "./events.js";
import { Stream } from "./stream.js";
import { ago, bytes, clockTime, count, parseIds, RateMeter, rates, sparkPoints } from "./format.js";

const $ = (id) => document.getElementById(id);
const refreshMs = 3000;

const el = {
  token: $("token"),
  authHint: $("auth-hint"),
  predicate: $("predicate"),
  sources: $("sources"),
  sourceList: $("sources").querySelector(".source-list"),
  sourcesError: $("sources-error"),
  transport: $("transport"),
  policy: $("policy"),
  from: $("from"),
  fromError: $("from-error"),
  start: $("start"),
  stop: $("stop"),
  streamStatus: $("stream-status"),
  pause: $("pause"),
  pausedInfo: $("paused-info"),
  clear: $("clear"),
  rate: $("rate"),
  count: $("count"),
  gaps: $("gaps"),
  sourceTable: $("source-table"),
  subscriptions: $("subscriptions"),
  sinks: $("sinks"),
  sinkTable: $("sink-table"),
  subscriptionTable: $("subscription-table"),
};

// ---- auth ------------------------------------------------------------------------------------

let authNeeded = false;
function setAuthNeeded(needed) {
  authNeeded = needed;
  el.authHint.hidden = !needed;
  el.authHint.textContent = getToken() ? "The server refused this token." : "This server needs a token.";
  el.token.setAttribute("aria-invalid", needed ? "true" : "false");
}

el.token.value = getToken();
let tokenTimer = 0;
el.token.addEventListener("input", () => {
  clearTimeout(tokenTimer);
  tokenTimer = setTimeout(() => {
    setToken(el.token.value.trim());
    subscriptionsAllowed = true;
    sinksAllowed = true;
    refreshSources();
    refreshSubscriptions();
    refreshSinks();
    editor.check();
  }, 400);
});

// ---- the editor --------------------------------------------------------------------------------

const editor = new Editor({
  textarea: el.predicate,
  mirror: $("predicate-mirror"),
  status: $("check-status"),
  error: $("check-error"),
  errorPos: $("check-error-pos"),
  errorMessage: $("check-error-message"),
  details: $("check-details"),
  warnings: $("check-warnings"),
  atoms: $("atoms"),
  atomsList: $("atoms-list"),
  sources: selectedSources,
  onAuth: (needed) => {
    if (needed || authNeeded) setAuthNeeded(needed);
  },
});

el.predicate.addEventListener("input", saveState);
el.predicate.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
    e.preventDefault();
    start();
  }
});

$("examples").addEventListener("click", (e) => {
  const b = e.target.closest("button.example");
  if (!b) return;
  editor.value = b.dataset.where;
  saveState();
  editor.check();
  el.predicate.focus();
});

// ---- the state in the URL's fragment, so that a link shows the same stream -------------------

function loadState() {
  const q = new URLSearchParams(location.hash.slice(1));
  if (q.has("where")) editor.value = q.get("where");
  if (q.get("transport") === "ws") el.transport.value = "ws";
  if (q.get("policy") === "drop") el.policy.value = "drop";
  return q.getAll("source");
}

function saveState() {
  const q = new URLSearchParams();
  if (el.predicate.value) q.set("where", el.predicate.value);
  for (const s of selectedSources()) q.append("source", s);
  if (el.transport.value !== "sse") q.set("transport", el.transport.value);
  if (el.policy.value) q.set("policy", el.policy.value);
  const hash = q.toString();
  history.replaceState(null, "", hash ? `#${hash}` : location.pathname + location.search);
}

el.transport.addEventListener("change", saveState);
el.policy.addEventListener("change", saveState);

// ---- sources -------------------------------------------------------------------------------------

let wanted = new Set(loadState()); // sources to tick once they are listed
let knownSources = [];

function selectedSources() {
  return [...el.sourceList.querySelectorAll('input[name="source"]:checked')].map((i) => i.value);
}

async function refreshSources() {
  let res;
  try {
    res = await api("v1/sources");
  } catch (e) {
    showSourcesError(`Cannot list sources: ${e.message}.`);
    return;
  }
  if (res.status === 401 || res.status === 403) {
    setAuthNeeded(true);
    showSourcesError(`Cannot list sources: ${errorOf(res.body)?.message ?? "not allowed"}.`);
    // Forget what an earlier token could read: the page must not look as if it still can.
    el.sourceList.replaceChildren();
    knownSources = [];
    renderSourceTable([]);
    return;
  }
  if (res.status !== 200 || !Array.isArray(res.body)) {
    showSourcesError(`Cannot list sources: ${errorOf(res.body)?.message ?? "HTTP " + res.status}.`);
    return;
  }
  if (authNeeded) setAuthNeeded(false);
  el.sourcesError.hidden = true;
  const list = res.body.filter((s) => s && typeof s.name === "string");
  sample(list);
  renderPicker(list);
  renderSourceTable(list);
}

// ---- each source's rate over the last minutes, from the received counters of each refresh ----

const chartWindowMs = 5 * 60 * 1000; // the most a chart covers
const chartMinMs = 30 * 1000; // the least: a page just opened draws its first points over this
const chartWidth = 80;
const chartHeight = 20;
const samples = new Map(); // source name → [[time ms, received], …], oldest first

// sample keeps each source's received counter of this refresh, for its chart. A refresh sooner
// than a second after the last (one a status event asked for) is not kept: its rate would be
// mostly noise.
function sample(list) {
  const now = Date.now();
  const seen = new Set();
  for (const s of list) {
    seen.add(s.name);
    const n = s.counters?.received;
    if (typeof n !== "number") continue;
    let xs = samples.get(s.name);
    if (!xs) samples.set(s.name, (xs = []));
    if (xs.length && now - xs[xs.length - 1][0] < 1000) continue;
    xs.push([now, n]);
    while (xs.length > 2 && now - xs[1][0] > chartWindowMs) xs.shift();
  }
  for (const name of samples.keys()) if (!seen.has(name)) samples.delete(name);
}

const svgNS = "http://www.w3.org/2000/svg";

// rateCell draws the chart of a source's rate and says its latest value.
function rateCell(name) {
  const cell = td("", "rate");
  const xs = samples.get(name) ?? [];
  const series = rates(xs);
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", `0 0 ${chartWidth} ${chartHeight}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.dataset.points = String(series.length);
  const now = xs.length ? xs[xs.length - 1][0] : Date.now();
  const span = Math.min(chartWindowMs, Math.max(chartMinMs, xs.length ? now - xs[0][0] : 0));
  const top = Math.max(1, ...series.map(([, r]) => r));
  const title = document.createElementNS(svgNS, "title");
  title.textContent = `messages per second over the last ${ago(now - span, now)}; highest ${count(Math.round(top * 10) / 10)}`;
  svg.setAttribute("role", "img");
  const base = document.createElementNS(svgNS, "line");
  base.setAttribute("x1", "0");
  base.setAttribute("x2", String(chartWidth));
  base.setAttribute("y1", String(chartHeight - 0.5));
  base.setAttribute("y2", String(chartHeight - 0.5));
  const line = document.createElementNS(svgNS, "polyline");
  line.setAttribute("points", sparkPoints(series, now, span, chartWidth, chartHeight));
  svg.append(title, base, line);
  const latest = document.createElement("span");
  latest.className = "rate-now";
  latest.textContent = series.length ? `${count(Math.round(series[series.length - 1][1] * 10) / 10)} msg/s` : "–";
  cell.append(svg, latest);
  return cell;
}

// ---- ages that stay current between refreshes: every td[data-at] is redrawn each second --------

// aged returns a cell that shows how long ago t was, kept current by tickAges.
function aged(t, cls) {
  const cell = td("", cls);
  if (!t) return cell;
  cell.dataset.at = t;
  cell.title = new Date(t).toLocaleString();
  agedText(cell, Date.now());
  return cell;
}

function agedText(cell, now) {
  const a = ago(cell.dataset.at, now);
  cell.textContent = cell.classList.contains("error-at") ? `${clockTime(cell.dataset.at).slice(0, 8)} (${a} ago)` : `${a} ago`;
}

function tickAges() {
  const now = Date.now();
  for (const cell of document.querySelectorAll("td[data-at]")) agedText(cell, now);
}

function showSourcesError(text) {
  el.sourcesError.textContent = text;
  el.sourcesError.hidden = false;
}

function stateOf(s) {
  return typeof s.state === "string" && s.state ? s.state : "unknown";
}

function dot(state) {
  const d = document.createElement("span");
  d.className = "dot";
  d.dataset.state = state;
  d.setAttribute("aria-hidden", "true");
  return d;
}

function renderPicker(list) {
  const names = list.map((s) => s.name);
  const same = names.length === knownSources.length && names.every((n, i) => n === knownSources[i]);
  if (!same) {
    const checked = new Set([...selectedSources(), ...wanted]);
    wanted = new Set();
    const items = list.map((s) => {
      const label = document.createElement("label");
      label.className = "source-item";
      label.dataset.source = s.name;
      const box = document.createElement("input");
      box.type = "checkbox";
      box.name = "source";
      box.value = s.name;
      box.checked = checked.has(s.name);
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = s.name;
      const meta = document.createElement("span");
      meta.className = "meta";
      label.append(box, dot(stateOf(s)), name, meta);
      return label;
    });
    if (items.length === 0) {
      const p = document.createElement("p");
      p.className = "empty";
      p.textContent = "No sources configured.";
      items.push(p);
    }
    el.sourceList.replaceChildren(...items);
    knownSources = names;
  }
  for (const s of list) {
    const label = el.sourceList.querySelector(`label[data-source="${CSS.escape(s.name)}"]`);
    if (!label) continue;
    const state = stateOf(s);
    label.querySelector(".dot").dataset.state = state;
    label.querySelector(".meta").textContent = `${s.type ?? ""} · ${state}`;
    label.title = s.last_error ? `last error: ${s.last_error}` : "";
  }
}

el.sourceList.addEventListener("change", () => {
  saveState();
  editor.check();
});

function renderSourceTable(list) {
  const rows = list.map((s) => {
    const c = s.counters ?? {};
    const tr = document.createElement("tr");
    tr.dataset.source = s.name;
    const stateCell = td("", "state");
    stateCell.append(dot(stateOf(s)), " ", stateOf(s));
    tr.append(
      td(s.name, "name"),
      td(s.type ?? "", ""),
      stateCell,
      rateCell(s.name),
      aged(c.last_message, "age"),
      td(count(c.received), "num"),
      td(count(c.matched), "num"),
      td(count(c.dropped), "num"),
      td(count(c.predicate_errors), "num"),
      td(count(c.subscriptions), "num"),
      aged(s.last_error ? s.last_error_at : "", "error-at"),
      td(s.last_error ?? "", "last-error"),
    );
    return tr;
  });
  if (rows.length === 0) rows.push(emptyRow(12, "No sources."));
  el.sourceTable.replaceChildren(...rows);
}

function td(text, cls) {
  const c = document.createElement("td");
  if (cls) c.className = cls;
  if (text) c.textContent = text;
  return c;
}

// counter is a number cell; data-counter names the API's field it shows.
function counter(name, text) {
  const c = td(text, "num");
  c.dataset.counter = name;
  return c;
}

function emptyRow(cols, text) {
  const tr = document.createElement("tr");
  const c = td(text, "empty");
  c.colSpan = cols;
  tr.append(c);
  return tr;
}

// ---- sinks (admins only; hidden when there are none or the server says 401/403) ---------------

let sinksAllowed = true;

async function refreshSinks() {
  let res;
  try {
    res = await api("v1/sinks");
  } catch {
    return;
  }
  if (res.status === 401 || res.status === 403) sinksAllowed = false;
  if (res.status !== 200 || !Array.isArray(res.body) || res.body.length === 0) {
    el.sinks.hidden = true;
    return;
  }
  el.sinks.hidden = false;
  const rows = res.body.map((s) => {
    const tr = document.createElement("tr");
    tr.dataset.sink = s.name;
    const state = typeof s.state === "string" && s.state ? s.state : "unknown";
    const stateCell = td("", "state");
    stateCell.append(dot(state), " ", state);
    const pos = typeof s.position === "string" ? s.position.split(",").join(", ") : "";
    tr.append(
      td(s.name, "name"),
      td(s.type ?? "", ""),
      stateCell,
      counter("delivered", count(s.delivered)),
      counter("failed_attempts", count(s.failed_attempts)),
      counter("gaps", count(s.gaps)),
      counter("lag", count(s.lag)),
      counter("lag_seconds", typeof s.lag_seconds === "number" ? count(Math.round(s.lag_seconds * 10) / 10) : "–"),
      td(pos, ""),
      td(s.last_error ?? "", "last-error"),
    );
    return tr;
  });
  el.sinkTable.replaceChildren(...rows);
}

// ---- subscriptions (admins only: hidden when the server says 401/403) --------------------------

// Whether to keep asking for the subscriptions: not after a 401 or 403, until the token changes,
// so that a reader's page does not log a refused request every few seconds.
let subscriptionsAllowed = true;

async function refreshSubscriptions() {
  let res;
  try {
    res = await api("v1/subscriptions");
  } catch {
    return; // keep what is shown; the sources panel says the server is unreachable
  }
  if (res.status === 401 || res.status === 403) subscriptionsAllowed = false;
  if (res.status !== 200 || !Array.isArray(res.body)) {
    el.subscriptions.hidden = true;
    return;
  }
  el.subscriptions.hidden = false;
  const rows = res.body.map((s) => {
    const c = s.counters ?? {};
    const tr = document.createElement("tr");
    tr.dataset.id = String(s.id);
    const pred = td("", "predicate");
    const code = document.createElement("code");
    code.textContent = s.predicate || "(every message)";
    pred.title = s.predicate ?? "";
    pred.append(code);
    const started = aged(s.started, "started");
    const act = td("", "actions");
    const end = document.createElement("button");
    end.type = "button";
    end.className = "small end";
    end.textContent = "End";
    end.setAttribute("aria-label", `End subscription ${s.id}`);
    end.dataset.id = String(s.id);
    act.append(end);
    tr.append(
      td(String(s.id ?? ""), "num"),
      pred,
      td(Array.isArray(s.sources) ? s.sources.join(", ") : "", ""),
      td(s.transport ?? "", ""),
      td(s.remote ?? "", "remote"),
      td(s.policy ?? "", ""),
      started,
      counter("matched", count(c.matched)),
      counter("delivered", count(c.delivered)),
      counter("dropped", count(c.dropped)),
      counter("predicate_errors", count(c.predicate_errors)),
      counter("predicate_cost", count(c.predicate_cost)),
      counter("queue_depth", count(c.queue_depth)),
      counter("queue_bytes", bytes(c.queue_bytes)),
      act,
    );
    return tr;
  });
  if (rows.length === 0) rows.push(emptyRow(15, "No live subscriptions."));
  // Keep a pending "Confirm?" across the refresh.
  const armed = el.subscriptionTable.querySelector("button.end.armed")?.dataset.id;
  el.subscriptionTable.replaceChildren(...rows);
  if (armed) arm(el.subscriptionTable.querySelector(`button.end[data-id="${CSS.escape(armed)}"]`));
}

// Ending a subscription takes two clicks: the first arms the button for a few seconds.
function arm(b) {
  if (!b) return;
  b.classList.add("armed");
  b.textContent = "Confirm?";
}

let armTimer = 0;
el.subscriptionTable.addEventListener("click", async (e) => {
  const b = e.target.closest("button.end");
  if (!b) return;
  if (!b.classList.contains("armed")) {
    el.subscriptionTable.querySelectorAll("button.end.armed").forEach((x) => {
      x.classList.remove("armed");
      x.textContent = "End";
    });
    arm(b);
    clearTimeout(armTimer);
    armTimer = setTimeout(() => {
      b.classList.remove("armed");
      b.textContent = "End";
    }, 4000);
    return;
  }
  b.disabled = true;
  try {
    await api(`v1/subscriptions/${encodeURIComponent(b.dataset.id)}`, { method: "DELETE" });
  } catch {
    // the refresh shows what happened
  }
  refreshSubscriptions();
});

// ---- the stream ----------------------------------------------------------------------------------

const table = new EventTable($("events"), { empty: $("events-empty") });
const meter = new RateMeter(5000);
let stream = null;
let received = 0;
let missed = 0;
let statusRefresh = 0;

function setStreamStatus(state, text) {
  el.streamStatus.dataset.state = state;
  el.streamStatus.textContent = text;
}

async function start() {
  const where = el.predicate.value;
  const sources = selectedSources();
  const from = parseIds(el.from.value);
  showFromError(from.error);
  if (from.error) {
    el.from.focus();
    return;
  }
  const running = stream && !stream.closed;
  const before = el.streamStatus.dataset.state;
  el.start.disabled = true;
  setStreamStatus("connecting", "Checking the predicate…");
  const verdict = await editor.check();
  el.start.disabled = false;
  if (verdict.valid === false) {
    if (running) {
      setStreamStatus(before, "Not restarted: the predicate is invalid (see above); the stream goes on as it was.");
    } else {
      setStreamStatus("error", "Not started: the predicate is invalid (see above).");
    }
    editor.focusError();
    return;
  }
  stream?.stop();
  clear(); // the table shows one stream: what this predicate matches
  const s = new Stream(
    { where, sources, policy: el.policy.value, from: from.ids },
    el.transport.value,
    {
      onEvent: (ev) => onEvent(ev),
      onState: (state, text, err) => {
        if (stream !== s) return;
        setStreamStatus(state, cap(text));
        if (state === "error" || state === "stopped") setRunning(false);
        if (err?.auth) setAuthNeeded(true);
      },
    },
  );
  stream = s;
  setRunning(true);
  s.start();
}

function stop() {
  const s = stream;
  if (!s) return;
  s.stop("Stopped.");
  setRunning(false);
  meter.reset();
  updateMeters();
}

function setRunning(on) {
  el.stop.disabled = !on;
  el.start.textContent = on ? "Restart" : "Start";
}

function cap(s) {
  return s ? s[0].toUpperCase() + s.slice(1) : s;
}

function onEvent(ev) {
  switch (ev.type) {
    case "message":
      received++;
      meter.add();
      break;
    case "gap":
      if (typeof ev.missed === "number") missed += ev.missed;
      break;
    case "status":
      // The panel catches up at once, but a flapping source does not flood the server.
      if (!statusRefresh) {
        statusRefresh = setTimeout(() => {
          statusRefresh = 0;
          refreshSources();
        }, 300);
      }
      break;
  }
  table.push(ev);
}

function showFromError(text) {
  el.fromError.hidden = !text;
  el.fromError.textContent = text ?? "";
  el.from.setAttribute("aria-invalid", text ? "true" : "false");
}

el.from.addEventListener("input", () => showFromError(null));
el.from.addEventListener("keydown", (e) => {
  if (e.key === "Enter") {
    e.preventDefault();
    start();
  }
});

el.start.addEventListener("click", start);
el.stop.addEventListener("click", stop);

el.pause.addEventListener("click", () => {
  const paused = !table.paused;
  table.setPaused(paused);
  el.pause.setAttribute("aria-pressed", String(paused));
  el.pause.textContent = paused ? "Resume" : "Pause";
  updateMeters();
});

function clear() {
  table.clear();
  received = 0;
  missed = 0;
  meter.reset();
  updateMeters();
}
el.clear.addEventListener("click", clear);

function updateMeters() {
  el.rate.textContent = count(Math.round(meter.rate() * 10) / 10);
  el.count.textContent = count(received);
  el.gaps.textContent = count(missed);
  el.pausedInfo.hidden = !table.paused;
  if (table.paused) {
    el.pausedInfo.textContent =
      `Paused: events keep arriving and are counted (${count(table.pausedCount)} since pausing), ` +
      `but the table stands still. On resume it shows the newest ${maxRows}; older ones are not shown.`;
  }
}

// ---- start-up --------------------------------------------------------------------------------------

setInterval(updateMeters, 500);
setInterval(tickAges, 1000);
function refreshAll() {
  if (document.hidden) return;
  refreshSources();
  if (subscriptionsAllowed) refreshSubscriptions();
  if (sinksAllowed) refreshSinks();
}
setInterval(refreshAll, refreshMs);
document.addEventListener("visibilitychange", refreshAll);
window.addEventListener("hashchange", () => {
  // A pasted link: take its predicate and sources.
  const picked = new Set(loadState());
  for (const box of el.sourceList.querySelectorAll('input[name="source"]')) box.checked = picked.has(box.value);
  editor.check();
});

refreshSources().then(() => editor.check());
refreshSubscriptions();
refreshSinks();
