// Package ingest is the http source: messages are POSTed to /v1/sources/{name}/messages, one
// per request body or many as NDJSON. It is the simplest way to put chosen messages in.
//
// Concurrency: Run is called by the source.Runner goroutine and parks until its context ends;
// while it runs, any number of request goroutines Publish through the router's Emit, which
// queues one message at a time in the router's input, so messages of one request stay in order.
// A request is answered once its messages are accepted (queued to be routed), not once routed:
// a client that publishes and then subscribes or reads /v1/check still sees them, because the
// router routes what it accepted before it runs a subscription or a history read. A streaming
// request (?stream=true) publishes each line once it has arrived, and is answered at its end.
package ingest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"

	"github.com/streamux/streamux/internal/poison"
	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/stream"
)

// Config configures an http source.
type Config struct {
	// MaxBodyBytes is the largest request body accepted; a larger one gets 413. Defaults to
	// DefaultMaxBodyBytes, 8 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
}

// DefaultMaxBodyBytes is Config.MaxBodyBytes when none is given.
const DefaultMaxBodyBytes = 8 << 20

// BodyBytes is the largest request body the source takes, which the server's buffer for
// request bodies (limits.body_buffer_bytes) must be able to hold.
func (c *Config) BodyBytes() int64 {
	if c.MaxBodyBytes == 0 {
		return DefaultMaxBodyBytes
	}
	return c.MaxBodyBytes
}

// Validate returns every problem with c.
func (c *Config) Validate() []error {
	if c.MaxBodyBytes < 0 {
		return []error{fmt.Errorf("max_body_bytes must be positive, got %d", c.MaxBodyBytes)}
	}
	return nil
}

// Source receives messages over HTTP. Create it with New.
type Source struct {
	maxBody int64
	emit    atomic.Pointer[emitter] // set while Run runs
	// started is closed once Run has first set emit: a request that comes as the server
	// starts, before its sources run, waits for it rather than being refused.
	started   chan struct{}
	startOnce sync.Once
	log       source.Log // in a cluster: where messages go (UseLog); set before Run
}

type emitter struct {
	emit source.Emit
	ctx  context.Context
}

// New returns an http source.
func New(c Config) *Source {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	return &Source{maxBody: c.MaxBodyBytes, started: make(chan struct{})}
}

// startWait bounds how long a request waits for a source that has not started yet.
const startWait = 5 * time.Second

var (
	_ source.Publisher = (*Source)(nil)
	_ source.Logged    = (*Source)(nil)
)

// UseLog makes the source append its messages to l, the source's log in a cluster, a
// request's at once, rather than emit them one by one: an answer then says that the log
// stored them, and gives their ids. Call it before Run.
func (s *Source) UseLog(l source.Log) { s.log = l }

// The http type is this package: ingest is what it does, the API's POST
// /v1/sources/{name}/messages, and http would shadow net/http here.
func init() {
	source.Register("http", func(c Config) (*Source, error) { return New(c), nil })
}

// Run makes the source accept messages until ctx is done.
func (s *Source) Run(ctx context.Context, up func(), emit source.Emit) error {
	s.emit.Store(&emitter{emit: emit, ctx: ctx})
	s.startOnce.Do(func() { close(s.started) })
	defer s.emit.Store(nil)
	up()
	<-ctx.Done()
	return nil
}

func badRequest(format string, args ...any) *source.PublishError {
	return &source.PublishError{Status: http.StatusBadRequest, Code: "invalid_message", Message: fmt.Sprintf(format, args...)}
}

