package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// ErrNoCredential is returned, wrapped, when a request carries no credential: answer 401.
var ErrNoCredential = errors.New("no credential")

// ErrInvalidCredential is returned, wrapped, when a request carries a credential that is not
// accepted: answer 401. The wrapping error's message says why (expired, bad signature, wrong
// audience, …) and never quotes the credential, so it may be shown to the client.
var ErrInvalidCredential = errors.New("invalid credential")

// invalid is an ErrInvalidCredential with its reason.
func invalid(reason string) error {
	return &credentialError{reason: reason}
}

type credentialError struct{ reason string }

func (e *credentialError) Error() string        { return "invalid credential: " + e.reason }
func (e *credentialError) Is(target error) bool { return target == ErrInvalidCredential }

// errNoCredential says how to send one.
var errNoCredential = &noCredentialError{}

type noCredentialError struct{}

func (*noCredentialError) Error() string {
	return "no credential: send Authorization: Bearer <token>, or ?token=<token> where headers cannot be set"
}
func (*noCredentialError) Is(target error) bool { return target == ErrNoCredential }

// MaxCredentialBytes is the longest credential looked at; a longer one is refused unread.
const MaxCredentialBytes = 16 << 10

// Authenticator tells who made a request. It is safe for concurrent use, and immutable once
// built but for the keys of a jwks_url, which it fetches again as the package comment says; to
// change the configuration (a rotated API key, a new JWKS file), build another with New and
// swap.
type Authenticator struct {
	none bool
	keys []apiKey
	jwt  *verifier
	now  func() time.Time
}

// apiKey is a configured key: its hash and the principal it authenticates.
type apiKey struct {
	sum       [32]byte
	principal Principal
}

// New checks c and builds its Authenticator. The error joins every problem Validate finds.
// The zero Config, and one with None, build an Authenticator that lets everyone in.
func New(c Config) (*Authenticator, error) {
	a, errs := c.build()
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return a, nil
}

// Run keeps the key set of auth.jwt.jwks_url fresh: it fetches it at once, then every
// jwks_refresh (after a failure, every jwks_min_refresh), logging failures to log, until ctx
// ends. Without a jwks_url it returns at once. Authenticate works without Run: a token whose
// kid is unknown fetches the set itself (rate-limited), which is also how the first token
// finds the keys when Run has not fetched them yet. Run once per Authenticator; its caller
// waits for it. A nil Authenticator (no auth) returns at once.
func (a *Authenticator) Run(ctx context.Context, log *slog.Logger) {
	if a == nil || a.jwt == nil || a.jwt.remote == nil {
		return
	}
	if log == nil {
		log = slog.Default()
	}
	a.jwt.remote.run(ctx, log)
}

// Disabled reports whether a lets every request in as the anonymous principal.
func (a *Authenticator) Disabled() bool { return a.none }

// Authenticate returns the principal that r's credential authenticates.
//
// The credential is the Authorization: Bearer header or, when that header is absent, the token
// query parameter (for browsers' WebSocket and EventSource, which cannot set headers); the header
// wins when both are present, so that a proxy that sets the header decides. A credential is
// first looked up among the API keys, by its SHA-256 in constant time; otherwise, when JWT is
// configured, it is verified as a JWT.
//
// The error wraps ErrNoCredential or ErrInvalidCredential (both 401). What a principal may do is
// its methods' to say (403). With authentication off, every request is an anonymous principal
// that may do everything.
func (a *Authenticator) Authenticate(r *http.Request) (*Principal, error) {
	if a.none {
		return anonymous(), nil
	}
	cred, err := credential(r)
	if err != nil {
		return nil, err
	}
	if len(cred) > MaxCredentialBytes {
		return nil, invalid("credential longer than 16 KiB")
	}
	sum := sha256.Sum256([]byte(cred))
	if i := lookup(a.keys, &sum, subtle.ConstantTimeCompare); i >= 0 {
		p := a.keys[i].principal.clone()
		if p.Expired(a.now()) {
			return nil, invalid("API key has expired")
		}
		return p, nil
	}
	if a.jwt == nil {
		return nil, invalid("unknown API key")
	}
	p, err := a.jwt.verify(r.Context(), cred, a.now)
	if err != nil && len(a.keys) > 0 && !looksLikeJWT(cred) {
		return nil, invalid("neither a known API key nor a JWT")
	}
	return p, err
}

// credential takes the credential from r: the Authorization header, else the token parameter.
func credential(r *http.Request) (string, error) {
	if h := r.Header.Values("Authorization"); len(h) > 0 {
		if len(h) > 1 {
			return "", invalid("more than one Authorization header")
		}
		scheme, token, _ := strings.Cut(strings.TrimSpace(h[0]), " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return "", invalid("the Authorization scheme must be Bearer")
		}
		if token = strings.TrimSpace(token); token == "" {
			return "", invalid("empty bearer token")
		}
		return token, nil
	}
	if r.URL == nil {
		return "", errNoCredential
	}
	t, ok := r.URL.Query()["token"]
	switch {
	case !ok:
		return "", errNoCredential
	case len(t) > 1:
		return "", invalid("more than one token parameter")
	case t[0] == "":
		return "", invalid("empty token parameter")
	}
	return t[0], nil
}

// lookup returns the index of the key whose hash is sum, or -1. It compares sum with every key,
// each in constant time, and selects without a branch, so that the time taken says nothing of
// which key matched or how much of a hash did. eq is subtle.ConstantTimeCompare; tests count
// its calls.
func lookup(keys []apiKey, sum *[32]byte, eq func(x, y []byte) int) int {
	found := -1
	for i := range keys {
		found = subtle.ConstantTimeSelect(eq(keys[i].sum[:], sum[:]), i, found)
	}
	return found
}

// looksLikeJWT reports whether s has a JWT's shape: three dot-separated parts.
func looksLikeJWT(s string) bool {
	return strings.Count(s, ".") == 2
}

// HashKey returns the hex SHA-256 of key: what api_keys[].sha256 holds. It is the same as
// printf %s "$KEY" | sha256sum.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// NewKey returns a new random API key (32 random bytes, base64url: 43 characters, prefixed
// "sx_" so that secret scanners and people can tell what it is) and its hash for the
// configuration.
func NewKey() (key, sha256Hex string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	key = "sx_" + base64.RawURLEncoding.EncodeToString(b)
	return key, HashKey(key)
}

// Challenge returns the WWW-Authenticate header value (RFC 6750) for a 401 that Authenticate's
// err caused.
func Challenge(err error) string {
	const realm = `Bearer realm="streamux"`
	var ce *credentialError
	if !errors.As(err, &ce) {
		return realm
	}
	return realm + `, error="invalid_token", error_description="` + strings.ReplaceAll(ce.reason, `"`, `'`) + `"`
}
