package httpapi

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamux/streamux/internal/auth"
)

// The defaults of CheckLimits.
const (
	// DefaultCheckMaxCost is the default bound on one /v1/check call's work: a hundred
	// evaluations at the default predicate cost limit, or about 28,000 messages of 350 bytes:
	// from 0.05 s of a core (a predicate compiled to Go) to 0.5 s (cel-go, a comprehension),
	// as measured on the 2-core test machine.
	DefaultCheckMaxCost = 10_000_000
	// DefaultCheckRate and DefaultCheckBurst are the default rate of /v1/check calls per
	// credential (per address without authentication): five a second, twenty at once. The web
	// page checks as its user types, up to four times a second, and drops the check before
	// (which then stops); each call is bounded by MaxCost.
	DefaultCheckRate  = 5
	DefaultCheckBurst = 20
)

// CheckLimits bound POST /v1/check, which evaluates a predicate over the history of its sources
// in the request's goroutine. Zero values take the defaults.
type CheckLimits struct {
	// MaxCost bounds one call's work, in CEL cost units: per message one unit, one per byte of
	// body decoded (parsing JSON costs about what a unit of CEL does per byte), and what each
	// evaluation cost (its estimate, or what it measured for a predicate measured as it runs). The answer then counts what was looked at
	// and says where it stopped. Defaults to DefaultCheckMaxCost.
	MaxCost uint64
	// Rate and Burst bound how often one credential, or one address without authentication,
	// may call it: a token bucket (429 with Retry-After beyond it). Loopback addresses are
	// exempt, as from the subscribe rate, unless Limits.ApplyToLoopback; a credential never is.
	// Default to DefaultCheckRate and DefaultCheckBurst.
	Rate  float64
	Burst int
}

func (l CheckLimits) withDefaults() CheckLimits {
	if l.MaxCost == 0 {
		l.MaxCost = DefaultCheckMaxCost
	}
	if l.Rate <= 0 {
		l.Rate = DefaultCheckRate
	}
	if l.Burst <= 0 {
		l.Burst = DefaultCheckBurst
	}
	return l
}

// checkGate holds a token bucket per credential (per address without authentication) for
// /v1/check. It is consulted once per call.
type checkGate struct {
	lim CheckLimits
	// applyToLoopback is Limits.ApplyToLoopback, which a reload changes (Server.Apply).
	applyToLoopback atomic.Bool
	running         atomic.Int64 // checks counting now, for tests

	mu    sync.Mutex
	rates rateBuckets
}

func newCheckGate(l CheckLimits, applyToLoopback bool) *checkGate {
	l = l.withDefaults()
	g := &checkGate{lim: l, rates: newRateBuckets(l.Rate, l.Burst)}
	g.applyToLoopback.Store(applyToLoopback)
	return g
}

// admit takes a token for one call by who from r, or says when to come back.
func (g *checkGate) admit(who *auth.Principal, r *http.Request) *apiError {
	key := "credential " + who.String()
	if who.Method == auth.MethodNone {
		addr := remoteIP(r)
		if !g.applyToLoopback.Load() && isLoopback(addr) {
			return nil
		}
		key = "address " + addr
	}
	g.mu.Lock()
	wait, ok := g.rates.take(key, time.Now())
	g.mu.Unlock()
	if !ok {
		whom := "this address"
		if who.Method != auth.MethodNone {
			whom = "this credential"
		}
		return tooMany("check_rate", fmt.Sprintf("%s calls /v1/check faster than %g per second", whom, g.lim.Rate), wait)
	}
	return nil
}
