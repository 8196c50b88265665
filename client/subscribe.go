package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Transport is how a subscription's events come.
type Transport int

const (
	// WebSocket: one event per text frame (the default).
	WebSocket Transport = iota
	// SSE is Server-Sent Events, for where WebSocket cannot go (some proxies).
	SSE
)

func (t Transport) String() string {
	if t == SSE {
		return "sse"
	}
	return "websocket"
}

// Subscribe says what to subscribe to, and how to keep the subscription going.
type Subscribe struct {
	// Where is the predicate (CEL); empty: every message.
	Where string
	// Sources are the sources to read; none: every source the credential may read.
	Sources []string
	// From are event ids to resume after, one per source ("orders:1042"): the subscription
	// starts with what the history holds after them.
	From []string
	// Policy is the slow-consumer policy: "" (the server's default, disconnect) or "drop".
	Policy string
	// Transport is WebSocket (default) or SSE.
	Transport Transport
	// Backoff bounds the waits between reconnections: each failed attempt doubles the wait
	// from Initial (default 100ms) up to Max (default 10s), and a random fraction of up to
	// half of it is taken off, so that clients cut at once do not come back at once. A
	// connection that delivered an event starts again from Initial.
	Backoff Backoff
	// OnReconnect, if set, is called before each wait to reconnect, with why the last
	// connection ended (or could not be made) and how long the wait is.
	OnReconnect func(err error, wait time.Duration)
}

// Backoff bounds the waits between reconnections.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
}

// Subscription is a subscription that reconnects and resumes on its own. Read it with Next; it
// ends when its context does, when Close is called, or on an answer that trying again will not
// change (a bad predicate, an unknown source, a refused credential): Next returns that error,
// an *APIError, or a *ClosedError for a WebSocket closed for good.
type Subscription struct {
	c    *Client
	opts Subscribe
	ctx  context.Context // the subscription's life
	stop context.CancelFunc
	// last is the id of the last message of each source, which a reconnection resumes after.
	last map[string]string
	conn conn // nil between connections
	wait time.Duration
	err  error // set once the subscription is over
}

// conn is one connection of a subscription: a WebSocket or an SSE response.
type conn interface {
	// next returns the next event's JSON, valid until the next call.
	next() ([]byte, error)
	close()
}

// ClosedError is a WebSocket closed by the server for a reason that a reconnection would meet
// again: 1008 (ended by an administrator, credential expired), 4009 (predicate too costly).
type ClosedError struct {
	Code   int
	Reason string
}

func (e *ClosedError) Error() string {
	return fmt.Sprintf("streamux: the server closed the stream: %d %s", e.Code, e.Reason)
}

// Subscribe opens a subscription. It makes the first connection before it returns, so that a
// subscription the server refuses (a bad predicate, an unknown source, no credential) fails
// here with an *APIError; a server that cannot be reached yet, or answers 429 or 503, is tried
// again with backoff until ctx ends. The subscription lives until ctx ends or Close.
func (c *Client) Subscribe(ctx context.Context, opts Subscribe) (*Subscription, error) {
	if opts.Backoff.Initial <= 0 {
		opts.Backoff.Initial = 100 * time.Millisecond
	}
	if opts.Backoff.Max < opts.Backoff.Initial {
		opts.Backoff.Max = max(10*time.Second, opts.Backoff.Initial)
	}
	life, stop := context.WithCancel(ctx)
	s := &Subscription{c: c, opts: opts, ctx: life, stop: stop, last: map[string]string{}, wait: opts.Backoff.Initial}
	for _, id := range opts.From {
		src, _, ok := splitID(id)
		if !ok {
			stop()
			return nil, fmt.Errorf("client: resume id %q: want <source>:<seq>", id)
		}
		s.last[src] = id
	}
	if err := s.connect(); err != nil {
		stop()
		return nil, err
	}
	return s, nil
}

