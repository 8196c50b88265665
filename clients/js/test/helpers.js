// Helpers of the client's tests: the servers the Go test started, a TCP proxy that cuts its
// connections, and the server's view of the subscriptions.
import net from "node:net";

/** url is a server with the http sources "in" and "other"; smallURL one whose "in" keeps 10 messages. */
export const url = process.env.STREAMUX_URL;
export const smallURL = process.env.STREAMUX_SMALL_URL;
if (!url || !smallURL) {
  throw new Error("STREAMUX_URL and STREAMUX_SMALL_URL are not set: run these tests with go test ./clients/js/");
}

/**
 * startProxy forwards TCP connections to the server at target and cuts them all on cut(): a
 * network that fails under the client. With refuseWebSocket, a request that asks for a
 * WebSocket upgrade is answered 403, as by a proxy that does not pass WebSocket.
 */
export async function startProxy(target, { refuseWebSocket = false } = {}) {
  const { hostname, port } = new URL(target);
  const conns = new Set();
  let cuts = 0;
  const server = net.createServer((c) => {
    conns.add(c);
    c.on("close", () => conns.delete(c));
    c.on("error", () => {});
    c.once("data", (first) => {
      if (refuseWebSocket && /^upgrade:\s*websocket/im.test(first.toString("latin1"))) {
        c.end("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
      }
      const s = net.connect(Number(port), hostname);
      conns.add(s);
      s.on("close", () => {
        conns.delete(s);
        c.destroy();
      });
      s.on("error", () => {});
      c.on("close", () => s.destroy());
      s.write(first);
      c.pipe(s);
      s.pipe(c);
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    get cuts() {
      return cuts;
    },
    cut() {
      cuts++;
      for (const c of conns) c.destroy();
    },
    async close() {
      for (const c of conns) c.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** subscriptions lists the server's live subscriptions. */
export async function subscriptions(base = url) {
  const res = await fetch(new URL("v1/subscriptions", base));
  if (!res.ok) throw new Error(`GET /v1/subscriptions: ${res.status}`);
  return res.json();
}

/** kick ends a subscription as an administrator does. */
export async function kick(id, base = url) {
  const res = await fetch(new URL(`v1/subscriptions/${id}`, base), { method: "DELETE" });
  if (res.status !== 204) throw new Error(`DELETE /v1/subscriptions/${id}: ${res.status}`);
}

/** until polls cond every 10 ms until it holds, or fails after 15 s. */
export async function until(what, cond) {
  const deadline = Date.now() + 15000;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`waiting for ${what}: timed out`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** opened returns the options onOpen of a subscription and a promise of its first opening. */
export function opened() {
  let resolve;
  const first = new Promise((r) => (resolve = r));
  return { onOpen: (info) => resolve(info), first };
}
