// Package ingest is the http source: messages are POSTed to /v1/sources/{name}/messages, one
// per request body or many as NDJSON. It is the simplest way to put chosen messages in.
//
// Concurrency: Run is called by the source.Runner goroutine and parks until its context ends;
// while it runs, any number of request goroutines Publish through the router's Emit, which
// queues one message at a time in the router's input, so messages of one request stay in order.
// A request is answered once its messages are accepted (queued to be routed), not once routed:
// a client that publishes and then subscribes or reads /v1/check still sees them, because the
// router routes what it accepted before it runs a subscription or a history read.
package ingest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"

	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/stream"
)

// Config configures an http source.
type Config struct {
	// MaxBodyBytes is the largest request body accepted; a larger one gets 413. Defaults to 8 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
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
}

type emitter struct {
	emit source.Emit
	ctx  context.Context
}

// New returns an http source.
func New(c Config) *Source {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 8 << 20
	}
	return &Source{maxBody: c.MaxBodyBytes}
}

var _ source.Source = (*Source)(nil)

// Run makes the source accept messages until ctx is done.
func (s *Source) Run(ctx context.Context, up func(), emit source.Emit) error {
	s.emit.Store(&emitter{emit: emit, ctx: ctx})
	defer s.emit.Store(nil)
	up()
	<-ctx.Done()
	return nil
}

// Error is a request that could not be taken; Status is the HTTP status to answer.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

func badRequest(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "invalid_message", Message: fmt.Sprintf(format, args...)}
}

// Publish parses the request as API.md says and hands every message to the router, in order.
// The whole body is parsed before anything is published, so a bad line publishes nothing. It
// returns the number of messages published; errors are *Error.
func (s *Source) Publish(r *http.Request, w http.ResponseWriter) (int, error) {
	e := s.emit.Load()
	if e == nil {
		return 0, &Error{Status: http.StatusServiceUnavailable, Code: "source_down", Message: "the source is not running"}
	}
	msgs, err := s.parse(r, w)
	if err != nil {
		return 0, err
	}
	for i, m := range msgs {
		if err := e.emit(r.Context(), m); err != nil {
			return i, &Error{Status: http.StatusServiceUnavailable, Code: "source_down",
				Message: fmt.Sprintf("published %d of %d messages: %v", i, len(msgs), err)}
		}
	}
	return len(msgs), nil
}

func (s *Source) parse(r *http.Request, w http.ResponseWriter) ([]*stream.Message, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, &Error{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
				Message: fmt.Sprintf("request body is over the limit of %d bytes", s.maxBody)}
		}
		return nil, badRequest("read body: %v", err)
	}
	q := r.URL.Query()
	envelope := false
	if v := q.Get("envelope"); v != "" {
		switch v {
		case "true", "1":
			envelope = true
		case "false", "0":
		default:
			return nil, badRequest("envelope must be true or false, got %q", v)
		}
	}
	key, headers := requestKeyHeaders(r)
	now := time.Now()
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/x-ndjson" && mt != "application/jsonl" {
		if envelope {
			p := envelopes.Get()
			defer envelopes.Put(p)
			m, err := parseEnvelope(p, body, key, headers)
			if err != nil {
				return nil, badRequest("envelope: %v", err)
			}
			m.Time = now
			return []*stream.Message{m}, nil
		}
		return []*stream.Message{{Key: key, Headers: headers, Body: body, Time: now}}, nil
	}
	var msgs []*stream.Message
	var p *fastjson.Parser
	if envelope {
		p = envelopes.Get()
		defer envelopes.Put(p)
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, len(body)+1)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var m *stream.Message
		if envelope {
			if m, err = parseEnvelope(p, b, key, headers); err != nil {
				return nil, badRequest("line %d: %v", line, err)
			}
		} else {
			m = &stream.Message{Key: key, Headers: headers, Body: b}
		}
		m.Time = now
		msgs = append(msgs, m)
	}
	if err := sc.Err(); err != nil {
		return nil, badRequest("read NDJSON: %v", err)
	}
	return msgs, nil
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
// request at a time.
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
		return nil, fmt.Errorf(`want {"key":…,"headers":{…},"body":…}: %v`, err)
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
		case "body_encoding":
			var s []byte
			if s, err = f.StringBytes(); err != nil {
				err = fmt.Errorf(`"body_encoding" must be a string, got %s`, f.Type())
			}
			encoding = string(s)
		default:
			err = fmt.Errorf("unknown field %q: an envelope has key, headers, body and body_encoding", k)
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
