package config

import (
	"strings"
	"testing"
	"time"
)

// auth.jwt's jwks_url and its refresh durations are decoded, defaulted by the auth package, and
// each problem is told at its line with the field's name.
func TestJWKSURLFields(t *testing.T) {
	c, err := Parse([]byte("auth:\n  jwt:\n    jwks_url: https://idp.example/.well-known/jwks.json\n    jwks_refresh: 30m\n    jwks_min_refresh: 10s\n"))
	if err != nil {
		t.Fatal(err)
	}
	j := c.Auth.JWT
	if j.JWKSURL != "https://idp.example/.well-known/jwks.json" || *j.JWKSRefresh != 30*time.Minute || *j.JWKSMinRefresh != 10*time.Second {
		t.Errorf("decoded %+v", j)
	}
	_, err = Parse([]byte("auth:\n  jwt:\n    jwks_url: http://idp.example/jwks.json\n    jwks_refresh: 1h\n    jwks_min_refresh: 2h\n"))
	for _, want := range []string{
		"line 3: auth.jwt.jwks_url: http is allowed to a loopback host only",
		"line 5: auth.jwt.jwks_min_refresh: 2h0m0s is above jwks_refresh (1h0m0s)",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
	_, err = Parse([]byte("auth:\n  jwt:\n    hs256_secret: 0123456789abcdef0123456789abcdef\n    jwks_refresh: 0s\n"))
	if want := "line 4: auth.jwt.jwks_refresh: applies to jwks_url, which is not set"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v does not say %q", err, want)
	}
}
