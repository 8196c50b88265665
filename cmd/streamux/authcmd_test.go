package main_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// runAuth runs streamux auth with args and stdin, and returns its stdout and stderr; it fails
// the test unless the exit status is want.
func runAuth(t *testing.T, stdin string, want int, args ...string) (stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"auth"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("streamux auth %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	if code != want {
		t.Fatalf("streamux auth %v: exit status %d, want %d\nstdout: %s\nstderr: %s", args, code, want, &out, &errOut)
	}
	return out.String(), errOut.String()
}

// indent puts n spaces before every line of s.
func indent(s string, n int) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n"+pad) + "\n"
}

// status is the status of GET path with credential as a bearer token ("" sends none). A
// stream that is granted is cut at once: only the answer's status matters.
func status(t *testing.T, s *server, path, credential string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url(path), nil)
	if err != nil {
		t.Fatal(err)
	}
	if credential != "" {
		req.Header.Set("Authorization", "Bearer "+credential)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// The entries hash-key prints, pasted under auth.api_keys, let their keys in: one read on stdin
// (with echo's newline), one made by -generate and shown only on stderr.
func TestAuthHashKeyServes(t *testing.T) {
	t.Parallel()
	const key = "a-key-of-our-own-0123456789"
	typed, _ := runAuth(t, key+"\n", 0, "hash-key", "-name", "typed")
	if strings.Contains(typed, key) {
		t.Fatalf("the entry holds the key itself: %s", typed)
	}
	made, shown := runAuth(t, "", 0, "hash-key", "-generate", "-name", "made")
	var generated string
	for line := range strings.SplitSeq(shown, "\n") {
		if strings.HasPrefix(line, "sx_") {
			generated = line
		}
	}
	if generated == "" || strings.Contains(made, generated) {
		t.Fatalf("-generate: the key should be on stderr only\nstdout: %s\nstderr: %s", made, shown)
	}
	cfg := filepath.Join(t.TempDir(), "keys.yaml")
	yaml := "auth:\n  api_keys:\n" + indent(typed, 4) + indent(made, 4)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	s := serve(t, "-config", cfg)
	for cred, want := range map[string]int{"": 401, key + "x": 401, key: 200, generated: 200} {
		if got := status(t, s, "/v1/sources", cred); got != want {
			t.Errorf("credential %q: %d, want %d\nconfig:\n%s", cred, got, want, yaml)
		}
	}
}

func TestAuthHashKeyRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"", []string{"hash-key"}, "no key on stdin"},
		{"one\ntwo\n", []string{"hash-key"}, "line break"},
		{"a-long-enough-key-0123456789", []string{"hash-key", "-name", "has space"}, "name must be"},
	} {
		_, stderr := runAuth(t, tc.stdin, 1, tc.args...)
		if !strings.Contains(stderr, tc.want) {
			t.Errorf("%q %v: stderr %q does not say %q", tc.stdin, tc.args, stderr, tc.want)
		}
	}
	_, stderr := runAuth(t, "short", 0, "hash-key")
	if !strings.Contains(stderr, "warning") {
		t.Errorf("a 5-byte key: no warning: %q", stderr)
	}
}

