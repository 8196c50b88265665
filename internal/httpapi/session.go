package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/streamux/streamux/internal/auth"
	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/predicate"
	"github.com/streamux/streamux/internal/supervisor"
	"github.com/streamux/streamux/internal/transport"
	"github.com/streamux/streamux/internal/transport/sse"
	"github.com/streamux/streamux/internal/transport/ws"
)

// kind is a stream's transport. It indexes transportNames, Server.conns and metrics.transport.
type kind int

const (
	kindWebSocket kind = iota
	kindSSE
	kindNDJSON
)

// The transports, as /v1/subscriptions and the metrics name them.
var transportNames = [3]string{kindWebSocket: "websocket", kindSSE: "sse", kindNDJSON: "ndjson"}

// kindOf is the transport r asks for: a WebSocket upgrade, an event stream, or NDJSON.
func kindOf(r *http.Request) kind {
	switch {
	case ws.IsUpgrade(r):
		return kindWebSocket
	case acceptsEventStream(r):
		return kindSSE
	}
	return kindNDJSON
}

// session is one client stream from the moment its request is accepted to its end: the
// subscription, what the stream holds while it lives, and the transport.Session its transport
// serves. open makes it; serve runs it over its transport; close undoes what open did. One
// goroutine serves and closes it: the request's for SSE and NDJSON, one of its own for a
// WebSocket (websocket.go).
type session struct {
	transport.Session
	kind    kind
	sub     *supervisor.Subscription
	remote  string
	log     *slog.Logger
	expiry  *time.Timer     // ends the stream when the credential does; nil if it does not expire
	expired chan struct{}   // closed once expiry's function has run
	release func()          // gives back the stream's place in the admission gate
	who     *auth.Principal // who opened it
	untrack func()          // forgets the stream in Server.keyed
	live    *atomic.Int64   // the live streams of its transport (Server.conns)
}

// open checks what r asks for, admits it and subscribes. When the stream cannot open, it has
// answered r with why (JSON, as every error before streaming is) and returns nil.
func (s *Server) open(w http.ResponseWriter, r *http.Request) *session {
	if r.Method == http.MethodHead {
		// A stream has no end to measure; HEAD would hold the connection for nothing.
		w.Header().Set("Allow", "GET")
		writeError(w, newError(http.StatusMethodNotAllowed, "method_not_allowed", "HEAD is not allowed here; use GET"))
		return nil
	}
	who := s.authenticate(w, r)
	if who == nil {
		return nil
	}
	p, pred, aerr := s.streamRequest(who, r)
	if aerr != nil {
		s.reject(w, aerr)
		return nil
	}
	if s.draining.Load() {
		s.reject(w, errShuttingDown())
		return nil
	}
	cred := ""
	if who.Method != auth.MethodNone {
		cred = who.String()
	}
	release, aerr := s.gate.enter(remoteIP(r), cred)
	if aerr != nil {
		s.reject(w, aerr)
		return nil
	}
	k := kindOf(r)
	sub, err := s.sup.Subscribe(r.Context(), supervisor.Request{
		Sources: p.sources, Predicate: pred, Policy: p.policy, From: p.from,
		Transport: transportNames[k], Remote: r.RemoteAddr,
	})
	if err != nil {
		release()
		switch {
		case errors.Is(err, supervisor.ErrClosed):
			s.reject(w, errShuttingDown())
		case errors.Is(err, supervisor.ErrUnknownSource):
			// Checked before; a reload removed it meanwhile.
			s.reject(w, newError(http.StatusNotFound, "unknown_source", err.Error()))
		case errors.Is(err, supervisor.ErrUnavailable):
			ae := newError(http.StatusServiceUnavailable, "log_unavailable", err.Error())
			ae.retryAfter = time.Second
			s.reject(w, ae)
		default:
			s.reject(w, newError(http.StatusInternalServerError, "internal", err.Error()))
		}
		return nil
	}
	ss := &session{
		Session: transport.Session{Out: sub.Out, Backlog: sub.Backlog, Positions: sub.Positions, Options: s.opt.Transport},
		kind:    k, sub: sub, remote: r.RemoteAddr, log: s.log, release: release, live: &s.conns[k], who: who,
	}
	ss.untrack = s.keyed.add(ss)
	if !s.authn.Load().Holds(who) {
		sub.Out.Close(output.ErrRevoked) // a reload came between authenticate and add
	}
	ss.Options.Written = s.metrics.transport[k]
	ss.Options.Batch = p.batch
	ss.live.Add(1)
	if !who.Expires.IsZero() {
		ss.expired = make(chan struct{})
		ss.expiry = time.AfterFunc(time.Until(who.Expires), func() { // waited for by close
			defer close(ss.expired)
			sub.Out.Close(output.ErrExpired)
		})
	}
	s.metrics.streams.WithLabelValues(transportNames[k]).Inc()
	return ss
}

