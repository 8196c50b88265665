// Package poison makes a reused buffer read as garbage once its content is done with, in test
// builds with the build tag poison, so that whatever still holds a piece of it (a message body
// that is a slice of a buffer read into again, a parser's value kept past the next parse) fails
// loudly, in the test that meets it, instead of silently carrying another message's bytes
// (issue 15: an NDJSON request's lines took the bytes of later lines). Run
//
//	go test -tags poison ./...
//
// Without the tag, Enabled is the constant false: every function here is inlined to nothing,
// and the production build pays nothing for the calls.
//
// It is for the buffers this project reuses: the scratch of the websocket source's reads, the
// fastjson parsers of predicate.Input, of the websocket source's key and of the http source's
// envelopes, the http source's request bodies once split into lines, and the transports' own
// frame and line buffers. What a client library hands over
// is the library's: each adapter says at the point where it takes a body why that body is the
// message's own, and the sourcetest suite compares every body only after all have arrived,
// which a library's reused buffer would fail.
//
// The functions are safe for concurrent use on distinct buffers.
package poison

import "github.com/valyala/fastjson"

// garbage is what a poisoned buffer holds: not UTF-8 and not JSON, so that a body made of it is
// sent in base64 and no predicate matches it.
const garbage = "\xde\xad\xbe\xef"

// Bytes overwrites all of b, up to its capacity, with garbage: an earlier, longer content may
// still be read through a slice of its tail.
func Bytes(b []byte) {
	if !Enabled {
		return
	}
	b = b[:cap(b)]
	for i := range b {
		b[i] = garbage[i%len(garbage)]
	}
}

// Parser overwrites the copy of doc that p made when it last parsed it with a document of spaces:
// the strings of p's values view that copy, and read as spaces; the values themselves are reset
// or reused. p must have parsed doc last (if it did not parse doc at all, the call is harmless:
// whatever p holds is as dead as doc's copy would be); doc itself is not touched. A parser
// poisoned after each document it parses keeps nothing of any of them.
func Parser(p *fastjson.Parser, doc []byte) {
	if !Enabled {
		return
	}
	parseGarbage(p, doc)
}
