package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testKeys are real keys, made once: RSA generation takes a while under -race.
type testKeys struct {
	rsa, rsaOther, rsaJWKS *rsa.PrivateKey
	ec, ecJWKS             *ecdsa.PrivateKey
	ec384                  *ecdsa.PrivateKey
	ed                     ed25519.PrivateKey
}

var keys = sync.OnceValue(func() *testKeys {
	k := &testKeys{}
	var err error
	for _, p := range []**rsa.PrivateKey{&k.rsa, &k.rsaOther, &k.rsaJWKS} {
		if *p, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	}
	for _, p := range []struct {
		k **ecdsa.PrivateKey
		c elliptic.Curve
	}{{&k.ec, elliptic.P256()}, {&k.ecJWKS, elliptic.P256()}, {&k.ec384, elliptic.P384()}} {
		if *p.k, err = ecdsa.GenerateKey(p.c, rand.Reader); err != nil {
			panic(err)
		}
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
	return k
})

// testSecret is the HS256 secret of the test configurations.
const testSecret = "0123456789abcdef0123456789abcdef-test-secret"

// pemPublic encodes pub as a PEM "PUBLIC KEY" block.
func pemPublic(t testing.TB, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// writeFile writes data to name in a temporary directory and returns its path.
func writeFile(t testing.TB, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwkOf is the public JWK of pub.
func jwkOf(t testing.TB, pub any, kid string) map[string]string {
	t.Helper()
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return map[string]string{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
			"n": b64u(k.N.Bytes()), "e": b64u(big.NewInt(int64(k.E)).Bytes())}
	case *ecdsa.PublicKey:
		raw, err := k.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		size := (len(raw) - 1) / 2
		return map[string]string{"kty": "EC", "kid": kid, "crv": k.Curve.Params().Name,
			"x": b64u(raw[1 : 1+size]), "y": b64u(raw[1+size:])}
	case ed25519.PublicKey:
		return map[string]string{"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64u(k)}
	}
	t.Fatalf("jwkOf(%T)", pub)
	return nil
}

// writeJWKS writes a JWKS file of jwks and returns its path.
func writeJWKS(t testing.TB, jwks ...map[string]string) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": jwks})
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "jwks.json", string(b))
}

// sign makes a token with method and key, a kid header when kid is not "", and claims.
func sign(t testing.TB, m jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newAuth builds c's Authenticator, failing the test on an error, with its clock at now when
// now is not zero.
func newAuth(t testing.TB, c Config, now time.Time) *Authenticator {
	t.Helper()
	a, err := New(c)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if !now.IsZero() {
		a.now = func() time.Time { return now }
	}
	return a
}

// bearer is a request with an Authorization: Bearer header.
func bearer(token string) *http.Request {
	r := httptest.NewRequest("GET", "/v1/stream", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}

// query is a request with a token parameter.
func query(token string) *http.Request {
	return httptest.NewRequest("GET", "/v1/stream?"+url.Values{"token": {token}, "where": {"true"}}.Encode(), nil)
}

// noLeak fails if err's message quotes the credential or a part of it.
func noLeak(t testing.TB, err error, cred string) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	if !message.MatchString(msg) {
		t.Errorf("unexpected message %q", msg)
	}
	for _, part := range append(strings.Split(cred, "."), cred) {
		if len(part) >= 8 && strings.Contains(msg, part) {
			t.Errorf("error %q quotes the credential", msg)
		}
	}
}

func dur(d time.Duration) *time.Duration { return &d }