// Publish parses the request as API.md says and hands every message to the router, in order.
// Normally the whole body is parsed before anything is published, so a bad line publishes
// nothing; with ?stream=true each NDJSON line is published as soon as it has arrived. It
// returns the number of messages published, also when it fails; errors are *source.PublishError. A stream
// also ends when stop is done: the server is shutting down.
func (s *Source) Publish(stop context.Context, r *http.Request, w http.ResponseWriter) (source.Published, error) {
	e := s.emit.Load()
	if e == nil {
		// Not started yet (the server answers as its sources start): wait for it, a while.
		t := time.NewTimer(startWait)
		select {
		case <-s.started:
			e = s.emit.Load()
		case <-t.C:
		case <-r.Context().Done():
		case <-stop.Done():
		}
		t.Stop()
	}
	if e == nil {
		return source.Published{}, &source.PublishError{Status: http.StatusServiceUnavailable, Code: "source_down", Message: "the source is not running"}
	}
	req, err := readRequest(r)
	if err != nil {
		return source.Published{}, err
	}
	if req.stream {
		return s.publishStream(stop, e, req, r, w)
	}
	msgs, err := s.parse(req, r, w)
	if err != nil {
		return source.Published{}, err
	}
	if s.log != nil {
		seqs, err := appendAll(r.Context(), s.log, msgs)
		if err != nil {
			return source.Published{N: len(seqs), Seqs: seqs}, &source.PublishError{Status: http.StatusServiceUnavailable, Code: "source_down",
				Message: fmt.Sprintf("the log stored %d of %d messages: %v", len(seqs), len(msgs), err)}
		}
		return source.Published{N: len(seqs), Seqs: seqs}, nil
	}
	for i, m := range msgs {
		if err := e.emit(r.Context(), m); err != nil {
			return source.Published{N: i}, &source.PublishError{Status: http.StatusServiceUnavailable, Code: "source_down",
				Message: fmt.Sprintf("published %d of %d messages: %v", i, len(msgs), err)}
		}
	}
	return source.Published{N: len(msgs)}, nil
}

// appendBatch is the most messages appended to a log in one call.
const appendBatch = 1000

// appendAll appends msgs to l in batches, and returns the sequences of those stored, in order,
// until the first failure.
func appendAll(ctx context.Context, l source.Log, msgs []*stream.Message) ([]uint64, error) {
	seqs := make([]uint64, 0, len(msgs))
	for len(msgs) > 0 {
		n := min(len(msgs), appendBatch)
		got, err := l.Append(ctx, msgs[:n])
		seqs = append(seqs, got...)
		if err != nil {
			return seqs, err
		}
		msgs = msgs[n:]
	}
	return seqs, nil
}

// request is what a request says about its messages, before its body is read.
type request struct {
	envelope bool // each line (or the body) is an envelope
	ndjson   bool // one message per line
	stream   bool // publish each line once it has arrived
	key      string
	headers  map[string]string
}

func readRequest(r *http.Request) (request, error) {
	q := r.URL.Query()
	var req request
	var err error
	if req.envelope, err = boolParam(q, "envelope"); err != nil {
		return req, err
	}
	if req.stream, err = boolParam(q, "stream"); err != nil {
		return req, err
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	req.ndjson = mt == "application/x-ndjson" || mt == "application/jsonl"
	if req.stream && !req.ndjson {
		return req, &source.PublishError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
			Message: fmt.Sprintf("stream=true takes NDJSON, one message per line: send Content-Type application/x-ndjson, not %q", mt)}
	}
	req.key, req.headers = requestKeyHeaders(r)
	return req, nil
}

// boolParam reads a query parameter as strconv.ParseBool does (true, 1, True, …); absent is false.
func boolParam(q url.Values, name string) (bool, error) {
	v := q.Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest("%s must be true or false, got %q", name, v)
	}
	return b, nil
}

// message is the message of one line (or of the whole body), which it may share memory with;
// p parses envelopes.
func (req *request) message(p *fastjson.Parser, b []byte) (*stream.Message, error) {
	if !req.envelope {
		return &stream.Message{Key: req.key, Headers: req.headers, Body: b}, nil
	}
	m, err := parseEnvelope(p, b, req.key, req.headers)
	poison.Parser(p, b) // parseEnvelope copies out of p's values everything it keeps
	return m, err
}

