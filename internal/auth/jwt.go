package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// verifier verifies JWTs against the configured keys.
type verifier struct {
	secret []byte      // HS256; nil when not configured
	keys   []verifyKey // public keys, each pinned to one algorithm
	remote *remoteJWKS // jwks_url's keys, fetched; nil when not configured
	algs   []string    // every algorithm some key accepts
	opts   []jwt.ParserOption
	leeway time.Duration
	prefix string
	// audience and issuer are the required aud and iss; "" when not checked.
	audience, issuer string
}

// build checks j and prepares its verifier.
func (j *JWT) build() (*verifier, []error) {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	v := &verifier{leeway: DefaultLeeway, prefix: j.ClaimPrefix, audience: j.Audience, issuer: j.Issuer}
	if j.Leeway != nil {
		v.leeway = *j.Leeway
		if v.leeway < 0 {
			add("auth.jwt.leeway must not be negative")
		}
	}
	if j.HS256Secret != "" {
		if len(j.HS256Secret) < MinSecretBytes {
			add("auth.jwt.hs256_secret is %d bytes; at least %d are required", len(j.HS256Secret), MinSecretBytes)
		}
		v.secret = []byte(j.HS256Secret)
		v.algs = append(v.algs, "HS256")
	}
	for i, entry := range j.PublicKeys {
		label := fmt.Sprintf("auth.jwt.public_keys[%d]", i)
		if !strings.Contains(entry, "-----BEGIN") {
			label += " (" + entry + ")"
		}
		keys, err := loadPEM(entry)
		if err != nil {
			add("%s: %v", label, err)
		}
		v.keys = append(v.keys, keys...)
	}
	if j.JWKSFile != "" {
		keys, kerrs := loadJWKS(j.JWKSFile)
		for _, err := range kerrs {
			add("auth.jwt.jwks_file (%s): %v", j.JWKSFile, err)
		}
		v.keys = append(v.keys, keys...)
	}
	algs := v.keys
	if j.JWKSURL != "" {
		if err := checkJWKSURL(j.JWKSURL); err != nil {
			add("auth.jwt.jwks_url: %v", err)
		}
		refresh, minRefresh := DefaultJWKSRefresh, DefaultJWKSMinRefresh
		if j.JWKSRefresh != nil {
			if refresh = *j.JWKSRefresh; refresh <= 0 {
				add("auth.jwt.jwks_refresh: must be positive (such as 1h), got %v", refresh)
			}
		}
		if j.JWKSMinRefresh != nil {
			if minRefresh = *j.JWKSMinRefresh; minRefresh <= 0 {
				add("auth.jwt.jwks_min_refresh: must be positive (such as 1m), got %v", minRefresh)
			}
		}
		if refresh > 0 && minRefresh > refresh {
			add("auth.jwt.jwks_min_refresh: %v is above jwks_refresh (%v): the least time between two fetches cannot be longer than the time between the regular ones", minRefresh, refresh)
		}
		v.remote = newRemoteJWKS(j.JWKSURL, refresh, minRefresh)
		// The set's algorithms are not known before it is fetched, and a rotation may bring
		// another: every public-key algorithm is let through to keyFor, which still pins
		// each key to its one algorithm.
		for _, alg := range append(slices.Clone(rsaAlgs), "ES256", "ES384", "ES512", "EdDSA") {
			algs = append(algs, verifyKey{alg: alg})
		}
	} else {
		if j.JWKSRefresh != nil {
			add("auth.jwt.jwks_refresh: applies to jwks_url, which is not set")
		}
		if j.JWKSMinRefresh != nil {
			add("auth.jwt.jwks_min_refresh: applies to jwks_url, which is not set")
		}
	}
	for _, k := range algs {
		if !slices.Contains(v.algs, k.alg) {
			v.algs = append(v.algs, k.alg)
		}
	}
	if j.HS256Secret == "" && len(j.PublicKeys) == 0 && j.JWKSFile == "" && j.JWKSURL == "" {
		add("auth.jwt: no key: set hs256_secret, public_keys, jwks_file or jwks_url")
	}
	v.opts = []jwt.ParserOption{
		jwt.WithValidMethods(v.algs),
		jwt.WithLeeway(v.leeway),
		jwt.WithExpirationRequired(),
		jwt.WithStrictDecoding(),
	}
	if j.Audience != "" {
		v.opts = append(v.opts, jwt.WithAudience(j.Audience))
	}
	if j.Issuer != "" {
		v.opts = append(v.opts, jwt.WithIssuer(j.Issuer))
	}
	return v, errs
}

