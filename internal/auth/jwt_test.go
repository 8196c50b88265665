package auth

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// now is the test clock.
var now = time.Date(2026, 11, 25, 16, 0, 0, 0, time.UTC)

const (
	testAud = "streamux"
	testIss = "https://idp.example"
)

// claims are valid claims for the test configurations, changed by edit.
func claims(edit func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{"sub": "alice", "aud": testAud, "iss": testIss,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	if edit != nil {
		edit(c)
	}
	return c
}

// fullConfig accepts every kind of key: an HS256 secret, PEM keys from a file and inline, and
// a JWKS file.
func fullConfig(t testing.TB) Config {
	k := keys()
	return Config{JWT: &JWT{
		HS256Secret: testSecret,
		PublicKeys: []string{
			writeFile(t, "rsa.pem", pemPublic(t, &k.rsa.PublicKey)),
			pemPublic(t, &k.ec.PublicKey),
			writeFile(t, "ec384.pem", pemPublic(t, &k.ec384.PublicKey)),
		},
		JWKSFile: writeJWKS(t,
			jwkOf(t, &k.rsaJWKS.PublicKey, "r1"),
			jwkOf(t, &k.ecJWKS.PublicKey, "e1"),
			jwkOf(t, k.ed.Public(), "d1"),
			map[string]string{"kty": "RSA", "use": "enc", "kid": "skipped", "n": "AQAB", "e": "AQAB"},
		),
		Audience: testAud,
		Issuer:   testIss,
	}}
}

func TestJWT(t *testing.T) {
	t.Parallel()
	k := keys()
	a := newAuth(t, fullConfig(t), now)
	secret := []byte(testSecret)
	at := func(d time.Duration) int64 { return now.Add(d).Unix() }
	rsaPEM := []byte(pemPublic(t, &k.rsa.PublicKey))

	good := map[string]string{
		"HS256":                     sign(t, jwt.SigningMethodHS256, secret, "", claims(nil)),
		"RS256 PEM file":            sign(t, jwt.SigningMethodRS256, k.rsa, "", claims(nil)),
		"RS256 PEM, any kid":        sign(t, jwt.SigningMethodRS256, k.rsa, "whatever", claims(nil)),
		"ES256 inline PEM":          sign(t, jwt.SigningMethodES256, k.ec, "", claims(nil)),
		"ES384 PEM":                 sign(t, jwt.SigningMethodES384, k.ec384, "", claims(nil)),
		"RS256 JWKS kid":            sign(t, jwt.SigningMethodRS256, k.rsaJWKS, "r1", claims(nil)),
		"RS256 JWKS no kid":         sign(t, jwt.SigningMethodRS256, k.rsaJWKS, "", claims(nil)),
		"ES256 JWKS kid":            sign(t, jwt.SigningMethodES256, k.ecJWKS, "e1", claims(nil)),
		"EdDSA JWKS kid":            sign(t, jwt.SigningMethodEdDSA, k.ed, "d1", claims(nil)),
		"expired within the leeway": sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) { c["exp"] = at(-20 * time.Second) })),
		"nbf within the leeway":     sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) { c["nbf"] = at(20 * time.Second) })),
		"aud as a list":             sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) { c["aud"] = []string{"other", testAud} })),
	}
	for name, tok := range good {
		for _, r := range []struct {
			how string
			p   func() (*Principal, error)
		}{{"header", func() (*Principal, error) { return a.Authenticate(bearer(tok)) }},
			{"query", func() (*Principal, error) { return a.Authenticate(query(tok)) }}} {
			p, err := r.p()
			if err != nil || p.Name != "alice" || p.Method != MethodJWT {
				t.Errorf("%s (%s): Authenticate = %+v, %v", name, r.how, p, err)
			}
		}
	}

	valid := good["RS256 PEM file"]
	parts := strings.Split(valid, ".")
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"mallory","aud":"streamux","iss":"https://idp.example","exp":9999999999,"admin":true}`)) + "." + parts[2]
	// The signature's last character carries 4 bits that decode to nothing: flipping one gives
	// the same bytes to a lax decoder. A strict one refuses it.
	sig := []byte(parts[2])
	sig[len(sig)-1] = map[byte]byte{'A': 'B', 'Q': 'R', 'g': 'h', 'w': 'x'}[sig[len(sig)-1]]
	lax := parts[0] + "." + parts[1] + "." + string(sig)
	header := func(h string) string { return base64.RawURLEncoding.EncodeToString([]byte(h)) }

	for _, c := range []struct {
		name, token, want string
	}{
		{"bad signature (another RSA key)", sign(t, jwt.SigningMethodRS256, k.rsaOther, "", claims(nil)), "bad signature"},
		{"bad signature (another secret)", sign(t, jwt.SigningMethodHS256, []byte(testSecret+"x"), "", claims(nil)), "bad signature"},
		{"claims changed after signing", forged, "bad signature"},
		{"non-canonical base64 signature", lax, "malformed token"},
		{"RS256 public key used as HS256 secret", sign(t, jwt.SigningMethodHS256, rsaPEM, "", claims(nil)), "bad signature"},
		{"expired", sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) { c["exp"] = at(-31 * time.Second) })), "token has expired"},
		{"not yet valid", sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) { c["nbf"] = at(31 * time.Second) })), "not valid yet"},
		{"wrong audience", sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) { c["aud"] = "other" })), "wrong audience"},
		{"no audience", sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) { delete(c, "aud") })), "no aud claim"},
		{"wrong issuer", sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" })), "wrong issuer"},
		{"no issuer", sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) { delete(c, "iss") })), "no iss claim"},
		{"no exp", sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) { delete(c, "exp") })), "no exp claim"},
		{"expired and wrong audience", sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) { c["exp"] = at(-time.Hour); c["aud"] = "x" })), "token has expired; wrong audience"},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", claims(nil)), "algorithm none is not accepted"},
		{"alg none, hand-made", header(`{"alg":"none","typ":"JWT"}`) + "." + parts[1] + ".", "algorithm none is not accepted"},
		{"alg None", header(`{"alg":"None"}`) + "." + parts[1] + ".", "unsupported or missing algorithm"},
		{"HS512 with the right secret", sign(t, jwt.SigningMethodHS512, secret, "", claims(nil)), "algorithm HS512 is not accepted"},
		{"PS256 with a PEM RSA key (pinned to RS256)", sign(t, jwt.SigningMethodPS256, k.rsa, "", claims(nil)), "algorithm PS256 is not accepted"},
		{"no alg", header(`{"typ":"JWT"}`) + "." + parts[1] + "." + parts[2], "unsupported or missing algorithm"},
		{"unknown alg", header(`{"alg":"XYZ512"}`) + "." + parts[1] + "." + parts[2], "unsupported or missing algorithm"},
		{"RS256 with an unknown kid falls to kid-less keys", sign(t, jwt.SigningMethodRS256, k.rsaJWKS, "nope", claims(nil)), "bad signature"},
		{"JWKS key with another key's kid", sign(t, jwt.SigningMethodRS256, k.rsaJWKS, "e1", claims(nil)), "bad signature"},
		{"two segments", parts[0] + "." + parts[1], "malformed token"},
		{"four segments", valid + ".x", "malformed token"},
		{"garbage segments", "a.b.c", "malformed token"},
		{"empty segments", "..", "malformed token"},
		{"header not JSON", header("nope") + "." + parts[1] + "." + parts[2], "malformed token"},
		{"claims not JSON", parts[0] + "." + header("nope") + "." + parts[2], "malformed token"},
		{"exp a string", sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) { c["exp"] = "tomorrow" })), "malformed token"},
		{"sources a string", sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) { c["sources"] = "orders" })), `claim "sources" must be a list of strings`},
		{"sources of numbers", sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) { c["sources"] = []int{1} })), `claim "sources" must be a list of strings`},
		{"write an object", sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) { c["write"] = map[string]any{} })), `claim "write" must be a list of strings`},
		{"where a number", sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) { c["where"] = 5 })), `claim "where" must be a string`},
		{"admin a string", sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) { c["admin"] = "true" })), `claim "admin" must be true or false`},
		{"sinks a number", sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) { c["sinks"] = 1 })), `claim "sinks" must be true or false`},
	} {
		p, err := a.Authenticate(bearer(c.token))
		if !errors.Is(err, ErrInvalidCredential) || p != nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Authenticate = %+v, %v; want ErrInvalidCredential saying %q", c.name, p, err, c.want)
		}
		noLeak(t, err, c.token)
	}
}

// RFC 7519 and 7515, as the README's table says (issue 16): a kid must be a string whatever the
// algorithm, exp, nbf and iat must be numbers (a NumericDate, not a numeric string), and a
// token that names critical header extensions (crit), none of which this server supports,
// is refused. Only once the signature is good: a forged token still gets "bad signature".
func TestJWTHeaderAndDateTypes(t *testing.T) {
	t.Parallel()
	a := newAuth(t, fullConfig(t), now)
	secret := []byte(testSecret)
	withHeader := func(h map[string]any, c jwt.MapClaims) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
		for k, v := range h {
			tok.Header[k] = v
		}
		s, err := tok.SignedString(secret)
		must(t, err)
		return s
	}
	str := func(d time.Duration) string { return fmt.Sprint(now.Add(d).Unix()) }
	for _, c := range []struct{ name, token, want string }{
		{"HS256, kid a number", withHeader(map[string]any{"kid": 7}, claims(nil)), "the kid header is not a string"},
		{"HS256, kid an object", withHeader(map[string]any{"kid": map[string]any{}}, claims(nil)), "the kid header is not a string"},
		{"exp a numeric string", sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) { c["exp"] = str(time.Hour) })), `claim "exp" must be a number (NumericDate)`},
		{"nbf a numeric string", sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) { c["nbf"] = str(-time.Hour) })), `claim "nbf" must be a number (NumericDate)`},
		{"iat a numeric string", sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) { c["iat"] = str(0) })), `claim "iat" must be a number (NumericDate)`},
		{"crit naming an extension", withHeader(map[string]any{"crit": []string{"x-bound"}, "x-bound": true}, claims(nil)), "unsupported critical header (crit)"},
		{"crit empty", withHeader(map[string]any{"crit": []string{}}, claims(nil)), "unsupported critical header (crit)"},
		{"crit, signed with another key", func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(nil))
			tok.Header["crit"] = []string{"x"}
			s, err := tok.SignedString([]byte(testSecret + "x"))
			must(t, err)
			return s
		}(), "bad signature"},
	} {
		p, err := a.Authenticate(bearer(c.token))
		if !errors.Is(err, ErrInvalidCredential) || p != nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Authenticate = %+v, %v; want ErrInvalidCredential saying %q", c.name, p, err, c.want)
		}
		noLeak(t, err, c.token)
	}
	// A number with a fraction is a NumericDate too.
	if _, err := a.Authenticate(bearer(sign(t, jwt.SigningMethodHS256, secret, "", claims(func(c jwt.MapClaims) { c["exp"] = float64(now.Add(time.Hour).Unix()) + 0.5 })))); err != nil {
		t.Errorf("exp with a fraction: %v", err)
	}
}

func TestJWTKidHeaderNotString(t *testing.T) {
	t.Parallel()
	k := keys()
	a := newAuth(t, fullConfig(t), now)
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims(nil))
	tok.Header["kid"] = 7
	s, err := tok.SignedString(k.ecJWKS)
	must(t, err)
	if _, err := a.Authenticate(bearer(s)); !errors.Is(err, ErrInvalidCredential) || !strings.Contains(err.Error(), "kid header is not a string") {
		t.Errorf("error %v", err)
	}
}

// TestAlgConfusion: with only an RSA public key configured, a token HMAC-signed with that
// public key (PEM or DER) is refused: HS256 is not among the configured algorithms, and even if
// it were, the RSA key is pinned to RS256.
func TestAlgConfusion(t *testing.T) {
	t.Parallel()
	k := keys()
	pemText := pemPublic(t, &k.rsa.PublicKey)
	a := newAuth(t, Config{JWT: &JWT{PublicKeys: []string{pemText}}}, now)
	for _, key := range [][]byte{[]byte(pemText), []byte(strings.TrimSpace(pemText)), k.rsa.PublicKey.N.Bytes()} {
		for _, m := range []jwt.SigningMethod{jwt.SigningMethodHS256, jwt.SigningMethodHS384, jwt.SigningMethodHS512} {
			tok := sign(t, m, key, "", claims(nil))
			if _, err := a.Authenticate(bearer(tok)); !errors.Is(err, ErrInvalidCredential) || !strings.Contains(err.Error(), "is not accepted") {
				t.Errorf("%s signed with the public key: %v", m.Alg(), err)
			}
		}
	}
	// An ES256 token where only RSA is configured.
	if _, err := a.Authenticate(bearer(sign(t, jwt.SigningMethodES256, k.ec, "", claims(nil)))); !errors.Is(err, ErrInvalidCredential) {
		t.Errorf("ES256 accepted by an RSA-only configuration: %v", err)
	}
	// The genuine RS256 token works.
	if _, err := a.Authenticate(bearer(sign(t, jwt.SigningMethodRS256, k.rsa, "", claims(nil)))); err != nil {
		t.Error(err)
	}
	// HS256 only: an RS256 token is refused before any key is looked at.
	hs := newAuth(t, Config{JWT: &JWT{HS256Secret: testSecret}}, now)
	// With no audience or issuer configured, a token without exp is told only of exp.
	bare := claims(func(c jwt.MapClaims) { delete(c, "exp"); delete(c, "aud"); delete(c, "iss") })
	if _, err := hs.Authenticate(bearer(sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", bare))); !errors.Is(err, ErrInvalidCredential) || !strings.HasSuffix(err.Error(), ": token has no exp claim") {
		t.Errorf("no exp, aud and iss not required: %v", err)
	}
	if _, err := hs.Authenticate(bearer(sign(t, jwt.SigningMethodRS256, k.rsa, "", claims(nil)))); !errors.Is(err, ErrInvalidCredential) || !strings.Contains(err.Error(), "algorithm RS256 is not accepted") {
		t.Errorf("RS256 to an HS256-only configuration: %v", err)
	}
}

func TestJWKSKid(t *testing.T) {
	t.Parallel()
	k := keys()
	a := newAuth(t, Config{JWT: &JWT{JWKSFile: writeJWKS(t,
		jwkOf(t, &k.rsaJWKS.PublicKey, "r1"),
		jwkOf(t, &k.rsa.PublicKey, "r2"),
	)}}, now)
	for _, c := range []struct {
		name, token, want string
	}{
		{"kid r1", sign(t, jwt.SigningMethodRS256, k.rsaJWKS, "r1", claims(nil)), ""},
		{"kid r2", sign(t, jwt.SigningMethodRS256, k.rsa, "r2", claims(nil)), ""},
		{"no kid: every RS256 key is tried", sign(t, jwt.SigningMethodRS256, k.rsa, "", claims(nil)), ""},
		{"kid not in the JWKS", sign(t, jwt.SigningMethodRS256, k.rsaJWKS, "r3", claims(nil)), "unknown key id"},
		{"kid of another key", sign(t, jwt.SigningMethodRS256, k.rsaJWKS, "r2", claims(nil)), "bad signature"},
		{"key not in the JWKS", sign(t, jwt.SigningMethodRS256, k.rsaOther, "", claims(nil)), "bad signature"},
		{"ES256: no key for it", sign(t, jwt.SigningMethodES256, k.ec, "", claims(nil)), "algorithm ES256 is not accepted"},
	} {
		_, err := a.Authenticate(bearer(c.token))
		if c.want == "" && err != nil || c.want != "" && (!errors.Is(err, ErrInvalidCredential) || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v; want %q", c.name, err, c.want)
		}
	}
}

func TestJWTClaims(t *testing.T) {
	t.Parallel()
	secret := []byte(testSecret)
	a := newAuth(t, Config{JWT: &JWT{HS256Secret: testSecret, Leeway: dur(10 * time.Second)}}, now)
	exp := now.Add(time.Hour)
	tok := sign(t, jwt.SigningMethodHS256, secret, "", jwt.MapClaims{
		"sub": "svc-reporting", "exp": exp.Unix(),
		"sources": []string{"orders", "demo"}, "write": []string{"events"},
		"where": `headers.tenant == "acme"`, "admin": true,
	})
	p, err := a.Authenticate(bearer(tok))
	must(t, err)
	if p.Name != "svc-reporting" || p.Where != `headers.tenant == "acme"` || !p.Admin || !p.Expires.Equal(exp.Add(10*time.Second)) {
		t.Errorf("principal %+v", p)
	}
	if !p.CanRead("orders") || p.CanRead("payments") || !p.CanWrite("events") || p.CanWrite("orders") {
		t.Errorf("rights %+v", p)
	}

	for _, c := range []struct {
		name   string
		claims jwt.MapClaims
		check  func(*Principal) bool
	}{
		{"no custom claims: every source, no write, no admin, named jwt",
			jwt.MapClaims{"exp": exp.Unix()},
			func(p *Principal) bool {
				return p.Name == "jwt" && p.Sources == nil && p.CanRead("x") && !p.CanWrite("x") && !p.Admin && p.Where == ""
			}},
		{"sources []: none",
			jwt.MapClaims{"exp": exp.Unix(), "sources": []string{}},
			func(p *Principal) bool { return p.Sources != nil && !p.CanRead("x") }},
		{"sources null: every source",
			jwt.MapClaims{"exp": exp.Unix(), "sources": nil, "admin": nil, "where": nil},
			func(p *Principal) bool { return p.CanRead("x") && !p.Admin && p.Where == "" }},
		{"admin false",
			jwt.MapClaims{"exp": exp.Unix(), "admin": false},
			func(p *Principal) bool { return !p.Admin && !p.CanCreateSinks() }},
		{"sinks true: may create sinks, nothing more",
			jwt.MapClaims{"exp": exp.Unix(), "sinks": true},
			func(p *Principal) bool { return p.Sinks && p.CanCreateSinks() && !p.Admin }},
	} {
		p, err := a.Authenticate(bearer(sign(t, jwt.SigningMethodHS256, secret, "", c.claims)))
		if err != nil || !c.check(p) {
			t.Errorf("%s: %+v, %v", c.name, p, err)
		}
	}

	// Zero leeway: a second after exp is too late.
	strict := newAuth(t, Config{JWT: &JWT{HS256Secret: testSecret, Leeway: dur(0)}}, now)
	late := sign(t, jwt.SigningMethodHS256, secret, "", jwt.MapClaims{"exp": now.Add(-time.Second).Unix()})
	if _, err := strict.Authenticate(bearer(late)); !errors.Is(err, ErrInvalidCredential) {
		t.Errorf("leeway 0: %v", err)
	}
	if _, err := a.Authenticate(bearer(late)); err != nil {
		t.Errorf("leeway 10s: %v", err)
	}
}

func TestJWTClaimPrefix(t *testing.T) {
	t.Parallel()
	const prefix = "https://streamux.example/"
	a := newAuth(t, Config{JWT: &JWT{HS256Secret: testSecret, ClaimPrefix: prefix}}, time.Time{})
	tok, err := IssueHS256([]byte(testSecret), Claims{Subject: "bob", Sources: []string{"a"}, Admin: true, Sinks: true, Prefix: prefix}, time.Minute)
	must(t, err)
	p, err := a.Authenticate(bearer(tok))
	if err != nil || !p.Admin || !p.Sinks || p.CanRead("b") || !p.CanRead("a") {
		t.Errorf("prefixed claims: %+v, %v", p, err)
	}
	// Unprefixed claims are not read: a token cannot claim admin under the bare name.
	tok, err = IssueHS256([]byte(testSecret), Claims{Subject: "eve", Admin: true, Sources: []string{"a"}}, time.Minute)
	must(t, err)
	if p, err := a.Authenticate(bearer(tok)); err != nil || p.Admin || !p.CanRead("b") {
		t.Errorf("unprefixed claims were read: %+v, %v", p, err)
	}
}

func TestIssueHS256(t *testing.T) {
	t.Parallel()
	secret := []byte(testSecret)
	a := newAuth(t, Config{JWT: &JWT{HS256Secret: testSecret, Audience: testAud, Issuer: testIss}}, time.Time{})
	tok, err := IssueHS256(secret, Claims{Subject: "carol", Audience: testAud, Issuer: testIss,
		Sources: []string{"orders"}, Write: []string{"events"}, Where: "key == \"eu\"", Admin: true}, time.Hour)
	must(t, err)
	p, err := a.Authenticate(bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "carol" || !p.Admin || p.Where != `key == "eu"` || !p.CanRead("orders") || p.CanRead("x") || !p.CanWrite("events") {
		t.Errorf("principal %+v", p)
	}
	if d := time.Until(p.Expires); d < time.Hour || d > time.Hour+DefaultLeeway+time.Minute {
		t.Errorf("Expires in %v", d)
	}
	if _, err := IssueHS256([]byte("short"), Claims{}, time.Hour); err == nil {
		t.Error("a short secret was accepted")
	}
	if _, err := IssueHS256(secret, Claims{}, 0); err == nil {
		t.Error("a token that never expires was issued")
	}
	// Sources: [] is kept as an empty list (no source), not dropped (every source).
	tok, err = IssueHS256(secret, Claims{Audience: testAud, Issuer: testIss, Sources: []string{}}, time.Hour)
	must(t, err)
	if p, err := a.Authenticate(bearer(tok)); err != nil || p.CanRead("x") {
		t.Errorf("Sources: []: %+v, %v", p, err)
	}
}

// TestKeysAndJWT: with both API keys and JWT configured, each credential goes its way, and a
// credential that is neither says so.
func TestKeysAndJWT(t *testing.T) {
	t.Parallel()
	c := fullConfig(t)
	c.APIKeys = []APIKey{{Name: "k", SHA256: HashKey("an-api-key")}}
	a := newAuth(t, c, now)
	if p, err := a.Authenticate(bearer("an-api-key")); err != nil || p.Method != MethodAPIKey {
		t.Errorf("API key: %+v, %v", p, err)
	}
	if p, err := a.Authenticate(bearer(sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", claims(nil)))); err != nil || p.Method != MethodJWT {
		t.Errorf("JWT: %+v, %v", p, err)
	}
	if _, err := a.Authenticate(bearer("another-key")); !errors.Is(err, ErrInvalidCredential) || !strings.Contains(err.Error(), "neither a known API key nor a JWT") {
		t.Errorf("unknown: %v", err)
	}
	if _, err := a.Authenticate(bearer("a.b.c")); !errors.Is(err, ErrInvalidCredential) || !strings.Contains(err.Error(), "malformed token") {
		t.Errorf("malformed JWT: %v", err)
	}
}
