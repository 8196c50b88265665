import test from "node:test";
import assert from "node:assert/strict";
import { subscribe, publish, bodyBytes, APIError } from "../streamux.js";
import { url } from "./helpers.js";

test("publish: keys, headers and every kind of body arrive as sent", async (t) => {
  const k = `pub-${process.pid}`;
  const sub = subscribe(url, `key.startsWith("${k}")`, { sources: ["other"], transport: "sse" });
  t.after(() => sub.close());
  const it = sub[Symbol.asyncIterator]();
  const enc = new TextEncoder();
  const sent = [
    { key: `${k}.obj`, headers: { Tenant: "acme" }, body: { amount: 120.5, big: [1, 2, 3] } },
    { key: `${k}.text`, body: "plain text, not JSON" },
    { key: `${k}.jsonbytes`, body: enc.encode('{\n  "spread": "over lines",\n  "n": 12345678901234567\n}') },
    { key: `${k}.textbytes`, body: enc.encode("é text") },
    { key: `${k}.binary`, body: new Uint8Array([0xff, 0, 1, 2, 0xfe]) },
    { key: `${k}.number`, body: 42 },
    { key: `${k}.empty` },
  ];
  await sub.ready(); // what is published from now on is this subscription's
  const res = await publish(url, "other", sent);
  assert.equal(res.accepted, sent.length);
  const got = [];
  while (got.length < sent.length) {
    const { value } = await it.next();
    if (value.type === "message") got.push(value);
  }
  sub.close();
  assert.deepEqual(got.map((e) => e.key), sent.map((m) => m.key));
  assert.equal(got[0].headers.Tenant, "acme");
  assert.deepEqual(got[0].body, { amount: 120.5, big: [1, 2, 3] });
  assert.equal(got[1].body, "plain text, not JSON");
  assert.equal(got[2].body.spread, "over lines"); // JSON bytes are sent as that JSON value
  assert.equal(got[3].body, "é text");
  assert.equal(got[4].body_encoding, "base64");
  assert.deepEqual(bodyBytes(got[4]), new Uint8Array([0xff, 0, 1, 2, 0xfe]));
  assert.equal(got[5].body, 42);
  assert.equal(got[6].body, "");
});

test("publish: the server's refusal is an APIError", async () => {
  await assert.rejects(publish(url, "nosuch", { body: 1 }), (e) => e instanceof APIError && e.status === 404 && e.code === "unknown_source");
  await assert.rejects(publish("http://127.0.0.1:1/", "in", { body: 1 }), (e) => e.name === "StreamuxError");
});