func (s *Source) parse(req request, r *http.Request, w http.ResponseWriter) ([]*stream.Message, error) {
	body, err := readAll(http.MaxBytesReader(w, r.Body, s.maxBody), r.ContentLength)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, &source.PublishError{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
				Message: fmt.Sprintf("request body is over the limit of %d bytes", s.maxBody)}
		}
		return nil, badRequest("read body: %v", err)
	}
	var p *fastjson.Parser
	if req.envelope {
		p = envelopes.Get()
		defer envelopes.Put(p)
	}
	now := time.Now()
	if !req.ndjson {
		m, err := req.message(p, body)
		if err != nil {
			return nil, badRequest("envelope: %v", err)
		}
		m.Time = now
		if id := r.Header.Get("Idempotency-Key"); id != "" {
			m.UpstreamID = id
		}
		return []*stream.Message{m}, nil
	}
	var msgs []*stream.Message
	// Each message gets a copy of its line (lineCopies). A slice of body would be safe from reuse
	// (body is this request's own), but would keep all of body alive for as long as any one
	// of its messages lives: one line matched by a slow subscriber's queue, whose bounds count
	// the encoded event, not this, could hold max_body_bytes. (A bufio.Scanner here once
	// handed out slices of its own buffer, which it overwrote as it read on: issue 15.) An
	// envelope's fields are copies already (parseEnvelope). A poison build overwrites body
	// once parsed, so a message that still shares it fails loudly.
	defer poison.Bytes(body)
	var copies lineCopies
	rest := body
	for line := 1; len(rest) > 0; line++ {
		var b []byte
		b, rest = nextLine(rest)
		if len(b) == 0 {
			continue
		}
		if !req.envelope {
			b = copies.copy(b)
		}
		m, err := req.message(p, b)
		if err != nil {
			return nil, badRequest("line %d: %v", line, err)
		}
		m.Time = now
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// lineCopies copies lines out of a buffer that will be reused or that is too large to keep alive
// for one line, into chunks of its own: one allocation per chunk rather than per line, at the
// price of a message keeping its chunk alive (at most chunkSize beside its own bytes) for as
// long as it lives. A JSON body does not keep it for long: once the message is encoded, its
// body is the event's copy (stream.NewMessage). A long line gets an allocation of its own.
type lineCopies struct {
	chunk []byte
}

// chunkSize is the size of lineCopies' chunks.
const chunkSize = 4 << 10

// copy returns a copy of b whose capacity ends with it, so that nothing appended to one
// line can reach the next.
func (l *lineCopies) copy(b []byte) []byte {
	if len(b) > chunkSize/4 {
		return bytes.Clone(b)
	}
	if cap(l.chunk)-len(l.chunk) < len(b) {
		l.chunk = make([]byte, 0, chunkSize)
	}
	start := len(l.chunk)
	l.chunk = append(l.chunk, b...)
	return l.chunk[start:len(l.chunk):len(l.chunk)]
}

// nextLine splits data after its first line as bufio.ScanLines does: the line ends at '\n'
// or at the end of data, and loses that '\n' and one '\r' before it, nothing else, so that a
// body keeps every other byte it was sent with (spaces, Unicode spaces, tabs). A streamed
// body is split by bufio.ScanLines itself, so both ways give the same lines.
func nextLine(data []byte) (line, rest []byte) {
	line, rest, _ = bytes.Cut(data, []byte{'\n'})
	return bytes.TrimSuffix(line, []byte{'\r'}), rest
}

// publishStream publishes each NDJSON line as soon as it has arrived, so that a request that
// stays open (a producer's pipe) feeds the source for as long as it lasts, at the cost of one
// read per chunk rather than one request per batch. max_body_bytes bounds each line; the stream
// has no bound. A bad line ends the request: the lines before it stay published. When stop is
// done or the source stops, the read in progress is cut, the complete lines already read are
// published, and the request ends. A line cut short by a failed read is not a message.
func (s *Source) publishStream(stop context.Context, e *emitter, req request, r *http.Request, w http.ResponseWriter) (source.Published, error) {
	// Unblock the read in progress, which then fails; the contexts tell why. A cut that
	// starts as the request ends must not touch the connection after it: net/http may be
	// serving the next request on it.
	rc := http.NewResponseController(w)
	var mu sync.Mutex
	over := false
	cut := func() {
		mu.Lock()
		defer mu.Unlock()
		if !over {
			_ = rc.SetReadDeadline(time.Now())
		}
	}
	defer func() {
		mu.Lock()
		over = true
		mu.Unlock()
	}()
	defer context.AfterFunc(stop, cut)()
	defer context.AfterFunc(e.ctx, cut)()
	shuttingDown := func(n int) *source.PublishError {
		return &source.PublishError{Status: http.StatusServiceUnavailable, Code: "shutting_down",
			Message: fmt.Sprintf("the server is shutting down: the stream ended after %s", messages(n))}
	}

	var p *fastjson.Parser
	if req.envelope {
		p = envelopes.Get()
		defer envelopes.Put(p)
	}
	body := &bodyReader{r: r.Body}
	sc := bufio.NewScanner(body)
	// Room for a line of max_body_bytes and its ending, "\r\n" as much as "\n": the limit
	// bounds the message, which does not keep its line ending.
	sc.Buffer(nil, int(min(s.maxBody, math.MaxInt-2))+2)
	sc.Split(body.lines)
	var copies lineCopies
	n := 0
	var seqs []uint64 // in a cluster, the sequences the log gave
	done := func() source.Published { return source.Published{N: n, Seqs: seqs} }
	tooLong := func() *source.PublishError {
		return &source.PublishError{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
			Message: fmt.Sprintf("a line is over the limit of %d bytes (max_body_bytes), after %s", s.maxBody, messages(n))}
	}
	for line := 1; sc.Scan(); line++ {
		b := sc.Bytes() // without its line ending: bufio.ScanLines, as nextLine
		if len(b) == 0 {
			continue
		}
		if int64(len(b)) > s.maxBody { // the buffer's room for a line ending can hold more
			return done(), tooLong()
		}
		if !req.envelope {
			// The scanner overwrites its buffer as it reads on, and the message outlives
			// this turn of the loop: it gets its own copy. An envelope's fields are
			// copies already (parseEnvelope).
			b = copies.copy(b)
		}
		m, err := req.message(p, b)
		if err != nil {
			return done(), badRequest("line %d: %v (published before it: %s)", line, err, messages(n))
		}
		m.Time = time.Now()
		// Not the request's context, which net/http cancels once a read fails: the lines
		// read before a shutdown's cut are still published.
		if s.log != nil {
			got, err := s.log.Append(e.ctx, []*stream.Message{m})
			seqs = append(seqs, got...)
			if err != nil {
				return done(), &source.PublishError{Status: http.StatusServiceUnavailable, Code: "source_down",
					Message: fmt.Sprintf("the log did not store line %d: %v (stored before it: %s)", line, err, messages(n))}
			}
		} else if err := e.emit(e.ctx, m); err != nil {
			return done(), shuttingDown(n)
		}
		n++
	}
	switch err := sc.Err(); {
	case err == nil:
		return done(), nil
	case stop.Err() != nil || e.ctx.Err() != nil:
		return done(), shuttingDown(n)
	case errors.Is(err, bufio.ErrTooLong):
		return done(), tooLong()
	default:
		return done(), badRequest("read NDJSON after %s: %v", messages(n), err)
	}
}

// bodyReader reads a streamed body and remembers how its reading ended.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil {
		b.err = err
	}
	return n, err
}

