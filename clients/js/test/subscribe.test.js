import test from "node:test";
import assert from "node:assert/strict";
import { subscribe, publish, bodyBytes, APIError, ClosedError, DisconnectError } from "../streamux.js";
import { url, smallURL, startProxy, subscriptions, kick, until, opened } from "./helpers.js";

// Both transports, each over the WebSocket that Node has (given by the Go test's flag in Node 20).
const transports = ["websocket", "sse"];

// next reads one event of an iterator, failing after 15 s.
async function next(it, what = "an event") {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`waiting for ${what}: timed out`)), 15000);
  });
  try {
    const r = await Promise.race([it.next(), timeout]);
    return r;
  } finally {
    clearTimeout(timer);
  }
}

// nextMessage skips statuses and returns the next message; a gap fails the test.
async function nextMessage(it, what) {
  for (;;) {
    const r = await next(it, what);
    assert.ok(!r.done, `the subscription ended while waiting for ${what}: ${r.value}`);
    if (r.value.type === "gap") assert.fail(`a gap while waiting for ${what}: ${JSON.stringify(r.value)}`);
    if (r.value.type === "message") return r.value;
  }
}

let run = 0; // makes each test's keys its own: the tests share one server
const unique = (name) => `${name}-${process.pid}-${++run}`;

