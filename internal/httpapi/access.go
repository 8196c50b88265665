package httpapi

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/streamux/streamux/internal/auth"
	"github.com/streamux/streamux/internal/predicate"
)

// Limits bound what clients may hold and how fast they may ask. Zero values take the defaults.
type Limits struct {
	// Connections is the most streams at once. Defaults to 10000.
	Connections int
	// ConnectionsPerAddress is the most streams from one IP address. Defaults to 100.
	ConnectionsPerAddress int
	// SubscriptionsPerCredential is the most streams of one authenticated principal. Defaults
	// to 100; without authentication it does not apply.
	SubscriptionsPerCredential int
	// SubscribeRate and SubscribeBurst bound how fast one IP address opens streams (a token
	// bucket). Default to 10 per second and 20.
	SubscribeRate  float64
	SubscribeBurst int
	// ApplyToLoopback applies the per-address limits and the subscribe rate to clients on
	// loopback addresses too. By default they are exempt: a local process is the operator's
	// own (a tail, a benchmark, a sidecar). Behind a reverse proxy on the same host, set it.
	ApplyToLoopback bool

	// IngestRequests is the most ingest requests in progress at once, all clients together
	// (429 above). A streaming request holds its place for as long as it lasts. Defaults to 256.
	IngestRequests int
	// IngestRequestsPerClient is the most ingest requests in progress at once of one
	// credential, or without authentication of one IP address (429 above). Loopback addresses
	// are exempt unless ApplyToLoopback; credentials never are. Defaults to 16.
	IngestRequestsPerClient int
	// BodyBytes is the most bytes of request bodies held at once while they are received, all
	// requests together (429 above): of a body parsed whole, all that has arrived; of a
	// streaming ingest request, its longest line so far. It bounds what slow or stalled
	// bodies can hold. Defaults to 64 MiB.
	BodyBytes int64
	// BodyReadTimeout cuts a request body (408) that sends nothing for this long, or whose
	// average rate since it began is under BodyMinRate once this long has passed. Defaults
	// to 30s.
	BodyReadTimeout time.Duration
	// BodyMinRate is the slowest average rate of a request body, in bytes per second, after
	// its first BodyReadTimeout. Defaults to 1024.
	BodyMinRate int64
	// IngestIdleTimeout is how long a streaming ingest request (?stream=true) may send no line
	// (408 after); an empty line counts, so a producer that pauses longer can send one as a
	// keep-alive. Within a line, the body's rules apply. Defaults to 10m.
	IngestIdleTimeout time.Duration
}

// The defaults of Limits, which the configuration's limits: take too.
const (
	DefaultConnections                = 10000
	DefaultConnectionsPerAddress      = 100
	DefaultSubscriptionsPerCredential = 100
	DefaultSubscribeRate              = 10
	DefaultSubscribeBurst             = 20
	DefaultIngestRequests             = 256
	DefaultIngestRequestsPerClient    = 16
	// DefaultBodyBytes is Limits.BodyBytes when none is given.
	DefaultBodyBytes         = 64 << 20
	DefaultBodyReadTimeout   = 30 * time.Second
	DefaultBodyMinRate       = 1024
	DefaultIngestIdleTimeout = 10 * time.Minute
)

func (l Limits) withDefaults() Limits {
	if l.Connections <= 0 {
		l.Connections = DefaultConnections
	}
	if l.ConnectionsPerAddress <= 0 {
		l.ConnectionsPerAddress = DefaultConnectionsPerAddress
	}
	if l.SubscriptionsPerCredential <= 0 {
		l.SubscriptionsPerCredential = DefaultSubscriptionsPerCredential
	}
	if l.SubscribeRate <= 0 {
		l.SubscribeRate = DefaultSubscribeRate
	}
	if l.SubscribeBurst <= 0 {
		l.SubscribeBurst = DefaultSubscribeBurst
	}
	if l.IngestRequests <= 0 {
		l.IngestRequests = DefaultIngestRequests
	}
	if l.IngestRequestsPerClient <= 0 {
		l.IngestRequestsPerClient = DefaultIngestRequestsPerClient
	}
	if l.BodyBytes <= 0 {
		l.BodyBytes = DefaultBodyBytes
	}
	if l.BodyReadTimeout <= 0 {
		l.BodyReadTimeout = DefaultBodyReadTimeout
	}
	if l.BodyMinRate <= 0 {
		l.BodyMinRate = DefaultBodyMinRate
	}
	if l.IngestIdleTimeout <= 0 {
		l.IngestIdleTimeout = DefaultIngestIdleTimeout
	}
	return l
}

// gate counts the streams held per address and per credential, and the rate at which each
// address opens them. It is consulted once per stream request, never per message.
type gate struct {
	lim Limits

	mu     sync.Mutex
	total  int
	byAddr map[string]int
	byCred map[string]int
	rates  rateBuckets // by address: subscribe_rate
}

func newGate(l Limits) *gate {
	l = l.withDefaults()
	return &gate{lim: l, byAddr: map[string]int{}, byCred: map[string]int{}, rates: newRateBuckets(l.SubscribeRate, l.SubscribeBurst)}
}

