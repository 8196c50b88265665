// One subscription of the page, kept by the streamux client (streamux.js, the same module that
// the JavaScript client publishes): it reconnects after a failure and resumes from the last event
// id of each source, so that the server sends what was missed (or a gap event) rather than
// nothing. This file only says, in the page's words, what the client does.
//
// A WebSocket the server closes with 1008 (an administrator ended the subscription) or 4009 (the
// predicate went over its cost limit) is not reopened. SSE cannot tell that case from a broken
// connection: the response just ends, and the client comes back.

import { subscribe, APIError, ClosedError } from "./streamux.js";
import { getToken } from "./api.js";

// The page waits longer than the client's default between attempts: a person is watching, not a
// service catching up.
const backoff = { initial: 1000, max: 15000 };

// Stream reports through two callbacks:
//   onEvent(ev)            each event, parsed: {type: "message"|"gap"|"status", ...}, and
//                          {type: "local", text} when the connection breaks or comes back
//   onState(state, text)   state is "connecting", "live", "retrying", "error" or "stopped"
export class Stream {
  constructor(sub, transport, { onEvent, onState }) {
    this.spec = sub; // {where, sources, policy, from}
    this.transport = transport === "ws" ? "websocket" : "sse";
    this.onEvent = onEvent;
    this.onState = onState;
    this.sub = null;
    this.closed = false;
    this.live = false; // a connection is open
    this.interrupted = false; // a live connection broke and has not been reopened yet
  }

  start() {
    this.onState("connecting", "connecting…");
    const { where, sources, policy, from } = this.spec;
    let sub;
    try {
      sub = subscribe(new URL(".", document.baseURI), where, {
        sources,
        policy,
        from,
        transport: this.transport,
        token: getToken(),
        backoff,
        onEvent: (ev) => this.onEvent(ev),
        onOpen: (info) => this.opened(info),
        onReconnect: (err, wait) => this.retrying(err, wait),
      });
    } catch (e) {
      this.closed = true;
      this.onState("error", `cannot open the stream: ${e.message}`);
      return;
    }
    this.sub = sub;
    sub.done.then((err) => this.ended(err));
  }

  stop(text = "stopped") {
    if (this.closed) return;
    this.closed = true;
    this.sub?.close();
    this.onState("stopped", text);
  }

  // opened: the stream is live; the events table is told when this ends an interruption.
  opened({ transport, from }) {
    this.live = true;
    if (this.interrupted) {
      this.interrupted = false;
      this.onEvent({ type: "local", text: from.length ? `reconnected, resuming after ${from.join(", ")}` : "reconnected" });
    }
    this.onState("live", transport === "websocket" ? "live (WebSocket)" : "live (Server-Sent Events)");
  }

  // retrying: the client waits before its next attempt. A live stream that broke is said in the
  // table too.
  retrying(err, wait) {
    if (this.closed) return;
    let why;
    if (this.live) {
      this.live = false;
      this.interrupted = true;
      why = brokeWhy(err);
      this.onEvent({ type: "local", text: why });
    } else if (err instanceof APIError) {
      why = err.detail;
    } else {
      why = err.cause ? "server unreachable" : err.message.replace(/^streamux: /, "");
    }
    this.onState("retrying", `${why}, retrying… (in ${Math.round(wait / 1000)} s)`);
  }

  // ended: the client gave up. A refusal is final (bad predicate, unknown source, no token, a
  // limit); a WebSocket closed for good says why.
  ended(err) {
    if (this.closed || !err) return;
    if (err instanceof ClosedError) {
      // 1008: an administrator ended this subscription (DELETE /v1/subscriptions/{id}); coming
      // back at once would undo that. 4009: the predicate went over its cost limit on a
      // message, which a resume would meet again.
      const why = `ended by the server: ${err.reason || "policy violation"}`;
      this.onEvent({ type: "local", text: why });
      this.stop(why);
      return;
    }
    this.closed = true;
    if (err instanceof APIError) {
      const code = err.code ? ` (${err.code})` : "";
      this.onState("error", `the server refused the stream: ${err.detail}${code}`, err);
      return;
    }
    this.onState("error", `the stream failed: ${err.message}`);
  }
}

// brokeWhy says why a live connection ended.
function brokeWhy(err) {
  const { code, reason } = err;
  if (code === undefined) return "disconnected";
  if (code === 4008) return "closed by the server: this page read too slowly (slow consumer)";
  if (code === 1001) return `the server is going away${reason ? ` (${reason})` : ""}`;
  return `disconnected (${code}${reason ? ` ${reason}` : ""})`;
}
