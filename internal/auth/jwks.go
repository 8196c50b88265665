package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of a JWKS fetched from auth.jwt.jwks_url.
const (
	// DefaultJWKSRefresh is JWT.JWKSRefresh's default: how often the set is fetched again.
	DefaultJWKSRefresh = time.Hour
	// DefaultJWKSMinRefresh is JWT.JWKSMinRefresh's default: a token with a kid that the set
	// lacks fetches it again at most this often, so that tokens with made-up kids cannot make
	// the server hammer the identity provider.
	DefaultJWKSMinRefresh = time.Minute
)

// jwksFetchTimeout bounds one fetch of the set; jwksMaxBytes its size.
const (
	jwksFetchTimeout = 10 * time.Second
	jwksMaxBytes     = 1 << 20
)

// remoteJWKS is a JWKS fetched over HTTP(S) and kept: fetched again every refresh (by Run), and
// when a token names a kid the set lacks, at most once per minRefresh. A fetch that fails keeps
// the keys it had, so that an identity provider that is down for a while locks nobody out.
//
// Concurrency: keys is read by every request without a lock and replaced whole by a fetch;
// fetchMu makes fetches one at a time and guards last, so that the requests that wait for a
// fetch find its keys rather than fetch again.
type remoteJWKS struct {
	url                 string
	client              *http.Client
	refresh, minRefresh time.Duration
	now                 func() time.Time

	keys atomic.Pointer[[]verifyKey]
	log  atomic.Pointer[slog.Logger] // set by Run; slog.Default() before

	fetchMu sync.Mutex
	last    time.Time // the last fetch's start, whatever its outcome; guarded by fetchMu
}

func newRemoteJWKS(u string, refresh, minRefresh time.Duration) *remoteJWKS {
	r := &remoteJWKS{url: u, refresh: refresh, minRefresh: minRefresh, now: time.Now,
		client: &http.Client{Timeout: jwksFetchTimeout, CheckRedirect: checkJWKSRedirect}}
	r.keys.Store(&[]verifyKey{})
	return r
}

// current is the keys of the last fetch that succeeded; none before the first.
func (r *remoteJWKS) current() []verifyKey { return *r.keys.Load() }

func (r *remoteJWKS) logger() *slog.Logger {
	if l := r.log.Load(); l != nil {
		return l
	}
	return slog.Default()
}

// refreshForKid fetches the set again for a token whose kid it lacks, unless a fetch started
// less than minRefresh ago; then it waits for a fetch under way, and returns. It reports whether
// it fetched.
func (r *remoteJWKS) refreshForKid(ctx context.Context) bool {
	r.fetchMu.Lock()
	defer r.fetchMu.Unlock()
	if !r.last.IsZero() && r.now().Sub(r.last) < r.minRefresh {
		return false
	}
	// The fetch is every waiting request's, and counts against the rate limit: a client that
	// goes away must not cut it short (jwksFetchTimeout still bounds it).
	if err := r.fetchLocked(context.WithoutCancel(ctx)); err != nil {
		r.logger().Warn("auth: jwks_url: fetching the key set for an unknown kid failed; keeping the keys held", "url", r.url, "err", err, "keys", len(r.current()))
	}
	return true
}

// fetch fetches the set now, whatever the rate limit: Run's start and its interval.
func (r *remoteJWKS) fetch(ctx context.Context) error {
	r.fetchMu.Lock()
	defer r.fetchMu.Unlock()
	return r.fetchLocked(ctx)
}

func (r *remoteJWKS) fetchLocked(ctx context.Context) error {
	r.last = r.now()
	ctx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, jwksMaxBytes+1))
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if len(data) > jwksMaxBytes {
		return fmt.Errorf("the key set is over %d bytes", jwksMaxBytes)
	}
	keys, errs := parseJWKS(data)
	if len(keys) == 0 {
		// A set with no usable key replaces nothing: it is more likely a broken deployment
		// than a provider that means to accept no token.
		if len(errs) == 0 {
			return errors.New("no signature key in the set")
		}
		return fmt.Errorf("no usable key: %w", errors.Join(errs...))
	}
	for _, err := range errs {
		r.logger().Warn("auth: jwks_url: a key is skipped", "url", r.url, "err", err)
	}
	r.keys.Store(&keys)
	return nil
}

// run fetches the set at once and then every refresh until ctx ends; after a failed fetch it
// tries again after minRefresh instead, so that a set that could not be fetched at start is
// not missing for an hour.
func (r *remoteJWKS) run(ctx context.Context, log *slog.Logger) {
	r.log.Store(log)
	for {
		wait := r.refresh
		if err := r.fetch(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			wait = r.minRefresh
			log.Warn("auth: jwks_url: fetching the key set failed; keeping the keys held", "url", r.url, "err", err, "keys", len(r.current()), "retry_in", wait.String())
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// checkJWKSRedirect holds a redirect to the rule of jwks_url itself, so that an https URL cannot
// send the fetch on to plain http elsewhere.
func checkJWKSRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("more than 5 redirects")
	}
	if err := checkJWKSURL(req.URL.String()); err != nil {
		return fmt.Errorf("redirected to %s: %w", req.URL.Redacted(), err)
	}
	return nil
}

// checkJWKSURL says what is wrong with a jwks_url: it must be https, or http to a loopback
// host, since a key set fetched in clear text from elsewhere could be replaced on the way.
func checkJWKSURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a URL: %v", err)
	}
	if u.Host == "" {
		return errors.New("not an absolute URL (https://host/path)")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
			return nil
		}
		return errors.New("http is allowed to a loopback host only: a key set fetched in clear text could be replaced on the way; use https")
	}
	return fmt.Errorf("scheme %q: want https", u.Scheme)
}
