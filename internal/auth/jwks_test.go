package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// jwksServer is an identity provider's JWKS endpoint whose keys and health the test sets, and
// which counts the fetches.
type jwksServer struct {
	*httptest.Server
	fetches atomic.Int64
	mu      sync.Mutex
	body    []byte // guarded by mu
	down    bool   // guarded by mu: answer 503
}

func newJWKSServer(t *testing.T, jwks ...map[string]string) *jwksServer {
	s := &jwksServer{}
	s.set(t, jwks...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		body, down := s.body, s.down
		s.mu.Unlock()
		if down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(t *testing.T, jwks ...map[string]string) {
	b, err := json.Marshal(map[string]any{"keys": jwks})
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.body = b
	s.mu.Unlock()
}

func (s *jwksServer) setDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

// fakeClock is the remote set's clock, which the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// remoteAuth is an Authenticator with jwks_url at srv, its remote set on clock; token times
// are checked at the package's now.
func remoteAuth(t *testing.T, srv *jwksServer, refresh, minRefresh time.Duration) (*Authenticator, *fakeClock) {
	t.Helper()
	a := newAuth(t, Config{JWT: &JWT{JWKSURL: srv.URL + "/.well-known/jwks.json", JWKSRefresh: &refresh, JWKSMinRefresh: &minRefresh}}, now)
	clock := &fakeClock{t: now}
	a.jwt.remote.now = clock.now
	return a, clock
}

func accepted(t *testing.T, a *Authenticator, token string) error {
	t.Helper()
	_, err := a.Authenticate(bearer(token))
	return err
}

// A key the provider adds (a new kid) is accepted once a token with it makes the set fetched
// again; the key it removed is no longer accepted after that fetch.
func TestJWKSURLRotation(t *testing.T) {
	t.Parallel()
	k := keys()
	srv := newJWKSServer(t, jwkOf(t, &k.rsaJWKS.PublicKey, "old"))
	a, clock := remoteAuth(t, srv, time.Hour, time.Minute)
	oldTok := sign(t, jwt.SigningMethodRS256, k.rsaJWKS, "old", claims(nil))
	newTok := sign(t, jwt.SigningMethodES256, k.ecJWKS, "new", claims(nil))

	// The first token fetches the set: nothing ran Run.
	if err := accepted(t, a, oldTok); err != nil {
		t.Fatalf("kid old: %v", err)
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches for the first token, want 1", n)
	}
	srv.set(t, jwkOf(t, &k.ecJWKS.PublicKey, "new"))
	clock.add(2 * time.Minute)
	if err := accepted(t, a, newTok); err != nil {
		t.Fatalf("kid new after the rotation: %v", err)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches after the rotation, want 2", n)
	}
	if err := accepted(t, a, newTok); err != nil {
		t.Fatalf("kid new again: %v", err)
	}
	if err := accepted(t, a, oldTok); err == nil || !strings.Contains(err.Error(), "unknown key id") {
		t.Errorf("kid old after it left the set: %v", err)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Errorf("%d fetches; a known kid, and an unknown one within jwks_min_refresh, fetch nothing", n)
	}
}

// Tokens with made-up kids fetch the set at most once per jwks_min_refresh, however many come
// at once.
func TestJWKSURLUnknownKidRateLimited(t *testing.T) {
	t.Parallel()
	k := keys()
	srv := newJWKSServer(t, jwkOf(t, &k.rsaJWKS.PublicKey, "r1"))
	a, clock := remoteAuth(t, srv, time.Hour, time.Minute)
	if err := accepted(t, a, sign(t, jwt.SigningMethodRS256, k.rsaJWKS, "r1", claims(nil))); err != nil {
		t.Fatal(err)
	}
	clock.add(time.Minute)
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			tok := sign(t, jwt.SigningMethodRS256, k.rsaJWKS, fmt.Sprintf("made-up-%d", i), claims(nil))
			if err := accepted(t, a, tok); err == nil || !strings.Contains(err.Error(), "unknown key id") {
				t.Errorf("made-up kid %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches: the first, then %d for 40 unknown kids; want 1", n, n-1)
	}
	clock.add(59 * time.Second)
	accepted(t, a, sign(t, jwt.SigningMethodRS256, k.rsaJWKS, "made-up-late", claims(nil)))
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("a fetch %v after the last: %d fetches, want 2", 59*time.Second, n)
	}
	clock.add(time.Second)
	accepted(t, a, sign(t, jwt.SigningMethodRS256, k.rsaJWKS, "made-up-later", claims(nil)))
	if n := srv.fetches.Load(); n != 3 {
		t.Fatalf("jwks_min_refresh after the last fetch: %d fetches, want 3", n)
	}
}

// A provider that is down, answers an error or a set with no usable key leaves the keys held.
func TestJWKSURLDownKeepsKeys(t *testing.T) {
	t.Parallel()
	k := keys()
	srv := newJWKSServer(t, jwkOf(t, &k.rsaJWKS.PublicKey, "r1"))
	a, clock := remoteAuth(t, srv, time.Hour, time.Minute)
	tok := sign(t, jwt.SigningMethodRS256, k.rsaJWKS, "r1", claims(nil))
	ctx := context.Background()
	if err := a.jwt.remote.fetch(ctx); err != nil {
		t.Fatal(err)
	}
	srv.setDown(true)
	if err := a.jwt.remote.fetch(ctx); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("fetch from a provider that is down: %v", err)
	}
	if err := accepted(t, a, tok); err != nil {
		t.Fatalf("after a failed fetch: %v", err)
	}
	srv.setDown(false)
	srv.set(t, map[string]string{"kty": "RSA", "kid": "bad", "n": "AQAB", "e": "AQAB"})
	if err := a.jwt.remote.fetch(ctx); err == nil || !strings.Contains(err.Error(), "no usable key") {
		t.Fatalf("fetch of a set with no usable key: %v", err)
	}
	srv.Close()
	clock.add(time.Hour)
	if err := a.jwt.remote.fetch(ctx); err == nil {
		t.Fatal("fetch from a closed server succeeded")
	}
	if err := accepted(t, a, tok); err != nil {
		t.Fatalf("with the provider gone: %v", err)
	}
}