for (const transport of transports) {
  test(`${transport}: exactly the matching messages arrive, in order`, async (t) => {
    const k = unique("match");
    const o = opened();
    const sub = subscribe(url, `key == "${k}" && body.n > 2`, { sources: ["in"], transport, onOpen: o.onOpen });
    t.after(() => sub.close());
    const it = sub[Symbol.asyncIterator]();
    const info = await o.first;
    assert.equal(info.transport, transport);
    assert.equal(info.reconnected, false);
    const sent = [1, 2, 3, 4, 5, "6", 7.5].map((n) => ({ key: k, body: { n } }));
    sent.push({ key: "other", body: { n: 100 } });
    const res = await publish(url, "in", sent);
    assert.equal(res.accepted, sent.length);
    const got = [];
    for (const want of [3, 4, 5, 7.5]) {
      const ev = await nextMessage(it, `n = ${want}`);
      assert.equal(ev.source, "in");
      assert.equal(ev.key, k);
      got.push(ev.body.n);
      assert.deepEqual(sub.lastIds(), [ev.id]);
    }
    assert.deepEqual(got, [3, 4, 5, 7.5]);
    sub.close();
    assert.equal(await sub.done, null);
    assert.deepEqual(await it.next(), { value: undefined, done: true });
  });

  test(`${transport}: a subscription cut by the network again and again resumes with nothing missed or repeated`, async () => {
    const proxy = await startProxy(url);
    const k = unique("cuts");
    let opens = 0;
    const sub = subscribe(proxy.url, `key == "${k}"`, {
      sources: ["in"],
      transport,
      backoff: { initial: 5, max: 50 },
      onOpen: () => opens++,
      onReconnect: (err) => assert.ok(err instanceof DisconnectError, `onReconnect with ${err}`),
    });
    try {
      const it = sub[Symbol.asyncIterator]();
      await sub.ready();
      // Bodies of every kind, crossing the buffers on the way: JSON, text, binary.
      const enc = new TextEncoder();
      const want = [];
      for (let i = 0; i < 400; i++) {
        const size = [0, 1, 100, 4095, 4096, 4097, 65536, 70000][i % 8];
        if (i % 3 === 0) want.push(enc.encode(JSON.stringify({ i, pad: "x".repeat(size) })));
        else if (i % 3 === 1) want.push(enc.encode(`text ${i} ${"é".repeat(size >> 1)}`));
        else {
          const b = new Uint8Array(size + 1).map((_, j) => (i * 31 + j * 7) & 0xff);
          b[0] = 0xff; // never UTF-8
          want.push(b);
        }
      }
      // Published as the subscription reads, so that the cuts fall in the middle of it.
      const publishing = (async () => {
        for (let b = 0; b < want.length; b += 20) {
          const batch = want.slice(b, b + 20).map((body) => ({ key: k, body }));
          const res = await publish(url, "in", batch);
          assert.equal(res.accepted, batch.length);
          await new Promise((r) => setTimeout(r, 5)); // paces the batches: a load shape, not a wait for anything
        }
      })();
      const ids = new Set();
      let last = 0;
      for (let got = 0; got < want.length; got++) {
        if (got % 40 === 20) {
          // Each cut falls on an open connection: the one the last cut made the client reopen.
          await until("the connection reopened", () => opens > proxy.cuts);
          proxy.cut();
        }
        const ev = await nextMessage(it, `message ${got}`);
        assert.ok(!ids.has(ev.id), `${ev.id} twice`);
        ids.add(ev.id);
        assert.ok(ev.seq > last, `seq ${ev.seq} after ${last}`);
        last = ev.seq;
        assert.deepEqual(bodyBytes(ev), want[got], `message ${got} (${ev.id})`);
      }
      await publishing;
      assert.equal(proxy.cuts, 10);
      await until("the connection reopened after the last cut", () => opens > proxy.cuts);
      assert.equal(sub.transport, transport);
    } finally {
      sub.close();
      await proxy.close();
    }
  });

  test(`${transport}: resuming from further back than the history holds starts with a gap`, async (t) => {
    // The small server keeps 10 messages of "in".
    const before = await subscriptions(smallURL);
    assert.equal(before.length, 0);
    const probe = subscribe(smallURL, "", { sources: ["in"], transport: "sse" });
    t.after(() => probe.close());
    const pit = probe[Symbol.asyncIterator]();
    await probe.ready();
    const msgs = Array.from({ length: 30 }, (_, i) => ({ body: i + 1 }));
    await publish(smallURL, "in", msgs);
    let n = 0; // the newest seq of "in"
    for (let i = 0; i < 30; i++) n = (await nextMessage(pit, "the probe's messages")).seq;
    probe.close();

    const sub = subscribe(smallURL, "", { transport, from: [`in:${n - 25}`] });
    t.after(() => sub.close());
    const it = sub[Symbol.asyncIterator]();
    const gap = (await next(it, "the gap")).value;
    assert.deepEqual(gap, { type: "gap", source: "in", missed: 15, reason: "history" });
    for (let want = 21; want <= 30; want++) {
      const ev = await nextMessage(it, `body ${want}`);
      assert.equal(ev.body, want);
      assert.equal(ev.seq, n - 30 + want);
    }
    assert.deepEqual(sub.lastIds(), [`in:${n}`]);
    sub.close();
  });

  test(`${transport}: what the server refuses ends the subscription with its error`, async () => {
    for (const [where, sources, status, code, position] of [
      ["key ==", ["in"], 400, "invalid_predicate", 6],
      ["", ["nosuch"], 404, "unknown_source", -1],
    ]) {
      let reconnects = 0;
      const sub = subscribe(url, where, { sources, transport, onReconnect: () => reconnects++ });
      const err = await sub.done;
      assert.ok(err instanceof APIError, `${where} ${sources}: ${err}`);
      assert.equal(err.status, status);
      assert.equal(err.code, code);
      assert.equal(err.position, position);
      assert.equal(err.temporary, false);
      assert.equal(reconnects, 0);
      assert.equal(sub.error, err);
      await assert.rejects(sub[Symbol.asyncIterator]().next(), (e) => e === err);
    }
  });

  test(`${transport}: an aborted signal ends the subscription and its connection`, async (t) => {
    const ctl = new AbortController();
    const o = opened();
    const k = unique("abort");
    const sub = subscribe(url, `key == "${k}"`, { sources: ["other"], transport, signal: ctl.signal, onOpen: o.onOpen });
    t.after(() => sub.close());
    await o.first;
    await until("the subscription on the server", async () => (await subscriptions()).some((s) => s.predicate === `key == "${k}"`));
    const reading = (async () => {
      const got = [];
      for await (const ev of sub) got.push(ev);
      return got;
    })();
    ctl.abort();
    assert.deepEqual(await reading, []);
    assert.equal(await sub.done, null);
    await until("no subscription left on the server", async () => !(await subscriptions()).some((s) => s.predicate === `key == "${k}"`));
  });
}

