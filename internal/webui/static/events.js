// The live table of events. It must stay responsive at 1,000 messages a second, so:
//   - events are queued as they arrive and rendered in an animation frame, in one batch (one
//     DocumentFragment insert), and no more often than every minInterval ms: a table that
//     scrolls 60 times a second is no easier to read than one that scrolls 10 times, and each
//     update costs a layout and a repaint of the table;
//   - at most maxRows events are in the table; the oldest rows go first;
//   - the queue itself keeps only the newest maxRows events: whatever would be pushed out of the
//     table in the same frame is never rendered at all (and a background tab, where animation
//     frames stop, holds no more than that).
// Every value from the server is set with textContent: nothing it sends is parsed as HTML.
// Keyboard: the rows' ▸ buttons form one tab stop (a roving tabindex); the arrow keys, Home and
// End move between them, so that 300 rows do not put 300 stops between Clear and the panels.

import { clockTime, compactJSON, count } from "./format.js";

export const maxRows = 300;
const minInterval = 100;

export class EventTable {
  constructor(table, { empty, onExpand } = {}) {
    this.tbody = table.tBodies[0];
    this.empty = empty;
    this.onExpand = onExpand;
    this.queue = [];
    this.rows = 0; // event rows in the tbody (detail rows not counted)
    this.paused = false;
    this.pausedCount = 0; // events that arrived while paused
    this.frame = 0; // a requestAnimationFrame or setTimeout is pending
    this.last = 0; // when the table was last updated
    this.events = new WeakMap(); // row → event, for expanding
    this.tabStop = null; // the one ▸ button reachable with Tab
    this.tbody.addEventListener("click", (e) => this.click(e));
    this.tbody.addEventListener("keydown", (e) => this.key(e));
    this.tbody.addEventListener("focusin", (e) => {
      if (e.target.matches("button.toggle")) this.setTabStop(e.target);
    });
  }

  // push queues one event for the next frame.
  push(ev) {
    this.queue.push({ ev, at: new Date() });
    if (this.queue.length > 2 * maxRows) this.queue.splice(0, this.queue.length - maxRows);
    if (this.paused) {
      this.pausedCount++;
      return;
    }
    this.schedule();
  }

  schedule() {
    if (this.frame) return;
    const wait = this.last + minInterval - performance.now();
    if (wait <= 0) this.frame = requestAnimationFrame(() => this.render());
    else this.frame = setTimeout(() => requestAnimationFrame(() => this.render()), wait);
  }

  setPaused(p) {
    this.paused = p;
    if (p) this.pausedCount = 0;
    else this.schedule();
  }

  clear() {
    this.tabStop = null;
    this.queue = [];
    this.pausedCount = 0;
    this.tbody.replaceChildren();
    this.rows = 0;
    this.updateEmpty();
  }

  render() {
    this.frame = 0;
    if (this.paused || this.queue.length === 0) return;
    this.last = performance.now();
    let batch = this.queue;
    this.queue = [];
    if (batch.length > maxRows) batch = batch.slice(batch.length - maxRows);
    const frag = document.createDocumentFragment();
    // Newest first: the last event of the batch goes on top.
    for (let i = batch.length - 1; i >= 0; i--) frag.append(this.row(batch[i].ev, batch[i].at));
    this.tbody.prepend(frag);
    this.rows += batch.length;
    this.trim();
    // Tab enters the table at the newest row, unless the user is moving about in it.
    if (!this.tabStop?.isConnected || !this.tbody.contains(document.activeElement)) {
      this.setTabStop(this.tbody.querySelector("button.toggle"));
    }
    this.updateEmpty();
  }

  setTabStop(btn) {
    if (this.tabStop === btn) return;
    if (this.tabStop) this.tabStop.tabIndex = -1;
    this.tabStop = btn;
    if (btn) btn.tabIndex = 0;
  }

  key(e) {
    const btn = e.target.closest("button.toggle");
    if (!btn) return;
    const rows = () => [...this.tbody.querySelectorAll("tr.ev-message")];
    const tr = btn.closest("tr");
    let next = null;
    switch (e.key) {
      case "ArrowDown":
        for (let r = tr.nextElementSibling; r && !next; r = r.nextElementSibling) if (r.matches("tr.ev-message")) next = r;
        break;
      case "ArrowUp":
        for (let r = tr.previousElementSibling; r && !next; r = r.previousElementSibling) if (r.matches("tr.ev-message")) next = r;
        break;
      case "Home":
        next = rows()[0];
        break;
      case "End":
        next = rows().at(-1);
        break;
      default:
        return;
    }
    e.preventDefault();
    const target = next?.querySelector("button.toggle");
    if (target) target.focus();
  }

  // trim removes the oldest rows (at the bottom), with their detail rows, beyond maxRows.
  trim() {
    while (this.rows > maxRows) {
      const last = this.tbody.lastElementChild;
      if (!last) break;
      if (last.classList.contains("detail")) {
        last.remove();
        continue;
      }
      last.remove();
      this.rows--;
    }
  }

