// Package httpapi is streamux's HTTP surface: the routes of API.md, errors as JSON, and the
// choice of transport for a stream.
//
// Concurrency: net/http runs each request on its own goroutine. A stream request's goroutine
// opens its session (session.go: the checks, the admission, the subscription). An SSE or NDJSON
// stream's goroutine then serves it over its transport and closes it when the stream ends,
// whatever the reason; a WebSocket stream's handler hands both to a goroutine of its own once
// the connection is upgraded (websocket.go; the ws package's Hub writes), which the Server
// tracks until Close. Nothing else holds the subscription after that.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamux/streamux/internal/auth"
	"github.com/streamux/streamux/internal/predicate"
	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/supervisor"
	"github.com/streamux/streamux/internal/transport"
	"github.com/streamux/streamux/internal/transport/ndjson"
	"github.com/streamux/streamux/internal/transport/sse"
	"github.com/streamux/streamux/internal/transport/ws"
)

// Options configure a Server.
type Options struct {
	Predicates predicate.Limits
	Transport  transport.Options
	// Web serves the page at "/"; nil serves none.
	Web http.Handler
	Log *slog.Logger
	// Auth authenticates requests; nil: no authentication, everyone may do everything.
	Auth *auth.Authenticator
	// AllowedOrigins are the web origins besides the server's own whose pages may use the API
	// (CORS, and the WebSocket Origin check); "*" allows any.
	AllowedOrigins []string
	// AllowedHosts are the names, besides loopback names and IP addresses, by which the
	// server may be reached (the Host header): a name, ".example.com" for it and every name
	// under it, or "*" for any. Without Auth only these are answered, against DNS
	// rebinding; with Auth, any Host is unless the list is set.
	AllowedHosts []string
	Limits       Limits
	// Check bounds POST /v1/check.
	Check CheckLimits
	// Sinks are the server's sinks, for /v1/sinks; nil: none.
	Sinks Sinks
	// Reload serves POST /v1/reload; nil: 501.
	Reload Reloader
}

// Server serves the API over one supervisor.
type Server struct {
	sup      *supervisor.Supervisor
	opt      Options
	log      *slog.Logger
	mux      *http.ServeMux
	metrics  *metrics
	conns    [3]atomic.Int64 // live streams per transport, indexed by kind
	draining atomic.Bool
	drainCtx context.Context // done at Drain
	drain    context.CancelFunc
	gate     *gate
	checks   *checkGate     // the rate of /v1/check calls: check.go
	hub      *ws.Hub        // writes the WebSocket streams
	streams  sync.WaitGroup // the goroutines that serve WebSocket streams after their handler returned
	closeMu  sync.Mutex     // orders streams.Add with Close
	closing  bool

	// authn is Options.Auth until a reload replaces it (Apply): read once per request.
	authn atomic.Pointer[auth.Authenticator]
	keyed keyedSessions // the streams of API keys, which a reload may end

	preds       *predicateCache // the clients' predicates
	forcedPreds *predicateCache // the credentials' forced predicates

	csrf    *http.CrossOriginProtection // refuses cross-origin writes (host.go); nil: any origin may write
	bodies  *bodies                     // the rules request bodies are read under (body.go)
	ingests *ingestGate                 // the ingest requests in progress
}

// New returns a server for sup.
func New(sup *supervisor.Supervisor, opt Options) *Server {
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	s := &Server{sup: sup, opt: opt, log: opt.Log, mux: http.NewServeMux(), gate: newGate(opt.Limits), preds: newPredicateCache(opt.Predicates), forcedPreds: newPredicateCache(predicate.Limits{MaxBytes: 64 << 10}),
		hub: ws.NewHub(opt.Transport)}
	s.drainCtx, s.drain = context.WithCancel(context.Background())
	s.authn.Store(opt.Auth)
	s.checks = newCheckGate(opt.Check, opt.Limits.ApplyToLoopback)
	s.metrics = newMetrics(s)
	s.bodies = newBodies(s.gate.lim, s.metrics.reg)
	s.ingests = newIngestGate(s.gate.lim)
	var errs []error
	if s.csrf, errs = newCrossOrigin(opt.AllowedOrigins); len(errs) > 0 {
		s.log.Warn("some allowed origins are not origins: no page of theirs may write", "err", errors.Join(errs...))
	}
	for _, rt := range s.routes() {
		s.mux.Handle(rt.Pattern, rt.h)
	}
	// Not an endpoint: what no route of /v1 serves is answered as JSON, as every API error is.
	s.mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, newError(http.StatusNotFound, "not_found", "no such endpoint: "+r.URL.Path))
	})
	return s
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.admit(w, r) {
		return
	}
	w, r, done := s.bodies.wrap(w, r)
	defer done()
	s.cors(s.mux).ServeHTTP(w, r)
}