// streamRequest reads r's parameters and checks them against the credential: the predicate,
// narrowed by the credential's own; the sources it may read; and where each resumes.
func (s *Server) streamRequest(who *auth.Principal, r *http.Request) (streamParams, *predicate.Predicate, *apiError) {
	p, aerr := parseStreamParams(r.URL.Query(), r.Header.Get("Last-Event-ID"))
	if aerr != nil {
		return p, nil, aerr
	}
	pred, aerr := s.compile(p.where)
	if aerr != nil {
		return p, nil, aerr
	}
	if p.sources, aerr = s.readable(who, p.sources); aerr != nil {
		return p, nil, aerr
	}
	if pred, aerr = s.narrow(who, pred); aerr != nil {
		return p, nil, aerr
	}
	p.resumeFrom()
	for src := range p.from {
		switch {
		case contains(p.sources, src):
		case p.fromHeader:
			// The browser sent back an id of a source this stream no longer reads (it was
			// removed, or the credential lost it): nothing of it is due, and a refusal would
			// end EventSource's reconnecting for good.
			delete(p.from, src)
		default:
			return p, nil, newError(http.StatusBadRequest, "invalid_parameter",
				fmt.Sprintf("from names source %q, which this stream does not read", src))
		}
	}
	return p, pred, nil
}

func errShuttingDown() *apiError {
	return newError(http.StatusServiceUnavailable, "shutting_down", "the server is shutting down")
}

// serve streams the session over t until the stream ends, and returns why.
func (ss *session) serve(ctx context.Context, t transport.Stream) error {
	return ss.guard(func() error { return t.Serve(ctx, &ss.Session) })
}

// guard runs f, a step of serving the session, and makes a panic in it the error that ends the
// stream: a bug in one stream stays in that stream. net/http would log it without context, and
// a panic on a goroutine of our own would end the process.
func (ss *session) guard(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			ss.log.Error("stream panicked", "id", ss.Out.ID(), "remote", ss.remote, "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("internal error: %v", p)
			ss.Out.Close(err)
		}
	}()
	return f()
}

// close ends the stream, whatever ended it (err, from serving it), and undoes open: every
// router forgets the subscription, and the stream's place in the gate and its count are given
// back.
func (ss *session) close(err error) {
	if ss.expiry != nil && !ss.expiry.Stop() {
		<-ss.expired // it fired: its goroutine ends the output, at once
	}
	ss.Out.Close(causeOf(err))
	ss.untrack()
	ss.live.Add(-1)
	ss.sub.Close()
	ss.release()
}

// causeOf is the reason recorded for a stream that ended with err: the output's own reason when
// it ended first, otherwise the client's side.
func causeOf(err error) error {
	if err == nil {
		return io.EOF
	}
	return err
}

func acceptsEventStream(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			mt, _, _ := strings.Cut(part, ";")
			if strings.EqualFold(strings.TrimSpace(mt), sse.ContentType) {
				return true
			}
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