// Run fetches at start and every jwks_refresh: a rotation is seen without any token asking,
// even when jwks_min_refresh keeps tokens from fetching; it stops with its context.
func TestJWKSURLRunRefreshes(t *testing.T) {
	t.Parallel()
	k := keys()
	srv := newJWKSServer(t, jwkOf(t, &k.rsaJWKS.PublicKey, "r1"))
	a, _ := remoteAuth(t, srv, 20*time.Millisecond, 20*time.Millisecond)
	a.jwt.remote.now = time.Now
	a.jwt.remote.minRefresh = time.Hour // no fetch for unknown kids after the first
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx, nil) }() // waited for below
	defer func() { cancel(); <-done }()

	// The provider counts a fetch when it answers, a moment before Run has taken the keys:
	// wait for the key to work, not for the count.
	firstTok := sign(t, jwt.SigningMethodRS256, k.rsaJWKS, "r1", claims(nil))
	waitUntil(t, "the key of the first fetch to be taken", func() bool { return accepted(t, a, firstTok) == nil })
	if srv.fetches.Load() < 1 {
		t.Fatal("a key accepted before any fetch")
	}
	srv.set(t, jwkOf(t, k.ed.Public(), "d2"))
	newTok := sign(t, jwt.SigningMethodEdDSA, k.ed, "d2", claims(nil))
	waitUntil(t, "the rotated key to be fetched by Run", func() bool { return accepted(t, a, newTok) == nil })
	cancel()
	<-done
	// A request that Run had sent as it stopped may still reach the handler.
	time.Sleep(30 * time.Millisecond)
	n := srv.fetches.Load()
	time.Sleep(60 * time.Millisecond)
	if m := srv.fetches.Load(); m != n {
		t.Errorf("%d fetches after Run returned", m-n)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestJWKSURLConfigErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		jwt  JWT
		want string
	}{
		{JWT{JWKSURL: "http://idp.example/jwks.json"}, "auth.jwt.jwks_url: http is allowed to a loopback host only"},
		{JWT{JWKSURL: "ftp://idp.example/jwks.json"}, `auth.jwt.jwks_url: scheme "ftp": want https`},
		{JWT{JWKSURL: "idp.example/jwks.json"}, "auth.jwt.jwks_url: not an absolute URL"},
		{JWT{JWKSURL: "https://idp.example/jwks.json", JWKSRefresh: dur(0)}, "auth.jwt.jwks_refresh: must be positive"},
		{JWT{JWKSURL: "https://idp.example/jwks.json", JWKSMinRefresh: dur(-time.Second)}, "auth.jwt.jwks_min_refresh: must be positive"},
		{JWT{JWKSURL: "https://idp.example/jwks.json", JWKSRefresh: dur(time.Minute), JWKSMinRefresh: dur(time.Hour)}, "auth.jwt.jwks_min_refresh: 1h0m0s is above jwks_refresh (1m0s)"},
		{JWT{HS256Secret: testSecret, JWKSRefresh: dur(time.Hour)}, "auth.jwt.jwks_refresh: applies to jwks_url, which is not set"},
		{JWT{}, "set hs256_secret, public_keys, jwks_file or jwks_url"},
	} {
		errs := (&Config{JWT: &tc.jwt}).Validate()
		var msgs []string
		for _, err := range errs {
			msgs = append(msgs, err.Error())
		}
		if !strings.Contains(strings.Join(msgs, "\n"), tc.want) {
			t.Errorf("%+v: %q, want %q", tc.jwt, msgs, tc.want)
		}
	}
	for _, ok := range []string{"https://idp.example/.well-known/jwks.json", "http://127.0.0.1:8081/jwks", "http://localhost/jwks", "http://[::1]:9/jwks"} {
		if errs := (&Config{JWT: &JWT{JWKSURL: ok}}).Validate(); len(errs) > 0 {
			t.Errorf("%s: %v", ok, errs)
		}
	}
}

// A redirect is followed only where jwks_url itself could point: not to plain http elsewhere.
func TestJWKSURLRedirect(t *testing.T) {
	t.Parallel()
	k := keys()
	srv := newJWKSServer(t, jwkOf(t, &k.rsaJWKS.PublicKey, "r1"))
	redirect := func(to string) *httptest.Server {
		r := httptest.NewServer(http.RedirectHandler(to, http.StatusFound))
		t.Cleanup(r.Close)
		return r
	}
	ok := redirect(srv.URL + "/moved")
	a := newAuth(t, Config{JWT: &JWT{JWKSURL: ok.URL}}, now)
	if err := a.jwt.remote.fetch(context.Background()); err != nil {
		t.Fatalf("a redirect to loopback http: %v", err)
	}
	bad := redirect("http://idp.example/jwks.json")
	a = newAuth(t, Config{JWT: &JWT{JWKSURL: bad.URL}}, now)
	if err := a.jwt.remote.fetch(context.Background()); err == nil || !strings.Contains(err.Error(), "http is allowed to a loopback host only") {
		t.Fatalf("a redirect to http elsewhere: %v", err)
	}
}