// Drain makes /readyz fail and new streams get 503, ahead of a shutdown.
// Streaming ingest requests end.
func (s *Server) Drain() {
	s.draining.Store(true)
	s.drain()
}

// Close ends the WebSocket streams and stops their writers; net/http's Shutdown does not wait for
// them, their connections being hijacked. It waits for the streams to end on their own (the
// supervisor's Shutdown ends them) until cut is done, then cuts the connections still open,
// which ends their streams at once, and waits for those until hard is done, no longer: it then
// says that some were still running, and leaves them to end on their own.
func (s *Server) Close(cut, hard context.Context) error {
	s.drain()
	s.closeMu.Lock()
	s.closing = true
	s.closeMu.Unlock()
	ended := make(chan struct{})
	// Ends with the streams; waited for below until hard is done, and past that by nobody.
	go func() { s.streams.Wait(); close(ended) }()
	var err error
	select {
	case <-ended:
	case <-cut.Done():
		s.hub.Cut()
		select {
		case <-ended:
		case <-hard.Done():
			err = errors.New("httpapi: WebSocket streams still running after their connections were cut")
		}
	}
	s.hub.Close()
	return err
}

// only answers 405, as JSON, to any method but m (and HEAD for GET).
func (s *Server) only(m string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions {
			w.Header().Set("Allow", m+", OPTIONS")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if r.Method != m && !(m == "GET" && r.Method == "HEAD") {
			w.Header().Set("Allow", m)
			writeError(w, newError(http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here; use "+m))
			return
		}
		h(w, r)
	}
}

// either is only for an endpoint of two methods: a's, or b's.
func (s *Server) either(ma string, a http.HandlerFunc, mb string, b http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case mb:
			b(w, r)
		case http.MethodOptions:
			w.Header().Set("Allow", ma+", "+mb+", OPTIONS")
			w.WriteHeader(http.StatusNoContent)
		default:
			if r.Method != ma && !(ma == "GET" && r.Method == "HEAD") {
				w.Header().Set("Allow", ma+", "+mb)
				writeError(w, newError(http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here; use "+ma+" or "+mb))
				return
			}
			a(w, r)
		}
	}
}

func (s *Server) compile(where string) (*predicate.Predicate, *apiError) {
	p, err := s.preds.compile(where)
	if err != nil {
		return nil, predicateError(err)
	}
	return p, nil
}

func (s *Server) checkSources(names []string) *apiError {
	for _, n := range names {
		if !s.sup.Has(n) {
			return newError(http.StatusNotFound, "unknown_source", fmt.Sprintf("no source named %q", n))
		}
	}
	return nil
}

// stream serves GET /v1/stream: it opens the session, serves it over the transport the request
// asks for, and closes it.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	ss := s.open(w, r)
	if ss == nil {
		return // open has answered why not
	}
	switch ss.kind {
	case kindWebSocket:
		s.serveWebSocket(w, r, ss) // returns once upgraded: a goroutine of its own serves and closes
	case kindSSE:
		ss.close(ss.serve(r.Context(), sse.New(w)))
	case kindNDJSON:
		ss.close(ss.serve(r.Context(), ndjson.New(w)))
	}
}

// reject answers a stream request that will not stream, and counts it.
func (s *Server) reject(w http.ResponseWriter, e *apiError) {
	s.metrics.rejected.WithLabelValues(e.Code).Inc()
	writeError(w, e)
}

// sourceSummary is what a credential without admin sees of a source it may read.
type sourceSummary struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	State string `json:"state"`
}