// tokenClaims decodes a token's claims: the registered ones, and the rest raw, so that the
// custom claims are type-checked only once the signature is known to be good.
type tokenClaims struct {
	jwt.RegisteredClaims
	custom map[string]json.RawMessage
}

func (c *tokenClaims) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &c.RegisteredClaims); err != nil {
		return err
	}
	return json.Unmarshal(b, &c.custom)
}

// keyError is a key lookup failure, said as the client may read it.
type keyError struct{ reason string }

func (e *keyError) Error() string { return e.reason }

// keyFor returns the keys that may have signed t: the HS256 secret for HS256, else the public
// keys pinned to t's algorithm and, when t names a kid, with that kid (or none). When none is
// found and a jwks_url is configured, the set is fetched again first (rate-limited), so that
// a key the provider has just added is found.
func (v *verifier) keyFor(ctx context.Context, t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	// RFC 7515: kid is a string, whatever the algorithm, even one that does not look at it.
	kid, hasKid := t.Header["kid"]
	kidStr, ok := kid.(string)
	if hasKid && !ok {
		return nil, &keyError{"the kid header is not a string"}
	}
	if alg == "HS256" {
		if len(v.secret) == 0 {
			return nil, &keyError{"no key for the token's algorithm"}
		}
		return v.secret, nil
	}
	set := v.matching(alg, hasKid, kidStr)
	if len(set.Keys) == 0 && v.remote != nil && v.remote.refreshForKid(ctx) {
		set = v.matching(alg, hasKid, kidStr)
	}
	if len(set.Keys) == 0 {
		if hasKid {
			return nil, &keyError{"unknown key id (kid)"}
		}
		return nil, &keyError{"no key for the token's algorithm"}
	}
	return set, nil
}

// matching is the public keys, configured and fetched, pinned to alg and, when hasKid, with kid
// (or none).
func (v *verifier) matching(alg string, hasKid bool, kid string) jwt.VerificationKeySet {
	var set jwt.VerificationKeySet
	for _, keys := range [][]verifyKey{v.keys, v.remoteKeys()} {
		for _, k := range keys {
			if k.alg == alg && (!hasKid || k.kid == "" || k.kid == kid) {
				set.Keys = append(set.Keys, k.key)
			}
		}
	}
	return set
}

func (v *verifier) remoteKeys() []verifyKey {
	if v.remote == nil {
		return nil
	}
	return v.remote.current()
}

// verify checks token and returns its principal. ctx bounds a fetch of jwks_url that an
// unknown kid causes.
func (v *verifier) verify(ctx context.Context, token string, now func() time.Time) (*Principal, error) {
	if len(v.algs) == 0 {
		return nil, invalid("no JWT key configured") // never reached: build refuses it
	}
	var claims tokenClaims
	opts := append(slices.Clip(v.opts), jwt.WithTimeFunc(now))
	t, err := jwt.NewParser(opts...).ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) { return v.keyFor(ctx, t) })
	if err != nil {
		return nil, invalid(v.reason(t, err))
	}
	p := &Principal{Name: claims.Subject, Method: MethodJWT}
	if p.Name == "" {
		p.Name = "jwt"
	}
	if claims.ExpiresAt != nil {
		p.Expires = claims.ExpiresAt.Add(v.leeway)
	}
	var errs []string
	// RFC 7515: a token that names header extensions the recipient must understand (crit) is
	// invalid unless it understands them all, and this server understands none; an empty
	// list is invalid as well.
	if _, ok := t.Header["crit"]; ok {
		errs = append(errs, "unsupported critical header (crit)")
	}
	// RFC 7519: exp, nbf and iat are NumericDates, JSON numbers. The jwt package also takes
	// a string of digits, which a token's issuer did not mean as a date.
	for _, name := range []string{"exp", "nbf", "iat"} {
		if raw, ok := claims.custom[name]; ok && !jsonNumber(raw) && string(raw) != "null" {
			errs = append(errs, fmt.Sprintf("claim %q must be a number (NumericDate)", name))
		}
	}
	if p.Sources, err = v.stringList(claims.custom, "sources"); err != nil {
		errs = append(errs, err.Error())
	}
	if p.Write, err = v.stringList(claims.custom, "write"); err != nil {
		errs = append(errs, err.Error())
	}
	if raw, ok := claims.custom[v.prefix+"where"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &p.Where); err != nil {
			errs = append(errs, fmt.Sprintf("claim %q must be a string", v.prefix+"where"))
		}
	}
	if raw, ok := claims.custom[v.prefix+"admin"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &p.Admin); err != nil {
			errs = append(errs, fmt.Sprintf("claim %q must be true or false", v.prefix+"admin"))
		}
	}
	if raw, ok := claims.custom[v.prefix+"sinks"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &p.Sinks); err != nil {
			errs = append(errs, fmt.Sprintf("claim %q must be true or false", v.prefix+"sinks"))
		}
	}
	if len(errs) > 0 {
		return nil, invalid(strings.Join(errs, "; "))
	}
	return p, nil
}