test("websocket: a stream an administrator ends (1008) is not reopened", async (t) => {
  const k = unique("kick");
  let reconnects = 0;
  let opens = 0;
  const events = [];
  const sub = subscribe(url, `key == "${k}"`, {
    sources: ["other"],
    transport: "websocket",
    backoff: { initial: 5, max: 5 },
    onReconnect: () => reconnects++,
    onOpen: () => opens++,
    onEvent: (ev) => events.push(ev),
  });
  t.after(() => sub.close());
  await sub.ready();
  await publish(url, "other", { key: k, body: "one" });
  await until("the first message", () => events.length === 1);
  const mine = (await subscriptions()).find((s) => s.predicate === `key == "${k}"`);
  await kick(mine.id);
  const err = await sub.done;
  assert.ok(err instanceof ClosedError, `${err}`);
  assert.equal(err.code, 1008);
  assert.equal(sub.closed, true);
  await until("no subscription on the server after the kick", async () => !(await subscriptions()).some((s) => s.predicate === `key == "${k}"`));
  // The loop ended with done: no attempt was made after the close, and none can be.
  assert.equal(reconnects, 0);
  assert.equal(opens, 1);
  assert.throws(() => sub[Symbol.asyncIterator](), TypeError, "a subscription with onEvent iterated");
});

test("sse: a stream an administrator ends comes back (SSE cannot tell why it ended) and resumes", async (t) => {
  const k = unique("kick-sse");
  const reconnected = [];
  const o = opened();
  const sub = subscribe(url, `key == "${k}"`, {
    sources: ["other"],
    transport: "sse",
    backoff: { initial: 5, max: 5 },
    onOpen: (info) => {
      o.onOpen(info);
      if (info.reconnected) reconnected.push(info.from);
    },
  });
  t.after(() => sub.close());
  const it = sub[Symbol.asyncIterator]();
  await o.first;
  await publish(url, "other", { key: k, body: "one" });
  const first = await nextMessage(it, "one");
  const mine = (await subscriptions()).find((s) => s.predicate === `key == "${k}"`);
  await kick(mine.id);
  await until("the reconnection", () => reconnected.length > 0);
  assert.deepEqual(reconnected[0], [first.id]);
  await publish(url, "other", [{ key: k, body: "two" }]);
  assert.equal((await nextMessage(it, "two")).body, "two");
  sub.close();
});

test("auto: WebSocket first; where a proxy refuses WebSocket, Server-Sent Events", async () => {
  const k = unique("auto");
  const plain = subscribe(url, `key == "${k}"`, { sources: ["other"] });
  const proxy = await startProxy(url, { refuseWebSocket: true });
  const fell = subscribe(proxy.url, `key == "${k}"`, { sources: ["other"] });
  const none = subscribe(url, `key == "${k}"`, { sources: ["other"], WebSocket: null });
  try {
    // Not a count of the server's subscriptions: the plain HTTP request that finds out why the
    // WebSocket failed is one too, for a moment.
    await Promise.all([plain.ready(), fell.ready(), none.ready()]);
    await publish(url, "other", { key: k, body: { hello: "world" } });
    for (const [sub, transport] of [[plain, "websocket"], [fell, "sse"], [none, "sse"]]) {
      const ev = await nextMessage(sub[Symbol.asyncIterator](), `the message over ${transport}`);
      assert.deepEqual(ev.body, { hello: "world" });
      assert.equal(sub.transport, transport);
    }
    const seen = async () => (await subscriptions()).filter((s) => s.predicate === `key == "${k}"`).map((s) => s.transport).sort();
    await until("the server to hold the three as they are", async () => JSON.stringify(await seen()) === '["sse","sse","websocket"]');
  } finally {
    plain.close();
    fell.close();
    none.close();
    await proxy.close();
  }
});

test("subscribe refuses what cannot work before connecting", () => {
  assert.throws(() => subscribe(url, "", { from: ["nocolon"] }), TypeError);
  assert.throws(() => subscribe(url, "", { transport: "carrier-pigeon" }), TypeError);
  assert.throws(() => subscribe("ftp://example.com/", ""), TypeError);
  assert.throws(() => subscribe(url, "", { transport: "websocket", WebSocket: null }), TypeError);
});