func (s *Server) sources(w http.ResponseWriter, r *http.Request) {
	who := s.authenticate(w, r)
	if who == nil {
		return
	}
	if who.Admin {
		writeJSON(w, http.StatusOK, s.sup.Sources())
		return
	}
	out := []sourceSummary{}
	for _, si := range s.sup.Sources() {
		if who.CanRead(si.Name) {
			out = append(out, sourceSummary{Name: si.Name, Type: si.Type, State: string(si.State)})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// admin authenticates r and requires the admin right, answering 401 or 403 otherwise.
func (s *Server) admin(w http.ResponseWriter, r *http.Request) bool {
	who := s.authenticate(w, r)
	if who == nil {
		return false
	}
	if !who.Admin {
		writeError(w, forbidden("this endpoint needs an admin credential"))
		return false
	}
	return true
}

func (s *Server) subscriptions(w http.ResponseWriter, r *http.Request) {
	if s.admin(w, r) {
		writeJSON(w, http.StatusOK, s.sup.Subscriptions())
	}
}

func (s *Server) kick(w http.ResponseWriter, r *http.Request) {
	if !s.admin(w, r) {
		return
	}
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		writeError(w, newError(http.StatusBadRequest, "invalid_parameter", "subscription id must be a number"))
		return
	}
	if !s.sup.Kick(id) {
		writeError(w, newError(http.StatusNotFound, "unknown_subscription", fmt.Sprintf("no subscription %d", id)))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) ingest(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 1 && r.ContentLength < 0 {
		w = &earlyAnswer{w}
	}
	name := r.PathValue("name")
	a := s.sup.Adapter(name) // once: a reload may remove the source meanwhile
	if a == nil {
		writeError(w, newError(http.StatusNotFound, "unknown_source", fmt.Sprintf("no source named %q", name)))
		return
	}
	src, ok := a.(source.Publisher)
	if !ok {
		writeError(w, newError(http.StatusMethodNotAllowed, "not_ingestible",
			fmt.Sprintf("source %q is not of type http; only http sources take messages", name)))
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeError(w, newError(http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here; use POST"))
		return
	}
	who := s.authenticate(w, r)
	if who == nil {
		return
	}
	if !who.CanWrite(name) {
		writeError(w, forbidden(fmt.Sprintf("this credential may not write to source %q", name)))
		return
	}
	cred := ""
	if who.Method != auth.MethodNone {
		cred = who.String()
	}
	release, aerr := s.ingests.enter(remoteIP(r), cred)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	defer release()
	body, _ := r.Body.(*timedBody)
	if stream, _ := strconv.ParseBool(r.URL.Query().Get("stream")); stream && body != nil {
		body.streamLines()
	}
	pub, err := src.Publish(s.drainCtx, r, w)
	ids := eventIDs(name, pub.Seqs)
	if err != nil {
		ae := newError(http.StatusInternalServerError, "internal", err.Error())
		if ie, ok := errors.AsType[*source.PublishError](err); ok {
			ae = newError(ie.Status, ie.Code, ie.Message)
		}
		if body != nil && body.fail != nil {
			// The body rules cut it (body.go): say so, rather than what the parser made of it.
			f := *body.fail
			ae = &f
		}
		ae.Accepted = &pub.N
		ae.IDs = ids
		writeError(w, ae)
		return
	}
	writeJSON(w, http.StatusOK, published{Accepted: pub.N, IDs: ids})
}

// published is the answer to an ingest request.
type published struct {
	Accepted int `json:"accepted"`
	// IDs are, in a cluster, the ids the log gave the messages, in order (one already
	// stored under the same Idempotency-Key or envelope id has the first one's).
	IDs []string `json:"ids,omitempty"`
}

// eventIDs are the event ids of source's sequences; nil for none.
func eventIDs(source string, seqs []uint64) []string {
	if len(seqs) == 0 {
		return nil
	}
	ids := make([]string, len(seqs))
	for i, s := range seqs {
		ids[i] = source + ":" + strconv.FormatUint(s, 10)
	}
	return ids
}

// earlyAnswer answers an HTTP/1 request whose body is of unknown length, and may never end (a
// producer's pipe, ?stream=true), before the end of its body: unless told otherwise, net/http
// reads up to 256 KiB of what remains before it writes an error, waiting for as long as the
// client sends nothing. An error closes the connection after the answer; what the client still
// sends meanwhile is read (and dropped) for a second, for closing a socket with unread data
// resets it, and the client may lose the answer. (HTTP/2 needs none of this: the stream is
// reset, the connection stays.)
type earlyAnswer struct{ http.ResponseWriter }

func (e *earlyAnswer) WriteHeader(code int) {
	if code >= 400 {
		e.Header().Set("Connection", "close")
		_ = http.NewResponseController(e.ResponseWriter).SetReadDeadline(time.Now().Add(time.Second))
	}
	e.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection.
func (e *earlyAnswer) Unwrap() http.ResponseWriter { return e.ResponseWriter }

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ok, down := s.sup.Ready()
	switch {
	case s.draining.Load():
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "reason": "shutting down"})
	case !ok:
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "down": down})
	default:
		writeJSON(w, http.StatusOK, map[string]any{"ready": true})
	}
}