// lines splits the body into lines as bufio.ScanLines does, except that what follows the last
// newline is a line only if the body ended cleanly: a read that failed (the client left, the
// server cut it) may have stopped in the middle of a message.
func (b *bodyReader) lines(data []byte, atEOF bool) (int, []byte, error) {
	if atEOF && len(data) > 0 && bytes.IndexByte(data, '\n') < 0 && !errors.Is(b.err, io.EOF) {
		cause := b.err
		if cause == nil {
			cause = io.ErrUnexpectedEOF
		}
		return 0, nil, fmt.Errorf("the body ended in the middle of a line: %w", cause)
	}
	return bufio.ScanLines(data, atEOF)
}

func messages(n int) string {
	if n == 1 {
		return "1 message"
	}
	return fmt.Sprintf("%d messages", n)
}

// HeaderPrefix starts the request headers that become message headers.
const HeaderPrefix = "X-Streamux-Header-"

// requestKeyHeaders reads the key from ?key= or X-Streamux-Key, and headers from
// X-Streamux-Header-NAME and ?header.NAME= (names lowercased; the query wins).
func requestKeyHeaders(r *http.Request) (string, map[string]string) {
	q := r.URL.Query()
	key := r.Header.Get("X-Streamux-Key")
	if q.Has("key") {
		key = q.Get("key")
	}
	var h map[string]string
	set := func(k, v string) {
		if h == nil {
			h = make(map[string]string)
		}
		h[strings.ToLower(k)] = v
	}
	for name, vs := range r.Header {
		if len(name) > len(HeaderPrefix) && strings.EqualFold(name[:len(HeaderPrefix)], HeaderPrefix) {
			set(name[len(HeaderPrefix):], strings.Join(vs, ", "))
		}
	}
	for name, vs := range q {
		if n, ok := strings.CutPrefix(name, "header."); ok && n != "" {
			set(n, vs[len(vs)-1])
		}
	}
	return key, h
}

