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
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

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
			m, err := parseEnvelope(body, key, headers)
			if err != nil {
				return nil, badRequest("envelope: %v", err)
			}
			m.Time = now
			return []*stream.Message{m}, nil
		}
		return []*stream.Message{{Key: key, Headers: headers, Body: body, Time: now}}, nil
	}
	var msgs []*stream.Message
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, len(body)+1)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var m *stream.Message
		if envelope {
			if m, err = parseEnvelope(b, key, headers); err != nil {
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

type envelopeJSON struct {
	Key          *string           `json:"key"`
	Headers      map[string]string `json:"headers"`
	Body         json.RawMessage   `json:"body"`
	BodyEncoding string            `json:"body_encoding"`
}

// parseEnvelope reads {"key":"...","headers":{...},"body":...}; the request's key and headers
// are the defaults that a line's own fields override.
func parseEnvelope(b []byte, key string, headers map[string]string) (*stream.Message, error) {
	var env envelopeJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return nil, fmt.Errorf(`want {"key":…,"headers":{…},"body":…}: %v`, err)
	}
	if dec.More() {
		return nil, errors.New("trailing data after the envelope")
	}
	m := &stream.Message{Key: key, Headers: headers, Body: env.Body}
	if env.Key != nil {
		m.Key = *env.Key
	}
	if len(env.Headers) > 0 {
		h := make(map[string]string, len(headers)+len(env.Headers))
		for k, v := range headers {
			h[k] = v
		}
		for k, v := range env.Headers {
			h[k] = v
		}
		m.Headers = h
	}
	switch env.BodyEncoding {
	case "":
	case "base64":
		var s string
		if err := json.Unmarshal(env.Body, &s); err != nil {
			return nil, errors.New(`"body_encoding":"base64" needs a string body`)
		}
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("body is not base64: %v", err)
		}
		m.Body = raw
	default:
		return nil, fmt.Errorf(`body_encoding must be "base64", got %q`, env.BodyEncoding)
	}
	if env.Body == nil {
		m.Body = nil
	}
	return m, nil
}
