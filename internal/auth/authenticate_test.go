package auth

import (
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestNoCredential(t *testing.T) {
	t.Parallel()
	a := newAuth(t, Config{APIKeys: []APIKey{{SHA256: HashKey("k")}}}, time.Time{})
	for _, target := range []string{"/v1/stream", "/v1/stream?where=true", "/v1/stream?Token=x&tokens=y"} {
		p, err := a.Authenticate(httptest.NewRequest("GET", target, nil))
		if !errors.Is(err, ErrNoCredential) || errors.Is(err, ErrInvalidCredential) || p != nil {
			t.Errorf("%s: Authenticate = %v, %v; want ErrNoCredential", target, p, err)
		}
		if got := Challenge(err); got != `Bearer realm="streamux"` {
			t.Errorf("Challenge = %q", got)
		}
	}
}

func TestAPIKey(t *testing.T) {
	t.Parallel()
	const key, other = "sx_reader-key-with-enough-entropy", "sx_writer-key"
	a := newAuth(t, Config{APIKeys: []APIKey{
		{Name: "acme-reader", SHA256: HashKey(key), Sources: []string{"orders", "demo"},
			Where: `headers.tenant == "acme"`},
		{SHA256: strings.ToUpper(HashKey(other)), Write: []string{"events"}, Admin: true},
	}}, time.Time{})

	for name, req := range map[string]func(string) *Principal{
		"header": func(k string) *Principal { p, err := a.Authenticate(bearer(k)); must(t, err); return p },
		"query":  func(k string) *Principal { p, err := a.Authenticate(query(k)); must(t, err); return p },
	} {
		p := req(key)
		if p.Name != "acme-reader" || p.Method != MethodAPIKey || p.Where != `headers.tenant == "acme"` || p.Admin || !p.Expires.IsZero() {
			t.Errorf("%s: principal %+v", name, p)
		}
		if !p.CanRead("orders") || !p.CanRead("demo") || p.CanRead("payments") {
			t.Errorf("%s: CanRead wrong for sources %v", name, p.Sources)
		}
		if p.CanWrite("orders") || p.CanWrite("events") {
			t.Errorf("%s: a key with no write list may write", name)
		}
		q := req(other)
		if q.Name != "key-"+HashKey(other)[:8] || !q.Admin || q.Where != "" {
			t.Errorf("%s: principal %+v", name, q)
		}
		if !q.CanRead("anything") || !q.CanWrite("events") || q.CanWrite("orders") {
			t.Errorf("%s: second key's rights wrong: %+v", name, q)
		}
	}

	// A principal's lists are its own: changing them changes nothing for the next request.
	p, _ := a.Authenticate(bearer(key))
	p.Sources[0] = "payments"
	if p2, _ := a.Authenticate(bearer(key)); p2.CanRead("payments") {
		t.Error("a principal's Sources aliases the configuration")
	}

	for _, bad := range []string{"sx_reader-key-with-enough-entropY", "sx_reader-key-with-enough-entrop", key + " x", HashKey(key), "x"} {
		p, err := a.Authenticate(bearer(bad))
		if !errors.Is(err, ErrInvalidCredential) || p != nil {
			t.Errorf("key %q: Authenticate = %v, %v; want ErrInvalidCredential", bad, p, err)
			continue
		}
		if !strings.Contains(err.Error(), "unknown API key") {
			t.Errorf("key %q: error %q", bad, err)
		}
		noLeak(t, err, bad)
		if c := Challenge(err); !strings.Contains(c, `error="invalid_token"`) || len(bad) > 8 && strings.Contains(c, bad) {
			t.Errorf("Challenge = %q", c)
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestAPIKeyExpires(t *testing.T) {
	t.Parallel()
	exp := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	c := Config{APIKeys: []APIKey{{Name: "temp", SHA256: HashKey("temp-key"), Expires: exp}}}
	before := newAuth(t, c, exp.Add(-time.Second))
	p, err := before.Authenticate(bearer("temp-key"))
	if err != nil || !p.Expires.Equal(exp) {
		t.Fatalf("before expiry: %v, %v", p, err)
	}
	after := newAuth(t, c, exp.Add(time.Second))
	if _, err := after.Authenticate(bearer("temp-key")); !errors.Is(err, ErrInvalidCredential) || !strings.Contains(err.Error(), "API key has expired") {
		t.Fatalf("after expiry: %v", err)
	}
}

// TestLookupConstantTime checks that every key is compared, with the constant-time compare,
// wherever the match is and whether there is one: the work done says nothing of which key
// matched.
func TestLookupConstantTime(t *testing.T) {
	t.Parallel()
	var ks []apiKey
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		var s [32]byte
		copy(s[:], mustHex(HashKey(k)))
		ks = append(ks, apiKey{sum: s})
	}
	for want, k := range []string{"a", "c", "e", "nope"} {
		if k == "nope" {
			want = -1
		} else {
			want = map[string]int{"a": 0, "c": 2, "e": 4}[k]
		}
		var s [32]byte
		copy(s[:], mustHex(HashKey(k)))
		calls := 0
		got := lookup(ks, &s, func(x, y []byte) int { calls++; return subtle.ConstantTimeCompare(x, y) })
		if got != want || calls != len(ks) {
			t.Errorf("lookup(%q) = %d after %d compares; want %d after %d", k, got, calls, want, len(ks))
		}
	}
}

func mustHex(h string) []byte {
	b, err := hex.DecodeString(h)
	if err != nil {
		panic(err)
	}
	return b
}

func TestCredentialSources(t *testing.T) {
	t.Parallel()
	const good = "good-key"
	a := newAuth(t, Config{APIKeys: []APIKey{{Name: "good", SHA256: HashKey(good)}}}, time.Time{})
	req := func(target string, headers ...string) error {
		r := httptest.NewRequest("GET", target, nil)
		for _, h := range headers {
			r.Header.Add("Authorization", h)
		}
		_, err := a.Authenticate(r)
		return err
	}
	for _, c := range []struct {
		name    string
		target  string
		headers []string
		want    string // "" is success
	}{
		{"header", "/", []string{"Bearer " + good}, ""},
		{"lower-case scheme, extra spaces", "/", []string{"  bearer   " + good + "  "}, ""},
		{"query", "/?token=" + good, nil, ""},
		{"query, escaped", "/?token=good%2Dkey", nil, ""},
		{"header wins over a bad query token", "/?token=bad", []string{"Bearer " + good}, ""},
		{"header wins: a bad header is not rescued by a good query token", "/?token=" + good, []string{"Bearer bad"}, "unknown API key"},
		{"two headers", "/", []string{"Bearer " + good, "Bearer " + good}, "more than one Authorization header"},
		{"two token parameters", "/?token=" + good + "&token=" + good, nil, "more than one token parameter"},
		{"basic scheme", "/", []string{"Basic Z29vZC1rZXk6"}, "scheme must be Bearer"},
		{"bare token", "/", []string{good}, "scheme must be Bearer"},
		{"empty bearer", "/", []string{"Bearer "}, "empty bearer token"},
		{"empty header", "/", []string{""}, "scheme must be Bearer"},
		{"empty token parameter", "/?token=", nil, "empty token parameter"},
		{"too long", "/", []string{"Bearer " + strings.Repeat("k", MaxCredentialBytes+1)}, "longer than 16 KiB"},
	} {
		err := req(c.target, c.headers...)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (!errors.Is(err, ErrInvalidCredential) || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: error %v; want ErrInvalidCredential saying %q", c.name, err, c.want)
		}
	}
}

func TestDisabled(t *testing.T) {
	t.Parallel()
	for _, c := range []Config{{}, {None: true}} {
		a := newAuth(t, c, time.Time{})
		if !a.Disabled() {
			t.Errorf("%+v: not disabled", c)
		}
		// Even a garbage credential is ignored: there is nothing to check it against.
		for _, req := range []func() (*Principal, error){
			func() (*Principal, error) { return a.Authenticate(httptest.NewRequest("GET", "/", nil)) },
			func() (*Principal, error) { return a.Authenticate(bearer("whatever")) },
		} {
			p, err := req()
			if err != nil || p.Method != MethodNone || !p.Admin || !p.CanRead("x") || !p.CanWrite("x") || p.Where != "" {
				t.Errorf("%+v: Authenticate = %+v, %v; want the all-powerful anonymous principal", c, p, err)
			}
		}
	}
	if a := newAuth(t, Config{APIKeys: []APIKey{{SHA256: HashKey("k")}}}, time.Time{}); a.Disabled() {
		t.Error("a config with a key is disabled")
	}
}

func TestPrincipal(t *testing.T) {
	t.Parallel()
	var nilP *Principal
	if nilP.CanRead("a") || nilP.CanWrite("a") || !nilP.Expired(time.Now()) || nilP.String() != "<nil>" {
		t.Error("a nil principal may do something")
	}
	all := &Principal{Name: "x", Method: MethodJWT}
	none := &Principal{Sources: []string{}, Write: []string{}}
	star := &Principal{Sources: []string{"*"}, Write: []string{"*"}}
	some := &Principal{Sources: []string{"a"}, Write: []string{"b"}}
	for _, c := range []struct {
		p           *Principal
		read, write bool
	}{{all, true, false}, {none, false, false}, {star, true, true}, {some, true, false}} {
		if c.p.CanRead("a") != c.read || c.p.CanWrite("a") != c.write {
			t.Errorf("%+v: CanRead(a) = %v, CanWrite(a) = %v", c.p, c.p.CanRead("a"), c.p.CanWrite("a"))
		}
	}
	if !some.CanWrite("b") || some.CanRead("b") {
		t.Error("write does not imply read, nor read write")
	}
	if all.String() != "jwt:x" {
		t.Errorf("String = %q", all.String())
	}
	exp := time.Unix(1000, 0)
	p := &Principal{Expires: exp}
	if p.Expired(exp) || !p.Expired(exp.Add(time.Nanosecond)) || all.Expired(time.Now()) {
		t.Error("Expired is wrong")
	}
	// An empty list survives cloning as empty, not nil (which would mean every source).
	if c := none.clone(); c.Sources == nil || c.CanRead("a") {
		t.Error("clone turned [] into nil")
	}
}

func TestHashKeyAndNewKey(t *testing.T) {
	t.Parallel()
	// printf %s abc | sha256sum
	if got := HashKey("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("HashKey(abc) = %s", got)
	}
	k1, h1 := NewKey()
	k2, _ := NewKey()
	if k1 == k2 || !strings.HasPrefix(k1, "sx_") || len(k1) != 46 || h1 != HashKey(k1) {
		t.Errorf("NewKey = %q, %q; %q", k1, h1, k2)
	}
	a := newAuth(t, Config{APIKeys: []APIKey{{SHA256: h1}}}, time.Time{})
	if _, err := a.Authenticate(bearer(k1)); err != nil {
		t.Error(err)
	}
}

// TestConcurrent authenticates from many goroutines at once, for the race detector.
func TestConcurrent(t *testing.T) {
	t.Parallel()
	a := newAuth(t, Config{
		APIKeys: []APIKey{{Name: "k", SHA256: HashKey("key"), Sources: []string{"a"}}},
		JWT:     &JWT{HS256Secret: testSecret},
	}, time.Time{})
	tok, err := IssueHS256([]byte(testSecret), Claims{Subject: "s", Sources: []string{"b"}}, time.Hour)
	must(t, err)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 50 {
				cred, want := "key", "k"
				if i%2 == 1 {
					cred, want = tok, "s"
				}
				p, err := a.Authenticate(bearer(cred))
				if err != nil || p.Name != want {
					t.Errorf("Authenticate = %v, %v", p, err)
					return
				}
				p.Sources = append(p.Sources, "mutated")
			}
		})
	}
	wg.Wait()
	p, _ := a.Authenticate(bearer("key"))
	if slices.Contains(p.Sources, "mutated") {
		t.Error("principals share their lists")
	}
}
