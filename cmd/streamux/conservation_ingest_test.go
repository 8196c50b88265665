package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// The conservation test's HTTP ingest paths (README, "Ingest").

// ingestLimit is the http sources' max_body_bytes in these tests: the limit of a request, or of a
// line of a streamed one. It is set rather than left at the default 8 MiB, which would cost the
// race detector seconds per message at the limit, and it is no buffer size on purpose, so that a
// limit taken from the wrong place shows.
const ingestLimit = 1_234_567

// ingestYAML is the source items of one http source named in.
var ingestYAML = fmt.Sprintf(`  - name: in
    type: http
    max_body_bytes: %d
`, ingestLimit)

// request is what an ingest request says besides its body: the key and headers it gives its
// messages (an envelope's own override them), as query parameters and headers.
type request struct {
	query   url.Values
	header  http.Header
	key     string
	headers map[string]string
}

// request draws a request's key and headers: ?key= (any text) or X-Streamux-Key (a header's
// value), or both (the query wins), or none; headers from X-Streamux-Header-Name (the name
// lowercased) and ?header.name= (which wins over a header of the same name).
func (g gen) request() request {
	rq := request{query: url.Values{}, header: http.Header{}}
	switch g.r.IntN(5) {
	case 0, 1:
		rq.key = g.anyText(24)
		rq.query.Set("key", rq.key)
	case 2:
		rq.key = g.headerValue()
		rq.header.Set("X-Streamux-Key", rq.key)
	case 3:
		rq.header.Set("X-Streamux-Key", g.headerValue())
		rq.key = g.anyText(24)
		rq.query.Set("key", rq.key)
	}
	for range g.r.IntN(4) {
		name := g.word(false)
		if g.r.IntN(2) == 0 {
			name = strings.ToUpper(name[:1]) + name[1:]
		}
		v := g.headerValue()
		rq.header.Set("X-Streamux-Header-"+name, v)
		if rq.headers == nil {
			rq.headers = map[string]string{}
		}
		rq.headers[strings.ToLower(name)] = v
	}
	for range g.r.IntN(3) {
		name := g.word(false)
		if len(rq.headers) > 0 && g.r.IntN(3) == 0 {
			names := slices.Sorted(maps.Keys(rq.headers)) // sorted: a seed must draw the same again
			name = names[g.r.IntN(len(names))]
		}
		v := g.anyText(16)
		rq.query.Set("header."+name, v)
		if rq.headers == nil {
			rq.headers = map[string]string{}
		}
		rq.headers[name] = v
	}
	return rq
}

