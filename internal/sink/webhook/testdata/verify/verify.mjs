// Reads JSON lines {"secret","id","timestamp","body","signature"} on stdin and verifies each with
// the Standard Webhooks reference library, printing "ok" or "bad: <error>" per line.
import { Webhook } from "standardwebhooks";
import readline from "node:readline";

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  const c = JSON.parse(line);
  try {
    // The library checks the timestamp against its clock (5 minutes); the test signs with now.
    new Webhook(c.secret).verify(c.body, {
      "webhook-id": c.id,
      "webhook-timestamp": String(c.timestamp),
      "webhook-signature": c.signature,
    });
    console.log("ok");
  } catch (e) {
    console.log("bad: " + e.message);
  }
}