  updateEmpty() {
    if (this.empty) this.empty.hidden = this.rows > 0;
  }

  row(ev, at) {
    const tr = document.createElement("tr");
    tr.setAttribute("role", "row");
    const type = ev.type || "message";
    tr.className = `ev ev-${["message", "gap", "status", "local"].includes(type) ? type : "other"}`;
    this.events.set(tr, ev);
    if (type === "message") {
      tr.dataset.id = ev.id ?? "";
      tr.dataset.source = ev.source ?? "";
      tr.dataset.key = ev.key ?? "";
      tr.dataset.seq = ev.seq ?? "";
      const toggle = document.createElement("button");
      toggle.type = "button";
      toggle.className = "toggle";
      toggle.tabIndex = -1;
      toggle.setAttribute("aria-expanded", "false");
      toggle.setAttribute("aria-label", `Full JSON of ${ev.id ?? "this event"}`);
      toggle.textContent = "▸";
      const time = cell("time");
      time.append(toggle, " ", clockTime(ev.time ?? at));
      if (ev.time) time.title = ev.time;
      tr.append(
        time,
        cell("source", ev.source),
        cell("key", ev.key),
        cell("seq num", ev.seq),
        bodyCell(ev),
      );
    } else {
      if (type === "gap" && typeof ev.reason === "string") tr.dataset.reason = ev.reason;
      const time = cell("time", clockTime(at));
      time.title = ev.type === "local" ? "this page's connection" : "received by this page";
      tr.append(time, cell("source", ev.source), cell("note", describe(ev)));
      tr.lastChild.colSpan = 3;
    }
    return tr;
  }

  click(e) {
    if (e.target.closest("a, .detail")) return;
    if (window.getSelection && String(window.getSelection()).length > 0) return; // selecting text
    const tr = e.target.closest("tr.ev-message");
    if (tr) this.toggle(tr);
  }

  toggle(tr) {
    const btn = tr.querySelector("button.toggle");
    const next = tr.nextElementSibling;
    if (next && next.classList.contains("detail")) {
      next.remove();
      tr.classList.remove("expanded");
      btn?.setAttribute("aria-expanded", "false");
      if (btn) btn.textContent = "▸";
      return;
    }
    const ev = this.events.get(tr);
    const detail = document.createElement("tr");
    detail.className = "detail";
    detail.setAttribute("role", "row");
    const td = document.createElement("td");
    td.setAttribute("role", "cell");
    td.colSpan = 5;
    const pre = document.createElement("pre");
    pre.textContent = JSON.stringify(ev, null, 2);
    td.append(pre);
    detail.append(td);
    tr.after(detail);
    tr.classList.add("expanded");
    btn?.setAttribute("aria-expanded", "true");
    if (btn) btn.textContent = "▾";
    this.onExpand?.(ev);
  }
}

function cell(cls, text) {
  const td = document.createElement("td");
  td.setAttribute("role", "cell");
  td.className = cls;
  if (text !== undefined && text !== null) td.textContent = String(text);
  return td;
}

function bodyCell(ev) {
  const td = cell("body");
  const code = document.createElement("code");
  if (ev.body_encoding === "base64") {
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = "base64";
    td.append(tag, " ");
  }
  code.textContent = compactJSON(ev.body, 200);
  td.append(code);
  return td;
}

// gapReasons says, for each "reason" of a gap event, why the messages were missed.
const gapReasons = {
  dropped: "slow consumer: the server dropped them while this page read too slowly",
  history: "the server's history no longer holds them",
  restart: "the server restarted, and its history went with it (at most this many)",
  too_large: "the source received them but they were too large to pass on (they may not have matched)",
};

// describe is the text of a gap or status event's row.
export function describe(ev) {
  switch (ev.type) {
    case "gap":
      return `gap: ${gapText(ev)}`;
    case "status":
      return `source is ${ev.state ?? "?"}${ev.error ? ": " + ev.error : ""}`;
    case "local":
      return `— ${ev.text} —`;
    default:
      return compactJSON(ev, 200);
  }
}

// gapText says how many messages a gap event reports missed, and why, in words.
export function gapText(ev) {
  const n = typeof ev.missed === "number" ? ev.missed : null;
  const missed = n === null ? "messages missed" : `${count(n)} missed`;
  if (ev.reason === "unknown_id") {
    // The resume point is from an earlier run of the server: what that run sent after it cannot
    // be counted; missed counts only what this run no longer holds.
    const older = n ? `; at least ${count(n)} missed` : "; messages sent before the restart may be missed";
    return `server restarted: position unknown${older}`;
  }
  const why = gapReasons[ev.reason];
  if (why) return `${missed}: ${why}`;
  return n === null ? "matching messages not delivered" : `${count(n)} matching message${n === 1 ? "" : "s"} not delivered`;
}