// enter admits one stream from addr held by cred ("" without authentication), or says which
// limit refuses it. The caller must call the returned release exactly once.
func (g *gate) enter(addr, cred string) (release func(), aerr *apiError) {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	exempt := !g.lim.ApplyToLoopback && isLoopback(addr)
	switch {
	case g.total >= g.lim.Connections:
		return nil, tooMany("connections", fmt.Sprintf("the server holds its limit of %d streams", g.lim.Connections), 0)
	case cred != "" && g.byCred[cred] >= g.lim.SubscriptionsPerCredential:
		return nil, tooMany("subscriptions_per_credential", fmt.Sprintf("this credential holds its limit of %d streams", g.lim.SubscriptionsPerCredential), 0)
	case !exempt && g.byAddr[addr] >= g.lim.ConnectionsPerAddress:
		return nil, tooMany("connections_per_address", fmt.Sprintf("this address holds its limit of %d streams", g.lim.ConnectionsPerAddress), 0)
	}
	if wait, ok := g.rates.take(addr, now); !ok && !exempt {
		return nil, tooMany("subscribe_rate", fmt.Sprintf("this address opens streams faster than %g per second", g.lim.SubscribeRate), wait)
	}
	g.total++
	g.byAddr[addr]++
	if cred != "" {
		g.byCred[cred]++
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.total--
			if g.byAddr[addr]--; g.byAddr[addr] == 0 {
				delete(g.byAddr, addr)
			}
			if cred != "" {
				if g.byCred[cred]--; g.byCred[cred] == 0 {
					delete(g.byCred, cred)
				}
			}
		})
	}, nil
}

// tooMany is a 429 naming the limit; retry, if positive, becomes Retry-After.
func tooMany(limit, msg string, retry time.Duration) *apiError {
	e := newError(http.StatusTooManyRequests, "limit_exceeded", msg+" (limits."+limit+")")
	e.retryAfter = retry
	return e
}

func isLoopback(ip string) bool {
	a := net.ParseIP(ip)
	return a != nil && a.IsLoopback()
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// authenticate returns who sent r, or answers 401 and returns nil.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) *auth.Principal {
	a := s.authn.Load()
	if a == nil {
		return anonymous
	}
	p, err := a.Authenticate(r)
	if err != nil {
		w.Header().Set("WWW-Authenticate", auth.Challenge(err))
		code := "unauthorized"
		s.metrics.rejected.WithLabelValues(code).Inc()
		writeError(w, newError(http.StatusUnauthorized, code, err.Error()))
		return nil
	}
	return p
}

// anonymous may do everything: the principal of every request when authentication is off.
var anonymous = &auth.Principal{Name: "anonymous", Method: auth.MethodNone, Write: []string{"*"}, Admin: true}

func forbidden(msg string) *apiError { return newError(http.StatusForbidden, "forbidden", msg) }

// readable resolves the sources a principal asks for: each must exist (404) and be allowed
// (403); none asked means every source it may read.
func (s *Server) readable(p *auth.Principal, asked []string) ([]string, *apiError) {
	if aerr := s.checkSources(asked); aerr != nil {
		return nil, aerr
	}
	if len(asked) > 0 {
		for _, n := range asked {
			if !p.CanRead(n) {
				return nil, forbidden(fmt.Sprintf("this credential may not read source %q", n))
			}
		}
		return asked, nil
	}
	var allowed []string
	for _, n := range s.sup.Names() {
		if p.CanRead(n) {
			allowed = append(allowed, n)
		}
	}
	if len(allowed) == 0 {
		return nil, forbidden("this credential may read no source")
	}
	return allowed, nil
}

// forced is p's forced predicate, or nil when it has none.
func (s *Server) forced(p *auth.Principal) (*predicate.Predicate, *apiError) {
	if p.Where == "" {
		return nil, nil
	}
	forced, err := s.forcedPreds.compile(p.Where)
	if err != nil {
		// An operator's predicate was checked at start; a token's was not.
		return nil, newError(http.StatusUnauthorized, "unauthorized", "the credential's where claim does not compile: "+err.Error())
	}
	return forced, nil
}

// narrow ANDs the principal's forced predicate with the client's.
func (s *Server) narrow(p *auth.Principal, client *predicate.Predicate) (*predicate.Predicate, *apiError) {
	forced, aerr := s.forced(p)
	if aerr != nil {
		return nil, aerr
	}
	if forced == nil {
		return client, nil
	}
	both, err := predicate.And(forced, client, s.opt.Predicates)
	if err != nil {
		return nil, predicateError(err)
	}
	return both, nil
}

// originAllowed reports whether a browser page of origin may use the API: no Origin (not a
// browser, or a same-origin GET), the server's own host, or one of allowed_origins.
func (s *Server) originAllowed(r *http.Request, origin string) bool {
	if origin == "" {
		return true
	}
	if u, err := url.Parse(origin); err == nil && strings.EqualFold(u.Host, r.Host) {
		return true
	}
	return slices.Contains(s.opt.AllowedOrigins, "*") || slices.Contains(s.opt.AllowedOrigins, origin)
}

// cors lets the pages of allowed origins read the API, answers preflights, and refuses a
// WebSocket handshake from any other origin (a browser sends no CORS check for WebSocket, so
// without this any page could open a stream with the visitor's network position).
func (s *Server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if !s.originAllowed(r, origin) {
			if r.Method == http.MethodOptions || r.Header.Get("Upgrade") != "" {
				writeError(w, forbidden(fmt.Sprintf("origin %q is not allowed (allowed_origins)", origin)))
				return
			}
			next.ServeHTTP(w, r) // no CORS headers: the browser keeps the answer from the page
			return
		}
		if origin != "" {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID, X-Streamux-Key")
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// retryAfter renders a wait as whole seconds, at least one.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(int(math.Max(1, math.Ceil(d.Seconds()))))
}
