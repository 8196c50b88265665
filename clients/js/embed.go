// Package streamuxjs holds the JavaScript client of streamux (streamux.js, an ES module with its
// type declarations in streamux.d.ts and its npm package.json beside it) so that Go code can
// serve it: the web page at / imports this very file. The file here is the one copy; nothing
// generates it.
//
// Its tests run the module's own tests (test/*.test.js, Node's test runner) against a real
// streamux server started in process.
package streamuxjs

import _ "embed"

// Module is streamux.js, the client as an ES module.
//
//go:embed streamux.js
var Module []byte