// A token minted from the config's secret, or with the private half of its public key, is
// accepted, and its claims bound it: the sources it names and no other, admin only when given.
func TestAuthTokenServes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	privPath, pubPath := filepath.Join(dir, "signer.pem"), filepath.Join(dir, "signer.pub.pem")
	for path, b := range map[string]*pem.Block{privPath: {Type: "PRIVATE KEY", Bytes: privDER}, pubPath: {Type: "PUBLIC KEY", Bytes: pubDER}} {
		if err := os.WriteFile(path, pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "jwt.yaml")
	yaml := "sources:\n  - {name: a, type: demo, rate: 20}\n  - {name: b, type: demo, rate: 20}\n" +
		"auth:\n  jwt:\n    hs256_secret: 0123456789abcdef0123456789abcdef-e2e\n    audience: streamux-e2e\n    public_keys: [" + pubPath + "]\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	s := serve(t, "-config", cfg)

	mint := func(args ...string) string {
		out, _ := runAuth(t, "", 0, append([]string{"token", "-config", cfg, "-sub", "svc", "-ttl", "5m"}, args...)...)
		return strings.TrimSpace(out)
	}
	readerA := mint("-sources", "a")
	signedEC := mint("-private-key", privPath, "-sources", "b", "-admin")
	for _, tc := range []struct {
		name, token, path string
		want              int
	}{
		{"hs256 reads a", readerA, "/v1/stream?source=a&where=true", 200},
		{"hs256 may not read b", readerA, "/v1/stream?source=b&where=true", 403},
		{"hs256 is not admin", readerA, "/v1/subscriptions", 403},
		{"es256 reads b", signedEC, "/v1/stream?source=b&where=true", 200},
		{"es256 may not read a", signedEC, "/v1/stream?source=a&where=true", 403},
		{"es256 is admin", signedEC, "/v1/subscriptions", 200},
	} {
		if got := status(t, s, tc.path, tc.token); got != tc.want {
			t.Errorf("%s: GET %s: %d, want %d", tc.name, tc.path, got, tc.want)
		}
	}

	// A token the config would refuse is not printed: another audience, or a key it lacks.
	_, stderr := runAuth(t, "", 1, "token", "-config", cfg, "-aud", "elsewhere")
	if !strings.Contains(stderr, "would not accept") || !strings.Contains(stderr, "audience") {
		t.Errorf("-aud elsewhere: %s", stderr)
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherDER, _ := x509.MarshalECPrivateKey(other)
	otherPath := filepath.Join(dir, "other.pem")
	if err := os.WriteFile(otherPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: otherDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr := runAuth(t, "", 1, "token", "-config", cfg, "-private-key", otherPath); !strings.Contains(stderr, "bad signature") {
		t.Errorf("a key the config lacks: %s", stderr)
	}
	if _, stderr := runAuth(t, "", 1, "token", "-config", cfg, "-where", "key =="); !strings.Contains(stderr, "-where") {
		t.Errorf("a where that does not compile: %s", stderr)
	}
	if _, stderr := runAuth(t, "", 2, "token"); !strings.Contains(stderr, "no key") {
		t.Errorf("no key: %s", stderr)
	}
}

// jwkEC is the public JWK of k with kid.
func jwkEC(t *testing.T, k *ecdsa.PrivateKey, kid string) map[string]string {
	t.Helper()
	raw, err := k.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	return map[string]string{"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "x": b64(raw[1:33]), "y": b64(raw[33:])}
}

// writeECKey makes a P-256 key and writes its private half as PEM.
func writeECKey(t *testing.T, path string) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return k
}

// A server with auth.jwt.jwks_url fetches the set as it starts, accepts the tokens that
// streamux auth token signs with a key of the set, and a key added to the set later once a token
// names its kid.
func TestAuthJWKSURLServes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	k1Path, k2Path := filepath.Join(dir, "k1.pem"), filepath.Join(dir, "k2.pem")
	k1, k2 := writeECKey(t, k1Path), writeECKey(t, k2Path)
	var mu sync.Mutex
	set := []map[string]string{jwkEC(t, k1, "k1")}
	var fetches atomic.Int64
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		mu.Lock()
		defer mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"keys": set})
	}))
	defer idp.Close()
	cfg := filepath.Join(dir, "jwks.yaml")
	yaml := "sources:\n  - {name: a, type: demo, rate: 20}\n  - {name: b, type: demo, rate: 20}\n" +
		"auth:\n  jwt:\n    jwks_url: " + idp.URL + "/jwks.json\n    jwks_min_refresh: 300ms\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	s := serve(t, "-config", cfg)
	eventually(t, 10*time.Second, "the server to fetch the key set", func() bool { return fetches.Load() >= 1 })

	mint := func(keyPath, kid string) string {
		out, _ := runAuth(t, "", 0, "token", "-config", cfg, "-private-key", keyPath, "-kid", kid, "-sources", "a")
		return strings.TrimSpace(out)
	}
	tok1 := mint(k1Path, "k1")
	if got := status(t, s, "/v1/stream?source=a&where=true", tok1); got != 200 {
		t.Fatalf("kid k1: %d", got)
	}
	if got := status(t, s, "/v1/stream?source=b&where=true", tok1); got != 403 {
		t.Errorf("kid k1 on source b, which its claims leave out: %d", got)
	}
	mu.Lock()
	set = append(set, jwkEC(t, k2, "k2"))
	mu.Unlock()
	tok2 := mint(k2Path, "k2")
	eventually(t, 10*time.Second, "a token with the new kid k2 to be accepted", func() bool {
		return status(t, s, "/v1/stream?source=a&where=true", tok2) == 200
	})
}