// envelopes parses envelope lines; fastjson's parsers are reused across requests, one per
// request at a time. A parser's values live until its next parse: parseEnvelope copies out
// everything it keeps (string conversions, MarshalTo(nil), AppendDecode(nil, …)).
var envelopes fastjson.ParserPool

// parseEnvelope reads {"key":"...","headers":{...},"body":...}; the request's key and headers
// are the defaults that a line's own fields override. It uses p, whose values it copies out.
func parseEnvelope(p *fastjson.Parser, b []byte, key string, headers map[string]string) (*stream.Message, error) {
	// fastjson takes NaN and Inf for numbers, which JSON has not.
	if !stream.ValidJSON(b) {
		return nil, errors.New(`want {"key":…,"headers":{…},"body":…}: not valid JSON`)
	}
	v, err := p.ParseBytes(b)
	if err != nil {
		// Valid JSON that fastjson refuses is nested too deep; its error repeats a phrase per
		// level, kilobytes of it, so say it once.
		return nil, fmt.Errorf("an envelope may nest at most %d levels deep", fastjson.MaxDepth)
	}
	m := &stream.Message{Key: key, Headers: headers}
	if v.Type() == fastjson.TypeNull {
		return m, nil // an empty envelope, as encoding/json had it
	}
	o, err := v.Object()
	if err != nil {
		return nil, fmt.Errorf(`want {"key":…,"headers":{…},"body":…}, got %s`, v.Type())
	}
	var body *fastjson.Value
	encoding := ""
	o.Visit(func(k []byte, f *fastjson.Value) {
		if err != nil {
			return
		}
		switch string(k) {
		case "key":
			if f.Type() != fastjson.TypeNull {
				var s []byte
				if s, err = f.StringBytes(); err != nil {
					err = fmt.Errorf(`"key" must be a string, got %s`, f.Type())
				}
				m.Key = string(s)
			}
		case "headers":
			err = mergeHeaders(m, headers, f)
		case "body":
			body = f
		case "id":
			var s []byte
			if s, err = f.StringBytes(); err != nil {
				err = fmt.Errorf(`"id" must be a string, got %s`, f.Type())
			}
			m.UpstreamID = string(s)
		case "body_encoding":
			var s []byte
			if s, err = f.StringBytes(); err != nil {
				err = fmt.Errorf(`"body_encoding" must be a string, got %s`, f.Type())
			}
			encoding = string(s)
		default:
			err = fmt.Errorf("unknown field %q: an envelope has id, key, headers, body and body_encoding", k)
		}
	})
	if err != nil {
		return nil, err
	}
	switch encoding {
	case "":
		if body != nil {
			// Validated above, and compact as fastjson writes it: the event need not check it,
			// unless it is not UTF-8 (encoding/json lets that through; the event carries it
			// in base64).
			m.Body = body.MarshalTo(nil)
			m.BodyIsJSON = utf8.Valid(m.Body)
		}
	case "base64":
		if body == nil {
			return nil, errors.New(`"body_encoding":"base64" needs a string body`)
		}
		s, err := body.StringBytes()
		if err != nil {
			return nil, errors.New(`"body_encoding":"base64" needs a string body`)
		}
		if m.Body, err = base64.StdEncoding.AppendDecode(nil, s); err != nil {
			return nil, fmt.Errorf("body is not base64: %v", err)
		}
	default:
		return nil, fmt.Errorf(`body_encoding must be "base64", got %q`, encoding)
	}
	return m, nil
}

// mergeHeaders sets m's headers to the request's, overridden by the envelope's f: an object of
// strings, or null.
func mergeHeaders(m *stream.Message, headers map[string]string, f *fastjson.Value) error {
	if f.Type() == fastjson.TypeNull {
		return nil
	}
	o, err := f.Object()
	if err != nil {
		return fmt.Errorf(`"headers" must be an object of strings, got %s`, f.Type())
	}
	if o.Len() == 0 {
		return nil
	}
	h := make(map[string]string, len(headers)+o.Len())
	for k, v := range headers {
		h[k] = v
	}
	o.Visit(func(k []byte, v *fastjson.Value) {
		if err != nil {
			return
		}
		var s []byte
		if v.Type() != fastjson.TypeNull { // null is "", as encoding/json has it
			if s, err = v.StringBytes(); err != nil {
				err = fmt.Errorf(`header %q must be a string, got %s`, k, v.Type())
			}
		}
		h[string(k)] = string(s)
	})
	m.Headers = h
	return err
}