// Next returns the next event: a message, a gap or a status. Between connections it reconnects
// and resumes, and the events carry on as if the connection had never been cut; a `gap` says
// what the server could not deliver. It returns an error only when the subscription is over:
// ctx or the subscription's context ended (their error), Close was called, or the server
// refused it for good. A Next that ctx ends leaves the connection closed; the next call
// reconnects and resumes, missing nothing.
func (s *Subscription) Next(ctx context.Context) (Event, error) {
	for {
		if s.err != nil {
			return Event{}, s.err
		}
		if err := ctx.Err(); err != nil {
			return Event{}, err
		}
		if s.conn == nil {
			if err := s.connect(); err != nil {
				s.end(err)
				continue
			}
		}
		ev, err := s.read(ctx)
		if err == nil {
			if ev.Type == TypeMessage && ev.ID != "" {
				s.last[ev.Source] = ev.ID
			}
			s.wait = s.opts.Backoff.Initial
			return ev, nil
		}
		s.conn.close()
		s.conn = nil
		if e := ctx.Err(); e != nil {
			return Event{}, e
		}
		var closed *ClosedError
		if errors.As(err, &closed) {
			s.end(err)
			continue
		}
		if err := s.pause(err, 0); err != nil {
			s.end(err)
		}
	}
}

// read reads one event from the connection; ctx ending closes the connection.
func (s *Subscription) read(ctx context.Context) (Event, error) {
	c := s.conn
	stop := context.AfterFunc(ctx, c.close)
	defer stop()
	raw, err := c.next()
	if err != nil {
		return Event{}, err
	}
	return decodeEvent(raw)
}

// LastIDs returns the id of the last message of each source: what a new subscription would
// resume after (Subscribe.From), sorted.
func (s *Subscription) LastIDs() []string {
	out := make([]string, 0, len(s.last))
	for _, id := range s.last {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// Close ends the subscription and its connection. Next then returns an error.
func (s *Subscription) Close() error {
	if s.conn != nil {
		s.conn.close()
		s.conn = nil
	}
	s.stop()
	if s.err == nil {
		s.err = errClosed
	}
	return nil
}

// end ends the subscription with err.
func (s *Subscription) end(err error) {
	s.err = err
	s.stop()
}

// connect opens a connection, trying again with backoff while the server cannot be reached
// or answers that it may later; it returns the first answer that will not change, or the
// subscription's end.
func (s *Subscription) connect() error {
	for {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		var c conn
		var err error
		u := s.url()
		if s.opts.Transport == SSE {
			c, err = s.c.openSSE(s.ctx, u)
		} else {
			c, err = s.c.openWebSocket(s.ctx, u)
		}
		if err == nil {
			s.conn = c
			return nil
		}
		var api *APIError
		retryAfter := time.Duration(0)
		if errors.As(err, &api) {
			if !api.Temporary() {
				return err
			}
			retryAfter = api.RetryAfter
		}
		if err := s.pause(err, retryAfter); err != nil {
			return err
		}
	}
}

// pause waits before the next attempt: the backoff (at least atLeast), jittered.
func (s *Subscription) pause(cause error, atLeast time.Duration) error {
	d := s.wait - time.Duration(rand.Int64N(int64(s.wait)/2+1))
	d = max(d, atLeast)
	s.wait = min(2*s.wait, s.opts.Backoff.Max)
	if s.opts.OnReconnect != nil {
		s.opts.OnReconnect(cause, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.ctx.Done():
		return s.ctx.Err()
	case <-t.C:
		return nil
	}
}

// url is the stream's URL, resuming after the last ids.
func (s *Subscription) url() *url.URL {
	q := url.Values{}
	if s.opts.Where != "" {
		q.Set("where", s.opts.Where)
	}
	for _, src := range s.opts.Sources {
		q.Add("source", src)
	}
	if s.opts.Policy != "" {
		q.Set("policy", s.opts.Policy)
	}
	for _, id := range s.LastIDs() {
		q.Add("from", id)
	}
	return s.c.endpoint("/v1/stream", q)
}

// splitID takes "<source>:<seq>" apart; a source name may hold colons, the seq is after the last.
func splitID(id string) (source, seq string, ok bool) {
	i := strings.LastIndexByte(id, ':')
	if i <= 0 || i == len(id)-1 {
		return "", "", false
	}
	return id[:i], id[i+1:], true
}