// jsonNumber reports whether raw, a JSON value, is a number.
func jsonNumber(raw json.RawMessage) bool {
	return len(raw) > 0 && (raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9')
}

// stringList reads a list-of-strings claim: absent or null is nil.
func (v *verifier) stringList(custom map[string]json.RawMessage, name string) ([]string, error) {
	raw, ok := custom[v.prefix+name]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("claim %q must be a list of strings", v.prefix+name)
	}
	if list == nil {
		list = []string{}
	}
	return list, nil
}

// knownAlgs are the algorithm names that an error message may repeat; any other alg header is
// the client's text and is not echoed.
var knownAlgs = []string{"none", "HS256", "HS384", "HS512", "RS256", "RS384", "RS512",
	"PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// reason says why jwt refused a token, in words of its own: the library's messages can quote
// parts of the token.
func (v *verifier) reason(t *jwt.Token, err error) string {
	var ke *keyError
	switch {
	case errors.As(err, &ke):
		return ke.reason
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "unsupported or missing algorithm (alg)"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if t != nil && t.Method != nil && !slices.Contains(v.algs, t.Method.Alg()) {
			if alg := t.Method.Alg(); slices.Contains(knownAlgs, alg) {
				return fmt.Sprintf("algorithm %s is not accepted (accepted: %s)", alg, strings.Join(v.algs, ", "))
			}
			return "algorithm not accepted"
		}
		return "bad signature"
	}
	var why []string
	for _, c := range []struct {
		err    error
		reason string
	}{
		{jwt.ErrTokenExpired, "token has expired"},
		{jwt.ErrTokenNotValidYet, "token is not valid yet (nbf)"},
		{jwt.ErrTokenInvalidAudience, "wrong audience"},
		{jwt.ErrTokenInvalidIssuer, "wrong issuer"},
	} {
		if errors.Is(err, c.err) {
			why = append(why, c.reason)
		}
	}
	if errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && t != nil {
		if c, ok := t.Claims.(*tokenClaims); ok {
			if c.ExpiresAt == nil {
				why = append(why, "token has no exp claim")
			}
			if v.audience != "" && len(c.Audience) == 0 {
				why = append(why, "token has no aud claim")
			}
			if v.issuer != "" && c.Issuer == "" {
				why = append(why, "token has no iss claim")
			}
		}
	}
	if len(why) == 0 {
		return "token refused"
	}
	return strings.Join(why, "; ")
}

// Claims are what Issue puts in a token.
type Claims struct {
	// Subject (sub) names the principal in logs and limits.
	Subject string
	// Audience (aud) and Issuer (iss), when the verifier checks them.
	Audience string
	Issuer   string
	// Sources the token may read: nil is every source (the claim is left out), [] none.
	Sources []string
	// Write lists the sources the token may ingest into: nil is none.
	Write []string
	// Where is the forced predicate.
	Where string
	// Admin allows the admin endpoints.
	Admin bool
	// Sinks allows creating sinks.
	Sinks bool
	// Prefix is put before the custom claims' names (JWT.ClaimPrefix).
	Prefix string
}

// IssueHS256 returns a token signed with secret (at least MinSecretBytes) that carries claims
// and expires after ttl (which must be positive: the verifier requires exp). It is what tests
// and a command such as `streamux auth token` use; an identity provider issues the tokens in
// production.
func IssueHS256(secret []byte, claims Claims, ttl time.Duration) (string, error) {
	return Issue(HS256Key(secret), claims, ttl)
}
