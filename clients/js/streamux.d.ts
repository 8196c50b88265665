// Type declarations of streamux.js, the streamux client for browsers and Node 20+.

/** A message that satisfied the predicate. */
export interface MessageEvent {
  type: "message";
  /** "<source>:<seq>": what a subscription resumes after. */
  id: string;
  source: string;
  /** 1, 2, 3, … per source. */
  seq: number;
  /** The routing key, subject, topic…; "" where the source has none. */
  key: string;
  /** When the source received it (RFC 3339, ms). */
  time: string;
  headers: Record<string, string>;
  /** The JSON value itself when the payload is JSON; else a string (text, or base64 when body_encoding is "base64"). */
  body: unknown;
  body_encoding?: "base64";
}

/** Matching messages of source that were not delivered, and why. */
export interface GapEvent {
  type: "gap";
  source: string;
  missed: number;
  /** dropped, history, restart, unknown_id, too_large, not_stored… */
  reason?: string;
}

/** A source the subscription reads changed state (or, in a cluster, its leader). */
export interface StatusEvent {
  type: "status";
  source: string;
  /** connecting, up, reconnecting, failed. */
  state: string;
  error?: string;
  leader?: string;
}

/** One event of a stream, as the server sent it. */
export type Event = MessageEvent | GapEvent | StatusEvent;

/** How events come: "auto" tries WebSocket first and falls back to Server-Sent Events. */
export type Transport = "auto" | "websocket" | "sse";

/** What onOpen is told each time a connection opens. */
export interface OpenInfo {
  transport: "websocket" | "sse";
  /** The ids the connection resumed after (from=), one per source. */
  from: string[];
  /** true when a connection had opened before: this one resumes after a disconnect. */
  reconnected: boolean;
}

/** A constructor with the WHATWG WebSocket interface (the browser's, Node 22's, the ws package's). */
export type WebSocketConstructor = new (url: string) => {
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  close(code?: number, reason?: string): void;
};

export interface SubscribeOptions {
  /** The sources to read; none: every source the credential may read. */
  sources?: string[];
  /** Event ids to resume after, one per source ("orders:1042"). */
  from?: string[];
  /** The slow-consumer policy: the server's default (disconnect) or "drop" (then a gap event). */
  policy?: "disconnect" | "drop";
  /** Default "auto": WebSocket when there is one, else (or when it cannot get through) SSE. */
  transport?: Transport;
  /** An API key or a JWT: "Authorization: Bearer" for SSE and HTTP, ?token= for WebSocket. */
  token?: string;
  /** Aborting it ends the subscription (the iterator finishes; done resolves with null). */
  signal?: AbortSignal;
  /** Default globalThis.WebSocket; null: none, SSE only. Node 20 has none without --experimental-websocket. */
  WebSocket?: WebSocketConstructor | null;
  /** Default globalThis.fetch. */
  fetch?: typeof fetch;
  /** Waits between reconnections, in ms: from initial (100) doubling up to max (10000), less a random part of up to half. */
  backoff?: { initial?: number; max?: number };
  /** Each event; given it, the subscription cannot be iterated. */
  onEvent?: (ev: Event) => void;
  /** Each connection that opens. */
  onOpen?: (info: OpenInfo) => void;
  /** Before each wait to reconnect: why the last connection ended or could not be made, and the wait in ms. */
  onReconnect?: (err: StreamuxError, waitMs: number) => void;
}

/** A subscription that reconnects and resumes on its own. */
export declare class Subscription implements AsyncIterable<Event> {
  /** How events come now; "auto" starts as "websocket" where there is one. */
  readonly transport: "websocket" | "sse";
  /** Resolves when the subscription is over: null when stopped (close, signal), else the error that ended it. Never rejects. */
  readonly done: Promise<StreamuxError | Error | null>;
  /** What ended the subscription, or null. */
  readonly error: StreamuxError | Error | null;
  /** Whether the subscription is over. */
  readonly closed: boolean;
  /** Resolves once the first connection is open; rejects if the subscription ended before. */
  ready(): Promise<void>;
  /** The id of the last message of each source given to the reader: where a new subscription would resume. */
  lastIds(): string[];
  /** Ends the subscription and its connection. */
  close(): void;
  /** Events in order; throws the error that ended the subscription, finishes when it was stopped. */
  [Symbol.asyncIterator](): AsyncIterator<Event>;
}

/** Subscribes to the events of the server at url (http or https; relative to the page in a browser) that satisfy where (CEL; "": every message). */
export declare function subscribe(url: string | URL, where?: string, options?: SubscribeOptions): Subscription;

/** A message to publish into an http source. */
export interface Message {
  /** De-duplicates within the log's window, in a cluster. */
  id?: string;
  key?: string;
  headers?: Record<string, string>;
  /** A string is text; bytes are sent as JSON when they are JSON, else text when UTF-8, else base64; any other value as JSON. */
  body?: unknown;
}

export interface PublishOptions {
  token?: string;
  signal?: AbortSignal;
  fetch?: typeof fetch;
}

/** Publishes messages into the http source, in order, in one request. */
export declare function publish(
  url: string | URL,
  source: string,
  messages: Message | Message[],
  options?: PublishOptions,
): Promise<{ accepted: number; ids: string[] }>;

/** A message event's body as the source gave it. */
export declare function bodyBytes(ev: MessageEvent): Uint8Array;

export declare class StreamuxError extends Error {}

/** An error answer of the server. */
export declare class APIError extends StreamuxError {
  /** The HTTP status. */
  readonly status: number;
  /** invalid_predicate, unknown_source, unauthorized, limit_exceeded… */
  readonly code: string;
  /** The server's message. */
  readonly detail: string;
  /** For a predicate, the 0-based character where the problem is; -1 otherwise. */
  readonly position: number;
  /** For an ingest request, how many messages were published before the error. */
  readonly accepted: number;
  /** What the server asked to wait, in ms (429, 503), or 0. */
  readonly retryAfter: number;
  /** 429 or 5xx: trying again later may succeed. */
  readonly temporary: boolean;
  /** 401 or 403. */
  readonly auth: boolean;
}

/** A WebSocket closed for a reason a reconnection would meet again: 1008, 4009. */
export declare class ClosedError extends StreamuxError {
  readonly code: number;
  readonly reason: string;
}

/** A connection that ended or could not be made; code and reason are a WebSocket's close. */
export declare class DisconnectError extends StreamuxError {
  readonly transport: "websocket" | "sse" | undefined;
  readonly code: number | undefined;
  readonly reason: string | undefined;
}
