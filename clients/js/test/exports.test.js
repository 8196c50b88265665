import test from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import * as streamux from "../streamux.js";
import "./helpers.js"; // run only from go test, as every file here

// The type declarations name exactly what the module exports, so neither drifts from the other.
test("streamux.d.ts declares what streamux.js exports", async () => {
  const dts = await readFile(new URL("../streamux.d.ts", import.meta.url), "utf8");
  const declared = [...dts.matchAll(/^export declare (?:function|class) (\w+)/gm)].map((m) => m[1]).sort();
  assert.deepEqual(declared, Object.keys(streamux).sort());
  const pkg = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8"));
  assert.equal(pkg.name, "@streamux/client");
  assert.equal(pkg.type, "module");
  assert.equal(pkg.dependencies, undefined);
  assert.equal(pkg.exports["."].default, "./streamux.js");
  assert.equal(pkg.exports["."].types, "./streamux.d.ts");
});
