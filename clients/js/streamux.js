// streamux client for browsers and Node (20 or later): subscribe to the messages that satisfy a
// predicate, over WebSocket or Server-Sent Events, and keep the subscription going across
// disconnects — reconnecting with backoff and jitter and resuming after the last message of each
// source, so that nothing the server's history still holds is missed or repeated, and what it no
// longer holds is told by a gap event. publish() sends messages into a server's http sources.
//
// One file, no dependencies, no build step: import it as an ES module. The web page that streamux
// serves at / imports this very file (served as /streamux.js).
//
// Server-Sent Events are read from a fetch() response body rather than with EventSource: fetch
// works the same in browsers and in Node, can send the credential as an Authorization header, and
// tells the status and error body of a refused stream, which EventSource hides. EventSource's own
// reconnection would also resume with one Last-Event-ID, which cannot resume several sources.

const defaultInitial = 100;
const defaultMax = 10000;
// highWater bounds the events an iterated subscription holds for its reader while reading SSE:
// past it the client stops reading the response, so that TCP (and the server's slow-consumer
// policy) pushes back. A WebSocket in a browser cannot be paused: its events are held however many.
const highWater = 1024;

/** StreamuxError is the base of the errors this module throws or reports. */
export class StreamuxError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = "StreamuxError";
  }
}

/**
 * APIError is an error answer of the server, {"error":{"code","message","position"}}, with its
 * HTTP status (0 when there was no answer to read).
 */
export class APIError extends StreamuxError {
  constructor(status, { code, message, position, accepted } = {}, retryAfter = 0) {
    const c = code || `http_${status}`;
    const m = message || `HTTP ${status}`;
    super(`streamux: ${status} ${c}: ${m}${position >= 0 ? ` (at character ${position})` : ""}`);
    this.name = "APIError";
    this.status = status;
    this.code = c;
    this.detail = m;
    this.position = Number.isInteger(position) ? position : -1;
    this.accepted = Number.isInteger(accepted) ? accepted : 0;
    this.retryAfter = retryAfter;
  }

  /** temporary tells whether trying again later may succeed: 429, 5xx. */
  get temporary() {
    return this.status === 429 || this.status >= 500;
  }

  /** auth tells whether the credential was missing or refused: 401, 403. */
  get auth() {
    return this.status === 401 || this.status === 403;
  }
}

/**
 * ClosedError is a WebSocket the server closed for a reason a reconnection would meet again:
 * 1008 (ended by an administrator, credential expired) or 4009 (predicate too costly).
 */
export class ClosedError extends StreamuxError {
  constructor(code, reason) {
    super(`streamux: the server closed the stream: ${code} ${reason}`);
    this.name = "ClosedError";
    this.code = code;
    this.reason = reason;
  }
}

/**
 * DisconnectError is a connection that ended, or could not be made, for a reason that trying
 * again may cure. code and reason are a WebSocket's close code and reason (1001 server shutting
 * down, 4008 slow consumer, 1006 connection lost), undefined for SSE.
 */
export class DisconnectError extends StreamuxError {
  constructor(message, { transport, code, reason, cause } = {}) {
    super(message, cause ? { cause } : undefined);
    this.name = "DisconnectError";
    this.transport = transport;
    this.code = code;
    this.reason = reason;
  }
}

// permanentClose are the WebSocket close codes that a reconnection would meet again.
const permanentClose = new Set([1008, 4009]);

/**
 * subscribe opens a subscription to the events of the server at url that satisfy where.
 * It returns at once; the subscription connects, reconnects and resumes on its own until
 * options.signal aborts, close() is called, or the server refuses it for good.
 */
export function subscribe(url, where = "", options = {}) {
  return new Subscription(url, where, options);
}

/**
 * Subscription is one subscription. Read its events either with onEvent (an option) or by
 * iterating it (for await … of), not both.
 */