// post sends one ingest request and checks that it answers 200 {"accepted":n}.
func (s *testServer) post(ctx context.Context, rq request, extra url.Values, contentType string, body io.Reader, n int) error {
	q := url.Values{}
	maps.Copy(q, rq.query)
	maps.Copy(q, extra)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url("/v1/sources/in/messages?"+q.Encode()), body)
	if err != nil {
		return err
	}
	maps.Copy(req.Header, rq.header)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var answer struct {
		Accepted *int `json:"accepted"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &answer) != nil || answer.Accepted == nil || *answer.Accepted != n {
		return fmt.Errorf("POST ?%s: %s %s, want 200 {\"accepted\":%d}", q.Encode(), resp.Status, bytes.TrimSpace(b), n)
	}
	return nil
}

// conserveIngestBody: each message is the whole body of a request, of any content type but
// NDJSON's, and any bytes at all, the empty body included, up to max_body_bytes.
func conserveIngestBody(t *testing.T, g gen, n int) {
	srv := startServer(t, ingestYAML)
	var msgs []*message
	var bodies [][]byte
	var reqs []request
	var types []string
	for _, size := range append(g.sizes(n, 0, ingestLimit), 20) {
		k := g.kind()
		b := g.body(k, size, bodyRules{})
		rq := g.request()
		msgs = append(msgs, &message{what: describe(k, b), key: rq.key, headers: rq.headers, body: wantFor(b)})
		bodies, reqs = append(bodies, b), append(reqs, rq)
		types = append(types, []string{"", "application/octet-stream", "text/plain; charset=utf-8", "application/json"}[g.r.IntN(4)])
	}
	conserve(t, g, entry{srv: srv, source: "in", publish: func(ctx context.Context, idx []int) error {
		for _, i := range idx {
			if err := srv.post(ctx, reqs[i], nil, types[i], bytes.NewReader(bodies[i]), 1); err != nil {
				return fmt.Errorf("message %d (%s): %w", i, msgs[i].what, err)
			}
		}
		return nil
	}}, msgs)
}

// conserveIngestEnvelope: each message is one envelope, the whole body of a request with
// ?envelope=true: a JSON object that may span lines, up to max_body_bytes.
func conserveIngestEnvelope(t *testing.T, g gen, n int) {
	srv := startServer(t, ingestYAML)
	var msgs []*message
	var bodies [][]byte
	var reqs []request
	for _, size := range append(g.sizes(n, 2, ingestLimit), 40) {
		rq := g.request()
		env, m := g.envelope(size, rq, false)
		msgs, bodies, reqs = append(msgs, m), append(bodies, env), append(reqs, rq)
	}
	conserve(t, g, entry{srv: srv, source: "in", publish: func(ctx context.Context, idx []int) error {
		for _, i := range idx {
			if err := srv.post(ctx, reqs[i], url.Values{"envelope": {"true"}}, "application/json", bytes.NewReader(bodies[i]), 1); err != nil {
				return fmt.Errorf("message %d (%s): %w", i, msgs[i].what, err)
			}
		}
		return nil
	}}, msgs)
}

// conserveIngestLines: messages as NDJSON lines (envelopes, with envelope), many to a request, or
// all in one streamed request (stream). A line is published without its line ending ("\n" or
// "\r\n", both used); blank lines between them are skipped; the last line of a request may have
// no ending. A line cannot hold a newline nor end in '\r', and is not empty: see bodyRules.
//
// Without stream, max_body_bytes bounds a request: its lines and line endings together, so a
// line of the limit goes alone with no ending, one of the limit less one alone with "\n". With
// stream, it bounds each line.
func conserveIngestLines(t *testing.T, g gen, n int, envelope, stream bool) {
	srv := startServer(t, ingestYAML)
	lo := 1
	if envelope {
		lo = 2
	}
	sizes := append(g.sizes(n, lo, ingestLimit), 30)
	var (
		msgs  []*message
		lines [][]byte
		rqs   = []request{g.request()}
		rqOf  []int // the request each line goes in: its key and headers are the line's defaults
	)
	for i, size := range sizes {
		// A streamed request carries every line but the sentinel's: they share its key and
		// headers. Otherwise they change now and then, and so does the request.
		if i == len(sizes)-1 || !stream && i > 0 && g.r.IntN(4) == 0 {
			rqs = append(rqs, g.request())
		}
		rq := rqs[len(rqs)-1]
		var line []byte
		var m *message
		if envelope {
			line, m = g.envelope(size, rq, true)
		} else {
			k := g.kind()
			line = g.body(k, size, bodyRules{line: true})
			m = &message{what: describe(k, line), key: rq.key, headers: rq.headers, body: wantFor(line)}
		}
		msgs, lines, rqOf = append(msgs, m), append(lines, line), append(rqOf, len(rqs)-1)
	}

	// The requests' bodies: the lines with their endings, blank lines now and then before them.
	type batch struct {
		rq    request
		first int // the index of its first line
		n     int // its lines
		body  []byte
	}
	var batches []*batch
	var cur *batch
	for i, line := range lines {
		if cur == nil || rqOf[i] != rqOf[cur.first] || !stream && (cur.n == 12 || len(cur.body)+len(line) > ingestLimit) {
			cur = &batch{rq: rqs[rqOf[i]], first: i}
			batches = append(batches, cur)
		}
		end := []string{"\n", "\r\n"}[g.r.IntN(2)]
		switch {
		case stream && len(line) == ingestLimit:
			// A streamed line of the limit ends in "\n": max_body_bytes bounds a line without
			// its ending, and whether a "\r" before the "\n" counts is not documented.
			end = "\n"
		case !stream && len(cur.body)+len(line)+len(end) > ingestLimit:
			end = "" // the last line of a full request, which then ends
		}
		if g.r.IntN(8) == 0 && (stream || len(cur.body)+2+len(line)+len(end) <= ingestLimit) {
			cur.body = append(cur.body, "\r\n"[g.r.IntN(2):]...) // a blank line: skipped
		}
		cur.body = append(append(cur.body, line...), end...)
		cur.n++
		if end == "" {
			cur = nil
		}
	}
	for _, b := range batches {
		if g.r.IntN(3) == 0 { // the body may end without a line ending
			b.body = bytes.TrimSuffix(bytes.TrimSuffix(b.body, []byte("\n")), []byte("\r"))
		}
	}

	extra := url.Values{}
	if envelope {
		extra.Set("envelope", "true")
	}
	if stream {
		extra.Set("stream", "true")
	}
	conserve(t, g, entry{srv: srv, source: "in", publish: func(ctx context.Context, idx []int) error {
		for _, b := range batches {
			if b.first < idx[0] || b.first > idx[len(idx)-1] {
				continue
			}
			ct := []string{"application/x-ndjson", "application/jsonl", "application/x-ndjson; charset=utf-8"}[g.r.IntN(3)]
			var body io.Reader = bytes.NewReader(b.body)
			wait := func() {}
			if stream {
				body, wait = g.trickle(b.body)
			}
			err := srv.post(ctx, b.rq, extra, ct, body, b.n)
			wait()
			if err != nil {
				return fmt.Errorf("lines %d to %d: %w", b.first, b.first+b.n-1, err)
			}
		}
		return nil
	}}, msgs)
}

// trickle is a streamed request's body: the bytes in pieces of random sizes, so that the server
// reads lines cut anywhere, across its reads. wait returns once its writer has.
func (g gen) trickle(b []byte) (body io.Reader, wait func()) {
	pr, pw := io.Pipe()
	var sizes []int
	for left := len(b); left > 0; {
		n := min(left, 1+g.r.IntN([]int{16, 4096, 70000}[g.r.IntN(3)]))
		sizes = append(sizes, n)
		left -= n
	}
	done := make(chan struct{})
	go func() { // ends once the body is written or the request is over (net/http closes pr); wait waits for it
		defer close(done)
		for _, n := range sizes {
			if _, err := pw.Write(b[:n]); err != nil {
				return
			}
			b = b[n:]
		}
		pw.Close()
	}()
	return pr, func() { <-done }
}

// envelope returns an envelope of exactly size bytes (at least 2) that carries a random body,
// and what its message must become. Its key and headers, when it has them, override those of
// the request rq; its body is a JSON value as it is, text as a JSON string, or any bytes in
// base64 with "body_encoding":"base64". On a line (an NDJSON envelope) it holds no newline.
func (g gen) envelope(size int, rq request, line bool) ([]byte, *message) {
	m := &message{key: rq.key, headers: rq.headers}
	var fields [][]byte
	if g.r.IntN(3) > 0 {
		switch g.r.IntN(5) {
		case 0:
			fields = append(fields, []byte(`"key":null`))
		default:
			m.key = g.anyText(24)
			fields = append(fields, append([]byte(`"key":`), jsonString(m.key)...))
		}
	}
	if g.r.IntN(3) > 0 {
		switch g.r.IntN(6) {
		case 0:
			fields = append(fields, []byte(`"headers":null`))
		case 1:
			fields = append(fields, []byte(`"headers":{}`))
		default:
			h := maps.Clone(rq.headers)
			if h == nil {
				h = map[string]string{}
			}
			obj := []byte{'{'}
			for i := range 1 + g.r.IntN(3) {
				name := g.word(true)
				if g.r.IntN(2) == 0 {
					name = strings.ToUpper(name[:1]) + name[1:] // an envelope's names keep their case
				}
				v := g.anyText(16)
				if i > 0 {
					obj = append(obj, ',')
				}
				obj = append(append(append(obj, jsonString(name)...), ':'), jsonString(v)...)
				h[name] = v
			}
			m.headers = h
			fields = append(fields, append(append([]byte(`"headers":`), obj...), '}'))
		}
	}
	overhead := 2
	for _, f := range fields {
		overhead += len(f) + 1
	}
	if overhead+len(`"body":"","body_encoding":"base64"`)+2 > size {
		// No room for more than an empty envelope: the request's key and headers, no body.
		fields = nil
		m.key, m.headers = rq.key, rq.headers
		m.what = "an envelope with no body"
		m.body = want{enc: "text"}
		return g.padEnvelope([]byte("{}"), size, line), m
	}

	// The body, shrunk until the envelope fits.
	room := size - overhead - len(`"body":`)
	k := g.kind()
	pref := g.r.IntN(8) // the body's form, among those its bytes allow: drawn once, so that retries converge
	for target := room; ; {
		raw := g.body(k, max(0, target), bodyRules{})
		var body []byte
		form := ""
		fs := slices.Clone(fields)
		w := wantFor(raw)
		switch {
		case w.enc == "json" && (!line || !bytes.ContainsAny(raw, "\n")) && pref < 6:
			form, body = "as JSON", raw
			w.sameValue = true
		case w.enc != "base64" && pref < 6:
			form, body = "as a JSON string", jsonString(string(raw))
			w = want{enc: "text", text: string(raw)}
		case len(raw) == 0 && pref == 6:
			form = "absent"
			w = want{enc: "text"}
		default:
			form = "in base64"
			body = append(append([]byte{'"'}, base64.StdEncoding.AppendEncode(nil, raw)...), '"')
			fs = append(fs, []byte(`"body_encoding":"base64"`))
		}
		if form != "absent" {
			fs = append(fs, append([]byte(`"body":`), body...))
		}
		g.r.Shuffle(len(fs), func(i, j int) { fs[i], fs[j] = fs[j], fs[i] })
		env := append([]byte{'{'}, bytes.Join(fs, []byte(","))...)
		env = append(env, '}')
		if len(env) <= size {
			m.what = fmt.Sprintf("an envelope of %d bytes, its body %s: %s", size, form, describe(k, raw))
			m.body = w
			return g.padEnvelope(env, size, line), m
		}
		// Too long: a body smaller by what its form makes of each byte (escapes, base64). An
		// empty body fits in any form (see the room kept above), so this ends.
		if len(raw) == 0 {
			panic(fmt.Sprintf("conservation generator: an envelope of %d bytes does not fit in %d", len(env), size))
		}
		perByte := float64(len(body)+1) / float64(len(raw)+1)
		target = max(0, min(target-1, int(float64(size-(len(env)-len(body)))/perByte*0.98)))
	}
}

// padEnvelope pads env to exactly size bytes with whitespace after its opening brace.
func (g gen) padEnvelope(env []byte, size int, line bool) []byte {
	pad := make([]byte, size-len(env))
	ws := " \t\r\n"
	if line {
		ws = " \t"
	}
	for i := range pad {
		pad[i] = ws[g.r.IntN(len(ws))]
	}
	return append(append(env[:1:1], pad...), env[1:]...)
}
