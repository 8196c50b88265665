package auth

import (
	"errors"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// message matches every message Authenticate may return. That the set is closed shows that no
// message quotes the credential.
var message = regexp.MustCompile(`^(no credential: send Authorization: Bearer <token>, or \?token=<token> where headers cannot be set|invalid credential: (` +
	reasons + `)(; (` + reasons + `))*)$`)

var reasons = strings.Join([]string{
	"more than one Authorization header", "the Authorization scheme must be Bearer",
	"empty bearer token", "more than one token parameter", "empty token parameter",
	"credential longer than 16 KiB", "API key has expired", "unknown API key",
	"neither a known API key nor a JWT", "malformed token", `unsupported or missing algorithm \(alg\)`,
	`algorithm (` + strings.Join(knownAlgs, "|") + `) is not accepted \(accepted: [A-Za-z0-9, ]+\)`,
	"algorithm not accepted", "bad signature", "the kid header is not a string",
	`unknown key id \(kid\)`, "no key for the token's algorithm", "token has expired",
	`token is not valid yet \(nbf\)`, "wrong audience", "wrong issuer", "token has no (exp|aud|iss) claim",
	"token refused", `claim "(sources|write)" must be a list of strings`, `claim "where" must be a string`,
	`claim "(admin|sinks)" must be true or false`, `claim "(exp|nbf|iat)" must be a number \(NumericDate\)`,
	`unsupported critical header \(crit\)`,
}, "|")

// FuzzAuthenticate feeds arbitrary Authorization headers and token parameters to an
// Authenticator that accepts API keys and every kind of JWT key. It must never panic, must
// answer every failure with ErrNoCredential or ErrInvalidCredential and one of the known
// messages, and must accept nothing but the valid credentials it was seeded with.
func FuzzAuthenticate(f *testing.F) {
	k := keys()
	c := fullConfig(f)
	c.APIKeys = []APIKey{{Name: "k1", SHA256: HashKey("sx_fuzz-key-one")}, {Name: "k2", SHA256: HashKey("sx_fuzz-key-two"), Sources: []string{"a"}}}
	a := newAuth(f, c, now)
	valid := []string{
		"sx_fuzz-key-one", "sx_fuzz-key-two",
		sign(f, jwt.SigningMethodHS256, []byte(testSecret), "", claims(nil)),
		sign(f, jwt.SigningMethodRS256, k.rsa, "", claims(nil)),
		sign(f, jwt.SigningMethodES256, k.ecJWKS, "e1", claims(func(c jwt.MapClaims) { c["sources"] = []string{"a"} })),
		sign(f, jwt.SigningMethodEdDSA, k.ed, "d1", claims(nil)),
	}
	for _, v := range valid {
		if _, err := a.Authenticate(bearer(v)); err != nil {
			f.Fatalf("a valid seed is refused: %v", err)
		}
		f.Add("Bearer "+v, "")
		f.Add("", v)
		f.Add("Bearer "+v[:len(v)-1], v+"x")
	}
	f.Add("", "")
	f.Add("Basic abc", "a.b.c")
	f.Add("Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "")
	f.Add("bearer   ", "%00")
	f.Fuzz(func(t *testing.T, header, token string) {
		r := httptest.NewRequest("GET", "/v1/stream", nil)
		if header != "" {
			r.Header["Authorization"] = []string{header}
		}
		if token != "" {
			r.URL.RawQuery = url.Values{"token": {token}}.Encode()
		}
		p, err := a.Authenticate(r)
		if err != nil {
			if p != nil || !errors.Is(err, ErrNoCredential) && !errors.Is(err, ErrInvalidCredential) {
				t.Fatalf("Authenticate = %v, %v", p, err)
			}
			if !message.MatchString(err.Error()) {
				t.Fatalf("Authenticate(%q, token=%q): unexpected message %q", header, token, err)
			}
			return
		}
		for _, v := range valid {
			if strings.Contains(header, v) || header == "" && token == v {
				return
			}
		}
		t.Fatalf("Authenticate(%q, token=%q) accepted %+v", header, token, p)
	})
}
