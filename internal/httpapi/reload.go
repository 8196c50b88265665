package httpapi

import (
	"context"
	"errors"
	"net/http"
	"sync"

	"github.com/streamux/streamux/internal/auth"
	"github.com/streamux/streamux/internal/output"
)

// Reloader reads the configuration again and applies it: what POST /v1/reload runs (the
// server package's). It returns the summary of what changed, answered 200 as JSON, or an error:
// an *InvalidConfig (422, nothing changed), or another (500).
type Reloader func(ctx context.Context) (summary any, err error)

// InvalidConfig is the error of a reload whose configuration does not validate: nothing
// changed. Problems are every problem found, each at its line where known.
type InvalidConfig struct {
	Problems []string `json:"problems"`
}

func (e *InvalidConfig) Error() string {
	return "the configuration does not validate; nothing changed"
}

// Settings are what a reload changes in a running Server. Each applies to the requests that
// come after; the streams open go on under the settings they were opened with, but those of an
// API key that the new Auth no longer holds (auth.Authenticator.Holds), which end.
type Settings struct {
	// Auth authenticates the requests from now on. Nil (no authentication) only if it was
	// nil: turning authentication on or off takes a restart.
	Auth *auth.Authenticator
	// Limits are the stream and ingest admission limits: connections, connections per
	// address, subscriptions per credential, subscribe rate and burst, apply to loopback
	// (which /v1/check's rate follows too), ingest requests (all and per client). Its body
	// limits are not changed.
	Limits Limits
}

// Apply applies set, and ends the streams of the API keys that set.Auth no longer holds with
// output.ErrRevoked (WebSocket 1008 "credential revoked"). It returns how many it ended.
func (s *Server) Apply(set Settings) (revoked int) {
	if (set.Auth == nil) != (s.authn.Load() == nil) {
		// The Host rule (host.go) and the anonymous principal depend on it.
		s.log.Warn("reload: authentication turned on or off takes a restart; the keys stay as they were")
	} else {
		s.authn.Store(set.Auth)
	}
	s.gate.setLimits(set.Limits)
	s.ingests.setLimits(set.Limits)
	s.checks.applyToLoopback.Store(set.Limits.ApplyToLoopback)
	a := s.authn.Load()
	for _, ss := range s.keyed.list() {
		if !a.Holds(ss.who) {
			ss.Out.Close(output.ErrRevoked)
			revoked++
		}
	}
	return revoked
}

// Authenticator is the Authenticator in use: Options.Auth, or the last Apply's.
func (s *Server) Authenticator() *auth.Authenticator { return s.authn.Load() }

// keyedSessions are the live streams opened with an API key, which a reload may revoke.
type keyedSessions struct {
	mu sync.Mutex
	m  map[*session]struct{}
}

// add tracks ss when an API key opened it; the returned func stops tracking it.
func (k *keyedSessions) add(ss *session) (remove func()) {
	if ss.who == nil || ss.who.Method != auth.MethodAPIKey {
		return func() {}
	}
	k.mu.Lock()
	if k.m == nil {
		k.m = map[*session]struct{}{}
	}
	k.m[ss] = struct{}{}
	k.mu.Unlock()
	return func() {
		k.mu.Lock()
		delete(k.m, ss)
		k.mu.Unlock()
	}
}

func (k *keyedSessions) list() []*session {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]*session, 0, len(k.m))
	for ss := range k.m {
		out = append(out, ss)
	}
	return out
}

// setLimits makes l the limits of the streams admitted from now on; the streams held count
// against them. A new subscribe rate starts every address's bucket full.
func (g *gate) setLimits(l Limits) {
	l = l.withDefaults()
	g.mu.Lock()
	defer g.mu.Unlock()
	if l.SubscribeRate != g.lim.SubscribeRate || l.SubscribeBurst != g.lim.SubscribeBurst {
		g.rates = newRateBuckets(l.SubscribeRate, l.SubscribeBurst)
	}
	body := g.lim // the body rules keep theirs (body.go reads them unlocked)
	l.BodyBytes, l.BodyReadTimeout, l.BodyMinRate, l.IngestIdleTimeout = body.BodyBytes, body.BodyReadTimeout, body.BodyMinRate, body.IngestIdleTimeout
	g.lim = l
}

// setLimits makes l's ingest limits those of the requests admitted from now on.
func (g *ingestGate) setLimits(l Limits) {
	l = l.withDefaults()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.lim.IngestRequests, g.lim.IngestRequestsPerClient, g.lim.ApplyToLoopback = l.IngestRequests, l.IngestRequestsPerClient, l.ApplyToLoopback
}

// reloadConfig serves POST /v1/reload (admin): the configuration file is read again and
// applied, as SIGHUP does.
func (s *Server) reloadConfig(w http.ResponseWriter, r *http.Request) {
	if !s.admin(w, r) {
		return
	}
	if s.opt.Reload == nil {
		writeError(w, newError(http.StatusNotImplemented, "not_reloadable", "this server has no configuration file to reload"))
		return
	}
	summary, err := s.opt.Reload(r.Context())
	if err != nil {
		if ic, ok := errors.AsType[*InvalidConfig](err); ok {
			ae := newError(http.StatusUnprocessableEntity, "invalid_config", ic.Error())
			ae.Problems = ic.Problems
			writeError(w, ae)
			return
		}
		writeError(w, newError(http.StatusInternalServerError, "reload_failed", err.Error()))
		return
	}
	writeJSON(w, http.StatusOK, summary)
}
