// One subscription's connection: Server-Sent Events (EventSource) or WebSocket, reconnected
// after a failure and resumed from the last event id of each source ("from", repeated), so that
// the server sends what was missed (or a gap event) rather than nothing.
//
// A WebSocket the server closes with 1008 (an administrator ended the subscription) or 4009 (the
// predicate went over its cost limit) is not reopened. SSE cannot tell that case from a broken connection: the response just ends.
//
// SSE reconnects are done here too, not by EventSource: its own retry sends only the one last
// event id (Last-Event-ID), which cannot resume a stream that reads several sources.

import { streamURL, diagnose } from "./api.js";

const retryMin = 1000;
const retryMax = 15000;

// Stream reports through two callbacks:
//   onEvent(ev)            each event, parsed: {type: "message"|"gap"|"status", ...}, and
//                          {type: "local", text} when the connection breaks or comes back
//   onState(state, text)   state is "connecting", "live", "retrying", "error" or "stopped"
export class Stream {
  constructor(sub, transport, { onEvent, onState }) {
    this.sub = sub; // {where, sources, policy}
    this.transport = transport === "ws" ? "ws" : "sse";
    this.onEvent = onEvent;
    this.onState = onState;
    this.lastIds = new Map(); // source → id of the last message received from it
    this.conn = null;
    this.timer = 0;
    this.delay = retryMin;
    this.closed = false;
    this.interrupted = false; // a live connection broke and has not been reopened yet
  }

  start() {
    this.onState("connecting", "connecting…");
    this.open();
  }

  stop(text = "stopped") {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    this.drop();
    this.onState("stopped", text);
  }

  // drop closes the current connection without reporting anything.
  drop() {
    const c = this.conn;
    this.conn = null;
    if (!c) return;
    if (c instanceof WebSocket) {
      c.onopen = c.onmessage = c.onclose = c.onerror = null;
      if (c.readyState === WebSocket.CONNECTING || c.readyState === WebSocket.OPEN) c.close(1000, "stopped");
    } else {
      c.onopen = c.onerror = null;
      c.close();
    }
  }

  open() {
    if (this.closed) return;
    const sub = { ...this.sub, from: [...this.lastIds.values()] };
    if (this.transport === "ws") this.openWS(sub);
    else this.openSSE(sub);
  }

  openSSE(sub) {
    const es = new EventSource(streamURL(sub));
    this.conn = es;
    let opened = false;
    es.onopen = () => {
      opened = true;
      this.opened("live (Server-Sent Events)");
    };
    const handler = (e) => this.deliver(e.data, e.type);
    // "event: message" arrives as a plain message event; the other types by name.
    es.addEventListener("message", handler);
    es.addEventListener("gap", handler);
    es.addEventListener("status", handler);
    es.onerror = () => {
      if (this.conn !== es) return;
      this.conn = null;
      es.close();
      if (opened) {
        // The stream broke after it had worked: try again, resuming.
        this.broke("disconnected");
        return;
      }
      // It never opened: the server refused it (not 200) or could not be reached. Ask why.
      this.failed(sub);
    };
  }

  openWS(sub) {
    let ws;
    try {
      ws = new WebSocket(streamURL(sub, true));
    } catch (e) {
      this.onState("error", `cannot open WebSocket: ${e.message}`);
      this.closed = true;
      return;
    }
    this.conn = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.opened("live (WebSocket)");
    };
    ws.onmessage = (e) => {
      if (typeof e.data === "string") this.deliver(e.data, null);
    };
    ws.onclose = (e) => {
      if (this.conn !== ws) return;
      this.conn = null;
      if (!opened) {
        this.failed(sub); // the handshake failed: a WebSocket cannot tell why
        return;
      }
      if (e.code === 1008 || e.code === 4009) {
        // Policy violation: an administrator ended this subscription (DELETE
        // /v1/subscriptions/{id}); coming back at once would undo that. 4009: the predicate
        // went over its cost limit on a message, which a resume would meet again.
        const why = `ended by the server: ${e.reason || "policy violation"}`;
        this.onEvent({ type: "local", text: why });
        this.stop(why);
        return;
      }
      let why = `disconnected (${e.code}${e.reason ? " " + e.reason : ""})`;
      if (e.code === 4008) why = "closed by the server: this page read too slowly (slow consumer)";
      else if (e.code === 1001) why = `the server is going away${e.reason ? " (" + e.reason + ")" : ""}`;
      this.broke(why);
    };
  }

  // opened: the stream is live; the events table is told when this ends an interruption.
  opened(text) {
    this.delay = retryMin;
    if (this.interrupted) {
      this.interrupted = false;
      const from = [...this.lastIds.values()].join(", ");
      this.onEvent({ type: "local", text: from ? `reconnected, resuming after ${from}` : "reconnected" });
    }
    this.onState("live", text);
  }

  // broke: a live stream ended without being asked to. Say so in the table, and try again.
  broke(why) {
    this.interrupted = true;
    this.onEvent({ type: "local", text: why });
    this.retry(`${why}, retrying…`);
  }

  deliver(data, type) {
    let ev;
    try {
      ev = JSON.parse(data);
    } catch {
      return; // not an event: ignore rather than break the stream
    }
    if (!ev || typeof ev !== "object") return;
    if (!ev.type) ev.type = type || "message";
    if (ev.type === "message" && typeof ev.id === "string" && ev.id && typeof ev.source === "string") {
      this.lastIds.set(ev.source, ev.id);
    }
    this.onEvent(ev);
  }

  // failed asks the server why the stream closed or would not open: a 4xx is final (bad
  // predicate, unknown source, no token, a limit), anything else is tried again later.
  async failed(sub) {
    if (this.closed) return;
    const err = await diagnose(sub, "text/event-stream");
    if (this.closed) return;
    if (err && err.status >= 400 && err.status < 500 && err.status !== 408 && err.status !== 429) {
      this.closed = true;
      const code = err.error?.code ? ` (${err.error.code})` : "";
      this.onState("error", `the server refused the stream: ${err.message}${code}`, err);
      return;
    }
    const why = err ? `${err.message}` : "disconnected";
    this.retry(`${why}, retrying…`);
  }

  retry(text) {
    if (this.closed) return;
    const wait = this.delay * (0.75 + Math.random() * 0.5);
    this.delay = Math.min(this.delay * 2, retryMax);
    this.onState("retrying", `${text} (in ${Math.round(wait / 1000)} s)`);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), wait);
  }
}