export class Subscription {
  #base;
  #where;
  #opts;
  #last = new Map(); // source → id of the last message received, which a reconnection resumes after
  #read = new Map(); // source → id of the last message handed to the reader (lastIds)
  #opened = false;
  #openWaiters = [];
  #ctl = new AbortController(); // the subscription's life
  #queue = []; // events not yet read, when iterated
  #wake = null; // resolves a next() waiting for an event or the end
  #room = null; // resolves the SSE reader waiting for the queue to shrink
  #ended = false;
  #error = null;
  #settle;

  constructor(url, where, options) {
    this.#base = baseURL(url);
    this.#where = where ?? "";
    const o = { ...options };
    o.transport ??= "auto";
    if (!["auto", "websocket", "sse"].includes(o.transport)) {
      throw new TypeError(`streamux: transport ${JSON.stringify(o.transport)}: want "auto", "websocket" or "sse"`);
    }
    o.fetch ??= globalThis.fetch?.bind(globalThis);
    // An explicit WebSocket: null means none: Server-Sent Events only.
    if (!("WebSocket" in o)) o.WebSocket = globalThis.WebSocket;
    if (!o.fetch) throw new TypeError("streamux: no fetch: pass options.fetch");
    if (o.transport === "websocket" && !o.WebSocket) {
      throw new TypeError("streamux: no WebSocket: pass options.WebSocket (in Node 20: the ws package, or run node with --experimental-websocket)");
    }
    o.backoff = { initial: o.backoff?.initial ?? defaultInitial, max: o.backoff?.max ?? defaultMax };
    if (!(o.backoff.initial > 0)) o.backoff.initial = defaultInitial;
    if (!(o.backoff.max >= o.backoff.initial)) o.backoff.max = Math.max(defaultMax, o.backoff.initial);
    for (const id of o.from ?? []) {
      const src = sourceOf(id);
      if (src === null) throw new TypeError(`streamux: resume id ${JSON.stringify(id)}: want <source>:<seq>`);
      this.#last.set(src, id);
      this.#read.set(src, id);
    }
    this.#opts = o;
    /** transport is how the events come now: "websocket" or "sse" ("auto" falls back to "sse"). */
    this.transport = o.transport === "sse" || !o.WebSocket ? "sse" : "websocket";
    /** done resolves when the subscription is over: with null when it was stopped (close, signal), else with the error that ended it. It never rejects. */
    this.done = new Promise((resolve) => (this.#settle = resolve));
    const signal = o.signal;
    if (signal?.aborted) {
      this.close();
      return;
    }
    signal?.addEventListener("abort", () => this.close(), { once: true, signal: this.#ctl.signal });
    // Owned by the subscription: it ends when #ctl aborts or the server refuses; a failure of
    // its own ends the subscription with it rather than going unhandled.
    this.#run().catch((e) => this.#end(e));
  }

  /**
   * lastIds returns the id of the last message of each source that the reader was given (by
   * onEvent or the iterator): where a new subscription would resume (options.from), sorted.
   */
  lastIds() {
    return [...this.#read.values()].sort();
  }

  /**
   * ready resolves once the first connection is open, so that what is published after it is
   * this subscription's; it rejects with the error that ended the subscription before it opened
   * (a StreamuxError when it was stopped).
   */
  ready() {
    if (this.#opened) return Promise.resolve();
    if (this.#ended) return Promise.reject(this.#error ?? new StreamuxError("streamux: the subscription is closed"));
    return new Promise((resolve, reject) => this.#openWaiters.push({ resolve, reject }));
  }

  /** error is what ended the subscription (an APIError, a ClosedError), or null. */
  get error() {
    return this.#error;
  }

  /** closed tells whether the subscription is over. */
  get closed() {
    return this.#ended;
  }

  /** close ends the subscription and its connection. Events already received can still be iterated. */
  close() {
    this.#end(null);
  }

  [Symbol.asyncIterator]() {
    if (this.#opts.onEvent) throw new TypeError("streamux: a subscription with onEvent cannot also be iterated");
    return {
      next: () => this.#next(),
      return: () => {
        this.close();
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }

  async #next() {
    for (;;) {
      if (this.#queue.length > 0) {
        const value = this.#queue.shift();
        this.#took(value);
        if (this.#room && this.#queue.length < highWater / 2) {
          this.#room();
          this.#room = null;
        }
        return { value, done: false };
      }
      if (this.#ended) {
        if (this.#error) throw this.#error;
        return { value: undefined, done: true };
      }
      await new Promise((resolve) => (this.#wake = resolve));
    }
  }

  #end(err) {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = err;
    this.#ctl.abort();
    this.#signal();
    this.#room?.();
    this.#settle(err);
    for (const w of this.#openWaiters.splice(0)) w.reject(err ?? new StreamuxError("streamux: the subscription is closed"));
  }

  // #took notes that the reader was given ev.
  #took(ev) {
    if (ev.type === "message" && typeof ev.id === "string" && ev.id && typeof ev.source === "string") {
      this.#read.set(ev.source, ev.id);
    }
  }

  #signal() {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }

  // #deliver hands one event's JSON to the reader; false when it is not an event.
  #deliver(text) {
    let ev;
    try {
      ev = JSON.parse(text);
    } catch {
      return false;
    }
    if (!ev || typeof ev !== "object" || typeof ev.type !== "string" || this.#ended) return false;
    if (ev.type === "message" && typeof ev.id === "string" && ev.id && typeof ev.source === "string") {
      this.#last.set(ev.source, ev.id);
    }
    if (this.#opts.onEvent) {
      this.#took(ev);
      call(this.#opts.onEvent, ev);
    } else {
      this.#queue.push(ev);
      this.#signal();
    }
    return true;
  }

  // #backpressure waits, while the reader has highWater events to read, until it has read half.
  async #backpressure() {
    if (this.#opts.onEvent || this.#queue.length < highWater || this.#ended) return;
    await new Promise((resolve) => (this.#room = resolve));
  }

  #streamURL() {
    const u = new URL("v1/stream", this.#base);
    if (this.#where) u.searchParams.set("where", this.#where);
    for (const s of this.#opts.sources ?? []) u.searchParams.append("source", s);
    if (this.#opts.policy) u.searchParams.set("policy", this.#opts.policy);
    for (const id of [...this.#last.values()].sort()) u.searchParams.append("from", id);
    return u;
  }

  // #run connects, reads, and reconnects with backoff until the subscription ends.
  async #run() {
    const o = this.#opts;
    const life = this.#ctl.signal;
    let wait = o.backoff.initial;
    let connected = false; // a connection has opened before: the next one is a reconnection
    // pause waits before the next attempt: the backoff (at least atLeast), less a random part of
    // up to half of it, so that clients cut at once do not come back at once.
    const pause = async (cause, atLeast = 0) => {
      const d = Math.max(wait - Math.random() * (wait / 2), atLeast);
      wait = Math.min(2 * wait, o.backoff.max);
      call(o.onReconnect, cause, d);
      await sleep(d, life);
    };
    while (!life.aborted) {
      const url = this.#streamURL();
      const from = [...this.#last.values()].sort();
      let conn;
      try {
        conn =
          this.transport === "sse"
            ? await openSSE(url, o, life)
            : await openWebSocket(url, o, life);
      } catch (err) {
        if (life.aborted) break;
        if (err instanceof APIError && !err.temporary) {
          this.#end(err);
          break;
        }
        if (err?.fallback && o.transport === "auto") {
          // The server streams over plain HTTP but the WebSocket did not get through (a proxy):
          // SSE from now on, at once.
          this.transport = "sse";
          continue;
        }
        if (!(err instanceof StreamuxError)) {
          this.#end(err); // a bad URL, a refused scheme: no attempt will do better
          break;
        }
        await pause(err, err.retryAfter ?? 0);
        continue;
      }
      call(o.onOpen, { transport: this.transport, from, reconnected: connected });
      connected = true;
      if (!this.#opened) {
        this.#opened = true;
        for (const w of this.#openWaiters.splice(0)) w.resolve();
      }
      const err = await conn.read(
        (text) => {
          if (this.#deliver(text)) wait = o.backoff.initial;
        },
        () => this.#backpressure(),
      );
      if (life.aborted) break;
      if (err instanceof ClosedError) {
        this.#end(err);
        break;
      }
      await pause(err);
    }
    this.#end(null);
  }
}

// call calls the caller's callback fn, if any. What it throws is the caller's bug: reported as
// uncaught, while the subscription goes on.
function call(fn, ...args) {
  if (!fn) return;
  try {
    fn(...args);
  } catch (e) {
    queueMicrotask(() => {
      throw e;
    });
  }
}

// baseURL is the server's URL with a path that ends in "/" (a prefix behind a proxy is kept) and
// no query: relative to the page's in a browser.
function baseURL(url) {
  const u = new URL(String(url ?? ""), globalThis.location?.href);
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new TypeError(`streamux: the server's URL ${JSON.stringify(String(url))}: want http://host[:port] or https://host[:port]`);
  }
  u.search = "";
  u.hash = "";
  if (!u.pathname.endsWith("/")) u.pathname += "/";
  return u;
}

// sourceOf returns the source of an id "<source>:<seq>" (a source name may hold colons; the
// seq is after the last), or null.
function sourceOf(id) {
  if (typeof id !== "string") return null;
  const i = id.lastIndexOf(":");
  if (i <= 0 || i === id.length - 1) return null;
  return id.slice(0, i);
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}

function authHeaders(token, extra) {
  const h = { ...extra };
  if (token) h.Authorization = `Bearer ${token}`;
  return h;
}

// readAPIError reads an error answer; one that is not the server's JSON is told by its status.
async function readAPIError(res) {
  let retryAfter = 0;
  const ra = Number.parseInt(res.headers.get("Retry-After") ?? "", 10);
  if (ra >= 0) retryAfter = ra * 1000;
  let body = null;
  try {
    body = JSON.parse(await res.text());
  } catch {
    body = null;
  }
  const e = body && typeof body.error === "object" && body.error ? body.error : {};
  return new APIError(res.status, { ...e, message: e.message || res.statusText || undefined }, retryAfter);
}

// linked returns an AbortController that aborts with signal.
function linked(signal) {
  const ctl = new AbortController();
  if (signal.aborted) ctl.abort();
  else signal.addEventListener("abort", () => ctl.abort(), { once: true, signal: ctl.signal });
  return ctl;
}

// A connection is {read(deliver, backpressure): Promise<Error>}: read hands each event's JSON
// text to deliver until the connection ends, and resolves with why (a DisconnectError, a
// ClosedError, or anything when the subscription's signal aborted).

// openSSE opens the stream as Server-Sent Events over fetch.
async function openSSE(url, o, life) {
  const ctl = linked(life);
  let res;
  try {
    res = await o.fetch(url, {
      headers: authHeaders(o.token, { Accept: "text/event-stream" }),
      signal: ctl.signal,
    });
  } catch (e) {
    ctl.abort();
    throw new DisconnectError(`streamux: SSE ${redact(url)}: ${e?.message ?? e}`, { transport: "sse", cause: e });
  }
  if (!res.ok) {
    const err = await readAPIError(res);
    ctl.abort();
    throw err;
  }
  return {
    async read(deliver, backpressure) {
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      let data = null; // the data lines of the event being read, joined
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return new DisconnectError("streamux: SSE: the server ended the stream", { transport: "sse" });
          buf += value;
          // Lines end with \n, \r\n or \r; a \r at the end of buf may be the first half of \r\n.
          let start = 0;
          for (;;) {
            let i = start;
            while (i < buf.length && buf[i] !== "\n" && buf[i] !== "\r") i++;
            if (i === buf.length || (buf[i] === "\r" && i === buf.length - 1)) break;
            const line = buf.slice(start, i);
            start = i + (buf[i] === "\r" && buf[i + 1] === "\n" ? 2 : 1);
            if (line === "") {
              if (data !== null) deliver(data);
              data = null;
              continue;
            }
            const colon = line.indexOf(":");
            const field = colon < 0 ? line : line.slice(0, colon);
            if (field !== "data") continue; // comments (heartbeats), id, event: the JSON says it all
            let v = colon < 0 ? "" : line.slice(colon + 1);
            if (v.startsWith(" ")) v = v.slice(1);
            data = data === null ? v : `${data}\n${v}`;
          }
          buf = buf.slice(start);
          await backpressure();
        }
      } catch (e) {
        return new DisconnectError(`streamux: SSE: ${e?.message ?? e}`, { transport: "sse", cause: e });
      } finally {
        ctl.abort();
        reader.releaseLock?.();
      }
    },
  };
}

// openWebSocket opens the stream over WebSocket. A WebSocket cannot set headers in a browser,
// so the token goes as ?token= (the server keeps it out of its logs). A handshake that fails
// tells nothing of why: the stream URL is asked over plain HTTP to find out.
function openWebSocket(url, o, life) {
  const w = new URL(url);
  w.protocol = w.protocol === "https:" ? "wss:" : "ws:";
  if (o.token) w.searchParams.set("token", o.token);
  const ws = new o.WebSocket(w.toString());
  return new Promise((resolve, reject) => {
    let open = false;
    let ended = null; // why the connection ended, once it has
    let tell = null; // resolves read's promise
    const events = []; // frames that came before read
    let deliverFn = null;
    const stop = () => {
      try {
        ws.close(1000, "stopped");
      } catch {
        // already closing
      }
    };
    life.addEventListener("abort", stop, { once: true });
    ws.onopen = () => {
      open = true;
      resolve({
        read(deliver) {
          deliverFn = deliver;
          for (const e of events.splice(0)) deliver(e);
          return ended ? Promise.resolve(ended) : new Promise((r) => (tell = r));
        },
      });
    };
    ws.onmessage = (e) => {
      if (typeof e.data !== "string") return; // binary frames carry no event
      if (deliverFn) deliverFn(e.data);
      else events.push(e.data);
    };
    // A handshake that fails: the error event, which Node's WebSocket (undici) does not follow
    // with a close event; it tells nothing of why.
    const failed = () => {
      life.removeEventListener("abort", stop);
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      stop();
      if (life.aborted) return reject(new DisconnectError("streamux: stopped", { transport: "websocket" }));
      diagnose(url, o, life).then(reject, reject);
    };
    ws.onerror = () => {
      if (!open) failed(); // after the opening, the close event follows with the code
    };
    ws.onclose = (e) => {
      if (!open) return failed();
      life.removeEventListener("abort", stop);
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      if (permanentClose.has(e.code)) ended = new ClosedError(e.code, e.reason);
      else {
        const why = e.reason ? `${e.code} ${e.reason}` : `${e.code}`;
        ended = new DisconnectError(`streamux: WebSocket closed: ${why}`, { transport: "websocket", code: e.code, reason: e.reason });
      }
      tell?.(ended);
    };
  });
}

// diagnose asks the server why a WebSocket to url would not open: it requests the stream as
// NDJSON, reads the status and error body, and abandons the stream if it did open. It resolves
// with the error to report: an APIError, or a DisconnectError (with fallback set when the
// server did answer 200, so that only the WebSocket failed).
async function diagnose(url, o, life) {
  const ctl = linked(life);
  const timer = setTimeout(() => ctl.abort(), 10000);
  try {
    const res = await o.fetch(url, { headers: authHeaders(o.token, { Accept: "application/x-ndjson" }), signal: ctl.signal });
    if (!res.ok) return await readAPIError(res);
    const e = new DisconnectError("streamux: the WebSocket handshake failed, but the server streams over HTTP", { transport: "websocket" });
    e.fallback = true;
    return e;
  } catch (e) {
    return new DisconnectError(`streamux: WebSocket ${redact(url)}: the server cannot be reached`, { transport: "websocket", cause: e });
  } finally {
    clearTimeout(timer);
    ctl.abort(); // ends the stream if it did open
  }
}

function redact(url) {
  const u = new URL(url);
  u.search = "";
  return u.toString();
}

/**
 * publish sends messages into the http source of the server at url, in order, in one request:
 * all of them or, on an error, none (an APIError whose accepted says how many were published
 * before it). It resolves with {accepted, ids} (ids in a cluster).
 */
export async function publish(url, source, messages, options = {}) {
  const f = options.fetch ?? globalThis.fetch?.bind(globalThis);
  if (!f) throw new TypeError("streamux: no fetch: pass options.fetch");
  const list = Array.isArray(messages) ? messages : [messages];
  const body = list.map(envelope).join("");
  const u = new URL(`v1/sources/${encodeURIComponent(source)}/messages`, baseURL(url));
  u.searchParams.set("envelope", "true");
  let res;
  try {
    res = await f(u, {
      method: "POST",
      headers: authHeaders(options.token, { "Content-Type": "application/x-ndjson", Accept: "application/json" }),
      body,
      signal: options.signal,
    });
  } catch (e) {
    if (e?.name === "AbortError") throw e;
    throw new StreamuxError(`streamux: publish to ${source}: ${e?.message ?? e}`, { cause: e });
  }
  if (!res.ok) throw await readAPIError(res);
  const out = await res.json();
  return { accepted: out.accepted ?? 0, ids: out.ids ?? [] };
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

// envelope makes one line of ?envelope=true. A string body is text; bytes (Uint8Array,
// ArrayBuffer) are sent as JSON when they are valid JSON, else as text when they are valid UTF-8,
// else as base64, as the Go client does; any other value is sent as JSON.
function envelope(m) {
  const e = {};
  if (m.id) e.id = String(m.id);
  if (m.key) e.key = String(m.key);
  if (m.headers && Object.keys(m.headers).length > 0) e.headers = m.headers;
  let raw = null; // JSON text of the body, when given as bytes that are JSON
  const b = m.body;
  if (b === undefined) e.body = "";
  else if (typeof b === "string") e.body = b;
  else if (b instanceof ArrayBuffer || ArrayBuffer.isView(b)) {
    const bytes = b instanceof ArrayBuffer ? new Uint8Array(b) : new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    let text = null;
    try {
      text = utf8.decode(bytes);
    } catch {
      text = null;
    }
    if (text === null) {
      e.body = base64(bytes);
      e.body_encoding = "base64";
    } else if (isJSON(text)) {
      // Valid JSON holds line breaks only as whitespace: one line, the same value.
      raw = text.replace(/[\r\n]/g, " ");
    } else e.body = text;
  } else e.body = b;
  if (raw === null) return `${JSON.stringify(e)}\n`;
  const head = JSON.stringify(e);
  return `${head.slice(0, -1)}${head.length > 2 ? "," : ""}"body":${raw}}\n`;
}

function isJSON(text) {
  if (text.trim() === "") return false;
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

function base64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

/**
 * bodyBytes returns a message event's body as the source gave it: a JSON body's JSON text (as
 * JSON.stringify writes it), a text body's text (UTF-8), a binary body's bytes.
 */
export function bodyBytes(ev) {
  const b = ev?.body;
  if (typeof b === "string") {
    if (ev.body_encoding === "base64") return Uint8Array.from(atob(b), (c) => c.charCodeAt(0));
    return new TextEncoder().encode(b);
  }
  if (b === undefined) return new Uint8Array(0);
  return new TextEncoder().encode(JSON.stringify(b));
}
